"""The scheduler: pure functions from state to decisions (DESIGN §1, seed plan "Scheduler").

`inputs_of` reads what the targets are made of from the state, `targets` turns those inputs into
concurrency caps, `choose_job` picks the one job a given slave should claim now, or None, and
`why_idle` says why it got none. No I/O here, so all are tested with plain case tables.
"""

from __future__ import annotations

import msgspec

from ..config import BudgetConfig
from ..jobs.base import Job
from ..state import budget
from ..state import events as ev
from ..state.events import Event
from ..state.locks import keys_for, overlaps
from ..state.model import HOLDS_KEYS, State, Task, TaskState

CONFLICT_THROTTLE = 0.3  # above this conflict rate, half as many agents work at once


class Inputs(msgspec.Struct, frozen=True):
    """Everything the targets are made of (recorded with them in scheduler.targets)."""

    slaves: int  # the hard cap
    ready: int
    backlog: int  # submitted work waiting for a judge
    conflict_rate: float = 0.0  # over the newest outcomes (conflict_rate below)
    judge_cap: int = 1
    pace: float | None = None  # the daily budget at this burn (budget.pace): < 1 runs out early
    caps: tuple[tuple[str, int, str], ...] = ()  # advice (source, cap, reason): lower only
    phase: str = ""  # the phase recorded before: the hysteresis starts from it
    held: str | None = None  # no agent may start: a spent budget, or the machine short of room


class Targets(msgspec.Struct, frozen=True):
    phase: str  # explore | execute | integrate
    work: int  # how many work jobs may run at once
    judge: int  # how many judge jobs may run at once
    cap: int = 0  # the effective cap: the hard one and every advice, the lowest
    why: str = ""  # what holds work below `cap`, or the advice that set `cap`

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.phase, self.work, self.judge)


def phase_of(cap: int, ready: int, backlog: int, before: str) -> str:
    """explore / execute / integrate, with hysteresis: a phase is entered at one level and left
    only well below it, so one landing or one new task does not flip it back and forth.
    integrate: entered at a judge backlog of max(2, cap), kept while it is max(1, cap // 2) or
    more; explore: entered at 2·cap ready tasks, kept while there are cap or more."""
    if backlog >= max(2, cap) or (before == "integrate" and backlog >= max(1, cap // 2)):
        return "integrate"
    if ready >= 2 * cap or (before == "explore" and ready >= cap):
        return "explore"
    return "execute"


def targets(inp: Inputs) -> Targets:
    """Adaptive concurrency under the hard cap of `slaves` (seed: explore/execute/integrate).

    Advice (the planner's `CONCURRENCY: n`, a person's `/cap n`) can only lower the cap. The
    phase says where the fleet is; it does not idle anyone. Judging comes before new work in
    `choose_job`, so in the integrate phase every slave that can judge judges — and one that has
    nothing to judge (the judge cap is reached, or the backlog is its own) works rather than
    waits: a cap below the ready work only cost time (measured: −6.6 % makespan at 8 slaves
    without one). What lowers work: agents stepping on each other (the conflict rate), and a burn
    that would spend the daily budget before the day ends (work scaled down by `pace`)."""
    cap, why = max(1, inp.slaves), ""
    for source, n, reason in sorted(inp.caps):
        if 0 < n < cap:
            cap, why = n, f"cap {n} from {source}" + (f" ({reason})" if reason else "")
    work, held = cap, []
    if inp.conflict_rate > CONFLICT_THROTTLE and cap > 1:
        work = max(1, cap // 2)
        held.append(f"conflict rate {inp.conflict_rate:.0%}")
    if inp.pace is not None and max(1, int(cap * inp.pace)) < work:
        work = max(1, int(cap * inp.pace))
        held.append(f"budget burn: the daily budget lasts {inp.pace:.0%} of the day left")
    phase = phase_of(cap, inp.ready, inp.backlog, inp.phase)
    judge = max(1, min(inp.judge_cap, cap))
    if inp.held:  # nothing that starts an agent: no work at all (a gate-only judgement still runs)
        return Targets(phase, 0, judge, cap, inp.held)
    return Targets(phase, work, judge, cap, "; ".join(x for x in (why, *held) if x))


def inputs_of(
    state: State, slaves: int, judge_cap: int = 1, pace: float | None = None, held: str | None = None
) -> Inputs:
    """The scheduler's inputs as the state has them (while main is red, only regressions count)."""
    red = state.main_red
    ready = backlog = 0
    for t in state.tasks.values():
        if red and "regression" not in t.tags:
            continue
        if t.state == TaskState.READY:
            ready += 1
        elif t.state == TaskState.NEEDS_JUDGE:
            backlog += 1
    caps = tuple((source, n, why) for source, (n, why) in sorted(state.caps.items()))
    before = state.targets[0] if state.targets else ""
    return Inputs(slaves, ready, backlog, conflict_rate(state), judge_cap, pace, caps, before, held)


def fleet_targets(
    state: State, slaves: int, judge_cap: int, limits: BudgetConfig | None, now: float, room: str | None = None
) -> tuple[Inputs, Targets]:
    """The inputs and targets now, the budgets included (what a claim, `status` and the TUI all
    go by); `room`: why the machine can't take another agent, when the caller looked."""
    pace, held = None, room
    if limits is not None and limits.any:
        standing = budget.standing(state, limits, now)
        held = held or standing.held
        pace = budget.pace(standing, limits, now)
    inp = inputs_of(state, slaves, judge_cap, pace, held)
    return inp, targets(inp)


def targets_json(inp: Inputs, tg: Targets) -> dict[str, object]:
    return {
        "phase": tg.phase, "work": tg.work, "judge": tg.judge, "cap": tg.cap, "slaves": inp.slaves, "why": tg.why,
        "inputs": {"ready": inp.ready, "backlog": inp.backlog, "conflict_rate": round(inp.conflict_rate, 3),
                   "pace": inp.pace, "held": inp.held},
        "advice": [{"source": s, "cap": n, "reason": why} for s, n, why in inp.caps],
    }  # fmt: skip


def targets_line(inp: Inputs, tg: Targets) -> str:
    """`explore phase · work ≤4 judge ≤1 of 4 slaves`, and what holds work, if anything."""
    of = f"cap {tg.cap} of {inp.slaves} slaves" if tg.cap < inp.slaves else f"of {inp.slaves} slaves"
    return f"{tg.phase} phase · work ≤{tg.work} judge ≤{tg.judge} {of}" + (f" — {tg.why}" if tg.why else "")


def targets_event(state: State, inp: Inputs, tg: Targets, actor: str) -> list[Event]:
    """A scheduler.targets event when the targets differ from the ones recorded, else none."""
    if state.targets == tg.key:
        return []
    return [
        ev.SchedulerTargets(
            actor=actor, phase=tg.phase, work=tg.work, judge=tg.judge, why=tg.why, slaves=inp.slaves, cap=tg.cap,
            ready=inp.ready, backlog=inp.backlog, conflict_rate=round(inp.conflict_rate, 3), pace=inp.pace,
            held=inp.held,
        )
    ]  # fmt: skip


def conflict_rate(state: State) -> float:
    """Conflicts among the newest outcomes (conflicts and landings, RECENT_OUTCOMES of them): a
    fleet that conflicted a lot last week and works cleanly now is not throttled for it."""
    return state.recent.count("c") / max(1, len(state.recent))


def task_keys(task: Task, owner_files: tuple[str, ...]) -> frozenset[str]:
    return keys_for((*task.paths, *task.touched), owner_files)


def _order(t: Task) -> tuple[int, int, float]:
    return (0 if "regression" in t.tags else 1, -t.priority, t.created)


def mainline_batch(state: State, now: float, batch_max: int, batch_wait_secs: float) -> tuple[str, ...]:
    """The accepted tasks to land together now, oldest first — or () to wait for more.

    A batch goes when it is full, when its oldest task has waited `batch_wait_secs`, or when
    nothing else is being built or judged that could join it soon.
    """
    tasks = list(state.tasks.values())
    if any(t.state == TaskState.LANDING for t in tasks):
        return ()  # one mainline job at a time
    accepted = sorted(
        (t for t in tasks if t.state == TaskState.ACCEPTED), key=lambda t: (_order(t)[0], t.accepted or 0.0)
    )
    if state.main_red:
        accepted = [t for t in accepted if "regression" in t.tags]
    if not accepted:
        return ()
    in_flight = any(t.state in (TaskState.CLAIMED, TaskState.NEEDS_JUDGE, TaskState.JUDGING) for t in tasks)
    waited = now - (accepted[0].accepted or now)
    if len(accepted) >= batch_max or waited >= batch_wait_secs or not in_flight:
        return tuple(t.id for t in accepted[:batch_max])
    return ()


def gate_status(state: State, key: str, enabled: bool) -> str:
    """May the gate be trusted? `trusted`, or `pending` (a preflight is due), `running`, `failed`."""
    if not enabled:
        return "trusted"
    if state.preflight_slave is not None:
        return "running"
    p = state.preflights.get(key)
    if p is None or state.preflight_wanted:
        return "pending"
    return "trusted" if p.trusted else "failed"


def held_by(state: State, task: Task) -> list[str]:
    """The earlier tasks `task` waits behind: they overlap it and have not landed (or let go) yet."""
    out = []
    for tid in task.held_behind:
        other = state.tasks.get(tid)
        if other is not None and other.state in HOLDS_KEYS:
            out.append(tid)
    return out


def lands_under(state: State, task: Task, owner_files: tuple[str, ...] = ()) -> str | None:
    """An accepted (or landing) task whose files meet this one's: reworked now, `task` would be
    built on a main without it and conflict with it again, so it waits until that one landed."""
    keys = task_keys(task, owner_files)
    if not keys:
        return None
    for t in state.tasks.values():
        if t.state in (TaskState.ACCEPTED, TaskState.LANDING) and overlaps(keys, task_keys(t, owner_files)):
            return t.id
    return None


def health_due(state: State, now: float, every_secs: float) -> bool:
    return every_secs > 0 and state.health_slave is None and now - state.health_last >= every_secs


def choose_job(
    state: State,
    me: str,
    *,
    slaves: int,
    alive: frozenset[str],
    owner_files: tuple[str, ...] = (),
    judge_cap: int = 1,
    can_judge: bool = True,
    now: float = 0.0,
    batch_max: int = 4,
    batch_wait_secs: float = 0.0,
    health_every_secs: float = 0.0,
    can_plan: bool = False,
    gate: str = "trusted",
    held: bool = False,
    judge_agent: bool = True,
    tg: Targets | None = None,
    can_work: bool = True,
) -> Job | None:
    """The job slave `me` should claim now, or None.

    Order: its own rework first (same branch, same session); then landing accepted tasks (quick
    and deterministic, it unblocks everything); a due health check; judging another slave's work;
    new work by regression tag, priority and age, if its ownership keys are free; then rework
    whose author is gone. While main is red only regression tasks move: anything else would be
    built on, and gated against, a broken main. Until the gate passed its preflight (`gate`), only
    the preflight itself and the planner run: nothing may be vouched for by an untrusted gate. A
    submitted task held behind an earlier overlapping one is not judged until that one landed.
    While a budget is spent (`held`), no job that starts an agent is chosen: landing, the health
    check, the preflight and a gate-only judgement (`judge_agent` False) still run. `tg`: the
    targets, when the caller has them already (else made from the state). `can_work` False: no
    work for this slave (no executor has room for its agents), judging and landing only.
    """
    if me in state.paused or "*" in state.paused:
        return None
    if gate == "pending":
        return Job("preflight")
    if gate != "trusted":
        if can_plan and state.plan_requests and state.plan_slave is None:
            return Job("plan", state.plan_requests[0])
        return None
    red = state.main_red
    tasks = [t for t in state.tasks.values() if not red or "regression" in t.tags]
    tg = tg or targets(inputs_of(state, slaves, judge_cap))
    working = sum(1 for t in state.tasks.values() if t.state == TaskState.CLAIMED)
    mine = sorted((t for t in tasks if t.state == TaskState.REWORK and t.author == me), key=_order)
    for t in mine if can_work and not held else ():
        if working >= tg.work and "regression" not in t.tags:
            break  # a rework is work: the target holds it too (it waits for its author)
        if not lands_under(state, t, owner_files):
            return Job("work", t.id)
    batch = mainline_batch(state, now, batch_max, batch_wait_secs)
    if batch:
        return Job("mainline", batch[0], batch)
    if health_due(state, now, health_every_secs):
        return Job("health")
    backlog = [t for t in tasks if t.state == TaskState.NEEDS_JUDGE]
    ready = [t for t in tasks if t.state == TaskState.READY]
    judging = sum(1 for t in state.tasks.values() if t.state == TaskState.JUDGING)
    if held:
        can_judge, can_plan = can_judge and not judge_agent, False
    if can_judge and judging < tg.judge:
        for t in sorted(backlog, key=_order):
            if t.author != me and not held_by(state, t):
                return Job("judge", t.id)
    if can_plan and state.plan_requests and state.plan_slave is None:
        return Job("plan", state.plan_requests[0])
    if held or not can_work:
        return None  # every job left is work for an agent
    if working >= tg.work and not any("regression" in t.tags for t in ready):
        return None
    taken = [task_keys(t, owner_files) for t in state.tasks.values() if t.state in HOLDS_KEYS]
    for t in sorted(ready, key=_order):
        if working >= tg.work and "regression" not in t.tags:
            continue  # regressions are assigned at once, over the concurrency target
        if any(state.state_of(dep) != TaskState.DONE for dep in t.depends_on):
            continue
        keys = task_keys(t, owner_files)
        if keys and "regression" not in t.tags and any(overlaps(keys, h) for h in taken):
            continue
        return Job("work", t.id)
    orphans = sorted((t for t in tasks if t.state == TaskState.REWORK and t.author not in alive), key=_order)
    if orphans:
        return Job("work", orphans[0].id)
    return None


def why_idle(
    state: State,
    me: str,
    *,
    slaves: int,
    owner_files: tuple[str, ...] = (),
    judge_cap: int = 1,
    gate: str = "trusted",
    held: str | None = None,
    tg: Targets | None = None,
) -> str:
    """Why `choose_job` gave slave `me` nothing (shown in its heartbeat, the TUI and `status`):
    the first thing that holds it, as a person would look for it."""
    if me in state.paused or "*" in state.paused:
        return "paused"
    if gate != "trusted":
        return f"held: gate preflight {'running' if gate == 'running' else 'failed'}"
    if held:
        return f"held: {held}"
    red = state.main_red
    tasks = [t for t in state.tasks.values() if not red or "regression" in t.tags]
    ready = [t for t in tasks if t.state == TaskState.READY]
    backlog = [t for t in tasks if t.state == TaskState.NEEDS_JUDGE]
    tg = tg or targets(inputs_of(state, slaves, judge_cap))
    working = sum(1 for t in state.tasks.values() if t.state == TaskState.CLAIMED)
    mine = sorted((t for t in tasks if t.state == TaskState.REWORK and t.author == me), key=_order)
    if mine and working >= tg.work:
        return f"held: {tg.phase} phase, work target {tg.work}" + (f" ({tg.why})" if tg.why else "")
    under = lands_under(state, mine[0], owner_files) if mine else None
    if mine and under:
        return f"waiting: {mine[0].id} is reworked once {under} has landed"
    if not ready and not backlog:
        if red:
            return "held: main is red; only regression tasks move"
        return "nothing to do"
    if backlog and not ready:
        judging = sum(1 for t in state.tasks.values() if t.state == TaskState.JUDGING)
        if judging >= tg.judge:
            return f"held: {judging} judging, judge cap {tg.judge}, backlog {len(backlog)}"
        mine_judged = [t.id for t in backlog if t.author == me]
        behind = [t for t in backlog if t.author != me and held_by(state, t)]
        if behind:
            return f"waiting: {behind[0].id} is held behind {', '.join(held_by(state, behind[0]))}"
        if mine_judged:
            return f"waiting: {mine_judged[0]} needs another slave's judgement"
    if ready and working >= tg.work:
        queued = f", backlog {len(backlog)}" if backlog else ""
        return f"held: {tg.phase} phase{queued}, work target {tg.work}" + (f" ({tg.why})" if tg.why else "")
    taken = {t.id: task_keys(t, owner_files) for t in state.tasks.values() if t.state in HOLDS_KEYS}
    for t in sorted(ready, key=_order):
        deps = [d for d in t.depends_on if state.state_of(d) != TaskState.DONE]
        if deps:
            return f"waiting: {t.id} depends on {', '.join(deps)}"
        keys = task_keys(t, owner_files)
        for other, theirs in taken.items():
            if keys and overlaps(keys, theirs):
                shared = sorted(keys & theirs) or sorted(theirs)
                return f"held: {shared[0]} locked by {other}"
    return "nothing to do"


def held_back(state: State, task: Task, tg: Targets, owner_files: tuple[str, ...] = ()) -> str:
    """Why a ready task is not started now (for `run --dry-run`): what a person would look for."""
    if state.main_red and "regression" not in task.tags:
        return "main is red: only regression tasks move"
    deps = [d for d in task.depends_on if state.state_of(d) != TaskState.DONE]
    if deps:
        return "waits on " + ", ".join(f"{d} ({state.state_of(d) or 'unknown'})" for d in deps)
    keys = task_keys(task, owner_files)
    for other in state.tasks.values():
        if other.id != task.id and other.state in HOLDS_KEYS and keys:
            theirs = task_keys(other, owner_files)
            if overlaps(keys, theirs):
                shared = sorted(keys & theirs) or sorted(theirs)
                return f"{shared[0]} locked by {other.id}"
    if tg.work <= 0:
        return f"held: {tg.why}"
    working = sum(1 for t in state.tasks.values() if t.state == TaskState.CLAIMED)
    if working >= tg.work:
        return f"work target {tg.work} reached ({tg.phase} phase{'; ' + tg.why if tg.why else ''})"
    return "no slave free for it"
