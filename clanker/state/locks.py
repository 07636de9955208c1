"""Locks: the queue lock (in store.py), the mainline lock, one lock per slave id, and ownership keys.

Ownership keys are pure: a task holds the top-level directory of each path it declares or touches,
or the file itself under a hot directory listed in `owner_files` (DESIGN §5).
"""

from __future__ import annotations

import fcntl
import fnmatch
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

from filelock import FileLock, Timeout

from .paths import Paths


def _norm(path: str) -> str:
    p = path.strip().replace("\\", "/")
    while p.startswith("./"):
        p = p[2:]
    return p.strip("/")


def _hot(path: str, owner_files: Iterable[str]) -> bool:
    for pattern in owner_files:
        pat = _norm(pattern)
        if path == pat or path.startswith(pat + "/") or fnmatch.fnmatch(path, pat):
            return True
    return False


def keys_for(paths: Iterable[str], owner_files: Iterable[str] = ()) -> frozenset[str]:
    owner = tuple(owner_files)
    keys = set()
    for raw in paths:
        p = _norm(raw)
        if not p:
            continue
        keys.add(p if _hot(p, owner) else p.split("/", 1)[0])
    return frozenset(keys)


def overlaps(a: Iterable[str], b: Iterable[str]) -> bool:
    """Keys overlap when equal or one is a directory prefix of the other."""
    bs = list(b)
    return any(x == y or x.startswith(y + "/") or y.startswith(x + "/") for x in a for y in bs)


class BlockingLock:
    """An exclusive flock that waits in the kernel — the holder's release wakes the next one at
    once, where a polling lock sleeps 50 ms between tries — and that this process's threads may
    take again while they hold it (like filelock's). The kernel frees it when the holder dies."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._depth = 0
        self._mutex = threading.RLock()

    def __enter__(self) -> BlockingLock:
        self._mutex.acquire()
        try:
            if self._depth == 0:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                except BaseException:
                    os.close(fd)
                    raise
                self._fd = fd
            self._depth += 1
        except BaseException:
            self._mutex.release()
            raise
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._depth -= 1
        if self._depth == 0 and self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
        self._mutex.release()


def queue_lock(paths: Paths) -> BlockingLock:
    return BlockingLock(paths.locks / "queue.lock")


def mainline_lock(paths: Paths) -> FileLock:
    # flock: the kernel frees it when a holder is SIGKILLed, so a crashed judge never wedges main.
    return FileLock(str(paths.locks / "mainline.lock"))


def slave_lock(paths: Paths, slave: str) -> FileLock:
    return FileLock(str(paths.locks / f"slave-{slave}.lock"))


def launch_lock(paths: Paths) -> FileLock:
    return FileLock(str(paths.locks / "launch.lock"))


def is_held(lock_path: str) -> bool:
    probe = FileLock(lock_path)
    try:
        probe.acquire(timeout=0)
    except Timeout:
        return True
    probe.release()
    return False
