"""The judge job: verify a task another slave built, and mainline it on a `done` verdict."""

from __future__ import annotations

from .. import executors
from ..agents import adapter_for
from ..agents.base import Outcome, parse_verdict
from ..executors.ssh import SshHost
from ..state import events as ev
from ..state.events import Event
from ..state.model import State, Task, TaskState
from ..system import git
from ..system.remote import RemoteError
from . import history, mainline
from .base import Job, JobKind
from .common import conflict, idle, let_go, main_is_red, out_of_budget, prepare_worktree, verdict
from .context import JobContext
from .prompts import judge_prompt

JUDGING_BRANCH = "clanker-judging"  # where a judge agent on an ssh host finds the candidate


def run_judge(ctx: JobContext, task: Task) -> None:
    prepare_worktree(ctx)
    rnd = task.judge_rounds
    ctx.say(f"▶ {task.id} judge: {task.title} (round {rnd}, by {task.author})")
    ctx.heart.update(job="judge", task=task.id, phase="rebase")
    # Only a task accepted before can be on main already (a lander died between moving main and
    # recording it); a first judgement needn't search main's history.
    already = git.landed_sha(ctx.repo, ctx.main, task.id) if task.accepted is not None else None
    if already:
        # A judge died between moving main and recording it: record it now, land nothing twice.
        ctx.store.append(ev.Mainlined(actor=ctx.sid, task=task.id, slave=ctx.sid, sha=already, recovered=True))
        ctx.say(f"  {task.id} was already on {ctx.main} as {already[:10]}")
        return idle(ctx)
    cand = mainline.build(ctx.repo, ctx.main, task)
    if cand.conflicts:
        return conflict(ctx, task, cand.conflicts)
    gate_output = ""
    if cand.sha:
        result = ctx.gate_tree(task.id, "judge", cand.sha, cand.tree)
        gate_output = result.output
        if not result.passed:
            if main_is_red(ctx, cand.base, task, result, f"judging {task.id}", when_unnamed=True):
                let_go(ctx, "main is red: waiting for the regression fix")
                return idle(ctx)
            reasons = f"the gate fails on the change rebased onto {ctx.main}: `{result.failed}`: {result.last_line()}"
            return verdict(ctx, task, "rework", reasons)
    says, reasons = _ask_judge(ctx, task, cand, gate_output)
    if says is None:
        let_go(ctx, reasons)
        ctx.stopping.wait(ctx.cfg.heartbeat_secs * 2)  # don't re-claim a failing judgement at once
        return idle(ctx)
    if says != "done":
        return verdict(ctx, task, says, reasons)
    # Accepted: the mainline queue lands it, alone or in a batch with others. The worktree stays
    # where it is (detached): the next job checks out what it needs.
    built = (cand.sha, cand.base, cand.tree) if cand.sha and cand.tree else ()
    ctx.store.append(
        ev.Verdict(actor=ctx.sid, task=task.id, slave=ctx.sid, verdict="done", reasons=reasons, candidate=built)
    )
    ctx.say(f"  ✓ {task.id} accepted: queued for {ctx.main}")
    idle(ctx)


def _ask_judge(ctx: JobContext, task: Task, cand: mainline.Candidate, gate_output: str) -> tuple[str | None, str]:
    agent = ctx.cfg.judge_agent
    if agent is None:
        return "done", "gate passed (judge.agent: none)"
    ctx.heart.update(phase="judge agent")
    diff = git.diff(ctx.repo, cand.base, cand.sha) if cand.sha else ""
    prompt = judge_prompt(task, diff, gate_output, ctx.cfg.prompt_templates.get("judge"))
    away = executors.of(ctx.executor, ctx.repo, ctx.sid) if cand.sha else None
    try:
        if isinstance(away, SshHost) and cand.sha:
            # The judge agent reads the candidate where it runs: pushed there as a scratch branch.
            main_at = git.branch_head(ctx.repo, ctx.main)
            assert main_at is not None
            away.up(JUDGING_BRANCH, cand.sha, ctx.main, main_at)
        ctx.away = away
        try:
            res = ctx.run_agent_settled(agent, "judge", task.id, task.judge_rounds, prompt)
        finally:
            ctx.away = None
    except RemoteError as e:
        down = executors.down_event(ctx.store.state(), ctx.executor.name, f"{e.kind}: {e.message}",
                                    ctx.clock.time(), ctx.sid)  # fmt: skip
        ctx.store.append(down, ev.Risk(actor=ctx.sid, task=task.id, slave=ctx.sid, kind="executor",
                                       message=f"{ctx.executor.name} failed: {e.message}"[:300]))  # fmt: skip
        return None, f"{ctx.executor.name} failed: {e.message}"[:300]
    if res is None:
        return None, ctx.held or "the judge was asked to stop"
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


def _on_error(state: State, job: Job, sid: str, error: str) -> list[Event]:
    t = state.tasks.get(job.task)
    if t is None or t.slave != sid or t.state != TaskState.JUDGING:
        return []
    return [ev.JudgeReleased(actor=sid, task=job.task, slave=sid, reason=error[:300])]


KIND = JobKind(
    "judge",
    claim=lambda job, sid, _key: [ev.JudgeClaimed(actor=sid, task=job.task, slave=sid)],
    run=lambda ctx, job: run_judge(ctx, ctx.store.state().tasks[job.task]),
    on_error=_on_error,
)
