"""The state store: the fold of `events.log`, kept current incrementally, and legal appends.

A transition is: take the queue lock, catch up on the log, check the transition is legal for the
current state, append, release (DESIGN §3). The lock is never held across an agent run.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from . import archive, atomic
from . import log as events
from .events import Event
from .fold import fold
from .legal import check
from .locks import queue_lock
from .model import Archive, State, Task
from .paths import Paths
from .snapshot import state_from_json, state_to_json

SNAPSHOT_EVERY_BYTES = 64 * 1024
SNAPSHOT_EVERY_SECS = 30.0  # a wake that changed little does not rewrite the whole snapshot


class Store:
    keep_finished = archive.KEEP_FINISHED  # finished tasks that stay live; older ones are archived
    live_max = 5 * archive.KEEP_FINISHED  # live tasks beyond which a long fold archives as it goes
    fold_chunk = 20_000  # events folded between looks at the number of live tasks (a cold rebuild)

    def __init__(self, paths: Paths, actor: str) -> None:
        self.paths = paths
        self.actor = actor
        self._state: State | None = None
        self._snapshot_offset = 0
        self._snapshot_at = time.monotonic()
        paths.ensure()
        self._queue_lock = queue_lock(paths)
        self._log = paths.events  # asked for at every look: built once

    def state(self) -> State:
        """The current state: the last one, plus whatever the log gained since."""
        if self._state is None:
            self._state = self._load_snapshot()
        before = self._state.offset
        if events.size(self._log) == before:
            # Nothing appended since (the log only grows): a job looks ~30 times, mostly at an
            # unchanged log, and a stat is a tenth of opening and reading it.
            return self._state
        # Folded as it is read (the fold takes any iterable): a cold start never lists the log,
        # and archives finished tasks as it goes, so it never holds a year of them at once.
        it = events.read_from(self._log, before)
        while True:
            folded = fold(self._state, itertools.islice(it, self.fold_chunk))
            if folded is self._state:
                break
            long_fold = folded.events - self._state.events >= self.fold_chunk  # more may follow
            self._state = folded
            if long_fold and len(folded.tasks) > self.live_max:
                self._archive()
        if self._state.offset != before and self._state.offset - self._snapshot_offset >= SNAPSHOT_EVERY_BYTES:
            self.save_snapshot()
        return self._state

    def _archive(self) -> None:
        with self._queue_lock:  # one writer of the archive at a time (the lock is reentrant)
            if self._state is not None:
                head = events.head(self._log)
                self._state = archive.move_finished(self._state, self.paths.archive, head, self.keep_finished)

    def _read_archived(self) -> Callable[[int], Task | None]:
        return archive.reader(self.paths.archive)

    def _load_snapshot(self) -> State:
        raw = atomic.read_json(self.paths.snapshot)
        log_size = events.size(self._log)
        if isinstance(raw, dict) and raw.get("head") == events.head(self._log):
            try:
                # A snapshot is only a cache: anything odd in it (a hand edit, an older shape) means
                # the log is folded from the start instead.
                snap = (
                    state_from_json(raw["state"], self._read_archived()) if isinstance(raw.get("state"), dict) else None
                )
            except (KeyError, TypeError, ValueError, AttributeError):
                snap = None
            if snap is not None and snap.offset <= log_size and self._archive_holds(snap):
                self._snapshot_offset = snap.offset
                return snap
        return State(archive=Archive(reader=self._read_archived()))

    def _archive_holds(self, snap: State) -> bool:
        """The archive the snapshot's index points into is there, whole, and of this log."""
        if not snap.archive.entries:
            return True
        size = archive.valid_size(self.paths.archive, events.head(self._log))
        return size is not None and size >= snap.archive.size

    def save_snapshot_if_behind(self, now: bool = False) -> None:
        """Write the snapshot when it is behind the log by SNAPSHOT_EVERY_BYTES or for
        SNAPSHOT_EVERY_SECS — or, with `now`, whenever it is behind at all (at exit)."""
        if self._state is None or self._state.offset == self._snapshot_offset:
            return
        old = time.monotonic() - self._snapshot_at >= SNAPSHOT_EVERY_SECS
        if now or old or self._state.offset - self._snapshot_offset >= SNAPSHOT_EVERY_BYTES:
            self.save_snapshot()

    def save_snapshot(self) -> None:
        if self._state is None:
            return
        self._archive()
        # A cache of the fold, rebuilt from the log when missing: compact, and no fsync.
        snap = {"head": events.head(self._log), "state": state_to_json(self._state)}
        atomic.write_json(self.paths.snapshot, snap, durable=False, compact=True)
        self._snapshot_offset = self._state.offset
        self._snapshot_at = time.monotonic()

    @contextmanager
    def locked(self) -> Iterator[State]:
        """Hold the queue lock; yields the caught-up state."""
        with self._queue_lock:
            yield self.state()

    def transact(self, decide: Callable[[State], Sequence[Event]]) -> list[Event]:
        """Under the queue lock: catch up, let `decide` choose events, check each, append them."""
        with self._queue_lock:
            st = self.state()
            evs = list(decide(st))
            self._check_all(st, evs)
            if evs:
                events.append(self._log, evs, locked=True)
                self.state()
            return evs

    def append(self, *evs: Event) -> None:
        """Append events that must be legal now (raises IllegalTransition otherwise)."""
        self.transact(lambda _st: list(evs))

    @staticmethod
    def _check_all(st: State, evs: list[Event]) -> None:
        for ev in evs:
            check(st, ev)
            st = fold(st, [(ev, st.offset)])
