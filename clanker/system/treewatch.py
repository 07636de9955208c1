"""Following a worktree (the conflict watch): every write, creation, removal and rename under a
directory, through one inotify descriptor read by one thread (Watch).

Directories named in `skip` (an environment's: `node_modules`, `.venv`, git's own `.git`) are never
walked nor watched: in a real project they hold most of the directories, each would cost an
inotify watch (`fs.inotify.max_user_watches` is 8192 on many systems), and walking them at every
job's start is work that grows with the environment, not with the change. What is not watched is
still seen by the `git status` each look takes; the watch only says when to look. (watchdog did
this before: three threads per watch, every directory watched, opens and closes reported and
filtered out again.)
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from .inotify import INotify, flags

# Changes only: an open or a read (the gate's, the agent's) changes nothing.
CHANGES = (
    flags.MODIFY | flags.CLOSE_WRITE | flags.CREATE | flags.DELETE | flags.MOVED_FROM | flags.MOVED_TO | flags.ONLYDIR
)
NEW_DIR = flags.CREATE | flags.MOVED_TO


class Watch:
    """`on_change(path)` for each change under `directory` (outside the `skip` names), from the
    watch's thread, until `close()`. `partial` is set when some directories could not be watched
    (inotify's limits) or events were lost: a caller that must not miss a change looks anyway."""

    def __init__(self, directory: Path, on_change: Callable[[Path], None], skip: frozenset[str] = frozenset()) -> None:
        self.on_change = on_change
        self.skip = skip
        self.partial = False
        self._dirs: dict[int, str] = {}  # watch descriptor → its directory
        self._thread: threading.Thread | None = None
        try:
            self._ino = INotify()
        except OSError:  # out of inotify instances: nothing is followed, and that is said
            self.partial = True
            return
        self._stop_r, self._stop_w = os.pipe()
        self._add_tree(str(directory))
        self._thread = threading.Thread(target=self._loop, args=(self._ino,), name="tree-watch", daemon=True)
        self._thread.start()

    def _add_tree(self, top: str) -> None:
        for here, subdirs, _files in os.walk(top):
            subdirs[:] = [d for d in subdirs if d not in self.skip]
            try:
                self._dirs[self._ino.add_watch(here, CHANGES)] = here
            except OSError as e:
                subdirs[:] = []  # gone meanwhile, or not ours to read
                if e.errno == errno.ENOSPC:  # the watch limit: the rest is left to the looks
                    self.partial = True
                    return

    def _loop(self, ino: INotify) -> None:
        while True:
            ready, _, _ = select.select([ino.fileno(), self._stop_r], [], [])
            if self._stop_r in ready:
                return
            for ev in ino.read(timeout=0):
                if ev.mask & flags.Q_OVERFLOW:
                    self.partial = True
                    continue
                parent = self._dirs.get(ev.wd)
                if parent is None or ev.name in self.skip:
                    continue
                if ev.mask & flags.IGNORED:  # its directory went
                    self._dirs.pop(ev.wd, None)
                    continue
                path = os.path.join(parent, ev.name) if ev.name else parent
                if ev.mask & flags.ISDIR and ev.mask & NEW_DIR:
                    self._add_tree(path)  # what it held before its watch began is in the next look
                self.on_change(Path(path))

    def close(self) -> None:
        if self._thread is None:
            return  # nothing was followed
        with contextlib.suppress(OSError):
            os.write(self._stop_w, b"x")
        # Joined, so no change is reported by a thread that is being torn down.
        self._thread.join(timeout=5)
        self._ino.close()
        for fd in (self._stop_r, self._stop_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._thread = None

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, exc: type[BaseException] | None, val: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
