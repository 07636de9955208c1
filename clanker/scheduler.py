"""The scheduler: pure functions from state to decisions (DESIGN §1, seed plan "Scheduler").

`targets` turns the fleet's situation into concurrency caps; `choose_job` picks the one job a
given slave should claim now, or None. No I/O here, so both are tested with plain case tables.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .locks import keys_for, overlaps
from .model import HOLDS_KEYS, S, State, Task


@dataclass(frozen=True)
class Targets:
    phase: str  # explore | execute | integrate
    work: int  # how many work jobs may run at once
    judge: int  # how many judge jobs may run at once


def targets(slaves: int, ready: int, backlog: int, conflict_rate: float, judge_cap: int) -> Targets:
    """Adaptive concurrency under the hard cap of `slaves` (seed: explore/execute/integrate)."""
    if backlog >= max(2, slaves):
        phase, work = "integrate", max(1, slaves // 2)
    elif ready >= 2 * slaves:
        phase, work = "explore", slaves
    else:
        phase, work = "execute", max(1, math.ceil(slaves * 0.75))
    if conflict_rate > 0.3:  # agents are stepping on each other: fewer at once
        work = max(1, work // 2)
    return Targets(phase, min(work, slaves), max(1, min(judge_cap, slaves)))


def conflict_rate(state: State) -> float:
    return state.conflicts / max(1, state.conflicts + state.mainlined)


@dataclass(frozen=True)
class Job:
    kind: str  # work | judge
    task: str


def task_keys(task: Task, owner_files: tuple[str, ...]) -> frozenset[str]:
    return keys_for((*task.paths, *task.touched), owner_files)


def _order(t: Task) -> tuple[int, int, float]:
    return (0 if "regression" in t.tags else 1, -t.priority, t.created)


def choose_job(
    state: State,
    me: str,
    *,
    slaves: int,
    alive: frozenset[str],
    owner_files: tuple[str, ...] = (),
    judge_cap: int = 1,
    can_judge: bool = True,
) -> Job | None:
    """The job slave `me` should claim now, or None.

    Order: its own rework first (same branch, same session); then judging another slave's work;
    then new work by regression tag, priority and age, if its ownership keys are free; then rework
    whose author is gone.
    """
    if me in state.paused or "*" in state.paused:
        return None
    tasks = list(state.tasks.values())
    mine = sorted((t for t in tasks if t.state == S.REWORK and t.author == me), key=_order)
    if mine:
        return Job("work", mine[0].id)
    backlog = [t for t in tasks if t.state == S.NEEDS_JUDGE]
    ready = [t for t in tasks if t.state == S.READY]
    tg = targets(slaves, len(ready), len(backlog), conflict_rate(state), judge_cap)
    judging = sum(1 for t in tasks if t.state == S.JUDGING)
    if can_judge and judging < tg.judge:
        for t in sorted(backlog, key=_order):
            if t.author != me:
                return Job("judge", t.id)
    working = sum(1 for t in tasks if t.state == S.CLAIMED)
    if working >= tg.work:
        return None
    done = {t.id for t in tasks if t.state == S.DONE}
    held = [task_keys(t, owner_files) for t in tasks if t.state in HOLDS_KEYS]
    for t in sorted(ready, key=_order):
        if any(dep not in done for dep in t.depends_on):
            continue
        keys = task_keys(t, owner_files)
        if keys and any(overlaps(keys, h) for h in held):
            continue
        return Job("work", t.id)
    orphans = sorted((t for t in tasks if t.state == S.REWORK and t.author not in alive), key=_order)
    if orphans:
        return Job("work", orphans[0].id)
    return None
