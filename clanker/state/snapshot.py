"""The snapshot: a State as JSON (`.clanker/state.json`) and back, so a reader folds only the
events appended since."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec.structs

from .archive import index_from_json, index_to_json, task_from_json, task_to_json
from .model import Down, Preflight, SetupFailure, SlaveInfo, State, Task
from .usage import Usage


def state_to_json(state: State) -> dict[str, Any]:
    out = _live_to_json(state)
    if state.archive.entries:
        out["archive"] = index_to_json(state.archive)
    return out


def _live_to_json(state: State) -> dict[str, Any]:
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
            "results": {k: msgspec.structs.asdict(p) for k, p in sorted(state.preflights.items())},
            "slave": state.preflight_slave,
            "started": state.preflight_started,
            "wanted": state.preflight_wanted,
        },
        "setup_failed": [msgspec.structs.asdict(f) for f in state.setup_failed.values()],
        "spent": [[m, usd, tokens] for m, (usd, tokens) in sorted(state.spent.items())],
        "budget_said": sorted(state.budget_said),
        "recent": state.recent,
        "landings": [[base, sha, list(files)] for base, sha, files in state.landings],
        "scheduler": {
            "targets": list(state.targets) if state.targets else None,
            "caps": {k: [cap, why] for k, (cap, why) in sorted(state.caps.items())},
        },
        "down": {k: msgspec.structs.asdict(v) for k, v in sorted(state.down.items())},
        "origins": dict(sorted(state.origins.items())),
        "takeovers": dict(sorted(state.takeovers.items())),
        "reviewed": list(state.reviewed),
        "tasks": [task_to_json(t) for t in state.tasks.values()],
        "slaves": [msgspec.structs.asdict(s) for s in state.slaves.values()],
    }


def _preflights(pre: dict[str, Any]) -> dict[str, Preflight]:
    results = pre.get("results")
    if isinstance(results, dict):
        return {str(k): Preflight(**v) for k, v in results.items()}
    last = pre.get("last")  # a snapshot from before results were kept per settings key
    return {str(last["key"]): Preflight(**last)} if isinstance(last, dict) else {}


def state_from_json(raw: dict[str, Any], read: Callable[[int], Task | None] | None = None) -> State:
    """The State of a snapshot; `read` loads an archived task (state/archive.py's reader)."""
    tasks = {t.id: t for t in map(task_from_json, raw.get("tasks", []))}
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
        archive=index_from_json(raw.get("archive"), read),
        spent={int(m): (float(usd), int(tokens)) for m, usd, tokens in raw.get("spent") or []},
        budget_said=frozenset(str(k) for k in raw.get("budget_said") or []),
        recent=str(raw.get("recent") or ""),
        targets=_targets(raw),
        down={str(k): Down(**v) for k, v in (raw.get("down") or {}).items()},
        origins={str(k): str(v) for k, v in (raw.get("origins") or {}).items()},
        takeovers={str(k): str(v) for k, v in (raw.get("takeovers") or {}).items()},
        reviewed=_reviewed(raw),
        landings=tuple((str(b), str(s), tuple(str(f) for f in fs)) for b, s, fs in raw.get("landings") or []),
        caps={str(k): (int(v[0]), str(v[1])) for k, v in ((raw.get("scheduler") or {}).get("caps") or {}).items()},
    )


def _reviewed(raw: dict[str, Any]) -> tuple[int, str]:
    got = raw.get("reviewed") or [0, ""]
    return int(got[0]), str(got[1])


def _targets(raw: dict[str, Any]) -> tuple[str, int, int] | None:
    got = (raw.get("scheduler") or {}).get("targets")
    return (str(got[0]), int(got[1]), int(got[2])) if got else None
