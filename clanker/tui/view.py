"""From the fleet's state to what the panels show. Pure: state, slave rows and the time in."""

from __future__ import annotations

from collections import Counter

from ..config import BudgetConfig, Config
from ..fleet import placement, scheduler
from ..fleet.rows import HELD_AS, SlaveRow, flow, state_order, totals
from ..state import budget
from ..state.model import State
from .layout import Queue, SlaveLine
from .tail import elapsed, money, tokens

# Submitted work that has not reached main yet: the integration backlog.
BACKLOG = frozenset({"needs_judge", "judging", "accepted", "landing"})
JOBS = {"working": "work", "judging": "judge", "landing": "land"}


def slave_lines(
    state: State,
    rows: list[SlaveRow],
    now: float,
    heartbeat_secs: float,
    stall_secs: float = 0.0,
    quiet: dict[str, float] | None = None,
) -> tuple[SlaveLine, ...]:
    """One line per slave. `quiet` maps a task to the seconds since its agent last wrote to its log:
    past `stall_secs` the slave is marked STALLED, as it is when its heartbeat is stale."""
    quiet = quiet or {}
    out = []
    for r in rows:
        t = state.tasks.get(r.task) if r.task else None
        job = JOBS.get(r.state, r.job if r.job and r.state not in ("dead", "stopped", "absent") else "idle")
        if t is not None and job == "work" and t.judge_rounds:
            job = "rework"
        marker = {"dead": "DEAD", "paused": "PAUSED", "stopped": "STOPPED", "absent": "ABSENT"}.get(r.state, "")
        if r.id in state.paused or "*" in state.paused:
            marker = marker if marker in ("DEAD", "STOPPED") else "PAUSED"
        stale = r.heartbeat_age_s is not None and r.heartbeat_age_s > 3 * heartbeat_secs
        silent = t is not None and stall_secs > 0 and quiet.get(t.id, 0.0) > stall_secs
        if not marker and (stale or silent):
            marker = "STALLED"
        out.append(
            SlaveLine(
                id=r.id,
                job=job,
                task=t.id if t else "",
                title=" ".join(t.title.split()) if t else (r.phase if r.phase not in ("idle", "") else ""),
                elapsed=elapsed(now - t.started) if t and t.started else "",
                spend=f"tok {tokens(t.usage.tokens)} {money(t.usage.cost_usd)}" if t else "",
                beat="-" if r.heartbeat_age_s is None else elapsed(r.heartbeat_age_s),
                marker=marker,
            )
        )
    return tuple(out)


def queue(state: State, slaves: int, judge_cap: int, limits: BudgetConfig | None = None, now: float = 0.0) -> Queue:
    counts = state.counts()
    ordered = tuple(sorted(((s, n) for s, n in counts.items() if n), key=lambda kv: state_order(kv[0])))
    work, judge = totals(state)
    total = work + judge
    spend = f"tok {tokens(total.tokens)} {money(total.cost_usd)}"
    if judge.cost_usd:
        spend += f" (judge {money(judge.cost_usd)})"
    if limits is not None and limits.any:
        standing = budget.standing(state, limits, now)
        for ln in standing.lines:
            used = money(ln.used) if ln.budget.endswith("_usd") else tokens(int(ln.used))
            limit = money(ln.limit) if ln.budget.endswith("_usd") else tokens(int(ln.limit))
            when = "total" if ln.period == "total" else "today"
            spend += f" · {when} {used}/{limit}{' SPENT' if ln.spent else ''}"
        if standing.burn_usd_per_hour:
            spend += f" · {money(standing.burn_usd_per_hour)}/h"
    _, tg = scheduler.fleet_targets(state, slaves, judge_cap, limits, now)
    landed = flow(state, now)
    return Queue(
        flow=f"{landed.last_hour}/h landed · queue {elapsed(landed.queue_secs)}"
        if landed.queue_secs is not None
        else "",
        counts=ordered,
        backlog=sum(n for s, n in counts.items() if s in BACKLOG),
        busy=len({t.slave for t in state.tasks.values() if t.slave and t.state in HELD_AS}),
        cap=tg.cap,
        phase=tg.phase,
        work_target=tg.work,
        judge_target=tg.judge,
        why=tg.why,
        spend=spend,
    )


def mode(state: State, rows: list[SlaveRow]) -> str:
    """`run` while any slave holds a job, `paused` when the whole fleet is paused, else `idle`."""
    if any(r.task is not None or r.state in ("working", "judging", "landing") for r in rows):
        return "run"
    if "*" in state.paused or (rows and all(r.id in state.paused for r in rows)):
        return "paused"
    return "idle"


def activity(rows: list[SlaveRow]) -> str:
    busy = Counter(JOBS.get(r.state, r.state) for r in rows if r.task is not None)
    words = {"work": "working", "judge": "judging", "land": "landing"}
    return " · ".join(f"{n} {words.get(k, k)}" for k, n in sorted(busy.items())) or "nothing running"


def idle_line(state: State, rows: list[SlaveRow], last_event: float, now: float) -> str:
    """The one bottom line, updated in place: what the fleet is doing, in a few words."""
    done = state.counts().get("done", 0)
    up = sum(1 for r in rows if r.state not in ("absent", "stopped", "dead"))
    parts = [activity(rows) if any(r.task for r in rows) else "idle"]
    parts.append(f"{up}/{len(rows)} slaves up")
    parts.append(f"{done}/{state.total} done")
    if last_event:
        parts.append(f"last event {elapsed(now - last_event)} ago")
    if "*" in state.paused:
        parts.append("PAUSED: /resume")
    parts.append("? help")
    return " · ".join(parts)


def executors(cfg: Config, state: State, rows: list[SlaveRow], now: float) -> str:
    """The header's executors: slots used of each, and the down ones ("" with none configured)."""
    if not cfg.executors:
        return ""
    alive = frozenset(r.id for r in rows if r.state not in ("absent", "stopped", "dead"))
    return placement.summary(cfg, state, alive, now)
