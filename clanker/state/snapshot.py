"""The snapshot: a State as JSON (`.clanker/state.json`) and back, so a reader folds only the
events appended since."""

from __future__ import annotations

import dataclasses
from typing import Any

from .model import Preflight, SetupFailure, SlaveInfo, State, Task, TaskState
from .usage import Usage

TASK_FIELDS = tuple(f.name for f in dataclasses.fields(Task))


def state_to_json(state: State) -> dict[str, Any]:
    def task_json(t: Task) -> dict[str, Any]:
        # By hand, not dataclasses.asdict (which deep-copies every value): a task's fields are
        # plain values, tuples of them, and two Usages.
        d = {f: getattr(t, f) for f in TASK_FIELDS}
        d["state"] = str(t.state)
        d["work"], d["judge"] = t.work.to_json(), t.judge.to_json()
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
            "results": {k: dataclasses.asdict(p) for k, p in sorted(state.preflights.items())},
            "slave": state.preflight_slave,
            "started": state.preflight_started,
            "wanted": state.preflight_wanted,
        },
        "setup_failed": [dataclasses.asdict(f) for f in state.setup_failed.values()],
        "tasks": [task_json(t) for t in state.tasks.values()],
        "slaves": [dataclasses.asdict(s) for s in state.slaves.values()],
    }


def _preflights(pre: dict[str, Any]) -> dict[str, Preflight]:
    results = pre.get("results")
    if isinstance(results, dict):
        return {str(k): Preflight(**v) for k, v in results.items()}
    last = pre.get("last")  # a snapshot from before results were kept per settings key
    return {str(last["key"]): Preflight(**last)} if isinstance(last, dict) else {}


def state_from_json(raw: dict[str, Any]) -> State:
    tasks: dict[str, Task] = {}
    for d in raw.get("tasks", []):
        d = dict(d)
        for key in (
            "paths",
            "tags",
            "depends_on",
            "touched",
            "errors",
            "sessions",
            "follow_ups",
            "held_behind",
            "merge_conflicts",
        ):
            d[key] = tuple(d.get(key) or ())
        d["state"] = TaskState(d["state"])
        d["work"] = Usage(**d["work"])
        d["judge"] = Usage(**d["judge"])
        tasks[d["id"]] = Task(**d)
    slaves = {s["id"]: SlaveInfo(**s) for s in raw.get("slaves", [])}
    pre = raw.get("preflight") or {}
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
        preflights=_preflights(pre),
        preflight_slave=pre.get("slave"),
        preflight_started=pre.get("started"),
        preflight_wanted=bool(pre.get("wanted")),
        setup_failed={f["slave"]: SetupFailure(**f) for f in raw.get("setup_failed") or []},
    )
