"""Conflict detection while an agent works (DESIGN §5): watch the slave's worktree, record what
the agent touches (`task.touched`, so the task's ownership keys grow while it works, not only at
submit), and when it touches a file another live task touched or declared, emit a RISK `conflict`
event (once per file). The scheduler's conflict rate counts these and throttles new work.

Events are debounced, and the worktree is read with `git --no-optional-locks status`, which (unlike
plain `git status`) doesn't write index.lock and so doesn't wake the watcher again.
"""

from __future__ import annotations

import threading
from pathlib import Path
from types import TracebackType

from ..errors import ClankerError
from ..state.events import Risk, TaskTouched
from ..state.locks import keys_for, overlaps
from ..state.model import HOLDS_KEYS
from ..state.store import Store
from ..system import git
from ..system.treewatch import Watch
from .overlap import relative, shared_files

IGNORED_DIRS = frozenset({".git", "node_modules", ".venv", "venv", "__pycache__", ".mypy_cache", ".pytest_cache"})
DEBOUNCE_SECS = 0.5


class ConflictWatch:
    """`with ConflictWatch(store, task_id, worktree, owner_files, actor):` around an agent run."""

    def __init__(self, store: Store, task: str, worktree: Path, owner_files: tuple[str, ...], actor: str) -> None:
        self.store = store
        self.task = task
        self.worktree = worktree
        self.owner_files = owner_files
        self.actor = actor
        self.reported: set[str] = set()
        self.known: set[str] = set()  # files already recorded as touched
        self.left: list[str] = []  # what `git status` showed at the last look (at exit: what the agent left)
        self.fresh = False  # that last look worked (else `left` may be older than the worktree)
        self._streamed: set[str] = set()  # files the agent's stream reported
        self._lock = threading.Lock()
        self._flag = threading.Event()
        self._done = threading.Event()
        self._watch: Watch | None = None
        self._thread = threading.Thread(target=self._loop, name=f"conflict-watch-{task}", daemon=True)

    def __enter__(self) -> ConflictWatch:
        # Any change outside git's and the environments' directories is a reason to look.
        self._watch = Watch(self.worktree, lambda _p: self._flag.set(), skip=IGNORED_DIRS)
        self._thread.start()
        return self

    def __exit__(self, exc: type[BaseException] | None, val: BaseException | None, tb: TracebackType | None) -> None:
        self._done.set()
        self._flag.set()
        if self._watch is not None:
            self._watch.close()
        self._thread.join(timeout=5)
        self.check()  # what the agent left at the very end counts too

    def note(self, files: list[str]) -> None:
        """Files the agent's stream says it wrote (paths may be absolute): checked at the next round."""
        with self._lock:
            self._streamed.update(relative(self.worktree, files))
        self._flag.set()

    def _loop(self) -> None:
        while not self._done.is_set():
            self._flag.wait()
            if self._done.is_set():
                return
            if self._done.wait(DEBOUNCE_SECS):  # let a burst of writes settle
                return  # the agent ended meanwhile: the look at exit is the one that counts
            self._flag.clear()
            self.check()

    def check(self) -> list[str]:
        """Record newly touched files; return those that another live task touched or declared
        (each is reported once)."""
        try:
            self.left = git.porcelain(self.worktree)
            self.fresh = True
        except Exception:  # noqa: BLE001 - the worktree may be mid-checkout; the next change retries
            self.fresh = False
            return []
        touched = set(self.left)
        with self._lock:
            touched |= self._streamed
        touched = {p for p in touched if not (IGNORED_DIRS & set(Path(p).parts))}
        fresh = sorted(touched - self.known)
        if fresh:
            self.known.update(fresh)
            try:
                self.store.append(TaskTouched(actor=self.actor, task=self.task, slave=self.actor, files=tuple(fresh)))
            except ClankerError:  # the task is gone (a hand-trimmed log): nothing to record
                return []
        state = self.store.state()
        me = state.tasks.get(self.task)
        declared = keys_for(me.paths, self.owner_files) if me else frozenset()
        others = [t for t in state.tasks.values() if t.id != self.task and t.state in HOLDS_KEYS]
        new: list[str] = []
        for path in sorted(touched):
            if path in self.reported:
                continue
            mine = keys_for([path], self.owner_files)
            if declared and overlaps(mine, declared):
                continue  # inside the area this task declared: its own ground
            owners = [t.id for t in others if shared_files(t, [path], self.owner_files)]
            if owners:
                self.reported.add(path)
                new.append(path)
                self.store.append(
                    Risk(
                        actor=self.actor,
                        task=self.task,
                        slave=self.actor,
                        kind="conflict",
                        files=(path,),
                        owners=tuple(owners),
                        message=f"{self.task} touches {path}, which {', '.join(owners)} holds",
                    )
                )
        return new
