"""A clock for tests (clanker.system.clock.Clock): time moves only when a wait runs out. A wait
first gives real events a short real moment (`patience`) to arrive — an agent's output, a write to
events.log — and if none does, time jumps to the wait's deadline."""

from __future__ import annotations

import queue
import threading
from typing import TypeVar

T = TypeVar("T")


class FakeClock:
    """A clock for tests: `advance` moves both times, `suspend` only the wall clock (the machine
    slept); a wait that runs out jumps to its deadline after `patience` real seconds."""

    def __init__(self, wall: float = 1_800_000_000.0, patience: float = 0.05) -> None:
        self._wall = wall
        self._mono = 1000.0
        self.patience = patience
        self._lock = threading.Lock()

    def time(self) -> float:
        with self._lock:
            return self._wall

    def monotonic(self) -> float:
        with self._lock:
            return self._mono

    def advance(self, secs: float) -> None:
        with self._lock:
            self._wall += secs
            self._mono += secs

    def suspend(self, secs: float) -> None:
        with self._lock:
            self._wall += secs

    def _real(self, timeout: float | None) -> float | None:
        return None if timeout is None else min(timeout, self.patience)

    def wait(self, event: threading.Event, timeout: float | None) -> bool:
        if event.wait(self._real(timeout)):
            return True
        assert timeout is not None
        self.advance(max(0.0, timeout))
        return event.is_set()

    def get(self, q: queue.Queue[T], timeout: float | None) -> T:
        try:
            return q.get(timeout=self._real(timeout))
        except queue.Empty:
            assert timeout is not None
            self.advance(max(0.0, timeout))
            raise
