"""Time, injectable: everything that waits or reads the time takes a `Clock`, so timeouts, stalls,
heartbeats and sleeps are tested on a fake clock instead of real waits (honcho's way).

The real clock is `SYSTEM`; the tests' `FakeClock` (tests/fakeclock.py) moves only when a wait
runs out.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Protocol, TypeVar

T = TypeVar("T")


class Clock(Protocol):
    def time(self) -> float:
        """Wall-clock seconds since the epoch (what events and heartbeats record)."""
        ...

    def monotonic(self) -> float:
        """Seconds for measuring intervals (never jumps back)."""
        ...

    def wait(self, event: threading.Event, timeout: float | None) -> bool:
        """Until `event` is set (True) or `timeout` passes (False)."""
        ...

    def get(self, q: queue.Queue[T], timeout: float | None) -> T:
        """The next item of `q`; raises queue.Empty when `timeout` passes first."""
        ...


class SystemClock:
    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def wait(self, event: threading.Event, timeout: float | None) -> bool:
        return event.wait(timeout)

    def get(self, q: queue.Queue[T], timeout: float | None) -> T:
        return q.get(timeout=timeout)


SYSTEM: Clock = SystemClock()
