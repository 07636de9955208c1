"""clanker.yaml as it was last parsed, kept in `.clanker/cache/config.json`: every clanker
process reads the settings, and PyYAML's pure-Python loader (imported and run twice, for the
values and for their line numbers) cost each one 12–20 ms. The entry is keyed by the file's
identity and times, taken before it is read, so an edit is always parsed again."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import orjson

from .. import __version__

FORMAT = 1
Parsed = tuple[dict[str, Any], dict[tuple[str, ...], int]]


def key(path: Path) -> list[Any] | None:
    """What must not change for a cached parse of `path` to hold (None: can't tell)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return [FORMAT, __version__, str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def read(cache: Path, want: list[Any] | None) -> Parsed | None:
    if want is None:
        return None
    try:
        entry = orjson.loads(cache.read_bytes())
        if entry["key"] != want:
            return None
        return entry["data"], {tuple(k): n for k, n in entry["lines"]}
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None  # missing, half-written by an older clanker, or not ours: parse the file


_held: list[tuple[Path, list[Any], Parsed]] = []  # a parse made before the state directory was


def write(cache: Path, want: list[Any] | None, parsed: Parsed) -> None:
    """Kept only when the state directory exists (reading settings never creates it: `flush`
    writes the parse once it does) and the values come back from JSON exactly as YAML gave
    them (no dates, no non-string keys)."""
    data, lines = parsed
    if want is None:
        return
    if not cache.parent.parent.is_dir():
        _held[:] = [(cache, want, parsed)]
        return
    try:
        body = orjson.dumps({"key": want, "data": data, "lines": [[list(k), n] for k, n in lines.items()]})
        if orjson.loads(body)["data"] != data:
            return
        cache.parent.mkdir(exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache.parent, prefix=".config.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(body)
        os.replace(tmp, cache)  # no fsync: a lost entry is parsed again
    except (OSError, TypeError, orjson.JSONEncodeError):
        return


def flush() -> None:
    """Write the parse `write` held back, now that the state directory exists (the first
    command in a project makes it after reading the settings): the next process reads it."""
    if _held:
        cache, want, parsed = _held.pop()
        if key(Path(want[2])) == want:  # unchanged since it was parsed
            write(cache, want, parsed)
