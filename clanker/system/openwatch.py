"""Which tracked files of the user's checkout are opened while a gate runs somewhere else.

This is how the gate preflight tells that a gate does not test the worktree it runs in (DESIGN §6a).
A gate that imports the project through an editable install of the checkout, an absolute path, a
`PYTHONPATH` or a `node_modules` link back to the checkout opens the checkout's copies of tracked
files. inotify reports every open in a watched directory whoever does it, costs one watch per
directory that holds tracked files, and needs no privileges, no tracer and no knowledge of the
language — so it is cheap enough to run on every preflight. (fanotify would name the process but
needs root; strace is often missing and slows the gate; a language-specific check like
`python -c 'import pkg; print(pkg.__file__)'` misses every other ecosystem.)

Opens are not attributed to a process, so an editor touching a file at the same moment would look
the same: the preflight confirms a finding with a second gate run (see `preflight.py`).
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

from .inotify import INotify, flags


class OpenWatch:
    """`with OpenWatch(checkout, tracked) as w:` … `w.opened`: the tracked files opened meanwhile."""

    def __init__(self, root: Path, tracked: Iterable[str]) -> None:
        self.root = root
        self.tracked = frozenset(tracked)
        self.opened: set[str] = set()
        self.partial = False  # some directories could not be watched (inotify limits) or events were lost
        self._dirs: dict[int, str] = {}
        self._stop = threading.Event()
        self._ino: INotify | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> OpenWatch:
        try:
            self._ino = INotify()
        except OSError:  # out of inotify instances (or no inotify at all): watch nothing, and say so
            self.partial = True
            return self
        for d in sorted({str(Path(f).parent) for f in self.tracked}):
            try:
                wd = self._ino.add_watch(str(self.root / d), flags.OPEN | flags.ONLYDIR)
            except OSError as e:
                if e.errno == errno.ENOSPC:  # fs.inotify.max_user_watches reached
                    self.partial = True
                    break
                continue  # a directory that is gone (deleted in the checkout, say)
            self._dirs[wd] = "" if d == "." else d + "/"
        self._thread = threading.Thread(target=self._loop, name="open-watch", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        assert self._ino is not None
        while not self._stop.is_set():
            self._drain(100)

    def _drain(self, timeout_ms: int) -> None:
        assert self._ino is not None
        for ev in self._ino.read(timeout=timeout_ms):
            if ev.mask & flags.Q_OVERFLOW:
                self.partial = True
                continue
            if ev.mask & flags.ISDIR or ev.wd not in self._dirs:
                continue
            rel = self._dirs[ev.wd] + ev.name
            if rel in self.tracked:
                self.opened.add(rel)

    def __exit__(self, exc: type[BaseException] | None, val: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._ino is not None:
            self._drain(0)
            self._ino.close()
