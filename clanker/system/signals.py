"""Signals, handled where it is safe: a handler that does nothing but write the signal's number to a
pipe, and a thread that reads it and calls back.

A Python signal handler runs in the main thread between two bytecodes — possibly while that thread
holds a lock inside `queue.get` or `Event.wait`. A handler that then puts to the same queue or sets
the same event waits forever for a lock its own thread holds (a slave once kept beating for minutes
with its agent running and its task claimed). `os.write` takes no lock; the callback runs in the
relay thread, where taking a lock only means waiting for the main thread to let go of it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterable
from types import FrameType
from typing import Any


class SignalRelay:
    """`with SignalRelay((SIGTERM, SIGINT), on_signal):` — `on_signal(signum)` runs in a thread of
    its own for each signal; the handlers that were there before come back on exit."""

    def __init__(self, signals: Iterable[int], on_signal: Callable[[int], None]) -> None:
        self.signals = tuple(signals)
        self.on_signal = on_signal
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)
        self._before: dict[int, Any] = {}
        self._thread = threading.Thread(target=self._relay, name="signal-relay", daemon=True)

    def _handler(self, signum: int, _frame: FrameType | None) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._write, bytes([signum]))

    def _relay(self) -> None:
        while True:
            try:
                data = os.read(self._read, 64)
            except OSError:
                return
            if not data:
                return  # closed: the relay is over
            for signum in data:
                if signum:
                    self.on_signal(signum)

    def __enter__(self) -> SignalRelay:
        self._thread.start()
        for sig in self.signals:
            self._before[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._before.items():
            signal.signal(sig, old)
        os.write(self._write, b"\0")  # nothing more will come: let the thread see the end
        os.close(self._write)
        self._thread.join(5)
        os.close(self._read)
