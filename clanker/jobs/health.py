"""The health check: the gate and `health.commands` on main's head; a failure is a regression."""

from __future__ import annotations

import msgspec

from ..state.events import Event, HealthClaimed, HealthRan
from ..state.model import State
from ..system import git
from . import regressions
from .base import JobKind, release_all
from .common import idle, prepare_worktree
from .context import JobContext


def run_health(ctx: JobContext) -> None:
    prepare_worktree(ctx)
    sha = git.branch_head(ctx.repo, ctx.main)
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
        return idle(ctx)

    def decide(st: State) -> list[Event]:
        if regressions.moved_on(st, ctx.repo, ctx.main, sha):
            # A landing (gated, so green) moved main while this ran: the failure is history, and
            # filing it would re-mark a fixed main red and duplicate the regression just fixed.
            return [msgspec.structs.replace(ran, stale=True)]
        return [ran, *regressions.events(st, ctx.sid, result, sha, "the health check", ctx.cfg.health_fix_prompt)]

    sent = ctx.store.transact(decide)
    if any(isinstance(e, HealthRan) and e.stale for e in sent):
        head = git.branch_head(ctx.repo, ctx.main) or sha
        ctx.say(f"  {sha[:10]} fails, but {ctx.main} is at {head[:10]} now, which landed green: result dropped")
    else:
        ctx.say(f"  ✗ {ctx.main} fails `{result.failed}`: regression task filed (unless one is open)")
    idle(ctx)


KIND = JobKind(
    "health",
    claim=lambda job, sid, _key: [HealthClaimed(actor=sid, slave=sid)],
    run=lambda ctx, job: run_health(ctx),
    on_error=release_all,
)
