"""Which executor a slave's agents run on (pure: the settings and the state in, a name out).

A slave keeps its executor while that one is up and still configured; otherwise it goes to the
one with the most free slots (the least loaded first, in the order of `executors:` on a tie).
A slave started by hand with `--executor NAME` keeps that choice. Slots are counted over the
live slaves only: a dead slave's slot is free again.
"""

from __future__ import annotations

from collections import Counter

import msgspec

from ..config import Config, ExecutorConfig
from ..state import events as ev
from ..state.events import Event
from ..state.model import State


class Slot(msgspec.Struct, frozen=True):
    executor: str
    used: int
    slots: int
    down: str | None = None  # why it is down, while it is

    @property
    def free(self) -> int:
        return max(0, self.slots - self.used)


def usable(cfg: Config, state: State, x: ExecutorConfig, now: float) -> bool:
    down = state.down.get(x.name)
    return down is None or down.until <= now


def slots(cfg: Config, state: State, alive: frozenset[str], now: float) -> list[Slot]:
    """Each executor with the live slaves on it, its slots, and whether it is down."""
    used = Counter(state.slaves[s].executor for s in alive if s in state.slaves and state.slaves[s].executor)
    out = []
    for x in cfg.placements:
        down = state.down.get(x.name)
        out.append(Slot(x.name, used[x.name], cfg.slots_of(x), down.reason if down and down.until > now else None))
    return out


def place(
    cfg: Config, state: State, me: str, alive: frozenset[str], now: float, wanted: str | None = None
) -> str | None:
    """The executor slave `me` should be on now, or None when every one is full or down."""
    if wanted is not None:
        return wanted if cfg.executor(wanted) is not None else None
    info = state.slaves.get(me)
    current = cfg.executor(info.executor) if info and info.executor else None
    if current is not None and usable(cfg, state, current, now):
        return current.name
    others = alive - {me}
    free = [s for s in slots(cfg, state, others, now) if s.down is None and s.free > 0]
    if not free:
        return None
    return max(free, key=lambda s: (s.free / s.slots, s.free, -_index(cfg, s.executor))).executor


def _index(cfg: Config, name: str) -> int:
    return next(i for i, x in enumerate(cfg.placements) if x.name == name)


def placed_events(state: State, me: str, where: str | None) -> list[Event]:
    info = state.slaves.get(me)
    if where is None or (info is not None and info.executor == where):
        return []
    return [ev.SlavePlaced(actor=me, slave=me, executor=where)]


def no_room(cfg: Config, state: State, alive: frozenset[str], now: float) -> str:
    """Why a slave has no executor: every one is full or down."""
    parts = [f"{s.executor} down ({s.down})" if s.down else f"{s.executor} {s.used}/{s.slots}"
             for s in slots(cfg, state, alive, now)]  # fmt: skip
    return "no executor has a free slot: " + ", ".join(parts)


def summary(cfg: Config, state: State, alive: frozenset[str], now: float, who: bool = False) -> str:
    """`here 1/1 · hostA 2/2 · hostB down` — slots used of each executor, and the down ones;
    `who`: with the slaves on each (`hostA 2/2 c2 c4`)."""
    parts = []
    for s in slots(cfg, state, alive, now):
        on = sorted(sid for sid in alive if sid in state.slaves and state.slaves[sid].executor == s.executor)
        text = f"{s.executor} down" if s.down else f"{s.executor} {s.used}/{s.slots}"
        parts.append(f"{text} {' '.join(on)}" if who and on else text)
    return " · ".join(parts)


def to_json(cfg: Config, state: State, alive: frozenset[str], now: float) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for x, s in zip(cfg.placements, slots(cfg, state, alive, now), strict=True):
        down = state.down.get(x.name)
        out.append({
            "name": x.name, "kind": x.kind, "host": x.host or None, "slots": s.slots, "used": s.used, "free": s.free,
            "slaves": sorted(sid for sid in alive if sid in state.slaves and state.slaves[sid].executor == x.name),
            "down": s.down, "retry_at": down.until if down and s.down else None,
        })  # fmt: skip
    return out
