"""Spend against the budgets of `budget:` (pure: the state, the settings and the time in, the
standing out). Spend is what the event log recorded for every agent run, so any reader of the
log — a restarted slave, a new controller, `clanker status` on a copy — comes to the same figures.
"""

from __future__ import annotations

import datetime as dt

import msgspec

from ..config import BudgetConfig
from . import events as ev
from .events import Event
from .model import State, Task, TaskState
from .usage import Usage

WAITING = (TaskState.READY, TaskState.REWORK, TaskState.NEEDS_JUDGE)  # for an agent run, not in one
WARN_AT = 0.8  # a budget this far spent is said once (a RISK line), before it stops anything
BURN_SECS = 15 * 60  # the window of the burn rate


class Line(msgspec.Struct, frozen=True):
    """One budget of the fleet in its current period."""

    budget: str  # daily_usd | total_usd | daily_tokens
    period: str  # the budget day (its start's date, YYYY-MM-DD), or "total"
    used: float
    limit: float

    @property
    def fraction(self) -> float:
        return self.used / self.limit if self.limit else 0.0

    @property
    def spent(self) -> bool:
        return self.used >= self.limit

    def show(self) -> str:
        if self.budget.endswith("_usd"):
            return f"{self.budget} ${self.used:.2f} of ${self.limit:.2f}"
        return f"{self.budget} {int(self.used):,} of {int(self.limit):,} tokens"


class Standing(msgspec.Struct, frozen=True):
    lines: tuple[Line, ...]
    day: str  # the budget day now
    today_usd: float
    today_tokens: int
    work: Usage
    judge: Usage
    planner: Usage
    burn_usd_per_hour: float
    burn_tokens_per_hour: float

    @property
    def exceeded(self) -> tuple[Line, ...]:
        return tuple(ln for ln in self.lines if ln.spent)

    @property
    def held(self) -> str | None:
        """Why no agent run may start now, or None."""
        over = self.exceeded
        return "budget: " + "; ".join(ln.show() for ln in over) if over else None


def summary(st: Standing) -> str:
    """Spend in a few lines: each budget, today and in total by role, and the burn rate."""
    lines = [f"  {ln.show()} ({'today' if ln.period != 'total' else 'in total'})" for ln in st.lines]
    total = st.work + st.judge + st.planner
    lines.append(f"  today: ${st.today_usd:.2f}, {st.today_tokens:,} tokens (the budget day began on {st.day})")
    lines.append(
        f"  in total: ${total.cost_usd:.2f}, {total.tokens:,} tokens — work ${st.work.cost_usd:.2f}, "
        f"judge ${st.judge.cost_usd:.2f}, planner ${st.planner.cost_usd:.2f}"
    )
    lines.append(f"  burn (last 15 min): ${st.burn_usd_per_hour:.2f}/h, {st.burn_tokens_per_hour:,} tokens/h")
    return "spend:\n" + "\n".join(lines)


def to_json(st: Standing) -> dict[str, object]:
    return {
        "budgets": [
            {"budget": ln.budget, "period": ln.period, "used": ln.used, "limit": ln.limit, "spent": ln.spent}
            for ln in st.lines
        ],
        "held": st.held,
        "day": st.day,
        "today": {"usd": st.today_usd, "tokens": st.today_tokens},
        "total": {"work": st.work.to_json(), "judge": st.judge.to_json(), "planner": st.planner.to_json()},
        "burn_per_hour": {"usd": st.burn_usd_per_hour, "tokens": st.burn_tokens_per_hour},
    }


def day_start(now: float, day_starts: str) -> float:
    """When the budget day that `now` falls in began: the last `day_starts` (local time) at or
    before `now`."""
    hour, minute = (int(x) for x in day_starts.split(":"))
    local = dt.datetime.fromtimestamp(now)
    start = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if start.timestamp() > now:
        start -= dt.timedelta(days=1)
    return start.timestamp()


def spent_since(state: State, since: float) -> tuple[float, int]:
    """USD and tokens recorded from `since` on (minute by minute: `since` is a whole minute)."""
    first = int(since // 60)
    usd, tokens = 0.0, 0
    for minute, (u, t) in state.spent.items():
        if minute >= first:
            usd += u
            tokens += t
    return round(usd, 6), tokens


def standing(state: State, budget: BudgetConfig, now: float, running: Usage | None = None) -> Standing:
    """Where each budget stands at `now`; `running`: what a run under way used so far (not yet
    in the log), counted as spent today."""
    start = day_start(now, budget.day_starts)
    day = dt.datetime.fromtimestamp(start).strftime("%Y-%m-%d")
    today_usd, today_tokens = spent_since(state, start)
    work, judge, planner = state.work_usage, state.judge_usage, state.planner_usage
    if running is not None:
        today_usd, today_tokens = round(today_usd + running.cost_usd, 6), today_tokens + running.tokens
        work = work + running
    lines = []
    if budget.daily_usd is not None:
        lines.append(Line("daily_usd", day, today_usd, budget.daily_usd))
    if budget.daily_tokens is not None:
        lines.append(Line("daily_tokens", day, today_tokens, budget.daily_tokens))
    if budget.total_usd is not None:
        total = round(work.cost_usd + judge.cost_usd + planner.cost_usd, 6)
        lines.append(Line("total_usd", "total", total, budget.total_usd))
    burn_usd, burn_tokens = spent_since(state, now - BURN_SECS)
    per_hour = 3600 / BURN_SECS
    return Standing(
        tuple(lines), day, today_usd, today_tokens, work, judge, planner,
        round(burn_usd * per_hour, 4), int(burn_tokens * per_hour),
    )  # fmt: skip


def pace(st: Standing, budget: BudgetConfig, now: float) -> float | None:
    """How long the daily budgets last at the current burn, as a share of what is left of the
    budget day: below 1 they run out before the day ends (0.5: by half the time left), and the
    scheduler lowers work concurrency by that share. None: no daily budget, or nothing burns."""
    left = max(60.0, day_start(now, budget.day_starts) + 24 * 3600 - now) / 3600  # hours
    shares = []
    if budget.daily_usd is not None and st.burn_usd_per_hour > 0:
        shares.append(max(0.0, budget.daily_usd - st.today_usd) / (st.burn_usd_per_hour * left))
    if budget.daily_tokens is not None and st.burn_tokens_per_hour > 0:
        shares.append(max(0.0, budget.daily_tokens - st.today_tokens) / (st.burn_tokens_per_hour * left))
    return round(min(shares), 3) if shares else None


def events(state: State, budget: BudgetConfig, now: float, actor: str) -> list[Event]:
    """What is newly worth saying: a budget 80 % spent, or spent, once per budget and period."""
    out: list[Event] = []
    for ln in standing(state, budget, now).lines:
        said = "exceeded" if ln.spent else "warned" if ln.fraction >= WARN_AT else None
        if said is None or f"{said}:{ln.budget}@{ln.period}" in state.budget_said:
            continue
        kind = ev.BudgetExceeded if ln.spent else ev.BudgetWarned
        out.append(kind(actor=actor, budget=ln.budget, period=ln.period, used=ln.used, limit=ln.limit))
    return out


def task_over(task: Task, budget: BudgetConfig) -> str | None:
    """Why this task may not run its agent again (its own budget is spent), or None."""
    used = task.usage
    if budget.task_usd is not None and used.cost_usd >= budget.task_usd:
        return f"task budget spent: ${used.cost_usd:.2f} of ${budget.task_usd:.2f} (task_usd); split or re-scope it"
    if budget.task_tokens is not None and used.tokens >= budget.task_tokens:
        return (
            f"task budget spent: {used.tokens:,} of {budget.task_tokens:,} tokens (task_tokens); split or re-scope it"
        )
    return None


def blocked_tasks(state: State, budget: BudgetConfig, actor: str, planner: bool = False) -> list[Event]:
    """Tasks waiting for an agent run (work or judging) whose own budget is spent: blocked with
    their spend as the reason, and, when the fleet has a planner, handed to it to split."""
    if budget.task_usd is None and budget.task_tokens is None:
        return []
    out: list[Event] = []
    for t in state.tasks.values():
        if t.state in WAITING and (t.usage.tokens or t.usage.cost_usd):
            why = task_over(t, budget)
            if why is not None:
                out.append(ev.TaskBlocked(actor=actor, task=t.id, reason=why))
                if planner:
                    out.append(ev.PlanRequested(actor=actor, request=t.id, reason="blocked"))
    return out
