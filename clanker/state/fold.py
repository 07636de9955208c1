"""The pure fold: events → State. One small function per event type (DESIGN §3).

`fold` never mutates its input state, so a replay of any `events.log` gives the same State.
`check` says whether an event is legal now; the store refuses illegal events before they are
written, and the fold skips (never crashes on) an illegal one found in a hand-edited log.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

from ..errors import IllegalTransition
from .model import ANNOTATIONS, TRANSITIONS, Event, Preflight, S, SetupFailure, SlaveInfo, State, Task, Usage, trigger

Tasks = dict[str, Task]
HOLDER_ONLY = frozenset(
    {
        "task.released",
        "task.failed",
        "task.submitted",
        "task.judge_released",
        "task.verdict",
        "task.mainlined",
        "task.landing_released",
    }
)


def check(state: State, ev: Event) -> None:
    """Raise IllegalTransition unless `ev` may be applied to `state`."""
    if ev.type == "preflight.claimed" and state.preflight_slave is not None:
        raise IllegalTransition("preflight", f"preflight.claimed by {ev.data.get('slave')}", state.preflight_slave)
    if ev.task is None:
        return
    task = state.tasks.get(ev.task)
    if ev.type in ANNOTATIONS:
        if task is None:
            raise IllegalTransition(ev.task, ev.type, None)
        return
    current = task.state if task else None
    if (current, trigger(ev)) not in TRANSITIONS:
        raise IllegalTransition(ev.task, trigger(ev), current)
    # Only the slave holding a task may move it on: a slave that was presumed dead and released
    # can't later submit or land the task another slave now holds.
    holder = ev.data.get("slave")
    if task is not None and ev.type in HOLDER_ONLY and holder is not None and task.slave != holder:
        raise IllegalTransition(ev.task, f"{trigger(ev)} by {holder} (held by {task.slave or 'nobody'})", current)


def fold(state: State, events: Iterable[tuple[Event, int]]) -> State:
    """Apply events (each with the log offset just past it) to `state`, returning a new State."""
    tasks = dict(state.tasks)
    slaves = dict(state.slaves)
    counters = {"events": state.events, "conflicts": state.conflicts, "mainlined": state.mainlined}
    paused = set(state.paused)
    credentials = dict(state.credentials)
    health = _Health(state.health_slave, state.health_started, state.health_last, state.main_red)
    plan = _Plan(
        list(state.plan_requests), state.plan_slave, state.plan_started, state.plan_request, state.planner_usage
    )
    gate = _Gate(state.preflight, state.preflight_slave, state.preflight_started, state.preflight_wanted)
    setup_failed = dict(state.setup_failed)
    offset = state.offset
    for ev, end in events:
        offset = end
        counters["events"] += 1
        if ev.type.startswith("slave."):
            _slave_event(slaves, ev)
            continue
        if ev.type in ("fleet.paused", "fleet.resumed"):
            who = ev.data.get("slave") or "*"
            if ev.type == "fleet.paused":
                paused.add(who)
            elif who == "*":
                paused.clear()
            else:
                paused.discard(who)
            continue
        if ev.type.startswith(("health.", "main.")):
            _health_event(health, ev)
            continue
        if ev.type.startswith("plan."):
            _plan_event(plan, ev)
            continue
        if ev.type.startswith("preflight."):
            _preflight_event(gate, ev)
            if ev.type == "preflight.ran" and ev.data.get("passed"):
                setup_failed.clear()  # a fresh worktree just set up fine
            continue
        if ev.type.startswith("setup."):
            _setup_event(setup_failed, ev)
            continue
        if ev.type == "credential.exhausted":
            credentials[str(ev.data.get("credential"))] = float(ev.data.get("until", 0.0))
            continue
        if ev.type == "credential.restored":
            credentials.pop(str(ev.data.get("credential")), None)
            continue
        if ev.type == "risk" and ev.data.get("kind") == "conflict":
            counters["conflicts"] += 1
        if ev.task is None:
            continue
        try:
            check(State(tasks=tasks), ev)
        except IllegalTransition:
            continue
        if ev.type == "task.mainlined":
            counters["mainlined"] += 1
        before = tasks.get(ev.task)
        handler = _HANDLERS.get(ev.type)
        after = handler(before, ev) if handler else before
        if after is None:
            continue
        if ev.type not in ANNOTATIONS:
            after = dataclasses.replace(after, state=TRANSITIONS[(before.state if before else None, trigger(ev))])
        tasks[ev.task] = dataclasses.replace(after, updated=ev.ts)
    return State(
        tasks=tasks,
        slaves=slaves,
        offset=offset,
        events=counters["events"],
        conflicts=counters["conflicts"],
        mainlined=counters["mainlined"],
        paused=frozenset(paused),
        credentials=credentials,
        health_slave=health.slave,
        health_started=health.started,
        health_last=health.last,
        main_red=health.red,
        plan_requests=tuple(plan.requests),
        plan_slave=plan.slave,
        plan_started=plan.started,
        plan_request=plan.request,
        planner_usage=plan.usage,
        preflight=gate.last,
        preflight_slave=gate.slave,
        preflight_started=gate.started,
        preflight_wanted=gate.wanted,
        setup_failed=setup_failed,
    )


@dataclasses.dataclass
class _Gate:
    """The preflight part of the state, mutated only inside one fold call."""

    last: Preflight | None
    slave: str | None
    started: float | None
    wanted: bool


def _preflight_event(g: _Gate, ev: Event) -> None:
    d = ev.data
    if ev.type == "preflight.requested":
        g.wanted = True
    elif ev.type == "preflight.claimed":
        g.slave, g.started, g.wanted = str(d.get("slave", ev.actor)), ev.ts, False
    elif ev.type == "preflight.released":
        g.slave, g.started, g.wanted = None, None, True
    elif ev.type == "preflight.ran":
        passed = bool(d.get("passed"))
        g.last = Preflight(
            key=str(d.get("key", "")),
            sha=str(d.get("sha", "")),
            passed=passed,
            trusted=bool(d.get("trusted", passed)),
            kind=str(d.get("kind", "ok" if passed else "gate")),
            ts=ev.ts,
            detail=dict(d),
        )
        if g.slave is None or g.slave == d.get("slave"):
            g.slave, g.started = None, None
        g.wanted = False


def _setup_event(failed: dict[str, SetupFailure], ev: Event) -> None:
    d = ev.data
    sid = str(d.get("slave") or "")
    if ev.type == "setup.failed" and sid:
        failed[sid] = SetupFailure(
            slave=sid,
            fingerprint=str(d.get("fingerprint", "")),
            commands=str(d.get("commands", "")),
            command=str(d.get("command", "")),
            main_sha=str(d.get("main_sha", "")),
            log=str(d.get("log", "")),
            ts=ev.ts,
        )
    elif ev.type in ("setup.ok", "setup.retry"):
        if sid:
            failed.pop(sid, None)
        else:
            failed.clear()


@dataclasses.dataclass
class _Health:
    """The health-check part of the state, mutated only inside one fold call."""

    slave: str | None
    started: float | None
    last: float
    red: bool


@dataclasses.dataclass
class _Plan:
    """The planner queue, mutated only inside one fold call."""

    requests: list[str]
    slave: str | None
    started: float | None
    request: str | None
    usage: Usage


def _plan_event(p: _Plan, ev: Event) -> None:
    req = str(ev.data.get("request") or "")
    if ev.type == "plan.ran":
        p.usage = p.usage + Usage.from_json(ev.data.get("usage"))
    elif ev.type == "plan.requested":
        if req not in p.requests and req != p.request:  # asking twice for the same plan is one plan
            p.requests.append(req)
    elif ev.type == "plan.claimed" and req in p.requests:
        p.requests.remove(req)
        p.slave, p.started, p.request = str(ev.data.get("slave", ev.actor)), ev.ts, req
    elif ev.type in ("plan.done", "plan.released") and p.slave is not None:
        if ev.type == "plan.released" and p.request is not None:
            p.requests.insert(0, p.request)
        p.slave, p.started, p.request = None, None, None


def _health_event(h: _Health, ev: Event) -> None:
    if ev.type == "health.claimed":
        h.slave, h.started = str(ev.data.get("slave", ev.actor)), ev.ts
    elif ev.type in ("health.ran", "health.released"):
        h.slave, h.started = None, None
        if ev.type == "health.ran":
            h.last = ev.ts
            h.red = not ev.data.get("passed", True)
    elif ev.type == "main.red":
        h.red = True
    elif ev.type == "main.green":
        h.red = False


def _slave_event(slaves: dict[str, SlaveInfo], ev: Event) -> None:
    sid = str(ev.data.get("slave") or ev.actor)
    if ev.type == "slave.started":
        slaves[sid] = SlaveInfo(sid, int(ev.data.get("pid", 0)), str(ev.data.get("pane", "")), ev.ts)
    elif ev.type in ("slave.stopped", "slave.dead") and sid in slaves:
        slaves[sid] = dataclasses.replace(slaves[sid], stopped=True)


def _tup(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


def _added(_: Task | None, ev: Event) -> Task:
    d = ev.data
    assert ev.task is not None
    return Task(
        id=ev.task,
        title=str(d.get("title", ev.task)),
        prompt=str(d.get("prompt", "")),
        description=str(d.get("description", "")),
        priority=int(d.get("priority", 0)),
        paths=_tup(d.get("paths")),
        tags=_tup(d.get("tags")),
        depends_on=_tup(d.get("depends_on")),
        parent=d.get("parent"),
        branch=str(d.get("branch") or f"clanker/{ev.task}"),
        created=ev.ts,
        signature=str(d.get("signature") or ""),
    )


def _claimed(t: Task | None, ev: Event) -> Task:
    assert t is not None
    slave = str(ev.data.get("slave", ev.actor))
    return dataclasses.replace(
        t, slave=slave, author=slave, attempts=t.attempts + 1, started=ev.ts, first_started=t.first_started or ev.ts
    )


def _released(t: Task | None, ev: Event) -> Task:
    assert t is not None
    # A claim given back for reasons that are not the task's fault (the slave stopped or died, the
    # credential ran out) does not count against max_attempts.
    attempts = max(t.attempt_base, t.attempts - 1) if ev.data.get("refund") else t.attempts
    return dataclasses.replace(
        t, slave=None, started=None, attempts=attempts, reason=str(ev.data.get("reason", t.reason))
    )


def _failed(t: Task | None, ev: Event) -> Task:
    assert t is not None
    err = str(ev.data.get("error", "failed"))
    return dataclasses.replace(t, slave=None, started=None, reason=err, errors=(*t.errors, err))


def _submitted(t: Task | None, ev: Event) -> Task:
    assert t is not None
    touched = tuple(dict.fromkeys((*t.touched, *_tup(ev.data.get("files")))))
    follow = _tup(ev.data.get("follow_ups")) or t.follow_ups
    return dataclasses.replace(
        t, slave=None, started=None, summary=str(ev.data.get("summary", "")), touched=touched, follow_ups=follow
    )


def _judge_claimed(t: Task | None, ev: Event) -> Task:
    assert t is not None
    slave = str(ev.data.get("slave", ev.actor))
    return dataclasses.replace(t, slave=slave, judge_rounds=t.judge_rounds + 1, started=ev.ts)


def _judge_released(t: Task | None, ev: Event) -> Task:
    assert t is not None
    return dataclasses.replace(t, slave=None, started=None)


def _verdict(t: Task | None, ev: Event) -> Task:
    assert t is not None
    verdict = ev.data.get("verdict")
    reasons = str(ev.data.get("reasons", ""))
    conflicts = t.conflicts + (1 if ev.data.get("conflict") else 0)
    if verdict == "done":
        return dataclasses.replace(t, slave=None, started=None, reason=reasons, accepted=ev.ts)
    return dataclasses.replace(t, slave=None, started=None, reason=reasons, conflicts=conflicts)


def _landing(t: Task | None, ev: Event) -> Task:
    assert t is not None
    return dataclasses.replace(t, slave=str(ev.data.get("slave", ev.actor)), started=ev.ts)


def _landing_released(t: Task | None, ev: Event) -> Task:
    assert t is not None
    return dataclasses.replace(t, slave=None, started=None, reason=str(ev.data.get("reason", t.reason)))


def _mainlined(t: Task | None, ev: Event) -> Task:
    assert t is not None
    return dataclasses.replace(t, slave=None, started=None, sha=str(ev.data.get("sha", "")) or None)


def _blocked(t: Task | None, ev: Event) -> Task:
    assert t is not None
    return dataclasses.replace(t, slave=None, started=None, reason=str(ev.data.get("reason", "blocked")))


def _cancelled(t: Task | None, ev: Event) -> Task:
    assert t is not None
    return dataclasses.replace(t, slave=None, started=None, reason=str(ev.data.get("reason", "cancelled")))


def _retried(t: Task | None, ev: Event) -> Task:
    assert t is not None
    return dataclasses.replace(t, slave=None, started=None, attempt_base=t.attempts, reason="")


def _touched(t: Task | None, ev: Event) -> Task:
    assert t is not None
    return dataclasses.replace(t, touched=tuple(dict.fromkeys((*t.touched, *_tup(ev.data.get("files"))))))


def _held(t: Task | None, ev: Event) -> Task:
    assert t is not None
    behind = tuple(b for b in _tup(ev.data.get("behind")) if b != t.id)
    return dataclasses.replace(t, held_behind=tuple(dict.fromkeys((*t.held_behind, *behind))))


def _refresh(t: Task | None, ev: Event) -> Task:
    assert t is not None
    reasons = str(ev.data.get("reasons", ""))
    return dataclasses.replace(t, slave=None, started=None, reason=reasons, conflicts=t.conflicts + 1)


def _attempt_finished(t: Task | None, ev: Event) -> Task:
    assert t is not None
    usage = Usage.from_json(ev.data.get("usage"))
    session = ev.data.get("session_id")
    sessions = (*t.sessions, str(session)) if session and ev.data.get("role") == "work" else t.sessions
    if ev.data.get("role") == "judge":
        return dataclasses.replace(t, judge=t.judge + usage)
    return dataclasses.replace(t, work=t.work + usage, sessions=sessions)


_HANDLERS: dict[str, Callable[[Task | None, Event], Task]] = {
    "task.added": _added,
    "task.claimed": _claimed,
    "task.released": _released,
    "task.failed": _failed,
    "task.submitted": _submitted,
    "task.judge_claimed": _judge_claimed,
    "task.judge_released": _judge_released,
    "task.verdict": _verdict,
    "task.mainlined": _mainlined,
    "task.landing": _landing,
    "task.landing_released": _landing_released,
    "task.blocked": _blocked,
    "task.cancelled": _cancelled,
    "task.retried": _retried,
    "attempt.finished": _attempt_finished,
    "task.touched": _touched,
    "task.held": _held,
    "task.refresh": _refresh,
}


# --- snapshot (de)serialisation -------------------------------------------------------------


def state_to_json(state: State) -> dict[str, Any]:
    def task_json(t: Task) -> dict[str, Any]:
        d = dataclasses.asdict(t)
        d["state"] = str(t.state)
        return d

    return {
        "offset": state.offset,
        "events": state.events,
        "conflicts": state.conflicts,
        "mainlined": state.mainlined,
        "paused": sorted(state.paused),
        "credentials": state.credentials,
        "plan": {
            "requests": list(state.plan_requests),
            "slave": state.plan_slave,
            "started": state.plan_started,
            "request": state.plan_request,
            "usage": state.planner_usage.to_json(),
        },
        "health": {
            "slave": state.health_slave,
            "started": state.health_started,
            "last": state.health_last,
            "red": state.main_red,
        },
        "preflight": {
            "last": dataclasses.asdict(state.preflight) if state.preflight else None,
            "slave": state.preflight_slave,
            "started": state.preflight_started,
            "wanted": state.preflight_wanted,
        },
        "setup_failed": [dataclasses.asdict(f) for f in state.setup_failed.values()],
        "tasks": [task_json(t) for t in state.tasks.values()],
        "slaves": [dataclasses.asdict(s) for s in state.slaves.values()],
    }


def state_from_json(raw: dict[str, Any]) -> State:
    tasks: Tasks = {}
    for d in raw.get("tasks", []):
        d = dict(d)
        for key in ("paths", "tags", "depends_on", "touched", "errors", "sessions", "follow_ups", "held_behind"):
            d[key] = tuple(d.get(key) or ())
        d["state"] = S(d["state"])
        d["work"] = Usage(**d["work"])
        d["judge"] = Usage(**d["judge"])
        tasks[d["id"]] = Task(**d)
    slaves = {s["id"]: SlaveInfo(**s) for s in raw.get("slaves", [])}
    pre = raw.get("preflight") or {}
    last = pre.get("last")
    return State(
        tasks=tasks,
        slaves=slaves,
        offset=int(raw["offset"]),
        events=int(raw.get("events", 0)),
        conflicts=int(raw.get("conflicts", 0)),
        mainlined=int(raw.get("mainlined", 0)),
        paused=frozenset(raw.get("paused", [])),
        credentials={str(k): float(v) for k, v in (raw.get("credentials") or {}).items()},
        health_slave=(raw.get("health") or {}).get("slave"),
        health_started=(raw.get("health") or {}).get("started"),
        health_last=float((raw.get("health") or {}).get("last") or 0.0),
        main_red=bool((raw.get("health") or {}).get("red")),
        plan_requests=tuple((raw.get("plan") or {}).get("requests") or ()),
        plan_slave=(raw.get("plan") or {}).get("slave"),
        plan_started=(raw.get("plan") or {}).get("started"),
        plan_request=(raw.get("plan") or {}).get("request"),
        planner_usage=Usage.from_json((raw.get("plan") or {}).get("usage")),
        preflight=Preflight(**last) if isinstance(last, dict) else None,
        preflight_slave=pre.get("slave"),
        preflight_started=pre.get("started"),
        preflight_wanted=bool(pre.get("wanted")),
        setup_failed={f["slave"]: SetupFailure(**f) for f in raw.get("setup_failed") or []},
    )
