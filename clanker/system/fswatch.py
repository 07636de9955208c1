"""Watching files for changes. Waiting on the log — the slaves, the controller, the TUI, `logs -f`
— is a wait on an inotify descriptor (LogWaiter): no thread, and writes that come while nobody
waits are merged by the kernel, so a waiter that looks four times a second pays for four looks,
not for the fifty writes of a busy fleet. Following a worktree (the conflict watch: recursive,
deletes too) is a watchdog observer calling back (Watch).
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from watchdog.events import (
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

from .clock import SYSTEM, Clock
from .inotify import INotify, flags

# Only writes wake anyone. watchdog also reports opens and no-write closes; waking on those made
# every reader of events.log wake every other reader, in a loop.
WRITES = (FileModifiedEvent, FileCreatedEvent, FileMovedEvent)
WRITE_TYPES = frozenset({"modified", "created", "moved"})
CHANGES = (*WRITES, FileDeletedEvent)  # a worktree also changes when a file goes
CHANGE_TYPES = WRITE_TYPES | {"deleted"}


class _Handler(FileSystemEventHandler):
    def __init__(self, match: Callable[[Path], bool], on_change: Callable[[Path], None], kinds: frozenset[str]) -> None:
        self.match = match
        self.on_change = on_change
        self.kinds = kinds

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in self.kinds:
            return
        for p in (event.src_path, getattr(event, "dest_path", "")):
            if p and self.match(Path(str(p))):
                self.on_change(Path(str(p)))


class Watch:
    """`on_change(path)` for each write (and, with `deletes`, removal) under `directory` whose path
    `match`es, from the observer's thread, until `close()`. Also a context manager."""

    def __init__(
        self,
        directory: Path,
        on_change: Callable[[Path], None],
        match: Callable[[Path], bool] = lambda _p: True,
        recursive: bool = False,
        deletes: bool = False,
    ) -> None:
        self._observer: Any = Observer()
        self._observer.daemon = True
        kinds = CHANGE_TYPES if deletes else WRITE_TYPES
        handler = _Handler(match, on_change, kinds)
        self._observer.schedule(
            handler, str(directory), recursive=recursive, event_filter=list(CHANGES if deletes else WRITES)
        )
        self._observer.start()

    def close(self) -> None:
        self._observer.stop()
        # Joined, so no event is delivered (or warned about) by a thread that is being torn down.
        self._observer.join(timeout=5)

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, exc: type[BaseException] | None, val: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


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
