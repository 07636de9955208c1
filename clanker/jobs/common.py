"""What several jobs do alike: get the worktree ready, give things back, send a task back with a
conflict, tell main's own failure from the task's, and ask the planner to re-scope."""

from __future__ import annotations

import time

from ..agents.runner import RunResult
from ..project.gate import GateResult
from ..state import events as ev
from ..state.events import Event
from ..state.model import State, Task
from ..state.reconcile import release_events
from ..system import git
from . import history, regressions
from .context import JobContext


def prepare_worktree(ctx: JobContext) -> None:
    """The slave's worktree exists and holds no stray changes (leftovers are committed or stashed)."""
    git.ensure_worktree(ctx.repo, ctx.worktree, ctx.main)
    save_leftovers(ctx, "checkpoint: leftovers found when the slave started a job")


def save_leftovers(ctx: JobContext, why: str) -> None:
    if not git.porcelain(ctx.worktree):
        return
    branch = git.current_branch(ctx.worktree)
    if branch and is_task_branch(ctx.store.state(), branch):
        git.commit_all(ctx.worktree, f"wip: {why}")
        ctx.say(f"saved uncommitted work on {branch}")
    else:
        # Never lose work: changes outside a task branch are stashed, not discarded.
        git.stash(ctx.worktree, f"clanker {ctx.sid}: {why}")
        ctx.say("stashed stray changes (see `git stash list`)")


def is_task_branch(state: State, branch: str) -> bool:
    """A branch some task works on (work left on it is that task's, and is committed there)."""
    return any(t.branch == branch for t in state.tasks.values())


def idle(ctx: JobContext) -> None:
    ctx.heart.update(job=None, task=None, phase="idle")


def let_go(ctx: JobContext, reason: str, refund: bool = False) -> list[Event]:
    """Give back whatever this slave holds now (a judgement, a landing batch, a job), unless that
    already happened (a budget pause gives back too)."""
    return ctx.store.transact(lambda st: release_events(st, frozenset({ctx.sid}), ctx.sid, reason, refund))


def replan(ctx: JobContext, task_id: str) -> list[Event]:
    """Ask the planner to split or re-scope a task that can't go on as it is (if there is one)."""
    if ctx.cfg.planner_agent is None:
        return []
    return [ev.PlanRequested(actor=ctx.sid, request=task_id, reason="blocked")]


def verdict(ctx: JobContext, task: Task, says: str, reasons: str, conflict: bool = False) -> None:
    """The judge's verdict. Its block goes to the planner, and so does a task the judge sent back
    `judge.max_reworks` times: one more round of the same would likely spend as much for as little."""
    said = ev.Verdict(actor=ctx.sid, task=task.id, slave=ctx.sid, verdict=says, reasons=reasons, conflict=conflict)
    worn = says == "rework" and not conflict and task.reworks + 1 >= ctx.cfg.judge_max_reworks
    if worn:
        why = f"{task.reworks + 1} rework verdicts from the judge; last: {reasons}"
        ctx.store.append(said, ev.TaskBlocked(actor=ctx.sid, task=task.id, reason=why[:500]), *replan(ctx, task.id))
        ctx.say(f"  {task.id}: blocked — {why[:160]}")
        return idle(ctx)
    ctx.store.append(said, *(replan(ctx, task.id) if says == "blocked" else ()))
    ctx.say(f"  {task.id}: {says} — {reasons[:160]}")
    idle(ctx)


def conflict(ctx: JobContext, task: Task, files: tuple[str, ...]) -> None:
    """The task no longer merges into main: back to its author, or blocked past its conflict budget."""
    reasons = f"conflicts with {ctx.main} in: {', '.join(files)}"
    ctx.store.append(ev.Risk(actor=ctx.sid, task=task.id, slave=ctx.sid, kind="conflict", message=reasons, files=files))
    if task.conflicts >= ctx.cfg.conflict_budget:
        budget = f"conflict budget ({ctx.cfg.conflict_budget}) spent: {reasons}; re-scope or split it"
        ctx.store.append(
            ev.Verdict(actor=ctx.sid, task=task.id, slave=ctx.sid, verdict="rework", reasons=reasons, conflict=True),
            ev.TaskBlocked(actor=ctx.sid, task=task.id, reason=budget),
            *replan(ctx, task.id),
        )
        return idle(ctx)
    verdict(ctx, task, "rework", reasons, conflict=True)


def main_is_red(ctx: JobContext, base: str, task: Task, failure: GateResult, where: str, when_unnamed: bool) -> bool:
    """The gate fails in files this task didn't touch: is main itself broken? Then it is a
    regression (filed once), not the task's fault. With `when_unnamed`, main is checked even when
    the failure names no file of the repository at all."""
    touched = set(git.changed_files(ctx.repo, base, task.branch))
    named = regressions.mentioned_files(failure.output, set(git.tracked_files(ctx.repo)))
    if named & touched or (not named and not when_unnamed):
        return False
    on_main = ctx.gate(sha=base)
    if on_main.passed:
        return False

    def decide(st: State) -> list[Event]:
        if regressions.moved_on(st, ctx.repo, ctx.main, base):
            return []  # not the task's fault, and not main's any more: the caller lets go, to redo it
        return regressions.events(st, ctx.sid, on_main, base, where, ctx.cfg.health_fix_prompt)

    if not ctx.store.transact(decide):
        ctx.say(f"  {base[:10]} fails the gate, but {ctx.main} moved on green: {task.id} is tried on it again")
    else:
        ctx.say(f"  ✗ {ctx.main} itself fails the gate: regression filed; {task.id} waits")
    return True


def out_of_budget(ctx: JobContext, task: Task, res: RunResult, judging: bool = False) -> None:
    """Spent with a reset time: mark the credential spent until then (every slave avoids it) and
    give the task back without counting the attempt. Spent for good: block the task."""
    reset = res.result.reset_at
    why = res.result.error[:300] or "out of budget"
    if reset is not None and reset > ctx.clock.time():
        until = time.strftime("%H:%M", time.localtime(reset))
        reason = f"out of budget until {until}"
        back: Event = (
            ev.JudgeReleased(actor=ctx.sid, task=task.id, slave=ctx.sid, reason=reason)
            if judging
            else ev.TaskReleased(actor=ctx.sid, task=task.id, slave=ctx.sid, reason=reason, refund=True)
        )
        ctx.store.append(
            ev.CredentialExhausted(actor=ctx.sid, credential=res.credential, until=reset, reason=why), back
        )
        ctx.say(f"  ⏸ credential {res.credential} is out of budget until {until}: pausing it")
        return
    # What ran out is what the planner splitting the task most needs to know.
    history.write(ctx.paths, task.id, f"{'judge' if judging else 'work'}-{task.attempts}", {
        "Outcome": f"blocked: the agent ran out of budget with no reset in sight ({why})",
        "Errors": why,
        "Agent summary": res.result.text[-2000:],
    })  # fmt: skip
    ctx.store.append(
        ev.TaskBlocked(actor=ctx.sid, task=task.id, slave=ctx.sid, reason=f"out_of_budget: {why}"),
        *replan(ctx, task.id),
    )
