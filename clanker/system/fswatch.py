"""Event-driven waiting: wake when a watched file changes (inotify via watchdog), with a timeout
as the safety net — never a sleep loop."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from watchdog.events import (
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

# Only writes wake a waiter. watchdog also reports opens and no-write closes; waking on those made
# every reader of events.log wake every other reader, in a loop.
WRITES = (FileModifiedEvent, FileCreatedEvent, FileMovedEvent)
WRITE_TYPES = frozenset({"modified", "created", "moved"})


class _Handler(FileSystemEventHandler):
    def __init__(self, match: Callable[[str], bool], flag: threading.Event) -> None:
        self.match = match
        self.flag = flag

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in WRITE_TYPES:
            return
        for p in (event.src_path, getattr(event, "dest_path", "")):
            if p and self.match(Path(str(p)).name):
                self.flag.set()


class LogWaiter:
    """`wait(timeout)` returns as soon as a matching file in `directory` changes, or at timeout."""

    def __init__(self, directory: Path, match: Callable[[str], bool] = lambda name: name == "events.log") -> None:
        self.flag = threading.Event()
        self._observer: Any = Observer()
        self._observer.daemon = True
        self._observer.schedule(_Handler(match, self.flag), str(directory), recursive=False, event_filter=list(WRITES))
        self._observer.start()

    def wait(self, timeout: float | None) -> bool:
        fired = self.flag.wait(timeout)
        self.flag.clear()
        return fired

    def poke(self) -> None:
        """Wake a waiter now (e.g. from a signal handler)."""
        self.flag.set()

    def close(self) -> None:
        self._observer.stop()
