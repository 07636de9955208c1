"""`clanker run --dry-run`: what the fleet would start now, and what it holds back and why —
the real scheduler and placement on the state as it is, each claim folded in before the next
slave looks, nothing written and nothing started."""

from __future__ import annotations

import msgspec

from ..config import Config
from ..jobs.kinds import KINDS
from ..project import preflight
from ..state import budget
from ..state.fold import fold
from ..state.legal import check
from ..state.model import State, TaskState
from ..state.paths import Paths
from . import placement, scheduler


class Dispatch(msgspec.Struct, frozen=True):
    slave: str
    executor: str
    job: str  # work | judge | mainline | health | plan | preflight
    task: str | None
    branch: str = ""
    worktree: str = ""
    keys: tuple[str, ...] = ()


class Held(msgspec.Struct, frozen=True):
    task: str
    why: str


def plan(cfg: Config, state: State, now: float) -> tuple[list[Dispatch], list[Held], scheduler.Targets]:
    paths = Paths(cfg.repo, cfg.worktrees)
    sids = [f"c{n}" for n in range(1, cfg.slaves + 1)]
    busy = {t.slave for t in state.tasks.values() if t.slave}
    alive = frozenset(sids)
    key = preflight.key(cfg)
    gate = scheduler.gate_status(state, key, preflight.needed(cfg))
    out: list[Dispatch] = []
    st = state
    n = st.offset
    for sid in sids:
        if sid in busy:
            continue  # holds a job already
        where = placement.place(cfg, st, sid, alive, now)
        inp, tg = scheduler.fleet_targets(st, cfg.slaves, cfg.judges, cfg.budget, now)
        job = scheduler.choose_job(
            st, sid, slaves=cfg.slaves, alive=alive, owner_files=cfg.owner_files, judge_cap=cfg.judges,
            now=now, batch_max=cfg.batch_max, batch_wait_secs=cfg.batch_wait_secs,
            health_every_secs=cfg.health_every_minutes * 60, can_plan=cfg.planner_agent is not None, gate=gate,
            held=inp.held is not None, judge_agent=cfg.judge_agent is not None, tg=tg, can_work=where is not None,
        )  # fmt: skip
        if job is None:
            continue
        task = st.tasks.get(job.task) if job.task else None
        keys = tuple(sorted(scheduler.task_keys(task, cfg.owner_files))) if task else ()
        out.append(Dispatch(sid, where or "-", job.kind, job.task or None, task.branch if task else "",
                            str(paths.worktree(sid)), keys))  # fmt: skip
        for e in [*placement.placed_events(st, sid, where), *KINDS[job.kind].claim(job, sid, key)]:
            check(st, e)
            n += 1
            st = fold(st, [(e, n)])
    _, tg = scheduler.fleet_targets(st, cfg.slaves, cfg.judges, cfg.budget, now)
    held = [
        Held(t.id, scheduler.held_back(st, t, tg, cfg.owner_files))
        for t in sorted(st.tasks.values(), key=lambda t: (-t.priority, t.created))
        if t.state == TaskState.READY
    ]
    return out, held, tg


def render(cfg: Config, state: State, now: float) -> str:
    """The dry run as a person reads it."""
    out, held, tg = plan(cfg, state, now)
    lines = ["clanker run --dry-run: nothing was started"]
    spend = budget.standing(state, cfg.budget, now).held if cfg.budget.any else None
    if spend:
        lines.append(f"  {spend}")
    lines += ["", f"WOULD START ({len(out)})" if out else "WOULD START nothing"]
    rel = cfg.repo.resolve()
    for d in out:
        wt = d.worktree.removeprefix(str(rel) + "/")
        what = f"{d.job:<9} {d.task or '-':<8} {d.branch or '-':<28} {wt}"
        lines.append(f"  {d.slave:<4} on {d.executor:<10} {what}" + (f"  keys: {', '.join(d.keys)}" if d.keys else ""))
    lines += ["", f"HELD BACK ({len(held)})" if held else "HELD BACK nothing"]
    lines += [f"  {h.task:<8} {h.why}" for h in held]
    lines += [
        "",
        f"then: {tg.phase} phase, work ≤{tg.work} judge ≤{tg.judge} of {tg.cap}" + (f" ({tg.why})" if tg.why else ""),
    ]
    return "\n".join(lines)
