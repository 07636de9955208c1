"""Heartbeats: one small JSON file per process, replaced atomically every `heartbeat_secs`.

A slave is dead when its heartbeat is older than 3 × heartbeat_secs *and* its pid is gone (or its
pane is dead). If wall time jumped much further than monotonic time, the machine slept: nobody is
declared dead until the next round ("reconcile on wake").
"""

from __future__ import annotations

import os
import threading
from typing import Any

import msgspec

from ..system.clock import SYSTEM, Clock
from . import atomic
from .paths import Paths


class Beat(msgspec.Struct, frozen=True):
    id: str
    pid: int
    wall: float
    job: str | None
    task: str | None
    phase: str
    pane: str
    agent_pgid: int | None
    stopped: bool
    env: list[str] | None = None  # which agent/credential variables the process has (names only)
    gate_key: str = ""  # the preflight settings key it computes (its environment's)
    loop: float = 0.0  # when its main loop last moved (the heartbeat thread beats regardless)

    def age(self, now: float) -> float:
        return max(0.0, now - self.wall)


def read(paths: Paths, sid: str) -> Beat | None:
    raw = atomic.read_json(paths.heartbeat(sid))
    if not isinstance(raw, dict):
        return None
    try:
        return Beat(
            id=sid,
            pid=int(raw.get("pid", 0)),
            wall=float(raw.get("wall", 0.0)),
            job=raw.get("job"),
            task=raw.get("task"),
            phase=str(raw.get("phase", "")),
            pane=str(raw.get("pane", "")),
            agent_pgid=raw.get("agent_pgid"),
            stopped=bool(raw.get("stopped", False)),
            env=[str(n) for n in raw["env"]] if isinstance(raw.get("env"), list) else None,
            gate_key=str(raw.get("gate_key") or ""),
            loop=float(raw.get("loop") or raw.get("wall", 0.0)),
        )
    except (TypeError, ValueError):
        return None


def read_all(paths: Paths) -> dict[str, Beat]:
    beats = {}
    if paths.heartbeats.is_dir():
        for f in sorted(paths.heartbeats.glob("*.json")):
            b = read(paths, f.stem)
            if b:
                beats[b.id] = b
    return beats


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); it is dead for our purposes.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def is_hung(beat: Beat, hung_secs: float, now: float) -> bool:
    """Alive but not moving: its process exists, and its heartbeat (a stopped or frozen process)
    or its main loop (a deadlock: the heartbeat thread goes on beating) stood still `hung_secs`."""
    if beat.stopped or not pid_alive(beat.pid):
        return False
    return beat.age(now) > hung_secs or now - beat.loop > hung_secs


def is_dead(beat: Beat, heartbeat_secs: float, now: float, pane_dead: bool = False) -> bool:
    if beat.stopped:
        return True
    stale = beat.age(now) > 3 * heartbeat_secs
    return stale and (pane_dead or not pid_alive(beat.pid))


class SleepDetector:
    """Notices that the machine slept: wall time moved much further than monotonic time."""

    def __init__(self, tolerance: float = 5.0, clock: Clock = SYSTEM) -> None:
        self.tolerance = tolerance
        self.clock = clock
        self._wall = clock.time()
        self._mono = clock.monotonic()

    def slept(self) -> bool:
        wall, mono = self.clock.time(), self.clock.monotonic()
        jump = (wall - self._wall) - (mono - self._mono)
        self._wall, self._mono = wall, mono
        return jump > self.tolerance


COALESCE_SECS = 0.05


class Heart:
    """Writes this process's heartbeat every `interval` seconds from a daemon thread."""

    def __init__(self, paths: Paths, sid: str, interval: float, pane: str = "", clock: Clock = SYSTEM) -> None:
        self.paths = paths
        self.clock = clock
        self.sid = sid
        self.interval = interval
        self.info: dict[str, Any] = {
            "job": None,
            "task": None,
            "phase": "starting",
            "pane": pane,
            "agent_pgid": None,
            "loop": clock.time(),
        }
        self._wake = threading.Event()
        self._halt = threading.Event()  # set at stop: no burst is waited out then
        self._stopping = False
        self._file = paths.heartbeat(sid)
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat-{sid}", daemon=True)

    def start(self) -> None:
        self.beat()
        self._thread.start()

    def update(self, **info: Any) -> None:
        """New facts about this process: written by the heartbeat thread (the caller does not wait
        for the disk), except a new agent's process group — which must be on disk before anything
        else happens, so a successor can stop that agent — and without a running thread. (A group
        that ended may stay on disk a moment: a successor finds nothing of it left to stop.)"""
        self.info.update(info, loop=self.clock.time())
        if info.get("agent_pgid") is not None or not self._thread.is_alive():
            self.beat()
        else:
            self._wake.set()

    def touch(self) -> None:
        """The main loop is moving (written with the next beat): call it from every long wait."""
        self.info["loop"] = self.clock.time()

    def beat(self, stopped: bool = False) -> None:
        data = {
            **self.info,
            "pid": os.getpid(),
            "wall": self.clock.time(),
            "mono": self.clock.monotonic(),
            "stopped": stopped,
        }
        # No fsync: a heartbeat is rewritten every interval, and after a crash of the machine every
        # one of them is stale anyway. The rename keeps each one whole.
        atomic.write_json(self._file, data, durable=False, compact=True)

    def _loop(self) -> None:
        while True:
            woken = self.clock.wait(self._wake, self.interval)
            if woken and not self._stopping:
                # A job's steps come in bursts (claim, phase, agent, gate): one write for a burst.
                self.clock.wait(self._halt, COALESCE_SECS)
            self._wake.clear()
            if self._stopping:
                return
            self.beat()

    def stop(self) -> None:
        self._stopping = True
        self._halt.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self.beat(stopped=True)
