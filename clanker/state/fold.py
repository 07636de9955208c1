"""The pure fold: events → State. One small function per event class, in one table (DESIGN §3).

`fold` never mutates its input state, so a replay of any `events.log` gives the same State. An
event that is not legal where it stands (state/legal.py) — a hand-edited log — is skipped, never
a crash.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from msgspec.structs import force_setattr

from ..config.model import DEFAULT_BRANCH_PREFIX
from ..errors import IllegalTransition
from . import events as ev
from .events import Event
from .legal import check
from .model import (
    LANDINGS_KEPT,
    RECENT_OUTCOMES,
    SPENT_MINUTES,
    Archive,
    Down,
    Preflight,
    SetupFailure,
    SlaveInfo,
    State,
    Task,
    TaskState,
    evolve,
)
from .usage import Usage

Tasks = dict[str, Task]
NO_TASK = Task(id="", title="")


@dataclasses.dataclass
class _Draft:
    """The state being folded: mutated only inside one `fold` call, then frozen into a State."""

    tasks: Tasks
    slaves: dict[str, SlaveInfo]
    events: int
    conflicts: int
    mainlined: int
    paused: set[str]
    credentials: dict[str, float]
    health_slave: str | None
    health_started: float | None
    health_last: float
    main_red: bool
    plan_requests: list[str]
    plan_slave: str | None
    plan_started: float | None
    plan_request: str | None
    planner_usage: Usage
    preflights: dict[str, Preflight]
    preflight_slave: str | None
    preflight_started: float | None
    preflight_wanted: bool
    setup_failed: dict[str, SetupFailure]
    landing: dict[str, str]
    archive: Archive
    spent: dict[int, tuple[float, int]]
    budget_said: set[str]
    recent: str
    targets: tuple[str, int, int] | None
    caps: dict[str, tuple[int, str]]
    down: dict[str, Down]
    origins: dict[str, str]
    takeovers: dict[str, str]
    reviewed: tuple[int, str]
    landings: tuple[tuple[str, str, tuple[str, ...]], ...]
    origins_own: bool = dataclasses.field(default=False, init=False)  # copied in this fold call yet
    view: State = dataclasses.field(init=False)  # what the legality check sees: these tasks as they go

    def __post_init__(self) -> None:
        self.view = State(tasks=self.tasks, landing=self.landing)

    @classmethod
    def of(cls, s: State) -> _Draft:
        return cls(
            dict(s.tasks), dict(s.slaves), s.events, s.conflicts, s.mainlined, set(s.paused), dict(s.credentials),
            s.health_slave, s.health_started, s.health_last, s.main_red, list(s.plan_requests), s.plan_slave,
            s.plan_started, s.plan_request, s.planner_usage, dict(s.preflights), s.preflight_slave, s.preflight_started,
            s.preflight_wanted, dict(s.setup_failed), dict(s.landing) if s.landing is not None else landing_of(s),
            s.archive, dict(s.spent), set(s.budget_said), s.recent, s.targets, dict(s.caps), dict(s.down),
            s.origins,  # copied only when a sourced task is added: it grows with the history
            dict(s.takeovers), s.reviewed, s.landings,
        )  # fmt: skip

    def freeze(self, offset: int) -> State:
        # Filled in directly, not through State's __init__: a frozen dataclass's sets each of its
        # 35 fields with object.__setattr__, which was most of a one-event fold (a job's append).
        st = object.__new__(State)
        st.__dict__.update(
            tasks=self.tasks, slaves=self.slaves, offset=offset, events=self.events, conflicts=self.conflicts,
            mainlined=self.mainlined, paused=frozenset(self.paused), credentials=self.credentials,
            health_slave=self.health_slave, health_started=self.health_started, health_last=self.health_last,
            main_red=self.main_red, plan_requests=tuple(self.plan_requests), plan_slave=self.plan_slave,
            plan_started=self.plan_started, plan_request=self.plan_request, planner_usage=self.planner_usage,
            preflights=self.preflights, preflight_slave=self.preflight_slave, preflight_started=self.preflight_started,
            preflight_wanted=self.preflight_wanted, setup_failed=self.setup_failed, landing=self.landing,
            archive=self.archive, spent=self.spent, budget_said=frozenset(self.budget_said), recent=self.recent,
            targets=self.targets, caps=self.caps, down=self.down, origins=self.origins, takeovers=self.takeovers,
            reviewed=self.reviewed, landings=self.landings,
        )  # fmt: skip
        return st


E = TypeVar("E", bound=Event)
Apply = Callable[[_Draft, Any], None]
APPLY: dict[type[Event], Apply] = {}  # the one table: each event class and what it does to the state
TASK_APPLY: dict[type[Event], Callable[[Task, Any], Task]] = {}  # of those, the task events' own step


def on(cls: type[E]) -> Callable[[Callable[[_Draft, E], None]], Callable[[_Draft, E], None]]:
    def register(fn: Callable[[_Draft, E], None]) -> Callable[[_Draft, E], None]:
        APPLY[cls] = fn
        return fn

    return register


def on_task(cls: type[E]) -> Callable[[Callable[[Task, E], Task]], Callable[[Task, E], Task]]:
    """A task event: checked against the transition table, then `fn` gives the task's new value
    (for `task.added`, from a placeholder)."""

    def register(fn: Callable[[Task, E], Task]) -> Callable[[Task, E], Task]:
        APPLY[cls] = lambda d, e: _apply_task(d, e, fn)
        TASK_APPLY[cls] = fn
        return fn

    return register


def fold(state: State, events: Iterable[tuple[Event, int]]) -> State:
    """Apply events (each with the log offset just past it) to `state`, returning a new State
    (`state` itself when there are none: a look at an unchanged log copies nothing)."""
    it = iter(events)
    first = next(it, None)
    if first is None:
        return state
    d = _Draft.of(state)
    offset = state.offset
    task_apply, apply = TASK_APPLY, APPLY
    for e, end in itertools.chain((first,), it):
        offset = end
        d.events += 1
        fn = task_apply.get(type(e))
        if fn is not None:  # most of a log: straight to the task step, not through APPLY's wrapper
            _apply_task(d, e, fn)
        else:
            apply.get(type(e), _nothing)(d, e)
    return d.freeze(offset)


def _nothing(d: _Draft, e: Event) -> None:
    return None


def _apply_task(d: _Draft, e: Event, fn: Callable[[Task, Any], Task]) -> None:
    task_id: str = e.task  # type: ignore[attr-defined]  # a task event, or a risk or retry naming one
    if task_id not in d.tasks and task_id in d.archive.entries:
        back = d.archive.load(task_id)  # an event about an archived task: it is live again
        if back is not None:
            d.tasks[task_id] = back
            d.archive = d.archive.without(back)
    try:
        moves_to = check(d.view, e)
    except IllegalTransition:
        return  # a hand-edited log: skipped, never a crash
    before = d.tasks.get(task_id)
    if type(e) is ev.Mainlined:  # exact classes (none of these is subclassed): cheaper than isinstance
        d.mainlined += 1
        d.recent = (d.recent + "l")[-RECENT_OUTCOMES:]
        files = before.touched if before is not None else ()
        d.landings = (*d.landings[-(LANDINGS_KEPT - 1) :], (e.base, e.sha, files))
    elif type(e) is ev.AttemptFinished:
        _spend(d, e)
    elif type(e) is ev.TaskAdded and e.origin:
        if not d.origins_own:
            d.origins, d.origins_own = dict(d.origins), True
        d.origins[e.origin] = task_id
    after = fn(before or NO_TASK, e)  # only task.added is legal without a task, and it makes its own
    if after is before:
        after = evolve(after, updated=e.ts) if moves_to is None else evolve(after, updated=e.ts, state=moves_to)
    else:
        force_setattr(after, "updated", e.ts)  # a copy `fn` just made, seen by nobody yet
        if moves_to is not None:
            force_setattr(after, "state", moves_to)
    d.tasks[task_id] = after
    if after.state is TaskState.LANDING and after.slave:
        d.landing[task_id] = after.slave
    elif d.landing:
        d.landing.pop(task_id, None)


def _apply_job(d: _Draft, e: Event) -> bool:
    """Whether a job event may apply now (a hand-edited log may have one out of turn)."""
    try:
        check(State(health_slave=d.health_slave, plan_slave=d.plan_slave, preflight_slave=d.preflight_slave), e)
    except IllegalTransition:
        return False
    return True


# --- slaves and the fleet ----------------------------------------------------------------------------


@on(ev.SlaveStarted)
def _slave_started(d: _Draft, e: ev.SlaveStarted) -> None:
    sid = e.slave or e.actor
    before = d.slaves.get(sid)
    d.slaves[sid] = SlaveInfo(sid, e.pid, e.pane, e.ts, executor=before.executor if before else "")


@on(ev.SlavePlaced)
def _slave_placed(d: _Draft, e: ev.SlavePlaced) -> None:
    info = d.slaves.get(e.slave) or SlaveInfo(e.slave)
    d.slaves[e.slave] = evolve(info, executor=e.executor)


@on(ev.PlanReviewed)
def _reviewed(d: _Draft, e: ev.PlanReviewed) -> None:
    d.reviewed = (e.mainlined, e.docs)


@on(ev.TakeoverAsked)
def _takeover(d: _Draft, e: ev.TakeoverAsked) -> None:
    d.takeovers[e.slave] = e.task or ""


@on(ev.TakeoverEnded)
def _takeover_ended(d: _Draft, e: ev.TakeoverEnded) -> None:
    d.takeovers.pop(e.slave, None)


@on(ev.ExecutorDown)
def _executor_down(d: _Draft, e: ev.ExecutorDown) -> None:
    d.down[e.executor] = Down(e.until, e.reason, e.failures)


@on(ev.ExecutorUp)
def _executor_up(d: _Draft, e: ev.ExecutorUp) -> None:
    d.down.pop(e.executor, None)


@on(ev.SlaveStopped)
def _slave_stopped(d: _Draft, e: ev.SlaveStopped) -> None:
    sid = e.slave or e.actor
    if sid in d.slaves:
        d.slaves[sid] = evolve(d.slaves[sid], stopped=True)


@on(ev.FleetPaused)
def _fleet_paused(d: _Draft, e: ev.FleetPaused) -> None:
    d.paused.add(e.slave or "*")


@on(ev.FleetResumed)
def _fleet_resumed(d: _Draft, e: ev.FleetResumed) -> None:
    if (e.slave or "*") == "*":
        d.paused.clear()
    else:
        d.paused.discard(e.slave or "*")


@on(ev.CredentialExhausted)
def _credential_exhausted(d: _Draft, e: ev.CredentialExhausted) -> None:
    d.credentials[e.credential] = e.until


# --- health, main, the planner, the preflight, setup ----------------------------------------------


@on(ev.HealthClaimed)
def _health_claimed(d: _Draft, e: ev.HealthClaimed) -> None:
    if _apply_job(d, e):
        d.health_slave, d.health_started = e.slave or e.actor, e.ts


@on(ev.HealthRan)
def _health_ran(d: _Draft, e: ev.HealthRan) -> None:
    if _apply_job(d, e):
        d.health_slave, d.health_started = None, None
        d.health_last = e.ts
        if not e.stale:
            d.main_red = not e.passed


@on(ev.HealthReleased)
def _health_released(d: _Draft, e: ev.HealthReleased) -> None:
    if _apply_job(d, e):
        d.health_slave, d.health_started = None, None


@on(ev.MainRed)
def _main_red(d: _Draft, e: ev.MainRed) -> None:
    d.main_red = True


@on(ev.MainGreen)
def _main_green(d: _Draft, e: ev.MainGreen) -> None:
    d.main_red = False


@on(ev.PlanRan)
def _plan_ran(d: _Draft, e: ev.PlanRan) -> None:
    d.planner_usage = d.planner_usage + e.usage
    _spend(d, e)


def _spend(d: _Draft, e: ev.AgentRun) -> None:
    """Count a run's usage in the minute it was recorded; minutes older than SPENT_MINUTES go."""
    if not e.usage.cost_usd and not e.usage.tokens:
        return
    minute = int(e.ts // 60)
    usd, tokens = d.spent.get(minute, (0.0, 0))
    if not usd and not tokens:
        for old in [m for m in d.spent if m <= minute - SPENT_MINUTES]:
            del d.spent[old]
    d.spent[minute] = (round(usd + e.usage.cost_usd, 6), tokens + e.usage.tokens)


@on(ev.BudgetWarned)
def _budget_warned(d: _Draft, e: ev.BudgetWarned) -> None:
    d.budget_said.add(f"warned:{e.budget}@{e.period}")


@on(ev.BudgetExceeded)
def _budget_exceeded(d: _Draft, e: ev.BudgetExceeded) -> None:
    d.budget_said.add(f"exceeded:{e.budget}@{e.period}")


@on(ev.SchedulerTargets)
def _targets(d: _Draft, e: ev.SchedulerTargets) -> None:
    d.targets = (e.phase, e.work, e.judge)


@on(ev.SchedulerCapped)
def _capped(d: _Draft, e: ev.SchedulerCapped) -> None:
    if e.cap > 0:
        d.caps[e.source] = (e.cap, e.reason)
    else:
        d.caps.pop(e.source, None)


@on(ev.PlanRequested)
def _plan_requested(d: _Draft, e: ev.PlanRequested) -> None:
    if e.request not in d.plan_requests and e.request != d.plan_request:  # asked twice: one plan
        d.plan_requests.append(e.request)


@on(ev.PlanClaimed)
def _plan_claimed(d: _Draft, e: ev.PlanClaimed) -> None:
    if e.request in d.plan_requests and _apply_job(d, e):
        d.plan_requests.remove(e.request)
        d.plan_slave, d.plan_started, d.plan_request = e.slave or e.actor, e.ts, e.request


@on(ev.PlanDone)
def _plan_done(d: _Draft, e: ev.PlanDone) -> None:
    if d.plan_slave is not None and _apply_job(d, e):
        d.plan_slave, d.plan_started, d.plan_request = None, None, None


@on(ev.PlanReleased)
def _plan_released(d: _Draft, e: ev.PlanReleased) -> None:
    if d.plan_slave is not None and _apply_job(d, e):
        if d.plan_request is not None:
            d.plan_requests.insert(0, d.plan_request)
        d.plan_slave, d.plan_started, d.plan_request = None, None, None


@on(ev.PreflightRequested)
def _preflight_requested(d: _Draft, e: ev.PreflightRequested) -> None:
    d.preflight_wanted = True


@on(ev.PreflightClaimed)
def _preflight_claimed(d: _Draft, e: ev.PreflightClaimed) -> None:
    if _apply_job(d, e):
        d.preflight_slave, d.preflight_started, d.preflight_wanted = e.slave or e.actor, e.ts, False


@on(ev.PreflightReleased)
def _preflight_released(d: _Draft, e: ev.PreflightReleased) -> None:
    if _apply_job(d, e):
        d.preflight_slave, d.preflight_started, d.preflight_wanted = None, None, True


@on(ev.PreflightRan)
def _preflight_ran(d: _Draft, e: ev.PreflightRan) -> None:
    if not _apply_job(d, e):
        return
    if d.preflight_wanted:
        d.preflights.clear()  # asked for a new look since: the other settings' results are stale
    d.preflights[e.key] = Preflight(
        key=e.key,
        sha=e.sha,
        passed=e.passed,
        trusted=e.trusted or e.passed,
        kind=e.kind or ("ok" if e.passed else "gate"),
        ts=e.ts,
        detail=e.payload(),
    )
    if d.preflight_slave is None or d.preflight_slave == e.slave:
        d.preflight_slave, d.preflight_started = None, None
    d.preflight_wanted = False
    if e.passed:
        d.setup_failed.clear()  # a fresh worktree just set up fine


@on(ev.SetupFailed)
def _setup_failed(d: _Draft, e: ev.SetupFailed) -> None:
    if e.slave:
        d.setup_failed[e.slave] = SetupFailure(
            slave=e.slave,
            fingerprint=e.fingerprint,
            commands=e.commands,
            command=e.command,
            main_sha=e.main_sha,
            log=e.log,
            ts=e.ts,
        )


@on(ev.SetupOk)
def _setup_ok(d: _Draft, e: ev.SetupOk) -> None:
    if e.slave:
        d.setup_failed.pop(e.slave, None)
    else:
        d.setup_failed.clear()


@on(ev.SetupRetry)
def _setup_retry(d: _Draft, e: ev.SetupRetry) -> None:
    if e.slave:
        d.setup_failed.pop(e.slave, None)
    else:
        d.setup_failed.clear()


@on(ev.Risk)
def _risk(d: _Draft, e: ev.Risk) -> None:
    if e.kind == "conflict":
        d.conflicts += 1
        d.recent = (d.recent + "c")[-RECENT_OUTCOMES:]  # the scheduler's conflict rate, whatever the task
    if e.task is not None:
        _apply_task(d, e, lambda t, _e: t)


@on(ev.RetryWait)
def _retry_wait(d: _Draft, e: ev.RetryWait) -> None:
    if e.task is not None:
        _apply_task(d, e, lambda t, _e: t)


# --- tasks ---------------------------------------------------------------------------------------


@on_task(ev.TaskAdded)
def _added(_: Task, e: ev.TaskAdded) -> Task:
    return Task(
        id=e.task,
        title=e.title or e.task,
        prompt=e.prompt,
        description=e.description,
        priority=e.priority,
        paths=e.paths,
        tags=e.tags,
        depends_on=e.depends_on,
        parent=e.parent,
        branch=e.branch or DEFAULT_BRANCH_PREFIX + e.task,
        created=e.ts,
        signature=e.signature,
    )


@on_task(ev.TaskClaimed)
def _claimed(t: Task, e: ev.TaskClaimed) -> Task:
    slave = e.slave or e.actor
    return evolve(
        t, slave=slave, author=slave, attempts=t.attempts + 1, started=e.ts, first_started=t.first_started or e.ts
    )


@on_task(ev.TaskReleased)
def _released(t: Task, e: ev.TaskReleased) -> Task:
    # A claim given back for reasons that are not the task's fault (the slave stopped or died, the
    # credential ran out) does not count against max_attempts.
    attempts = max(t.attempt_base, t.attempts - 1) if e.refund else t.attempts
    return evolve(t, slave=None, started=None, attempts=attempts, reason=e.reason or t.reason)


@on_task(ev.TaskFailed)
def _failed(t: Task, e: ev.TaskFailed) -> Task:
    return evolve(t, slave=None, started=None, reason=e.error, errors=(*t.errors, e.error))


@on_task(ev.TaskSubmitted)
def _submitted(t: Task, e: ev.TaskSubmitted) -> Task:
    touched = tuple(dict.fromkeys((*t.touched, *e.files)))
    return evolve(
        t, slave=None, started=None, summary=e.summary, touched=touched, follow_ups=e.follow_ups or t.follow_ups
    )


@on_task(ev.JudgeClaimed)
def _judge_claimed(t: Task, e: ev.JudgeClaimed) -> Task:
    return evolve(t, slave=e.slave or e.actor, judge_rounds=t.judge_rounds + 1, started=e.ts)


@on_task(ev.JudgeReleased)
def _judge_released(t: Task, e: ev.JudgeReleased) -> Task:
    return evolve(t, slave=None, started=None)


@on_task(ev.Verdict)
def _verdict(t: Task, e: ev.Verdict) -> Task:
    if e.verdict == "done":
        return evolve(t, slave=None, started=None, reason=e.reasons, accepted=e.ts, candidate=e.candidate)
    conflicts = t.conflicts + (1 if e.conflict else 0)
    reworks = t.reworks + (1 if e.verdict == "rework" and not e.conflict else 0)
    return evolve(t, slave=None, started=None, reason=e.reasons, conflicts=conflicts, reworks=reworks, candidate=())


@on_task(ev.LandingClaimed)
def _landing(t: Task, e: ev.LandingClaimed) -> Task:
    return evolve(t, slave=e.slave or e.actor, started=e.ts)


@on_task(ev.LandingReleased)
def _landing_released(t: Task, e: ev.LandingReleased) -> Task:
    return evolve(t, slave=None, started=None, reason=e.reason or t.reason)


@on_task(ev.Mainlined)
def _mainlined(t: Task, e: ev.Mainlined) -> Task:
    return evolve(t, slave=None, started=None, sha=e.sha or None)


@on_task(ev.TaskBlocked)
def _blocked(t: Task, e: ev.TaskBlocked) -> Task:
    return evolve(t, slave=None, started=None, reason=e.reason)


@on_task(ev.TaskCancelled)
def _cancelled(t: Task, e: ev.TaskCancelled) -> Task:
    return evolve(t, slave=None, started=None, reason=e.reason)


@on_task(ev.TaskRetried)
def _retried(t: Task, e: ev.TaskRetried) -> Task:
    return evolve(t, slave=None, started=None, attempt_base=t.attempts, reworks=0, reason="")


@on_task(ev.TaskRescoped)
def _rescoped(t: Task, e: ev.TaskRescoped) -> Task:
    return evolve(t, title=e.title or t.title, prompt=e.prompt or t.prompt, paths=e.paths or t.paths, slave=None,
                  started=None, attempt_base=t.attempts, reworks=0, reason="")  # fmt: skip


@on_task(ev.TaskSplit)
def _split(t: Task, e: ev.TaskSplit) -> Task:
    return t


@on_task(ev.TaskRefresh)
def _refresh(t: Task, e: ev.TaskRefresh) -> Task:
    return evolve(t, slave=None, started=None, reason=e.reasons, conflicts=t.conflicts + 1)


@on_task(ev.TaskTouched)
def _touched(t: Task, e: ev.TaskTouched) -> Task:
    return evolve(t, touched=tuple(dict.fromkeys((*t.touched, *e.files))))


@on_task(ev.TaskConflicted)
def _conflicted(t: Task, e: ev.TaskConflicted) -> Task:
    return evolve(t, merge_conflicts=tuple(dict.fromkeys((*t.merge_conflicts, *e.files))))


@on_task(ev.TaskHeld)
def _held(t: Task, e: ev.TaskHeld) -> Task:
    behind = tuple(b for b in e.behind if b != t.id)
    return evolve(t, held_behind=tuple(dict.fromkeys((*t.held_behind, *behind))))


@on_task(ev.TaskNote)
def _note(t: Task, e: ev.TaskNote) -> Task:
    return t


@on_task(ev.GateRan)
def _gate_ran(t: Task, e: ev.GateRan) -> Task:
    # A worker's own gate is not remembered: its worktree holds whatever the agent left there,
    # ignored files too, so only a gate in another slave's clean checkout of the tree counts.
    spent = round(t.landing_gate_secs + e.seconds, 2) if e.role == "mainline" and not e.reused else None
    if e.passed and e.tree and e.key and e.role in ("judge", "mainline"):
        if spent is not None:
            return evolve(t, passed_tree=e.tree, passed_key=e.key, landing_gate_secs=spent)
        return evolve(t, passed_tree=e.tree, passed_key=e.key)
    return t if spent is None else evolve(t, landing_gate_secs=spent)


@on_task(ev.AttemptFinished)
def _attempt_finished(t: Task, e: ev.AttemptFinished) -> Task:
    peak = max(t.peak_rss_mb, e.peak_rss_mb)
    if e.role == "judge":
        return evolve(t, judge=t.judge + e.usage, peak_rss_mb=peak)
    sessions = (*t.sessions, e.session_id) if e.session_id and e.role == "work" else t.sessions
    return evolve(t, work=t.work + e.usage, sessions=sessions, peak_rss_mb=peak)


def landing_of(state: State) -> dict[str, str]:
    """Task id → slave for the tasks being landed (a state from a snapshot, or built by hand)."""
    return {t.id: t.slave for t in state.tasks.values() if t.state == TaskState.LANDING and t.slave}
