"""Tasks, the fleet's state, and the tables of legal transitions (DESIGN §3–4).

A task's state is whatever the fold of its events says (`events.py` has the events). The
transition tables are the only place that knows which event may move a task, or a job that is not
a task (health check, planner, preflight), from which state.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Any, TypeVar

import msgspec
import msgspec.structs

from .events import Event, Verdict
from .usage import Usage


class TaskState(StrEnum):
    """Task states."""

    READY = "ready"
    CLAIMED = "claimed"
    NEEDS_JUDGE = "needs_judge"
    JUDGING = "judging"
    ACCEPTED = "accepted"  # the judge said done; waits for the mainline queue
    LANDING = "landing"  # in a batch being stacked, gated and landed on main
    DONE = "done"
    REWORK = "rework"
    BLOCKED = "blocked"
    SPLIT = "split"
    CANCELLED = "cancelled"


TERMINAL = frozenset({TaskState.DONE, TaskState.SPLIT, TaskState.CANCELLED})
# A task in one of these states holds its ownership keys (DESIGN §5).
HOLDS_KEYS = frozenset(
    {
        TaskState.CLAIMED,
        TaskState.NEEDS_JUDGE,
        TaskState.JUDGING,
        TaskState.ACCEPTED,
        TaskState.LANDING,
        TaskState.REWORK,
    }
)
HELD = frozenset({TaskState.CLAIMED, TaskState.JUDGING, TaskState.LANDING})  # states in which a slave holds the task
LIVE = frozenset(TaskState) - TERMINAL

# (state, trigger) -> next state. A trigger is the event type, or `type:verdict` for verdicts.
# `None` as the state means "the task does not exist yet".
TRANSITIONS: dict[tuple[TaskState | None, str], TaskState] = {
    (None, "task.added"): TaskState.READY,
    (TaskState.READY, "task.claimed"): TaskState.CLAIMED,
    (TaskState.REWORK, "task.claimed"): TaskState.CLAIMED,
    (TaskState.CLAIMED, "task.released"): TaskState.READY,
    (TaskState.CLAIMED, "task.failed"): TaskState.READY,
    (TaskState.CLAIMED, "task.submitted"): TaskState.NEEDS_JUDGE,
    (TaskState.NEEDS_JUDGE, "task.judge_claimed"): TaskState.JUDGING,
    (TaskState.JUDGING, "task.judge_released"): TaskState.NEEDS_JUDGE,
    (TaskState.JUDGING, "task.verdict:done"): TaskState.ACCEPTED,
    (TaskState.JUDGING, "task.verdict:rework"): TaskState.REWORK,
    (TaskState.JUDGING, "task.verdict:blocked"): TaskState.BLOCKED,
    (TaskState.JUDGING, "task.mainlined"): TaskState.DONE,  # recovery: it was already on main
    (TaskState.ACCEPTED, "task.landing"): TaskState.LANDING,
    (TaskState.LANDING, "task.landing_released"): TaskState.ACCEPTED,
    (TaskState.LANDING, "task.mainlined"): TaskState.DONE,
    (TaskState.LANDING, "task.verdict:rework"): TaskState.REWORK,
    (TaskState.BLOCKED, "task.retried"): TaskState.READY,
    (TaskState.BLOCKED, "task.rescoped"): TaskState.READY,
    (TaskState.CANCELLED, "task.retried"): TaskState.READY,
    (TaskState.READY, "task.retried"): TaskState.READY,
    (TaskState.REWORK, "task.retried"): TaskState.READY,
}
for _s in (
    TaskState.READY,
    TaskState.CLAIMED,
    TaskState.NEEDS_JUDGE,
    TaskState.JUDGING,
    TaskState.ACCEPTED,
    TaskState.LANDING,
    TaskState.REWORK,
):
    TRANSITIONS[(_s, "task.blocked")] = TaskState.BLOCKED
for _s in LIVE:
    TRANSITIONS[(_s, "task.cancelled")] = TaskState.CANCELLED
for _s in (TaskState.READY, TaskState.BLOCKED, TaskState.REWORK):
    TRANSITIONS[(_s, "task.split")] = TaskState.SPLIT
# main moved under a submitted task and it no longer merges: back to its author before any judge.
TRANSITIONS[(TaskState.NEEDS_JUDGE, "task.refresh")] = TaskState.REWORK

# Events that annotate a task without moving it; legal in any state once the task exists.
ANNOTATIONS = frozenset(
    {"attempt.finished", "gate.ran", "risk", "task.note", "retry.wait", "task.touched", "task.held", "task.conflicted"}
)


def trigger(ev: Event) -> str:
    """The table's trigger for `ev`: its type, or `task.verdict:<verdict>` for verdicts."""
    if isinstance(ev, Verdict):
        return f"task.verdict:{ev.verdict}"
    return ev.type


# The jobs that are not tasks, one holder at a time (DESIGN §1): (held?, event type) -> held after.
# Only the holder may finish or let go of a job, like a task; `clanker doctor --gate` records a
# preflight it ran itself without holding one.
JOB_TRANSITIONS: dict[tuple[bool, str], bool] = {
    (False, "health.claimed"): True,
    (True, "health.ran"): False,
    (True, "health.released"): False,
    (False, "plan.claimed"): True,
    (True, "plan.done"): False,
    (True, "plan.released"): False,
    (False, "preflight.claimed"): True,
    (True, "preflight.ran"): False,
    (True, "preflight.released"): False,
}
JOBS = {"health.": "health", "plan.": "plan", "preflight.": "preflight"}


class Task(msgspec.Struct, frozen=True):
    id: str
    title: str
    prompt: str = ""
    description: str = ""
    priority: int = 0
    paths: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    depends_on: tuple[str, ...] = ()
    parent: str | None = None
    branch: str = ""
    state: TaskState = TaskState.READY
    slave: str | None = None  # who holds it now (worker or judge)
    author: str | None = None  # the slave whose work is on the branch
    attempts: int = 0  # work attempts started, ever
    attempt_base: int = 0  # attempts at the last `task retry` (max_attempts counts from here)
    judge_rounds: int = 0
    reworks: int = 0  # rework verdicts for what the change does (not for conflicts with main)
    touched: tuple[str, ...] = ()
    summary: str = ""
    reason: str = ""  # the last judge reasons, block reason or error
    errors: tuple[str, ...] = ()  # one line per failed attempt, for the next prompt
    sessions: tuple[str, ...] = ()  # agent session ids of the work, newest last
    work: Usage = Usage()
    judge: Usage = Usage()
    conflicts: int = 0
    created: float = 0.0
    updated: float = 0.0
    started: float | None = None  # when the current claim began
    sha: str | None = None  # the commit on main, once done
    follow_ups: tuple[str, ...] = ()  # titles the agent proposed, created once this task is done
    signature: str = ""  # regression tasks: the failure they fix (repeats are not duplicated)
    accepted: float | None = None  # when the judge said done (the mainline queue is FIFO)
    first_started: float | None = None  # when a slave first claimed it
    held_behind: tuple[str, ...] = ()  # earlier tasks whose changes overlap: not judged before they land
    merge_conflicts: tuple[str, ...] = ()  # files a merge of main left conflicted: no markers may stay
    passed_tree: str = ""  # the last tree a judge's or mainline gate passed for it …
    passed_key: str = ""  # … and with what (GateRan.key): a landing of that same tree needn't re-run it
    candidate: tuple[str, ...] = ()  # what the judge accepted: (commit, main's head under it, tree)
    peak_rss_mb: int = 0  # the most memory any of its agent runs held at once
    landing_gate_secs: float = 0.0  # what mainline gates spent on it (reused ones cost nothing)

    @property
    def usage(self) -> Usage:
        return self.work + self.judge

    @property
    def attempts_since_retry(self) -> int:
        return self.attempts - self.attempt_base


class SlaveInfo(msgspec.Struct, frozen=True):
    id: str
    pid: int = 0
    pane: str = ""
    started: float = 0.0
    stopped: bool = False
    executor: str = ""  # where its agents run ("": not placed yet)


class Down(msgspec.Struct, frozen=True):
    """An executor that stopped answering, until when nothing goes there, and why."""

    until: float
    reason: str
    failures: int = 1


class Preflight(msgspec.Struct, frozen=True):
    """The last gate preflight: whether the gate may be trusted, and for which settings (`key`)."""

    key: str
    sha: str
    passed: bool
    trusted: bool  # passed, or failed on a main that moved since a trusted run (a regression)
    kind: str  # ok | setup | gate | trap | regression
    ts: float
    detail: dict[str, Any] = msgspec.field(default_factory=dict)  # the event's data, for the one-screen report


class SetupFailure(msgspec.Struct, frozen=True):
    """A slave's worktree setup failed on main's inputs: it waits until they (or the commands) change."""

    slave: str
    fingerprint: str
    commands: str  # hash of the setup commands that failed
    command: str
    main_sha: str  # main's head when it failed
    log: str
    ts: float


def prompt_key(title: str, prompt: str) -> str:
    """What an import matches a row without an id by (its title and prompt), archived or not."""
    return hashlib.sha1(f"{title}\0{prompt}".encode()).hexdigest()[:12]


class Archived(msgspec.Struct, frozen=True):
    """What live reads keep of a finished task that moved to the archive (state/archive.py)."""

    offset: int  # where its line starts in the archive file
    state: str
    title: str
    sha: str | None
    key: str  # of its title and prompt: an import of the same row finds it


@dataclass(frozen=True, eq=False)
class Archive:
    """Finished tasks out of the live state: live reads and the fold never load them, yet know
    they exist, what became of them and what they cost. `load` reads one back (an event about it,
    `task show`); the reader is bound to the archive file by state/archive.py."""

    entries: Mapping[str, Archived] = field(default_factory=dict)
    counts: Mapping[str, int] = field(default_factory=dict)
    work: Usage = Usage()
    judge: Usage = Usage()
    size: int = 0  # bytes of the archive file these entries were written in
    reader: Callable[[int], Task | None] | None = field(default=None, repr=False)
    # Lines other processes wrote for tasks not finished here yet (id → offset): this process
    # takes such a line later, when its own task is the same, instead of writing it again.
    pending: Mapping[str, int] = field(default_factory=dict, repr=False)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Archive):
            return NotImplemented
        return (self.entries, self.counts, self.work, self.judge) == (
            other.entries,
            other.counts,
            other.work,
            other.judge,
        )

    def __hash__(self) -> int:
        return hash(tuple(self.entries))

    def __contains__(self, task_id: object) -> bool:
        return task_id in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def load(self, task_id: str) -> Task | None:
        entry = self.entries.get(task_id)
        if entry is None or self.reader is None:
            return None
        task = self.reader(entry.offset)
        return task if task is not None and task.id == task_id else None

    @cached_property
    def keys(self) -> frozenset[str]:
        return frozenset(e.key for e in self.entries.values())

    @cached_property
    def shas(self) -> frozenset[str]:
        return frozenset(e.sha for e in self.entries.values() if e.sha)

    def without(self, task: Task) -> Archive:
        """The archive once `task` is live again (an event about it came in)."""
        entries = dict(self.entries)
        gone = entries.pop(task.id, None)
        if gone is None:
            return self
        counts = Counter(self.counts)
        counts[gone.state] -= 1
        return Archive(
            entries,
            {k: v for k, v in counts.items() if v > 0},
            self.work - task.work,
            self.judge - task.judge,
            self.size,
            self.reader,
            self.pending,
        )


RECENT_OUTCOMES = 50
LANDINGS_KEPT = 64
SPENT_MINUTES = 26 * 60  # a day from any `day_starts`, whatever the clock change, and some


@dataclass(frozen=True)
class State:
    tasks: dict[str, Task] = field(default_factory=dict)
    slaves: dict[str, SlaveInfo] = field(default_factory=dict)
    offset: int = 0  # bytes of events.log folded into this state
    events: int = 0
    conflicts: int = 0  # RISK conflict events, for the scheduler's conflict rate
    mainlined: int = 0
    paused: frozenset[str] = frozenset()  # slave ids, or "*" for all
    credentials: dict[str, float] = field(default_factory=dict)  # spent credential → reset time
    health_slave: str | None = None  # who runs the health check now
    health_started: float | None = None
    health_last: float = 0.0  # when the last health check finished
    main_red: bool = False  # the last health check (or a gate of main) failed
    plan_requests: tuple[str, ...] = ()  # waiting planner runs: "" = from the plan docs, or a task to split
    plan_slave: str | None = None  # who runs the planner now
    plan_started: float | None = None
    plan_request: str | None = None  # what that run is for
    planner_usage: Usage = Usage()  # every planner run's tokens and cost, fleet-wide
    preflights: dict[str, Preflight] = field(default_factory=dict)  # settings key → its last result
    preflight_slave: str | None = None  # who runs the preflight now
    preflight_started: float | None = None
    preflight_wanted: bool = False  # asked for since the last result (a new run, a retry)
    setup_failed: dict[str, SetupFailure] = field(default_factory=dict)  # slave → its failure
    # Task id → slave, for every task in LANDING (one lander at a time), kept by the fold so the
    # check of a new landing needn't scan every task; None when not kept (a state built by hand).
    landing: dict[str, str] | None = field(default=None, compare=False, repr=False)
    archive: Archive = field(default_factory=Archive)  # finished tasks no live read loads
    # What agent runs cost per minute (epoch minute → USD, tokens) over the last SPENT_MINUTES:
    # a daily budget and a burn rate read it; the totals are the tasks' and the planner's usage.
    spent: dict[int, tuple[float, int]] = field(default_factory=dict)
    budget_said: frozenset[str] = frozenset()  # "budget@period" warnings and stops already said
    # The newest RECENT_OUTCOMES conflicts ("c") and landings ("l"), oldest first: the scheduler's
    # conflict rate is about how the fleet works now, not over its whole history.
    recent: str = ""
    # The scheduler's targets as last recorded (phase, work, judge): the phase's hysteresis starts
    # from it, and a change of it is a scheduler.targets event. None: nothing recorded yet.
    targets: tuple[str, int, int] | None = None
    caps: dict[str, tuple[int, str]] = field(default_factory=dict)  # advice source → (cap, reason)
    down: dict[str, Down] = field(default_factory=dict)  # executors that stopped answering
    origins: dict[str, str] = field(default_factory=dict)  # a task source's id → the task made of it
    takeovers: dict[str, str] = field(default_factory=dict)  # slave → its task, a person taking it over
    reviewed: tuple[int, str] = (0, "")  # the plan's last review: landings then, the docs' fingerprint
    # The newest LANDINGS_KEPT landings (main's head before, after, the task's files), oldest first:
    # what main's moves changed since a branch began, known without git while the fleet moved it.
    landings: tuple[tuple[str, str, tuple[str, ...]], ...] = ()

    @property
    def preflight(self) -> Preflight | None:
        """The newest preflight result, whatever the settings (for showing it)."""
        return max(self.preflights.values(), key=lambda p: p.ts, default=None)

    def task(self, task_id: str) -> Task | None:
        """A task by id, live or archived (an archived one is read back from the archive)."""
        return self.tasks.get(task_id) or self.archive.load(task_id)

    def known(self, task_id: str) -> bool:
        return task_id in self.tasks or task_id in self.archive

    def state_of(self, task_id: str) -> str | None:
        t = self.tasks.get(task_id)
        if t is not None:
            return str(t.state)
        entry = self.archive.entries.get(task_id)
        return entry.state if entry else None

    @property
    def total(self) -> int:
        """Every task ever added, archived ones too."""
        return len(self.tasks) + len(self.archive)

    def counts(self) -> Counter[str]:
        """Tasks by state, archived ones too."""
        found = Counter(str(t.state) for t in self.tasks.values())
        found.update(self.archive.counts)
        return found

    @property
    def work_usage(self) -> Usage:
        return Usage.total((t.work for t in self.tasks.values()), self.archive.work)

    @property
    def judge_usage(self) -> Usage:
        return Usage.total((t.judge for t in self.tasks.values()), self.archive.judge)


D = TypeVar("D")


def evolve(obj: D, **changes: Any) -> D:
    """A frozen record with `changes`: msgspec's own replace for the structs (Task, SlaveInfo),
    and for the dataclasses (State, Archive) `dataclasses.replace` without calling `__init__`
    (they have no `__post_init__`): a copy of the instance dict with `changes` on top — about
    ten times faster. Either is most of a cold rebuild of a long log."""
    if isinstance(obj, msgspec.Struct):
        return msgspec.structs.replace(obj, **changes)
    cls = type(obj)
    if not changes.keys() <= cls.__dataclass_fields__.keys():  # type: ignore[attr-defined]
        unknown = sorted(changes.keys() - cls.__dataclass_fields__.keys())  # type: ignore[attr-defined]
        raise TypeError(f"{cls.__name__} has no field {', '.join(unknown)}")
    new = object.__new__(cls)
    new.__dict__.update(obj.__dict__)
    new.__dict__.update(changes)
    return new
