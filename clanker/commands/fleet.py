"""Steering the running fleet: pause and resume slaves (`/pause`, `/resume`, `p`/`P`), `/cap N`,
which lowers how many agents run at once until lifted (an event: no file changes), and
`/slaves N`, which changes `slaves:` in clanker.yaml and nothing else."""

from __future__ import annotations

import re
from typing import Any

import yaml

from ..config import CONFIG_NAME, Config, load
from ..errors import UsageError
from ..state import atomic
from ..state.events import FleetPaused, FleetResumed, SchedulerCapped, TakeoverAsked, TakeoverEnded
from ..state.model import TaskState
from ..state.store import Store
from . import Done

SLAVES_LINE = re.compile(r"^slaves[ \t]*:[ \t]*(?P<value>[^#\n]*?)(?P<rest>[ \t]*(?:#.*)?)$", re.M)


def pause(store: Store, who: str | None) -> Done:
    target = who or "*"
    if target in store.state().paused:
        return Done(0, f"{'the fleet' if target == '*' else target} is paused already")
    store.append(FleetPaused(actor=store.actor, slave=target))
    if target == "*":
        return Done(0, "paused the fleet: slaves finish the job in hand, then take nothing new (/resume)")
    return Done(0, f"paused {target}: it finishes the job in hand, then takes nothing new (/resume {target})")


def resume(store: Store, who: str | None) -> Done:
    target = who or "*"
    paused = store.state().paused
    if target != "*" and "*" in paused:
        return Done(0, "the whole fleet is paused: /resume resumes every slave")
    if target not in paused and not (target == "*" and paused):
        return Done(0, f"{'the fleet' if target == '*' else target} is not paused")
    store.append(FleetResumed(actor=store.actor, slave=target))
    return Done(0, "resumed the fleet" if target == "*" else f"resumed {target}")


def cap(store: Store, cfg: Config, n: int | None, reason: str = "") -> Done:
    """Cap concurrency at `n` agents (None: lift the cap). A cap can only lower `slaves`: one at
    or above it is refused, since it would change nothing."""
    now = store.state().caps.get("user")
    if n is None:
        if now is None:
            return Done(0, "no cap of yours to lift")
        store.append(SchedulerCapped(actor=store.actor, source="user", cap=0))
        return Done(0, f"cap lifted: up to {cfg.slaves} agents at once (slaves in clanker.yaml)")
    if n < 1:
        raise UsageError("a cap is 1 or more agents: /pause stops the fleet, /cap off lifts the cap")
    if n >= cfg.slaves:
        raise UsageError(f"a cap of {n} would not lower slaves: {cfg.slaves}; /slaves N changes the hard cap")
    if now == (n, reason):
        return Done(0, f"the cap is {n} already")
    store.append(SchedulerCapped(actor=store.actor, source="user", cap=n, reason=reason))
    return Done(0, f"capped at {n} of {cfg.slaves} agents at once; jobs in hand finish (/cap off lifts it)")


def takeover(store: Store, sid: str, release: bool = False) -> Done:
    """Take over the agent session of the task slave `sid` has in hand (or give it back)."""
    st = store.state()
    if release:
        if sid not in st.takeovers:
            return Done(0, f"no takeover of {sid} to release")
        store.append(TakeoverEnded(actor=store.actor, slave=sid, task=st.takeovers[sid] or None, released=True))
        return Done(0, f"released {sid}: what you changed there is stashed, its task goes back to the fleet")
    task = next((t for t in st.tasks.values() if t.slave == sid and t.state == TaskState.CLAIMED), None)
    if task is None:
        raise UsageError(f"{sid} is not working on a task now: a takeover opens the session of the task in hand")
    if sid in st.takeovers:
        return Done(0, f"{sid} is being taken over already: `clanker attach {sid}`")
    store.append(TakeoverAsked(actor=store.actor, slave=sid, task=task.id))
    return Done(
        0,
        f"{sid} stops its agent on {task.id} (work kept) and opens the session in its pane: `clanker attach {sid}`; "
        f"exit it to hand back (`clanker takeover --release {sid}` gives it back unchanged)",
    )


def with_slaves(text: str, n: int) -> str:
    """clanker.yaml's text with `slaves: n`: only that line changes (its comment stays); the key
    is added at the end when missing. Refuses (UsageError) when the result would read differently
    in anything but `slaves`."""
    if SLAVES_LINE.search(text):
        new = SLAVES_LINE.sub(lambda m: f"slaves: {n}{m.group('rest')}", text, count=1)
    else:
        new = text + ("" if not text or text.endswith("\n") else "\n") + f"slaves: {n}\n"
    before, after = _mapping(text), _mapping(new)
    if after.get("slaves") != n or {k: v for k, v in after.items() if k != "slaves"} != {
        k: v for k, v in before.items() if k != "slaves"
    }:
        raise UsageError(f"can't change slaves in clanker.yaml safely: set `slaves: {n}` there by hand")
    return new


def _mapping(text: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text) or {}  # empty, or comments only
    except yaml.YAMLError:
        raise UsageError("clanker.yaml does not parse: fix it, then try again") from None
    if not isinstance(data, dict):
        raise UsageError("clanker.yaml is not a mapping of settings: fix it, then try again")
    return data


def set_slaves(cfg: Config, n: int) -> Config:
    """Write `slaves: n` to clanker.yaml atomically and return the config read back from it."""
    path = cfg.path or cfg.repo / CONFIG_NAME
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    atomic.write_text(path, with_slaves(text, n))
    return load(cfg.repo, path)
