"""The health check: the gate and `health.commands` on main's head; a failure is a regression."""

from __future__ import annotations

from ..state.events import HealthRan
from ..system import git
from . import regressions
from .context import JobContext
from .work import prepare_worktree


def run_health(ctx: JobContext) -> None:
    prepare_worktree(ctx)
    sha = git.rev(ctx.repo, ctx.main)
    assert sha is not None
    ctx.say(f"▶ health check of {ctx.main} at {sha[:10]}")
    ctx.heart.update(job="health", task=None, phase="health")
    result = ctx.gate((*ctx.cfg.gate, *ctx.cfg.health_commands), sha=sha)
    ran = HealthRan(
        actor=ctx.sid,
        slave=ctx.sid,
        passed=result.passed,
        sha=sha,
        failed=result.failed,
        seconds=round(result.seconds, 2),
        tail=result.output[-600:],
    )
    if result.passed:
        ctx.store.append(ran)
        ctx.say(f"  ✓ {ctx.main} is healthy")
    else:
        ctx.store.transact(
            lambda st: [
                ran,
                *regressions.events(st, ctx.sid, result, sha, "the health check", ctx.cfg.health_fix_prompt),
            ]
        )
        ctx.say(f"  ✗ {ctx.main} fails `{result.failed}`: regression task filed (unless one is open)")
    ctx.heart.update(job=None, task=None, phase="idle")
