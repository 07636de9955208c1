"""The state store: the fold of `events.log`, kept current incrementally, and legal appends.

A transition is: take the queue lock, catch up on the log, check the transition is legal for the
current state, append, release (DESIGN §3). The lock is never held across an agent run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from filelock import FileLock

from . import atomic
from . import log as events
from .events import Event
from .fold import fold
from .legal import check
from .model import State
from .paths import Paths
from .snapshot import state_from_json, state_to_json

SNAPSHOT_EVERY_BYTES = 64 * 1024


class Store:
    def __init__(self, paths: Paths, actor: str) -> None:
        self.paths = paths
        self.actor = actor
        self._state: State | None = None
        self._snapshot_offset = 0
        paths.ensure()
        self._queue_lock = FileLock(str(paths.locks / "queue.lock"))

    def state(self) -> State:
        """The current state: the last one, plus whatever the log gained since."""
        if self._state is None:
            self._state = self._load_snapshot()
        new = list(events.read_from(self.paths.events, self._state.offset))
        if new:
            self._state = fold(self._state, new)
            if self._state.offset - self._snapshot_offset >= SNAPSHOT_EVERY_BYTES:
                self.save_snapshot()
        return self._state

    def _load_snapshot(self) -> State:
        raw = atomic.read_json(self.paths.snapshot)
        log_size = events.size(self.paths.events)
        if isinstance(raw, dict) and raw.get("head") == events.head(self.paths.events):
            try:
                # A snapshot is only a cache: anything odd in it (a hand edit, an older shape) means
                # the log is folded from the start instead.
                snap = state_from_json(raw["state"]) if isinstance(raw.get("state"), dict) else None
            except (KeyError, TypeError, ValueError, AttributeError):
                snap = None
            if snap is not None and snap.offset <= log_size:
                self._snapshot_offset = snap.offset
                return snap
        return State()

    def save_snapshot_if_behind(self) -> None:
        if self._state is not None and self._state.offset != self._snapshot_offset:
            self.save_snapshot()

    def save_snapshot(self) -> None:
        if self._state is None:
            return
        atomic.write_json(
            self.paths.snapshot, {"head": events.head(self.paths.events), "state": state_to_json(self._state)}
        )
        self._snapshot_offset = self._state.offset

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
                events.append(self.paths.events, evs, locked=True)
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
