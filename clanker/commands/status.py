"""`clanker status`: the fleet's dashboard as text (flocks' status), or JSON for scripts.

The text is grouped like flocks' dashboard: running tasks longest first with stall warnings, done
tasks with their average time, failed and blocked tasks with their reason and the last lines of
their log, slave utilisation, and tokens and cost with work and judge apart. The JSON keeps its
shape (scripts and tests rely on it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from typing import Any

from ..config import BudgetConfig, Config
from ..errors import ClankerError
from ..fleet import panes as fleet
from ..fleet import placement, scheduler
from ..fleet.rows import (
    HELD_AS,
    LOG_LINES,
    SlaveRow,
    average_done,
    counts_line,
    flow,
    running,
    slave_rows,
    state_order,
    totals,
)
from ..state import budget, logs
from ..state.model import State, Task, TaskState
from ..state.paths import Paths
from ..state.store import Store
from ..system.tmux import Tmux
from ..text import sanitize
from ..units import elapsed, tokens
from . import Done, Echo


def status(cfg: Config, store: Store, as_json: bool, echo: Echo) -> Done:
    """Tasks and slaves at a glance."""
    state = store.state()
    panes = {}
    with contextlib.suppress(ClankerError):
        panes = fleet.view(Tmux(cfg.tmux_socket), cfg.repo).panes
    rows = slave_rows(cfg, store.paths, state, panes)
    if as_json:
        # One line: the C encoder (indent forces the pure-Python one, most of the time on a long history).
        echo(json.dumps(to_json(state, rows, cfg), ensure_ascii=False, separators=(",", ":")))
    else:
        echo(render(state, rows, cfg=cfg, paths=store.paths))
    return Done()


def gate_json(state: State) -> dict[str, Any]:
    """The gate preflight and worktree setup, for scripts."""
    p = state.preflight
    return {
        "preflight": None
        if p is None
        else {"passed": p.passed, "trusted": p.trusted, "kind": p.kind, "sha": p.sha, "ts": p.ts, "key": p.key},
        "preflight_running": state.preflight_slave,
        "setup_failed": {
            sid: {"command": f.command, "log": f.log, "since": f.ts} for sid, f in sorted(state.setup_failed.items())
        },
    }


def gate_lines(state: State) -> list[str]:
    """What `clanker status` says about the gate preflight and worktree setup (when it matters)."""
    out = []
    p = state.preflight
    if state.preflight_slave:
        out.append(f"GATE preflight running on {state.preflight_slave}: nothing is dispatched until it passes")
    elif p is not None and not p.trusted:
        why = {"setup": "worktree.setup fails", "trap": "the gate reads your checkout, not the worktree"}.get(
            p.kind, "the gate fails on main in a fresh worktree"
        )
        out.append(f"GATE preflight FAILED ({why}): nothing is dispatched — `clanker doctor --gate` says why")
    for sid, f in sorted(state.setup_failed.items()):
        out.append(f"SETUP {sid}: `{f.command}` failed; waiting for its inputs to change — {f.log}")
    return out


def tasks_json(state: State, archived: list[Task] | None = None) -> list[dict[str, Any]]:
    """The live tasks (and `archived` ones read back, before them) as JSON rows."""
    return [
        {
            "id": t.id,
            "title": t.title,
            "state": str(t.state),
            "slave": t.slave or t.author,
            "attempts": t.attempts,
            "tokens": t.usage.tokens,
            "cost_usd": round(t.usage.cost_usd, 6),
            "peak_rss_mb": t.peak_rss_mb,
            "work": t.work.to_json(),
            "judge": t.judge.to_json(),
            "reason": t.reason,
            "sha": t.sha,
        }
        for t in [*(archived or []), *state.tasks.values()]
    ]


def to_json(state: State, rows: list[SlaveRow], cfg: Config | None = None) -> dict[str, Any]:
    limits = cfg.budget if cfg else BudgetConfig()
    now = time.time()
    spend = budget.standing(state, limits, now)
    inp, tg = scheduler.fleet_targets(state, *_caps(state, cfg), limits, now)
    return {
        "gate": gate_json(state),
        "budget": budget.to_json(spend),
        "scheduler": scheduler.targets_json(inp, tg),
        "executors": placement.to_json(cfg, state, _alive(rows), now) if cfg is not None else [],
        "merge_queue": dataclasses.asdict(flow(state, time.time())),
        "tasks": tasks_json(state),
        "counts": dict(state.counts()),  # archived tasks too, which "tasks" leaves out
        "archived": state.total - len(state.tasks),
        "slaves": [
            {
                "id": r.id,
                "state": r.state,
                "task": r.task,
                "heartbeat_age_s": r.heartbeat_age_s,
                "pane": r.pane,
            }
            for r in rows
        ],
    }


def _alive(rows: list[SlaveRow]) -> frozenset[str]:
    return frozenset(r.id for r in rows if r.state not in ("absent", "stopped", "dead"))


def _caps(state: State, cfg: Config | None) -> tuple[int, int]:
    """The hard cap and the judge cap (without a config: the fleet as it is)."""
    if cfg is not None:
        return cfg.slaves, cfg.judges
    return max(1, len(state.slaves)), 1


def _clip(text: str, width: int) -> str:
    text = " ".join(sanitize(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _failed(state: State) -> list[Task]:
    """Blocked tasks, tasks sent back for rework, and tasks whose last attempt failed."""
    return [
        t
        for t in state.tasks.values()
        if t.state in (TaskState.BLOCKED, TaskState.REWORK) or (t.state == TaskState.READY and t.errors and t.reason)
    ]


def render(
    state: State,
    rows: list[SlaveRow],
    width: int = 100,
    now: float | None = None,
    cfg: Config | None = None,
    paths: Paths | None = None,
) -> str:
    """The dashboard. With `cfg` and `paths` it also reads task logs (failed tasks' last lines,
    silent agents) and judges staleness by the configured heartbeat."""
    now = time.time() if now is None else now
    work, judge = totals(state)
    total = work + judge
    lines = [
        f"tasks {state.total}  {counts_line(state) or 'none yet: `clanker task add TITLE`'}",
        f"tokens {tokens(total.tokens)}  cost ${total.cost_usd:.2f} "
        f"(work ${work.cost_usd:.2f}, judge ${judge.cost_usd:.2f})",
        f"  work {tokens(work.tokens)} tokens in {work.turns} turns, judge {tokens(judge.tokens)} tokens "
        f"in {judge.turns} turns",
    ]
    if state.planner_usage.tokens:
        p = state.planner_usage
        lines.append(
            f"  planner {tokens(p.tokens)} tokens in {p.turns} turns, ${p.cost_usd:.2f} (not in the total above)"
        )
    lines.append(f"MERGE QUEUE {flow(state, now).line()}")
    inp, tg = scheduler.fleet_targets(state, *_caps(state, cfg), cfg.budget if cfg else None, now)
    lines.append(f"SCHEDULER {scheduler.targets_line(inp, tg)}")
    if cfg is not None and cfg.budget.any:
        spend = budget.standing(state, cfg.budget, now)
        held = spend.held
        lines += ["", f"BUDGET {'SPENT — ' + held.removeprefix('budget: ') if held else 'within limits'}"]
        lines += budget.summary(spend).splitlines()[1:]
    gate = gate_lines(state)
    if gate:
        lines += ["", *gate]
    title_w = max(10, width - 62)

    def task_line(t: Task, state_: str, age: str, extra: str = "") -> str:
        return (
            f"  {t.id:<10} {state_:<11} {(t.slave or t.author or '-'):<5} {age:>5}  "
            f"{tokens(t.usage.tokens):>6} {f'${t.usage.cost_usd:.2f}':>7}  {_clip(t.title, title_w)}{extra}"
        )

    run = running(state, rows, now, paths, cfg)
    if run:
        lines += ["", f"RUNNING ({len(run)}, longest first)"]
        for item in run:
            peak = f"  {item.task.peak_rss_mb} MB at most" if item.task.peak_rss_mb else ""
            lines.append(task_line(item.task, str(item.task.state), elapsed(item.elapsed), peak))
            if item.warning:
                lines.append(f"  {'':<10} ⚠ stalled? {item.warning}")
    failed = _failed(state)
    if failed:
        lines += ["", f"FAILED / BLOCKED ({len(failed)})"]
        for t in failed:
            lines.append(task_line(t, str(t.state), elapsed(now - (t.updated or now))))
            lines.append(f"  {'':<10} why: {_clip(t.reason or 'no reason recorded', width - 20)}")
            tail = logs.tail(paths, t.id, LOG_LINES) if paths is not None else ""
            for ln in tail.splitlines():
                lines.append(f"  {'':<10} │ {_clip(ln, width - 16)}")
    done = [t for t in state.tasks.values() if t.state == TaskState.DONE]
    if done:
        avg = average_done(state)
        landed = state.counts()["done"]  # archived ones too
        lines += ["", f"DONE ({landed}, average {elapsed(avg or 0)} from first claim to landed)"]
        for t in sorted(done, key=lambda t: -t.updated)[:10]:
            lines.append(task_line(t, "done", elapsed(t.updated - t.created), f"  {(t.sha or '')[:10]}"))
        if landed > 10:
            lines.append(f"  … and {landed - 10} more")
    shown = {t.id for t in (*failed, *done)}
    waiting = [t for t in state.tasks.values() if t.state not in HELD_AS and t.id not in shown]
    if waiting:
        lines += ["", f"QUEUE ({len(waiting)})"]
        for t in sorted(waiting, key=lambda t: (state_order(t.state), -t.priority, t.created)):
            waits = [d for d in t.depends_on if state.known(d) and state.state_of(d) != TaskState.DONE]
            on = f"  (waits on {', '.join(waits)})" if waits and t.state == TaskState.READY else ""
            lines.append(task_line(t, str(t.state), elapsed(now - (t.created or now)), on))
    lines += ["", _utilisation(rows)]
    if cfg is not None and cfg.executors:
        lines.append(f"EXECUTORS {placement.summary(cfg, state, _alive(rows), now, who=True)}")
        for name, d in sorted(state.down.items()):
            if d.until > now:
                lines.append(
                    f"  {name} is down ({_clip(d.reason, width - 40)}): tried again in {elapsed(d.until - now)}"
                )
    lines.append("  SLAVE  STATE     TASK        PHASE            BEAT  PANE")
    for r in rows:
        beat = "-" if r.heartbeat_age_s is None else elapsed(r.heartbeat_age_s)
        why = r.phase.removeprefix("idle: ") if r.phase.startswith("idle: ") else ""
        phase = "idle" if why else r.phase or "-"
        lines.append(f"  {r.id:<6} {r.state:<9} {(r.task or '-'):<11} {_clip(phase, 16):<16} {beat:>4}  {r.pane}")
        if why:
            lines.append(f"  {'':<6} why idle: {_clip(why, width - 20)}")
    return "\n".join(lines)


def _utilisation(rows: list[SlaveRow]) -> str:
    live = [r for r in rows if r.state not in ("absent", "stopped", "dead")]
    busy = [r for r in live if r.task is not None or r.state not in ("idle", "paused")]
    if not rows:
        return "SLAVES none"
    pct = 100 * len(busy) // max(1, len(rows))
    bar = "█" * (len(busy) * 10 // max(1, len(rows)))
    return (
        f"SLAVES {len(busy)}/{len(rows)} busy ({pct} %)  {bar:░<10}  "
        f"{len(live)} up, {sum(1 for r in rows if r.state == 'dead')} dead, "
        f"{sum(1 for r in rows if r.state == 'paused')} paused"
    )
