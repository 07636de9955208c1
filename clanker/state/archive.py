"""The archive: finished tasks out of the live state, so what every read loads scales with what is
going on, not with a year of history (`.clanker/archive.jsonl`).

When the snapshot is written, tasks that are done, cancelled or split, beyond the newest
KEEP_FINISHED of them, move here; the live state keeps one small `Archived` entry for each (state,
title, sha) and the archive's totals, and the snapshot carries that index. An event about an
archived task (a late annotation, `task retry` of an old cancelled task) brings it back: the fold
reads its line and it is live again until it is finished and old once more.

The file is only appended to, never rewritten, so the offsets in every process's snapshot stay
good; its first line names the log it belongs to, and a snapshot whose archive is missing, shorter
than it was, or of another log is not trusted (the log is folded again from the start). Like the
snapshot it is a cache: the log stays the only record.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import weakref
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, get_origin

import msgspec.structs
import orjson

from .model import TERMINAL, Archive, Archived, State, Task, TaskState, evolve, prompt_key
from .usage import Usage

KEEP_FINISHED = 200  # finished tasks that stay live: the views show the recent ones
TASK_FIELDS = tuple(f.name for f in msgspec.structs.fields(Task))
TUPLES = tuple(f.name for f in msgspec.structs.fields(Task) if get_origin(f.type) is tuple)


def task_to_json(t: Task) -> dict[str, Any]:
    # By hand, not asdict (which would keep the Usages and the state as objects): a task's
    # fields are plain values, tuples of them, and two Usages.
    d = {f: getattr(t, f) for f in TASK_FIELDS}
    d["state"] = str(t.state)
    d["work"], d["judge"] = t.work.to_json(), t.judge.to_json()
    return d


def task_from_json(raw: dict[str, Any]) -> Task:
    d = dict(raw)
    for key in TUPLES:
        d[key] = tuple(d.get(key) or ())
    d["state"] = TaskState(d["state"])
    d["work"] = Usage(**d["work"])
    d["judge"] = Usage(**d["judge"])
    return Task(**d)


def log_id(log_head: str) -> str:
    return hashlib.sha1(log_head.encode()).hexdigest()[:16]


def reader(path: Path) -> Callable[[int], Task | None]:
    """Reads the task whose line starts at an offset (None if the file has nothing good there),
    with positional reads on one descriptor kept open (reopened if the file was replaced)."""
    held: list[int] = []
    lock = threading.Lock()

    def descriptor() -> int:
        with lock:
            if held and os.fstat(held[0]).st_ino != os.stat(path).st_ino:
                os.close(held.pop())
            if not held:
                held.append(os.open(path, os.O_RDONLY))
                weakref.finalize(read, os.close, held[0])
            return held[0]

    def read(offset: int) -> Task | None:
        try:
            return task_from_json(orjson.loads(_line_at(descriptor(), offset)))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    return read


def _line_at(fd: int, offset: int) -> bytes:
    """The line that starts at `offset`, without its newline."""
    raw = os.pread(fd, 1 << 16, offset)
    while b"\n" not in raw:
        more = os.pread(fd, 1 << 20, offset + len(raw))
        if not more:
            break
        raw += more
    return raw.split(b"\n", 1)[0]


def line_of(t: Task) -> bytes:
    """A task's archive line, without its newline: what `append` writes, byte for byte."""
    return orjson.dumps(task_to_json(t))


def valid_size(path: Path, log_head: str) -> int | None:
    """The archive's size if it belongs to this log, else None."""
    try:
        with open(path, "rb") as f:
            first = f.readline(256)
            size = os.fstat(f.fileno()).st_size
    except OSError:
        return None
    try:
        header = json.loads(first)
    except ValueError:
        return None
    return size if isinstance(header, dict) and header.get("log") == log_id(log_head) else None


def _header(log_head: str) -> bytes:
    return (json.dumps({"archive": 1, "log": log_id(log_head)}) + "\n").encode()


def append(path: Path, log_head: str, tasks: list[Task]) -> tuple[list[int], int]:
    """Append one line per task; returns where each line starts and the file's size after."""
    if valid_size(path, log_head) is None:
        # None yet, or another log's: start one. (Readers of the other log's archive had a
        # snapshot of that log, which no longer matches either.)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(_header(log_head))
        os.replace(tmp, path)
    lines = [line_of(t) + b"\n" for t in tasks]
    data = b"".join(lines)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        rest = data  # one write on O_APPEND (its writers hold the queue lock besides)
        while rest:
            rest = rest[os.write(fd, rest) :]  # a short write (a full disk) goes on where it stopped
        end = os.lseek(fd, 0, os.SEEK_CUR)
    finally:
        os.close(fd)
    offsets, at = [], end - len(data)
    for line in lines:
        offsets.append(at)
        at += len(line)
    return offsets, end


def _id_of(raw: bytes) -> str | None:
    """The task id of an archive line: read off its start (`{"id":"T7",…`, how append writes
    it), else parsed; None for a line that is not a task."""
    if raw.startswith(b'{"id":"'):
        tid = raw[7 : raw.find(b'"', 7)]
        if b"\\" not in tid:
            return tid.decode("utf-8", "replace")
    with contextlib.suppress(ValueError):  # not JSON: skipped
        found = orjson.loads(raw)
        if isinstance(found, dict) and isinstance(found.get("id"), str):
            return str(found["id"])
    return None


def _appended(path: Path, since: int) -> Iterator[tuple[str, bytes, int]]:
    """The task lines other processes archived after byte `since` — id, line (without its
    newline), offset — one at a time: a cold rebuild meets a whole archive here and keeps none
    of it in memory."""
    with open(path, "rb") as f:
        f.seek(since)
        pos = since
        for raw in f:
            if not raw.endswith(b"\n"):
                break  # a write in progress
            tid = _id_of(raw)
            if tid is not None:
                yield tid, raw[:-1], pos
            pos += len(raw)


def move_finished(state: State, path: Path, log_head: str, keep: int = KEEP_FINISHED) -> State:
    """`state` with its finished tasks beyond the newest `keep` moved to the archive. Call it
    holding the queue lock, the state caught up: what other processes archived since this one
    last looked is taken from the file first (a task whose line is exactly the live task), so
    each finished task is written once, not once per process."""
    finished = [t for t in state.tasks.values() if t.state in TERMINAL]
    if len(finished) <= keep:
        return state
    a = state.archive
    size = valid_size(path, log_head)
    pending = dict(a.pending)
    taken: dict[str, int] = {}
    # Another process's line stands for a live task only if it is that task exactly: compared as
    # the bytes `append` would write for it (a cold rebuild meets every line of the archive here).
    if size is not None and size > a.size:
        for tid, line, offset in _appended(path, a.size or len(_header(log_head))):
            live = state.tasks.get(tid)
            if live is not None and live.state in TERMINAL and line == line_of(live):
                taken[tid] = offset
            elif tid not in a.entries:
                pending[tid] = offset
    finished.sort(key=lambda t: (t.updated, t.id))
    old = []
    fd = os.open(path, os.O_RDONLY) if pending and size is not None else None
    try:
        for t in finished[: len(finished) - keep]:
            if t.id in taken:
                continue
            theirs_at = pending.get(t.id)
            if theirs_at is not None and fd is not None and _line_at(fd, theirs_at) == line_of(t):
                taken[t.id] = theirs_at
            else:
                old.append(t)
    finally:
        if fd is not None:
            os.close(fd)
    if old:
        offsets, size = append(path, log_head, old)
        taken.update(zip((t.id for t in old), offsets, strict=True))
    entries = dict(a.entries)
    counts = Counter(a.counts)
    work, judge = a.work, a.judge
    for tid, offset in taken.items():
        t = state.tasks[tid]
        entries[tid] = Archived(offset, str(t.state), t.title, t.sha, prompt_key(t.title, t.prompt))
        counts[str(t.state)] += 1
        work, judge = work + t.work, judge + t.judge
    tasks = {k: v for k, v in state.tasks.items() if k not in taken}
    pending = {k: v for k, v in pending.items() if k not in taken}
    archive = Archive(entries, dict(counts), work, judge, size or a.size, reader(path), pending)
    return evolve(state, tasks=tasks, archive=archive)


def tasks_of(path: Path, a: Archive) -> list[Task]:
    """Every archived task, read back in one pass (`clanker task list --all`)."""
    out: list[Task] = []
    try:
        with open(path, "rb") as f:
            for tid, entry in sorted(a.entries.items(), key=lambda kv: kv[1].offset):
                f.seek(entry.offset)
                try:
                    t = task_from_json(orjson.loads(f.readline()))
                except (ValueError, KeyError, TypeError):
                    continue
                if t.id == tid:
                    out.append(t)
    except OSError:
        pass
    return out


def index_to_json(a: Archive) -> dict[str, Any]:
    return {
        "size": a.size,
        "entries": [[tid, e.offset, e.state, e.title, e.sha, e.key] for tid, e in a.entries.items()],
        "counts": dict(a.counts),
        "work": a.work.to_json(),
        "judge": a.judge.to_json(),
    }


def index_from_json(raw: dict[str, Any] | None, read: Callable[[int], Task | None] | None) -> Archive:
    if not raw:
        return Archive(reader=read)
    entries = {
        str(tid): Archived(int(off), str(st), str(title), sha, str(key))
        for tid, off, st, title, sha, key in raw["entries"]
    }
    return Archive(
        entries,
        {str(k): int(v) for k, v in raw["counts"].items()},
        Usage.from_json(raw["work"]),
        Usage.from_json(raw["judge"]),
        int(raw["size"]),
        read,
    )
