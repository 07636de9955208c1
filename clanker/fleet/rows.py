"""What each slave and each running task is doing: rows built from heartbeats, panes and the
state, shared by `clanker status` and the controller's screen."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

from ..config import Config
from ..state import heartbeat, logs
from ..state.model import State, Task, TaskState
from ..state.paths import Paths
from ..state.usage import Usage
from ..system.tmux import Pane
from ..units import elapsed

ORDER = [
    TaskState.CLAIMED,
    TaskState.JUDGING,
    TaskState.LANDING,
    TaskState.ACCEPTED,
    TaskState.NEEDS_JUDGE,
    TaskState.REWORK,
    TaskState.READY,
    TaskState.BLOCKED,
    TaskState.DONE,
    TaskState.CANCELLED,
    TaskState.SPLIT,
]
# States in which a slave holds a task, as strings so new states need no change here.
HELD_AS = {"claimed": "working", "judging": "judging", "landing": "landing"}
LOG_LINES = 5  # lines of a failed task's log the dashboard shows
STALE_BEATS = 3  # a heartbeat older than this many intervals is stale


@dataclass(frozen=True)
class SlaveRow:
    id: str
    state: str  # working | judging | landing | idle | dead | stopped | paused | absent (or the heartbeat's job)
    task: str | None
    heartbeat_age_s: float | None
    pane: str
    phase: str
    job: str = ""  # the heartbeat's job: work | judge | health | …


def slave_rows(cfg: Config, paths: Paths, state: State, panes: dict[str, Pane] | None = None) -> list[SlaveRow]:
    beats = heartbeat.read_all(paths)
    panes = panes or {}
    ids = (
        {f"c{n}" for n in range(1, cfg.slaves + 1)}
        | {b for b in beats if b != "ctl"}
        | {p for p in panes if p != "ctl"}
    )
    rows = []
    now = time.time()
    for sid in sorted(ids, key=lambda s: (len(s), s)):
        beat = beats.get(sid)
        pane = panes.get(sid)
        holding = next((t for t in state.tasks.values() if t.slave == sid and t.state in HELD_AS), None)
        if beat is None:
            st = "absent"
        elif beat.stopped:
            st = "stopped"
        elif heartbeat.is_dead(beat, cfg.heartbeat_secs, now, pane_dead=bool(pane and pane.dead)):
            st = "dead"
        elif sid in state.paused or "*" in state.paused:
            st = "paused"
        elif holding is not None:
            st = HELD_AS[holding.state]
        else:
            st = beat.job or "idle"
        rows.append(
            SlaveRow(
                id=sid,
                state=st,
                task=holding.id if holding else None,
                heartbeat_age_s=round(beat.age(now), 1) if beat else None,
                pane=pane.id if pane else (beat.pane if beat else ""),
                phase=beat.phase if beat else "",
                job=(beat.job or "") if beat and not beat.stopped else "",
            )
        )
    return rows


def state_order(state: str) -> int:
    try:
        return ORDER.index(TaskState(state))
    except ValueError:  # a state this list does not know yet sorts last
        return len(ORDER)


def counts_line(state: State) -> str:
    counts = state.counts()
    return "  ".join(f"{s}:{n}" for s, n in sorted(counts.items(), key=lambda kv: state_order(kv[0])))


def totals(state: State) -> tuple[Usage, Usage]:
    """Work and judge usage over every task, archived ones too."""
    return state.work_usage, state.judge_usage


@dataclass(frozen=True)
class Running:
    task: Task
    elapsed: float
    warning: str  # why it may be stalled, or ""


@dataclass(frozen=True)
class Flow:
    """The merge queue's figures over the recently landed tasks (the live ones: the newest 200)."""

    landed: int  # tasks
    landings: int  # commits main moved by (a batch is one)
    queue_secs: float | None  # median time from accepted to landed
    batch_fill: float | None  # tasks per landing
    gate_secs: float | None  # mainline gate seconds per landing
    last_hour: int  # landings in the last hour

    def line(self) -> str:
        if not self.landed:
            return "nothing landed yet"
        parts = [f"{self.last_hour} landing{'s' if self.last_hour != 1 else ''} in the last hour"]
        if self.queue_secs is not None:
            parts.append(f"{elapsed(self.queue_secs)} in queue (median, accepted → landed)")
        if self.batch_fill is not None:
            parts.append(f"{self.batch_fill:.1f} tasks per landing")
        if self.gate_secs is not None:
            parts.append(f"gate {self.gate_secs:.1f}s per landing")
        return " · ".join(parts)


def flow(state: State, now: float) -> Flow:
    done = [t for t in state.tasks.values() if t.state == TaskState.DONE and t.sha]
    by_sha: dict[str, list[Task]] = {}
    for t in done:
        by_sha.setdefault(str(t.sha), []).append(t)
    waits = sorted(t.updated - t.accepted for t in done if t.accepted is not None)
    landings = len(by_sha)
    gate = sum(t.landing_gate_secs for t in done)
    recent = sum(1 for batch in by_sha.values() if now - max(t.updated for t in batch) <= 3600)
    return Flow(
        landed=len(done),
        landings=landings,
        queue_secs=statistics.median(waits) if waits else None,
        batch_fill=len(done) / landings if landings else None,
        gate_secs=gate / landings if landings else None,
        last_hour=recent,
    )


def average_done(state: State) -> float | None:
    """Average time from a slave's first claim to landing, over the done tasks."""
    spans = [
        t.updated - (t.first_started or t.created)
        for t in state.tasks.values()
        if t.state == TaskState.DONE and t.updated >= (t.first_started or t.created)
    ]
    return sum(spans) / len(spans) if spans else None


def log_age(paths: Paths, task: str, now: float) -> float | None:
    """Seconds since the task's agent last wrote to its log (None: no log yet)."""
    newest = logs.newest_write(paths, task)
    return None if newest is None else max(0.0, now - newest)


def running(state: State, rows: list[SlaveRow], now: float, paths: Paths | None, cfg: Config | None) -> list[Running]:
    """Tasks a slave holds now, longest first, each with a stall warning when one applies: the
    holder's heartbeat is stale or gone, the agent printed nothing for `agent.stall_secs`, or it
    has run three times longer than done tasks take on average."""
    by_id = {r.id: r for r in rows}
    beat_secs = cfg.heartbeat_secs if cfg else 5.0
    avg = average_done(state)
    out = []
    for t in state.tasks.values():
        if t.state not in HELD_AS or not t.slave:
            continue
        took = max(0.0, now - (t.started or t.updated or now))
        row = by_id.get(t.slave)
        warning = ""
        if row is None or row.heartbeat_age_s is None or row.state in ("dead", "stopped"):
            warning = f"{t.slave} is gone"
        elif row.heartbeat_age_s > STALE_BEATS * beat_secs:
            warning = f"no heartbeat from {t.slave} for {elapsed(row.heartbeat_age_s)}"
        elif paths is not None and cfg is not None and t.state == TaskState.CLAIMED:
            quiet = log_age(paths, t.id, now)
            if quiet is not None and cfg.agent.stall_secs and quiet > cfg.agent.stall_secs:
                warning = f"no agent output for {elapsed(quiet)}"
        if not warning and avg and took > 3 * avg and took > 60:
            warning = f"running {took / avg:.0f}× longer than the average task"
        out.append(Running(t, took, warning))
    return sorted(out, key=lambda r: -r.elapsed)
