"""Atomic file replacement: a reader sees the old file or the new one, never half of either."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import orjson


def write_text(path: Path, text: str, mode: int = 0o644, durable: bool = True) -> None:
    """Replace `path` with `text`. `durable`: on disk before it returns (fsync of the file and its
    directory); a cache or a heartbeat, rewritten soon anyway, needs only the atomic rename."""
    write_bytes(path, text.encode("utf-8"), mode, durable)


def write_bytes(path: Path, data: bytes, mode: int = 0o644, durable: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fchmod(fd, mode)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if not durable:
        return
    # The rename itself is only durable once the directory entry is on disk.
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def write_json(path: Path, data: Any, durable: bool = True, compact: bool = False) -> None:
    """`compact`: one line, by orjson (a heartbeat or a snapshot, written often and read by
    programs); else indented with sorted keys, for a person to read."""
    if compact:
        write_bytes(
            path, orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_APPEND_NEWLINE), durable=durable
        )
    else:
        write_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n", durable=durable)


def read_json(path: Path) -> Any | None:
    """The parsed file, or None when it is missing or not (yet) valid JSON."""
    try:
        return orjson.loads(path.read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError):
        return None
