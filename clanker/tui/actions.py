"""What the keys and `/` commands do to the fleet: events, clanker.yaml, landing, doctor.

Each action returns the one line the TUI shows, or raises a ClankerError whose message is that line.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from ..commands import doctor
from ..config import CONFIG_NAME, Config, load
from ..errors import UsageError
from ..jobs import landing
from ..state import atomic
from ..state.events import FleetPaused, FleetResumed
from ..state.model import State
from ..state.store import Store

SLAVES_LINE = re.compile(r"^slaves[ \t]*:[ \t]*(?P<value>[^#\n]*?)(?P<rest>[ \t]*(?:#.*)?)$", re.M)


def pause(store: Store, state: State, who: str | None) -> str:
    target = who or "*"
    if target in state.paused:
        return f"{'the fleet' if target == '*' else target} is paused already"
    store.append(FleetPaused(actor=store.actor, slave=target))
    if target == "*":
        return "paused the fleet: slaves finish the job in hand, then take nothing new (/resume)"
    return f"paused {target}: it finishes the job in hand, then takes nothing new (/resume {target})"


def resume(store: Store, state: State, who: str | None) -> str:
    target = who or "*"
    if target != "*" and "*" in state.paused:
        return "the whole fleet is paused: /resume resumes every slave"
    if target not in state.paused and not (target == "*" and state.paused):
        return f"{'the fleet' if target == '*' else target} is not paused"
    store.append(FleetResumed(actor=store.actor, slave=target))
    return "resumed the fleet" if target == "*" else f"resumed {target}"


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


def land(cfg: Config, state: State, ids: list[str]) -> str:
    """Mainline the submitted tasks now (`clanker land --yes`); the summary's first line."""
    tasks = landing.candidates(state, ids)
    if not tasks:
        return "nothing to land: no task is waiting for a judge"
    report = landing.land(cfg, tasks, lambda _line: None)
    return landing.summary(report).replace("\n", " ·")


def doctor_lines(cfg: Config) -> list[str]:
    checks = doctor.run_checks(cfg.repo, cfg.path)
    return doctor.render(checks).splitlines()
