"""The judge job: verify a task another slave built, and mainline it on a `done` verdict."""

from __future__ import annotations

from ..agents import adapter_for
from ..agents.base import Outcome, parse_verdict
from ..project.gate import GateResult
from ..state import events as ev
from ..state.model import Task, TaskState
from ..system import git
from . import history, mainline, regressions
from .context import JobContext
from .prompts import judge_prompt
from .work import out_of_budget, prepare_worktree, replan


def run_judge(ctx: JobContext, task: Task) -> None:
    prepare_worktree(ctx)
    rnd = task.judge_rounds
    ctx.say(f"▶ {task.id} judge: {task.title} (round {rnd}, by {task.author})")
    ctx.heart.update(job="judge", task=task.id, phase="rebase")
    already = git.landed_sha(ctx.repo, ctx.main, task.id)
    if already:
        # A judge died between moving main and recording it: record it now, land nothing twice.
        ctx.store.append(ev.Mainlined(actor=ctx.sid, task=task.id, slave=ctx.sid, sha=already, recovered=True))
        ctx.say(f"  {task.id} was already on {ctx.main} as {already[:10]}")
        return _idle(ctx)
    cand = mainline.build(ctx.repo, ctx.main, task)
    if cand.conflicts:
        return _conflict(ctx, task, cand.conflicts)
    gate_output = ""
    if cand.sha:
        result = ctx.gate(sha=cand.sha)
        gate_output = result.output
        ctx.record_gate(task.id, "judge", result)
        if not result.passed:
            if _main_is_red(ctx, task, cand.base, result):
                _release(ctx, task, "main is red: waiting for the regression fix")
                return _idle(ctx)
            reasons = f"the gate fails on the change rebased onto {ctx.main}: `{result.failed}`: {result.last_line()}"
            return _verdict(ctx, task, "rework", reasons)
    verdict, reasons = _ask_judge(ctx, task, cand, gate_output)
    if verdict is None:
        _release(ctx, task, reasons)
        ctx.stopping.wait(ctx.cfg.heartbeat_secs * 2)  # don't re-claim a failing judgement at once
        return _idle(ctx)
    if verdict != "done":
        return _verdict(ctx, task, verdict, reasons)
    # Accepted: the mainline queue lands it, alone or in a batch with others.
    git.detach(ctx.worktree, ctx.main)
    ctx.store.append(ev.Verdict(actor=ctx.sid, task=task.id, slave=ctx.sid, verdict="done", reasons=reasons))
    ctx.say(f"  ✓ {task.id} accepted: queued for {ctx.main}")
    _idle(ctx)


def _main_is_red(ctx: JobContext, task: Task, base: str, failure: GateResult) -> bool:
    """The gate fails in files this task didn't touch: is main itself broken? Then it's a
    regression (filed once), not this task's fault."""
    touched = set(git.changed_files(ctx.repo, base, task.branch))
    named = regressions.mentioned_files(failure.output, set(git.out(["ls-files"], ctx.repo).splitlines()))
    if named and named & touched:
        return False
    on_main = ctx.gate(sha=base)
    if on_main.passed:
        return False
    ctx.store.transact(
        lambda st: regressions.events(st, ctx.sid, on_main, base, f"judging {task.id}", ctx.cfg.health_fix_prompt)
    )
    ctx.say(f"  ✗ {ctx.main} itself fails the gate: regression filed; {task.id} waits")
    return True


def _ask_judge(ctx: JobContext, task: Task, cand: mainline.Candidate, gate_output: str) -> tuple[str | None, str]:
    agent = ctx.cfg.judge_agent
    if agent is None:
        return "done", "gate passed (judge.agent: none)"
    ctx.heart.update(phase="judge agent")
    diff = git.diff(ctx.repo, cand.base, cand.sha) if cand.sha else ""
    prompt = judge_prompt(task, diff, gate_output, ctx.cfg.prompt_templates.get("judge"))
    res = ctx.run_agent_settled(agent, "judge", task.id, task.judge_rounds, prompt)
    if res is None:
        return None, "the judge was asked to stop"
    if res.outcome == Outcome.OUT_OF_BUDGET:
        out_of_budget(ctx, task, res, judging=True)
        return None, "judge agent out of budget"
    if res.outcome == Outcome.AUTH:
        fix = adapter_for(agent).auth_fix()
        ctx.store.append(
            ev.Risk(actor=ctx.sid, task=task.id, slave=ctx.sid, kind="auth", message=f"judge agent: {fix}")
        )
        return None, f"judge agent could not authenticate: {fix}"
    if res.outcome != Outcome.OK:
        return None, f"judge agent failed ({res.outcome}): {res.result.error[:200]}"
    parsed = parse_verdict(res.result.text)
    history.write(
        ctx.paths,
        task.id,
        f"judge-{task.judge_rounds}",
        {
            "Verdict": f"{parsed[0]}: {parsed[1]}" if parsed else "none given",
            "Judge summary": res.result.text[-2000:],
            "Gate output": gate_output[-1500:],
        },
    )
    if parsed is None:
        return None, "the judge gave no VERDICT line"
    return parsed


def _release(ctx: JobContext, task: Task, reason: str) -> None:
    """Give the task back to the judging queue, unless that already happened (budget pause)."""
    now = ctx.store.state().tasks.get(task.id)
    if now is not None and now.state == TaskState.JUDGING and now.slave == ctx.sid:
        ctx.store.append(ev.JudgeReleased(actor=ctx.sid, task=task.id, slave=ctx.sid, reason=reason))


def _verdict(ctx: JobContext, task: Task, verdict: str, reasons: str, conflict: bool = False) -> None:
    git.detach(ctx.worktree, ctx.main)
    ctx.store.append(
        ev.Verdict(actor=ctx.sid, task=task.id, slave=ctx.sid, verdict=verdict, reasons=reasons, conflict=conflict)
    )
    ctx.say(f"  {task.id}: {verdict} — {reasons[:160]}")
    _idle(ctx)


def _conflict(ctx: JobContext, task: Task, files: tuple[str, ...]) -> None:
    reasons = f"conflicts with {ctx.main} in: {', '.join(files)}"
    ctx.store.append(ev.Risk(actor=ctx.sid, task=task.id, slave=ctx.sid, kind="conflict", message=reasons, files=files))
    if task.conflicts >= ctx.cfg.conflict_budget:
        budget = f"conflict budget ({ctx.cfg.conflict_budget}) spent: {reasons}; re-scope or split it"
        ctx.store.append(
            ev.Verdict(actor=ctx.sid, task=task.id, slave=ctx.sid, verdict="rework", reasons=reasons, conflict=True),
            ev.TaskBlocked(actor=ctx.sid, task=task.id, reason=budget),
            *replan(ctx, task.id),
        )
        return _idle(ctx)
    _verdict(ctx, task, "rework", reasons, conflict=True)


def _idle(ctx: JobContext) -> None:
    ctx.heart.update(job=None, task=None, phase="idle")
