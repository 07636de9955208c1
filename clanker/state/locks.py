"""Locks: the queue lock (in store.py), the mainline lock, one lock per slave id, and ownership keys.

Ownership keys are pure: a task holds the top-level directory of each path it declares or touches,
or the file itself under a hot directory listed in `owner_files` (DESIGN §5).
"""

from __future__ import annotations

import fcntl
import fnmatch
import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

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


class LockTimeout(TimeoutError):
    """Someone else holds the lock (it was asked for with a timeout)."""


class BlockingLock:
    """An exclusive flock that waits in the kernel — the holder's release wakes the next one at
    once, where a polling lock sleeps 50 ms between tries — and that the thread holding it may
    take again. The kernel frees it when the holder dies, so a SIGKILLed judge never wedges main.

    `acquire(timeout=…)` is for "take it unless someone has it" (a second controller, a slave
    number in use): it tries without blocking until the timeout, then raises LockTimeout."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._depth = 0
        self._mutex = threading.RLock()

    @property
    def is_locked(self) -> bool:
        return self._depth > 0

    def acquire(self, timeout: float | None = None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._mutex.acquire(timeout=-1 if timeout is None else max(timeout, 0.0)):
            raise LockTimeout(str(self.path))
        try:
            if self._depth == 0:
                self._fd = self._take(deadline)
            self._depth += 1
        except BaseException:
            self._mutex.release()
            raise

    def _take(self, deadline: float | None) -> int:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:  # a fresh checkout's .clanker/locks
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if deadline is None:
                fcntl.flock(fd, fcntl.LOCK_EX)
                return fd
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return fd
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise LockTimeout(str(self.path)) from None
                    time.sleep(0.01)
        except BaseException:
            os.close(fd)
            raise

    def release(self) -> None:
        self._depth -= 1
        if self._depth == 0 and self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
        self._mutex.release()

    def __enter__(self) -> BlockingLock:
        self.acquire()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.release()


def queue_lock(paths: Paths) -> BlockingLock:
    return BlockingLock(paths.locks / "queue.lock")


def mainline_lock(paths: Paths) -> BlockingLock:
    return BlockingLock(paths.locks / "mainline.lock")


def slave_lock(paths: Paths, slave: str) -> BlockingLock:
    return BlockingLock(paths.locks / f"slave-{slave}.lock")


def launch_lock(paths: Paths) -> BlockingLock:
    return BlockingLock(paths.locks / "launch.lock")


def controller_lock(paths: Paths) -> BlockingLock:
    return BlockingLock(paths.locks / "controller.lock")


def is_held(lock_path: str) -> bool:
    probe = BlockingLock(Path(lock_path))
    try:
        probe.acquire(timeout=0)
    except LockTimeout:
        return True
    probe.release()
    return False
