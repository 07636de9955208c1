"""Following a worktree (the conflict watch: recursive, deletes too): a watchdog observer calling
back (Watch). Only a slave's work job needs it, so only it pays for watchdog's import.
"""

from __future__ import annotations

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

# Only changes count: watchdog also reports opens and closes without a write, which change nothing
# (the gate and the agent's own reads would look like edits).
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
