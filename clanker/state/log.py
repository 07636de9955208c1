"""The append-only event log: one `write()` of one whole line per event, read incrementally."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

from .codec import BadEvent, from_json, to_json, warn_skipped
from .events import Event
from .secrets import redact


def append(path: Path, events: list[Event]) -> int:
    """Append events; returns the file size after the write.

    Each event is one os.write of one complete line on an O_APPEND descriptor: concurrent writers
    from several processes then never interleave inside a line (DESIGN §3 measured this).
    """
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        for ev in events:
            line = redact(json.dumps(to_json(ev), ensure_ascii=False, separators=(",", ":"))) + "\n"
            os.write(fd, line.encode("utf-8"))
        return os.fstat(fd).st_size
    finally:
        os.close(fd)


def read_from(path: Path, offset: int) -> Iterator[tuple[Event, int]]:
    """Events after byte `offset`, each with the offset just past its line.

    A last line without its newline is a write in progress: it is not yielded, and the next read
    starts at its beginning. Lines that are not valid events are skipped (an unknown type or a bad
    value with a warning: a newer clanker or a hand edit wrote it).
    """
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return
    pos = offset
    for raw in data.splitlines(keepends=True):
        if not raw.endswith(b"\n"):
            return
        pos += len(raw)
        try:
            obj = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if not isinstance(obj, dict) or "type" not in obj:
            continue
        try:
            yield from_json(obj), pos
        except BadEvent as e:
            warn_skipped(str(e), str(path))


def size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def head(path: Path) -> str:
    """The first line of the log: identifies it, so a snapshot of another log is never trusted."""
    try:
        with open(path, "rb") as f:
            return f.readline(4096).decode("utf-8", "replace")
    except FileNotFoundError:
        return ""
