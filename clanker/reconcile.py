"""Reconcile: give back the claims of slaves that are dead. Used by the controller and every slave,
so the fleet heals itself whether or not a controller is running."""

from __future__ import annotations

from . import heartbeat
from .model import Event, S, State


def dead_slaves(state: State, beats: dict[str, heartbeat.Beat], heartbeat_secs: float,
                dead_panes: frozenset[str] = frozenset()) -> frozenset[str]:  # fmt: skip
    """Slaves holding a task whose heartbeat says they are gone."""
    holders = {t.slave for t in state.tasks.values() if t.slave and t.state in (S.CLAIMED, S.JUDGING)}
    dead = set()
    for sid in holders:
        assert sid is not None
        beat = beats.get(sid)
        if beat is None or heartbeat.is_dead(beat, heartbeat_secs, pane_dead=sid in dead_panes):
            dead.add(sid)
    return frozenset(dead)


def release_events(state: State, dead: frozenset[str], actor: str, reason: str) -> list[Event]:
    evs = []
    for t in state.tasks.values():
        if t.slave in dead and t.state == S.CLAIMED:
            evs.append(Event("task.released", actor, t.id, {"slave": t.slave, "reason": reason}))
        elif t.slave in dead and t.state == S.JUDGING:
            evs.append(Event("task.judge_released", actor, t.id, {"slave": t.slave, "reason": reason}))
    return evs


def alive_slaves(beats: dict[str, heartbeat.Beat], heartbeat_secs: float) -> frozenset[str]:
    return frozenset(sid for sid, b in beats.items() if sid != "ctl" and not heartbeat.is_dead(b, heartbeat_secs))
