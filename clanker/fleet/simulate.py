"""A simulated fleet for the scheduler's benchmark (`scripts/bench scheduler`): the real
`choose_job` on states folded from real, checked events, with simulated time — so adaptive and
fixed concurrency can be compared on one workload in milliseconds, without agents, git or tmux.

The model, kept small on purpose:
- a task's agent works for a drawn time and touches files the task did not declare (what
  ownership locks cannot foresee); a rework after a conflict takes half as long again;
- its judgement conflicts when a file it touched was landed, or is accepted to land, since its
  work began (the judge replays the branch onto main): a `risk` conflict and a rework;
- a landing takes a fixed time per batch and per task.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field

from ..jobs.base import Job
from ..jobs.kinds import KINDS
from ..state import events as ev
from ..state.events import Event
from ..state.fold import fold
from ..state.legal import check
from ..state.model import State, TaskState
from . import scheduler


@dataclass(frozen=True)
class Workload:
    tasks: int = 40
    files: int = 200  # the pool the tasks' files are drawn from: a small one makes them conflict
    touch: int = 2  # files each task touches
    work_secs: tuple[float, float] = (2.0, 6.0)
    judge_secs: float = 1.0
    land_secs: float = 0.3  # per batch, and again per task in it
    seed: int = 0


@dataclass(frozen=True)
class Result:
    makespan: float  # simulated seconds until every task landed
    conflicts: int
    agent_secs: float  # what the agents ran for, work and judging: what they cost
    most_at_work: int  # the most work jobs at once


@dataclass
class _Run:
    state: State = field(default_factory=State)
    n: int = 0

    def apply(self, *evs: Event) -> None:
        for e in evs:
            check(self.state, e)  # the simulation only does what clanker could
            self.n += 1
            self.state = fold(self.state, [(e, self.n)])


def simulate(w: Workload, slaves: int, adaptive: bool = True, judge_cap: int | None = None) -> Result:
    """Run the workload to the end with `slaves` slaves; `adaptive` False holds the targets at
    the hard cap (every slave may work), the fixed concurrency to compare with."""
    rng = random.Random(w.seed)
    jc = judge_cap if judge_cap is not None else max(1, slaves // 4)
    ids = [f"T{k}" for k in range(1, w.tasks + 1)]
    files = {t: tuple(sorted(rng.sample(range(w.files), w.touch))) for t in ids}
    secs = {t: rng.uniform(*w.work_secs) for t in ids}
    run = _Run()
    run.apply(*(ev.TaskAdded(actor="cli", task=t, title=t, ts=0.0) for t in ids))
    sids = [f"c{k}" for k in range(1, slaves + 1)]
    alive = frozenset(sids)
    landed: list[tuple[int, ...]] = []  # each landing's files, in order
    base: dict[str, int] = {}  # task → how many landings its work had seen
    heap: list[tuple[float, int, str, Job]] = []
    idle, now, seq = set(sids), 0.0, 0
    conflicts, agent_secs, most = 0, 0.0, 0
    while True:
        chosen = True
        while chosen:  # hand out jobs until nobody takes one: each claim changes the state
            chosen = False
            for sid in sorted(idle):
                inp = scheduler.inputs_of(run.state, slaves, jc)
                tg = scheduler.targets(inp)
                if not adaptive:
                    tg = scheduler.Targets(tg.phase, slaves, max(1, min(jc, slaves)), slaves)
                job = scheduler.choose_job(
                    run.state, sid, slaves=slaves, alive=alive, judge_cap=jc, now=now, tg=tg
                )  # fmt: skip
                if job is None:
                    continue
                run.apply(*scheduler.targets_event(run.state, inp, tg, sid), *KINDS[job.kind].claim(job, sid, ""))
                took = _duration(w, job, secs, run.state)
                if job.kind in ("work", "judge"):
                    agent_secs += took
                if job.kind == "work":
                    base[job.task] = len(landed)
                seq += 1
                heapq.heappush(heap, (now + took, seq, sid, job))
                idle.discard(sid)
                chosen = True
                break
        most = max(most, sum(1 for t in run.state.tasks.values() if t.state == TaskState.CLAIMED))
        if not heap:
            break
        now, _, sid, job = heapq.heappop(heap)
        idle.add(sid)
        conflicts += _finish(run, job, sid, now, files, base, landed)
    stuck = [t for t in ids if run.state.state_of(t) != TaskState.DONE]
    if stuck:
        raise RuntimeError(f"the simulation stopped with {len(stuck)} task(s) not landed: {stuck[:3]}")
    return Result(round(now, 3), conflicts, round(agent_secs, 3), most)


def _duration(w: Workload, job: Job, secs: dict[str, float], state: State) -> float:
    if job.kind == "work":
        task = state.tasks[job.task]
        return secs[job.task] * (0.5 if task.attempts > 1 else 1.0)
    if job.kind == "judge":
        return w.judge_secs
    return w.land_secs * (1 + len(job.batch))


def _finish(
    run: _Run,
    job: Job,
    sid: str,
    now: float,
    files: dict[str, tuple[int, ...]],
    base: dict[str, int],
    landed: list[tuple[int, ...]],
) -> int:
    """Record the end of `job`; 1 when it was a judgement that found a conflict."""
    tid = job.task
    if job.kind == "work":
        mine = tuple(f"f{n}.py" for n in files[tid])
        run.apply(ev.TaskSubmitted(actor=sid, task=tid, slave=sid, summary="s", files=mine, ts=now))
        return 0
    if job.kind == "judge":
        ahead = [t for t in run.state.tasks.values() if t.state in (TaskState.ACCEPTED, TaskState.LANDING)]
        moved = {f for got in landed[base[tid] :] for f in got} | {f for t in ahead for f in files[t.id]}
        if moved & set(files[tid]):
            run.apply(
                ev.Risk(actor=sid, task=tid, slave=sid, kind="conflict", message="main moved under it", ts=now),
                ev.Verdict(actor=sid, task=tid, slave=sid, verdict="rework", reasons="conflict", conflict=True, ts=now),
            )
            return 1
        run.apply(ev.Verdict(actor=sid, task=tid, slave=sid, verdict="done", reasons="ok", ts=now))
        return 0
    for t in job.batch:
        landed.append(files[t])
        run.apply(ev.Mainlined(actor=sid, task=t, slave=sid, sha=f"{len(landed):040x}", ts=now))
    return 0
