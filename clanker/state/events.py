"""The event catalogue: one frozen struct (msgspec) per kind of fact clanker records (DESIGN §3).

Each class is registered under its type name (`task.claimed`); state/codec.py writes an event as
one flat JSON line and reads it back. A field declared with `opt(...)` is left out of the line
while it has its default. Only these classes can be appended.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar, dataclass_transform

import msgspec

from .usage import Usage

E = TypeVar("E", bound="Event")
REGISTRY: dict[str, type[Event]] = {}


def kind(name: str) -> Callable[[type[E]], type[E]]:
    """Register an event class under its type name (`task.claimed`)."""

    def register(cls: type[E]) -> type[E]:
        if name in REGISTRY:
            raise TypeError(f"event type {name} registered twice")
        cls.TYPE = name
        REGISTRY[name] = cls
        return cls

    return register


class _Omitted:
    def __init__(self, default: Any) -> None:
        self.default = default


def opt(default: Any) -> Any:
    """A field written only when it differs from `default`."""
    return _Omitted(default)


class _EventMeta(msgspec.StructMeta):
    """Collects the `opt(...)` fields of each class into its OMIT set (a struct field has no
    metadata of its own) and gives the struct their plain defaults."""

    def __new__(mcls, name: str, bases: tuple[type, ...], ns: dict[str, Any], **kw: Any) -> _EventMeta:
        omit = set().union(*(getattr(b, "OMIT", ()) for b in bases))
        for key, value in list(ns.items()):
            if isinstance(value, _Omitted):
                ns[key] = value.default
                omit.add(key)
        ns["OMIT"] = frozenset(omit)
        return super().__new__(mcls, name, bases, ns, **kw)


# Structs rather than dataclasses: every clanker process builds these ~60 classes at start, in
# under a millisecond where dataclasses took ~45 ms (a slave's start-up, each `clanker` command),
# and a cold rebuild decodes a million lines straight into them. No event refers to another, so
# they need no cycle collection (gc=False), which a rebuild holding many of them would pay for.
@dataclass_transform(kw_only_default=True, frozen_default=True, field_specifiers=(msgspec.field,))
class Event(msgspec.Struct, metaclass=_EventMeta, frozen=True, kw_only=True, gc=False):
    """What every event has: who recorded it, and when."""

    TYPE: ClassVar[str] = ""
    OMIT: ClassVar[frozenset[str]] = frozenset()  # the opt(...) fields
    ABOUT_TASK: ClassVar[bool] = False  # has a `task` it cannot be without
    actor: str = "?"
    ts: float = msgspec.field(default_factory=time.time)

    @property
    def type(self) -> str:
        return self.TYPE

    @property
    def task_id(self) -> str | None:
        """The task this event is about, if any."""
        value = getattr(self, "task", None)
        return value if isinstance(value, str) else None

    def payload(self) -> dict[str, Any]:
        """The event's own fields as written (everything but v, ts, actor, type and task)."""
        from .codec import payload  # the codec reads this catalogue; it is needed here only late

        return payload(self)


class TaskEvent(Event):
    """An event about one task."""

    ABOUT_TASK: ClassVar[bool] = True
    task: str = ""


# --- tasks: transitions ----------------------------------------------------------------------------


@kind("task.added")
class TaskAdded(TaskEvent):
    title: str = ""
    prompt: str = ""
    description: str = ""
    priority: int = 0
    paths: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    depends_on: tuple[str, ...] = ()
    parent: str | None = opt(None)
    branch: str | None = opt(None)
    signature: str = opt("")  # regression tasks: the failure they fix
    origin: str = opt("")  # a task source's own id for it (`github:owner/repo#12`): never added twice


@kind("task.claimed")
class TaskClaimed(TaskEvent):
    slave: str = ""


@kind("task.released")
class TaskReleased(TaskEvent):
    slave: str = ""
    reason: str = ""
    refund: bool = opt(False)  # not the task's fault: the attempt does not count


@kind("task.failed")
class TaskFailed(TaskEvent):
    slave: str = ""
    error: str = "failed"


@kind("task.submitted")
class TaskSubmitted(TaskEvent):
    slave: str = ""
    summary: str = ""
    files: tuple[str, ...] = ()
    follow_ups: tuple[str, ...] = ()


@kind("task.judge_claimed")
class JudgeClaimed(TaskEvent):
    slave: str = ""


@kind("task.judge_released")
class JudgeReleased(TaskEvent):
    slave: str = ""
    reason: str = ""


@kind("task.verdict")
class Verdict(TaskEvent):
    slave: str | None = opt(None)
    verdict: str = ""  # done | rework | blocked
    reasons: str = ""
    conflict: bool = opt(False)  # the rework is a conflict with main (counts against its budget)
    # On `done`: the squash the judge built and gated — (commit, main's head it is on, its tree).
    # While main is still there, the lander lands that very commit instead of building it again.
    candidate: tuple[str, ...] = opt(())


@kind("task.landing")
class LandingClaimed(TaskEvent):
    slave: str = ""


@kind("task.landing_released")
class LandingReleased(TaskEvent):
    slave: str = ""
    reason: str = ""


@kind("task.mainlined")
class Mainlined(TaskEvent):
    slave: str = ""
    sha: str = ""
    base: str = opt("")
    recovered: bool = opt(False)  # found already on main (its judge died before recording it)


@kind("task.blocked")
class TaskBlocked(TaskEvent):
    slave: str | None = opt(None)
    reason: str = "blocked"


@kind("task.cancelled")
class TaskCancelled(TaskEvent):
    reason: str = "cancelled"


@kind("task.retried")
class TaskRetried(TaskEvent):
    pass


@kind("task.split")
class TaskSplit(TaskEvent):
    children: tuple[str, ...] = ()


@kind("task.rescoped")
class TaskRescoped(TaskEvent):
    """The planner rewrote a blocked task (its prompt, title, paths): back in the queue with the
    same history, its attempts counted afresh."""

    title: str = ""
    prompt: str = ""
    paths: tuple[str, ...] = ()
    reason: str = opt("")


@kind("task.refresh")
class TaskRefresh(TaskEvent):
    """main moved under a submitted task and it no longer merges: back to its author."""

    slave: str | None = opt(None)
    reasons: str = ""
    files: tuple[str, ...] = ()


# --- tasks: annotations (legal in any state once the task exists) ----------------------------------


@kind("task.touched")
class TaskTouched(TaskEvent):
    slave: str = ""
    files: tuple[str, ...] = ()


@kind("task.conflicted")
class TaskConflicted(TaskEvent):
    """Merging main into the task's branch left conflicts in these files for its agent to resolve."""

    slave: str = ""
    files: tuple[str, ...] = ()


@kind("task.held")
class TaskHeld(TaskEvent):
    slave: str = ""
    behind: tuple[str, ...] = ()


@kind("task.note")
class TaskNote(TaskEvent):
    note: str = ""


class AgentRun(Event):
    """One agent run's outcome and usage."""

    role: str = "work"  # work | judge | planner
    slave: str = ""
    attempt: int = 0
    outcome: str = ""
    usage: Usage = Usage()
    session_id: str | None = None
    seconds: float = 0.0
    credential: str = ""
    error: str | None = None
    peak_rss_mb: int = opt(0)  # the most memory its process group held at once (sampled)


@kind("attempt.finished")
class AttemptFinished(AgentRun):
    """A work or judge run of the agent on a task (a struct has one base: it is about a task
    the way a TaskEvent is, and written like one, `task` first)."""

    ABOUT_TASK: ClassVar[bool] = True
    task: str = ""


@kind("gate.ran")
class GateRan(TaskEvent):
    slave: str = ""
    role: str = ""  # work | judge | mainline
    passed: bool = False
    seconds: float = 0.0
    failed: str | None = None
    tail: str = ""
    tree: str = opt("")  # the tree it tested: what a later gate of the same tree may reuse
    key: str = opt("")  # the gate, worktree settings, environment and copied files it ran with
    reused: bool = opt(False)  # not run: an earlier pass on this very tree and key stands


@kind("risk")
class Risk(Event):
    """Something that may go wrong: a conflict, a stall, a crash, an auth problem."""

    task: str | None = None
    slave: str | None = opt(None)
    kind: str = "risk"
    message: str = ""
    files: tuple[str, ...] = opt(())
    owners: tuple[str, ...] = opt(())


@kind("retry.wait")
class RetryWait(Event):
    """A transient agent failure: the next try waits `delay` seconds (no task: a planner run)."""

    task: str | None = None
    slave: str = ""
    role: str = ""
    attempt: int = 0
    wait: int = 0
    reason: str = ""
    delay: float = 0.0


# --- slaves and the fleet ------------------------------------------------------------------------


@kind("slave.spawned")
class SlaveSpawned(Event):
    slave: str = ""


@kind("slave.started")
class SlaveStarted(Event):
    slave: str = ""
    pid: int = 0
    pane: str = ""


@kind("slave.stopped")
class SlaveStopped(Event):
    slave: str = ""


@kind("slave.placed")
class SlavePlaced(Event):
    """The slave's agents run on this executor (`executors:`) from now on."""

    slave: str = ""
    executor: str = ""


@kind("executor.down")
class ExecutorDown(Event):
    """An executor's host stopped answering: nothing is placed there until `until`, when it is
    tried again."""

    executor: str = ""
    reason: str = ""
    until: float = 0.0
    failures: int = 1  # in a row: the backoff doubles with each


@kind("executor.up")
class ExecutorUp(Event):
    executor: str = ""


@kind("slave.takeover")
class TakeoverAsked(Event):
    """A person wants the slave's agent session: the slave stops its agent (work kept) and opens
    the session interactively in its pane."""

    slave: str = ""
    task: str | None = None


@kind("slave.takeover_ended")
class TakeoverEnded(Event):
    slave: str = ""
    task: str | None = None
    released: bool = opt(False)  # given back without the person's changes (stashed, not lost)
    changed: bool = opt(False)  # the person changed files, committed to the task branch


@kind("slave.paused")
class SlavePaused(Event):
    """Every credential the slave could use is spent: it waits until `until`."""

    slave: str = ""
    credential: str = ""
    until: float = 0.0


@kind("fleet.paused")
class FleetPaused(Event):
    slave: str | None = None  # None: the whole fleet


@kind("fleet.resumed")
class FleetResumed(Event):
    slave: str | None = None


@kind("credential.exhausted")
class CredentialExhausted(Event):
    credential: str = ""
    until: float = 0.0
    reason: str = ""


# --- budgets ---------------------------------------------------------------------------------------


@kind("budget.warned")
class BudgetWarned(Event):
    """A budget is 80 % spent (said once per budget and period)."""

    budget: str = ""  # daily_usd | total_usd | daily_tokens
    period: str = ""  # the day it is about (YYYY-MM-DD), or "total"
    used: float = 0.0
    limit: float = 0.0


@kind("budget.exceeded")
class BudgetExceeded(BudgetWarned):
    """A budget is spent: no new agent run starts until the period ends or the limit is raised."""


# --- the scheduler ---------------------------------------------------------------------------------


@kind("scheduler.targets")
class SchedulerTargets(Event):
    """The scheduler's targets changed; with the inputs they came from, so "why is c3 idle?" has
    an answer in the log."""

    phase: str = ""  # explore | execute | integrate
    work: int = 0  # work jobs that may run at once
    judge: int = 0  # judge jobs that may run at once
    why: str = opt("")  # what holds work below the cap, if anything
    slaves: int = 0  # the hard cap
    cap: int = 0  # the effective cap: the hard cap and every advice, the lowest
    ready: int = 0
    backlog: int = 0
    conflict_rate: float = 0.0
    pace: float | None = opt(None)  # the daily budget at this burn: < 1 runs out before the day ends
    held: str | None = opt(None)  # no agent may start: a spent budget, or the machine short of room


@kind("scheduler.capped")
class SchedulerCapped(Event):
    """An advice that lowers concurrency: a person's `/cap N`, or the planner's `CONCURRENCY: n`.
    It can only lower the hard cap (`slaves`); a cap of 0 lifts that source's advice."""

    source: str = "user"  # user | planner
    cap: int = 0
    reason: str = opt("")


# --- main's health ---------------------------------------------------------------------------------


@kind("health.claimed")
class HealthClaimed(Event):
    slave: str = ""


@kind("health.ran")
class HealthRan(Event):
    slave: str = ""
    passed: bool = True
    sha: str = ""
    failed: str | None = None
    seconds: float = 0.0
    tail: str = ""
    stale: bool = opt(False)  # a failure of a sha older than main's current green head: not a verdict on main


@kind("health.released")
class HealthReleased(Event):
    slave: str = ""
    reason: str = ""


@kind("main.red")
class MainRed(Event):
    sha: str = ""
    signature: str = ""
    where: str = ""


@kind("main.green")
class MainGreen(Event):
    sha: str = ""


# --- the planner -----------------------------------------------------------------------------------


@kind("plan.requested")
class PlanRequested(Event):
    request: str = ""  # "" = plan from the docs, else the task to split
    reason: str = ""


@kind("plan.claimed")
class PlanClaimed(Event):
    slave: str = ""
    request: str = ""


@kind("plan.done")
class PlanDone(Event):
    slave: str = ""
    request: str = ""
    added: tuple[str, ...] = ()
    error: str = opt("")


@kind("plan.released")
class PlanReleased(Event):
    slave: str = ""
    request: str | None = opt(None)
    reason: str = ""


@kind("plan.reviewed")
class PlanReviewed(Event):
    """The planner compared the plan documents with what landed: at this many landings, with
    the docs at this fingerprint (the next review is due after more landings or a docs change)."""

    mainlined: int = 0
    docs: str = ""


@kind("history.rolled_up")
class RolledUp(Event):
    """A closed week's notes were summed up in `history/rollups/<week>.md`: by the planner agent,
    or by the deterministic summariser (no planner, an older week, or the planner's answer failed)."""

    week: str = ""
    by: str = ""  # planner | summariser
    notes: int = 0
    why: str = opt("")  # the summariser standing in for the planner: why


@kind("plan.ran")
class PlanRan(AgentRun):
    """A planner run's usage: the fleet's cost, not a task's."""


# --- the gate preflight and worktree setup -------------------------------------------------------


@kind("preflight.requested")
class PreflightRequested(Event):
    reason: str = ""


@kind("preflight.claimed")
class PreflightClaimed(Event):
    slave: str = ""
    key: str = ""


@kind("preflight.ran")
class PreflightRan(Event):
    slave: str = ""  # or "doctor": `clanker doctor --gate`, which holds no claim
    key: str = ""
    passed: bool = False
    kind: str = ""  # ok | setup | gate | trap | regression
    sha: str = ""
    seconds: float = 0.0
    failed: str = ""
    tail: str = ""
    opened: tuple[str, ...] = ()
    causes: tuple[str, ...] = ()
    fix: str = ""
    log: str = ""
    partial: bool = False
    trusted: bool = False


@kind("preflight.released")
class PreflightReleased(Event):
    slave: str = ""
    reason: str = ""


@kind("setup.failed")
class SetupFailed(Event):
    """A slave's worktree setup failed on main's own inputs: the environment, not the task."""

    slave: str = ""
    fingerprint: str = ""
    commands: str = ""
    command: str = ""
    main_sha: str = ""
    log: str = ""
    tail: str = ""
    job: str = ""
    task: str | None = None  # the task whose job it was (it went back to the queue)


@kind("setup.ok")
class SetupOk(Event):
    slave: str = ""


@kind("setup.retry")
class SetupRetry(Event):
    slave: str | None = opt(None)  # None: every slave whose setup failed
    reason: str = ""
