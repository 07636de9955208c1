"""Reconcile: give back the claims of slaves that are dead. Used by the controller and every slave,
so the fleet heals itself whether or not a controller is running."""

from __future__ import annotations

from collections.abc import Callable

from . import heartbeat
from .events import (
    Event,
    HealthReleased,
    JudgeReleased,
    LandingReleased,
    Mainlined,
    PlanReleased,
    PreflightReleased,
    TaskReleased,
)
from .model import HELD, State, TaskState


def dead_slaves(
    state: State,
    beats: dict[str, heartbeat.Beat],
    heartbeat_secs: float,
    now: float,
    dead_panes: frozenset[str] = frozenset(),
) -> frozenset[str]:
    """Slaves holding a task whose heartbeat says they are gone.

    Read `beats` under the queue lock together with `state`: a snapshot of heartbeats taken before
    another slave's claim would make that fresh claim look ownerless.
    """
    holders = [(t.slave, t.started) for t in state.tasks.values() if t.slave and t.state in HELD]
    if state.health_slave:
        holders.append((state.health_slave, state.health_started))
    if state.plan_slave:
        holders.append((state.plan_slave, state.plan_started))
    if state.preflight_slave:
        holders.append((state.preflight_slave, state.preflight_started))
    dead = set()
    for sid, started in holders:
        assert sid is not None
        if now - (started or now) <= 3 * heartbeat_secs:
            continue  # too fresh to judge
        beat = beats.get(sid)
        if beat is None or heartbeat.is_dead(beat, heartbeat_secs, now, pane_dead=sid in dead_panes):
            dead.add(sid)
    return frozenset(dead)


def release_events(state: State, dead: frozenset[str], actor: str, reason: str, refund: bool = False) -> list[Event]:
    """Give back everything the slaves in `dead` hold. `refund`: the claim ended for reasons that
    are not the task's (its attempt is not counted)."""
    evs: list[Event] = []
    for t in state.tasks.values():
        if t.slave is None or t.slave not in dead:
            continue
        if t.state == TaskState.CLAIMED:
            evs.append(TaskReleased(actor=actor, task=t.id, slave=t.slave, reason=reason, refund=refund))
        elif t.state == TaskState.JUDGING:
            evs.append(JudgeReleased(actor=actor, task=t.id, slave=t.slave, reason=reason))
        elif t.state == TaskState.LANDING:
            evs.append(LandingReleased(actor=actor, task=t.id, slave=t.slave, reason=reason))
    if state.health_slave in dead:
        evs.append(HealthReleased(actor=actor, slave=state.health_slave, reason=reason))
    if state.plan_slave in dead:
        evs.append(PlanReleased(actor=actor, slave=state.plan_slave, reason=reason))
    if state.preflight_slave in dead:
        evs.append(PreflightReleased(actor=actor, slave=state.preflight_slave, reason=reason))
    return evs


def leftovers(state: State, sid: str, landed: Callable[[str], str | None]) -> list[Event]:
    """What `sid` still holds while it is between jobs: a job's last event never made it into the
    log (a torn write, a crash between git and the append). A judged or landing task whose commit
    is on main already (`landed` asks git for it by the task's trailer) is completed from git's
    truth; everything else is given back, its attempt not counted."""
    held = [t for t in state.tasks.values() if t.slave == sid and t.state in HELD]
    if not held and sid not in (state.health_slave, state.plan_slave, state.preflight_slave):
        return []
    done: list[Event] = []
    for t in held:
        if t.state in (TaskState.JUDGING, TaskState.LANDING) and (sha := landed(t.id)):
            done.append(Mainlined(actor=sid, task=t.id, slave=sid, sha=sha, recovered=True))
    finished = {e.task_id for e in done}
    reason = f"{sid} held it between jobs (its last event was lost)"
    rest = [e for e in release_events(state, frozenset({sid}), sid, reason, refund=True) if e.task_id not in finished]
    return [*done, *rest]


def alive_slaves(beats: dict[str, heartbeat.Beat], heartbeat_secs: float, now: float) -> frozenset[str]:
    return frozenset(sid for sid, b in beats.items() if sid != "ctl" and not heartbeat.is_dead(b, heartbeat_secs, now))
