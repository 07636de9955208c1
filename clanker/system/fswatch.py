"""Waiting on the log — the slaves, the controller, the TUI, `logs -f` — is a wait on an inotify
descriptor (LogWaiter): no thread, and writes that come while nobody waits are merged by the
kernel, so a waiter that looks four times a second pays for four looks, not for the fifty writes
of a busy fleet. (Following a worktree is treewatch.py's.)
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
from collections.abc import Callable
from pathlib import Path

from .clock import SYSTEM, Clock
from .inotify import INotify, flags

LOG_FLAGS = flags.MODIFY | flags.CREATE | flags.MOVED_TO | flags.ONLYDIR  # writes, new files, renames in


class LogWaiter:
    """`wait(timeout)` returns True as soon as a matching file in `directory` changed since the
    last wait, or False at timeout. `fileno()` is a descriptor that is readable then, for a loop
    that selects on other things too (the TUI's keyboard). Without inotify (out of instances,
    say: `fs.inotify.max_user_instances`) it still waits out its timeouts: slower, never stuck."""

    def __init__(
        self,
        directory: Path,
        match: Callable[[str], bool] = lambda name: name == "events.log",
        clock: Clock = SYSTEM,
    ) -> None:
        self.clock = clock
        self.match = match
        self.flag = threading.Event()  # poked
        self.blind = False  # no inotify here: only timeouts and pokes wake it
        self._ino: INotify | None = None
        try:
            self._ino = INotify()
            self._ino.add_watch(str(directory), LOG_FLAGS)
        except OSError:
            if self._ino is not None:
                self._ino.close()
            self._ino, self.blind = None, True
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        os.set_blocking(self._w, False)

    def fileno(self) -> int:
        return int(self._ino.fileno()) if self._ino is not None else self._r

    def changed(self) -> bool:
        """Whether a matching file changed since the last look (without waiting)."""
        if self._ino is None:
            return False
        return any((e.name and self.match(e.name)) or e.mask & flags.Q_OVERFLOW for e in self._ino.read(timeout=0))

    def wait(self, timeout: float | None) -> bool:
        if self.changed():
            return True
        if self.clock is SYSTEM:
            ready, _, _ = select.select([self.fileno(), self._r], [], [], timeout)
            if self._r in ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(self._r, 512)
            poked = self.flag.is_set()
        else:  # a test's clock: its time passes at once, the log is looked at after
            poked = self.clock.wait(self.flag, timeout)
        self.flag.clear()
        return self.changed() or poked

    def poke(self) -> None:
        """Wake a waiter now (e.g. from a signal handler or another thread)."""
        self.flag.set()
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._w, b"!")

    def close(self) -> None:
        if self._ino is not None:
            self._ino.close()
        for fd in (self._r, self._w):
            with contextlib.suppress(OSError):
                os.close(fd)
