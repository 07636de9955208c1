"""The append-only event log: one `write()` of one whole line per event, read incrementally."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import orjson

from .codec import BadEvent, decode_line, from_json, to_json, warn_skipped
from .events import Event
from .secrets import redact


def append(path: Path, events: list[Event], locked: bool = False) -> int:
    """Append events; returns the file size after the write.

    The events are whole lines written with one os.write on an O_APPEND descriptor: concurrent
    writers from several processes then never interleave inside a line (DESIGN §3 measured this),
    and a reader woken by the write finds every event of it, never the first half of a
    transaction (a task blocked without the planner request that came with it). A caller
    holding the queue lock (`locked`: the store) knows nobody else is writing, so a last line
    without its newline is not a write in progress but a torn one (a full disk, a writer killed
    mid-write, a hand edit): the first event then starts on a line of its own instead of being
    glued to, and lost with, the torn text.
    """
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        end = os.fstat(fd).st_size if locked else 0
        heal = b"\n" if end and os.pread(fd, 1, end - 1) != b"\n" else b""
        lines = [redact(json.dumps(to_json(ev), ensure_ascii=False, separators=(",", ":"))) + "\n" for ev in events]
        data = heal + "".join(lines).encode("utf-8")
        while data:
            data = data[os.write(fd, data) :]  # a short write (a full disk) goes on from where it stopped
        return os.fstat(fd).st_size
    finally:
        os.close(fd)


def _parse(raw: bytes) -> Event | str:
    """The event on one line, or what is wrong with the line."""
    fast = decode_line(raw)
    return fast if fast is not None else forgiving(raw)


def forgiving(raw: bytes) -> Event | str:
    """`_parse` without the compiled path: any line clanker can make sense of, coerced as the
    fold always did (codec.from_json), or what is wrong with it."""
    try:
        obj = orjson.loads(raw)  # a cold rebuild parses every line: orjson does it ~4x faster
    except orjson.JSONDecodeError:
        return "not JSON (a torn write or a hand edit)"
    if not isinstance(obj, dict) or "type" not in obj:
        return "not an event"
    try:
        return from_json(obj)
    except BadEvent as e:
        return str(e)


def read_from(path: Path, offset: int, skipped: list[int] | None = None) -> Iterator[tuple[Event, int]]:
    """Events after byte `offset`, each with the offset just past its line.

    A last line without its newline is a write in progress: it is not yielded, and the next read
    starts at its beginning. Lines that are not valid events are skipped (an unknown type or a bad
    value with a warning: a newer clanker or a hand edit wrote it); with `skipped`, the offset of
    each skipped line is added to it.
    """
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below; a generator can't hold a `with` open cleanly
    except FileNotFoundError:
        return
    with f:
        f.seek(offset)
        pos = offset
        # Line by line, not the whole rest of the log at once: a cold rebuild of a year of
        # history holds one line in memory, not all of them.
        for raw in f:
            if not raw.endswith(b"\n"):
                return
            start, pos = pos, pos + len(raw)
            if raw.isspace():  # (strip() would copy every line)
                continue
            found = _parse(raw)
            if isinstance(found, Event):
                yield found, pos
                continue
            if skipped is not None:
                skipped.append(start)
            warn_skipped(found, str(path))


def unreadable(path: Path) -> list[tuple[int, str]]:
    """Every complete line of the log that is not an event clanker can read: (line number, why).
    Reads the whole log: for `clanker doctor`, not for the loop."""
    bad = []
    try:
        with open(path, "rb") as f:
            for n, raw in enumerate(f, 1):
                if raw.endswith(b"\n") and raw.strip():
                    found = _parse(raw)
                    if not isinstance(found, Event):
                        bad.append((n, found))
    except FileNotFoundError:
        pass
    return bad


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
