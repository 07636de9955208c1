"""Events, tasks and the table of legal task transitions (DESIGN §3–4).

Events are immutable facts; a task's state is whatever the fold of its events says. The transition
table is the only place that knows which event may move a task from which state.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

SCHEMA_VERSION = 1


class S(StrEnum):
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


TERMINAL = frozenset({S.DONE, S.SPLIT, S.CANCELLED})
# A task in one of these states holds its ownership keys (DESIGN §5).
HOLDS_KEYS = frozenset({S.CLAIMED, S.NEEDS_JUDGE, S.JUDGING, S.ACCEPTED, S.LANDING, S.REWORK})
HELD = frozenset({S.CLAIMED, S.JUDGING, S.LANDING})  # states in which a slave holds the task
LIVE = frozenset(S) - TERMINAL

# (state, trigger) -> next state. A trigger is the event type, or `type:verdict` for verdicts.
# `None` as the state means "the task does not exist yet".
TRANSITIONS: dict[tuple[S | None, str], S] = {
    (None, "task.added"): S.READY,
    (S.READY, "task.claimed"): S.CLAIMED,
    (S.REWORK, "task.claimed"): S.CLAIMED,
    (S.CLAIMED, "task.released"): S.READY,
    (S.CLAIMED, "task.failed"): S.READY,
    (S.CLAIMED, "task.submitted"): S.NEEDS_JUDGE,
    (S.NEEDS_JUDGE, "task.judge_claimed"): S.JUDGING,
    (S.JUDGING, "task.judge_released"): S.NEEDS_JUDGE,
    (S.JUDGING, "task.verdict:done"): S.ACCEPTED,
    (S.JUDGING, "task.verdict:rework"): S.REWORK,
    (S.JUDGING, "task.verdict:blocked"): S.BLOCKED,
    (S.JUDGING, "task.mainlined"): S.DONE,  # recovery: it was already on main
    (S.ACCEPTED, "task.landing"): S.LANDING,
    (S.LANDING, "task.landing_released"): S.ACCEPTED,
    (S.LANDING, "task.mainlined"): S.DONE,
    (S.LANDING, "task.verdict:rework"): S.REWORK,
    (S.BLOCKED, "task.retried"): S.READY,
    (S.CANCELLED, "task.retried"): S.READY,
    (S.READY, "task.retried"): S.READY,
    (S.REWORK, "task.retried"): S.READY,
}
for _s in (S.READY, S.CLAIMED, S.NEEDS_JUDGE, S.JUDGING, S.ACCEPTED, S.LANDING, S.REWORK):
    TRANSITIONS[(_s, "task.blocked")] = S.BLOCKED
for _s in LIVE:
    TRANSITIONS[(_s, "task.cancelled")] = S.CANCELLED
for _s in (S.READY, S.BLOCKED, S.REWORK):
    TRANSITIONS[(_s, "task.split")] = S.SPLIT
# main moved under a submitted task and it no longer merges: back to its author before any judge.
TRANSITIONS[(S.NEEDS_JUDGE, "task.refresh")] = S.REWORK

# Events that annotate a task without moving it; legal in any state once the task exists.
ANNOTATIONS = frozenset(
    {"attempt.finished", "gate.ran", "risk", "task.note", "retry.wait", "agent.waiting", "task.touched", "task.held"}
)


def trigger(ev: Event) -> str:
    if ev.type == "task.verdict":
        return f"task.verdict:{ev.data.get('verdict')}"
    return ev.type


@dataclass(frozen=True)
class Event:
    type: str
    actor: str
    task: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    ts: float = field(default_factory=time.time)
    v: int = SCHEMA_VERSION

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"v": self.v, "ts": round(self.ts, 3), "actor": self.actor, "type": self.type}
        if self.task is not None:
            out["task"] = self.task
        out.update(self.data)
        return out

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Event:
        data = {k: v for k, v in raw.items() if k not in ("v", "ts", "actor", "type", "task")}
        return cls(
            type=str(raw["type"]),
            actor=str(raw.get("actor", "?")),
            task=raw.get("task"),
            data=data,
            ts=float(raw.get("ts", 0.0)),
            v=int(raw.get("v", SCHEMA_VERSION)),
        )


@dataclass(frozen=True)
class Usage:
    """Tokens, turns and cost of one or more agent runs."""

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0
    turns: int = 0
    cost_usd: float = 0.0

    @property
    def tokens(self) -> int:
        return self.input + self.output + self.cache_read + self.cache_write

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input + other.input,
            self.output + other.output,
            self.cache_read + other.cache_read,
            self.cache_write + other.cache_write,
            self.turns + other.turns,
            round(self.cost_usd + other.cost_usd, 6),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "input": self.input,
            "output": self.output,
            "cache_read": self.cache_read,
            "cache_write": self.cache_write,
            "turns": self.turns,
            "cost_usd": self.cost_usd,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any] | None) -> Usage:
        raw = raw or {}
        return cls(
            int(raw.get("input", 0)),
            int(raw.get("output", 0)),
            int(raw.get("cache_read", 0)),
            int(raw.get("cache_write", 0)),
            int(raw.get("turns", 0)),
            float(raw.get("cost_usd", 0.0)),
        )


@dataclass(frozen=True)
class Task:
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
    state: S = S.READY
    slave: str | None = None  # who holds it now (worker or judge)
    author: str | None = None  # the slave whose work is on the branch
    attempts: int = 0  # work attempts started, ever
    attempt_base: int = 0  # attempts at the last `task retry` (max_attempts counts from here)
    judge_rounds: int = 0
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

    @property
    def usage(self) -> Usage:
        return self.work + self.judge

    @property
    def attempts_since_retry(self) -> int:
        return self.attempts - self.attempt_base


@dataclass(frozen=True)
class SlaveInfo:
    id: str
    pid: int = 0
    pane: str = ""
    started: float = 0.0
    stopped: bool = False


@dataclass(frozen=True)
class Preflight:
    """The last gate preflight: whether the gate may be trusted, and for which settings (`key`)."""

    key: str
    sha: str
    passed: bool
    trusted: bool  # passed, or failed on a main that moved since a trusted run (a regression)
    kind: str  # ok | setup | gate | trap | regression
    ts: float
    detail: dict[str, Any] = field(default_factory=dict)  # the event's data, for the one-screen report


@dataclass(frozen=True)
class SetupFailure:
    """A slave's worktree setup failed on main's inputs: it waits until they (or the commands) change."""

    slave: str
    fingerprint: str
    commands: str  # hash of the setup commands that failed
    command: str
    main_sha: str  # main's head when it failed
    log: str
    ts: float


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
    preflight: Preflight | None = None
    preflight_slave: str | None = None  # who runs the preflight now
    preflight_started: float | None = None
    preflight_wanted: bool = False  # asked for since the last result (a new run, a retry)
    setup_failed: dict[str, SetupFailure] = field(default_factory=dict)  # slave → its failure

    def task(self, task_id: str) -> Task | None:
        return self.tasks.get(task_id)
