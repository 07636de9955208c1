"""The preflight job: one slave checks that the gate can be trusted before anything is dispatched
(DESIGN §6a); see `clanker/preflight.py` for how."""

from __future__ import annotations

import msgspec

from ..project import preflight
from ..project.gate import GateResult
from ..state.events import Event, PreflightClaimed, PreflightRan
from ..state.model import State
from . import regressions
from .base import JobKind, release_all
from .common import idle
from .context import JobContext, tick_secs


def run_preflight_job(ctx: JobContext) -> None:
    key = preflight.key(ctx.cfg)
    ctx.say(f"▶ gate preflight: the gate on {ctx.main} in a fresh worktree, before anything is dispatched")
    ctx.heart.update(job="preflight", task=None, phase="preflight")
    tick = (tick_secs(ctx.cfg), ctx.heart.touch)
    found = preflight.run(ctx.cfg, ctx.paths, f"preflight-{ctx.sid}", ctx.index + 1, ctx.say, tick)
    ran = found.event(ctx.sid, key)

    def decide(st: State) -> list[Event]:
        prev = st.preflights.get(key)
        regression = (
            not found.passed
            and found.kind == "gate"
            and not found.environment  # a missing .env or venv is the environment, not main
            and prev is not None
            and prev.trusted
            and prev.sha != found.sha
        )
        if not regression:
            return [ran]
        # The same gate and environment passed on an earlier main: main itself broke since.
        result = GateResult(False, found.tail, found.seconds, found.failed or None)
        where = "the gate preflight of a new run"
        return [
            msgspec.structs.replace(ran, kind="regression", trusted=True),
            *regressions.events(st, ctx.sid, result, found.sha, where, ctx.cfg.health_fix_prompt),
        ]

    recorded = next(e for e in ctx.store.transact(decide) if isinstance(e, PreflightRan))
    if found.passed:
        ctx.say(f"  ✓ the gate passes on {ctx.main} and tests the worktree ({found.seconds:.1f}s): dispatching")
        if found.partial:
            ctx.say("  ! part of your checkout could not be watched (inotify limits): reads from there went unseen")
    else:
        for line in preflight.render(recorded.payload(), ctx.repo).splitlines():
            ctx.say(f"  {line}")
    idle(ctx)


KIND = JobKind(
    "preflight",
    claim=lambda job, sid, key: [PreflightClaimed(actor=sid, slave=sid, key=key)],
    run=lambda ctx, job: run_preflight_job(ctx),
    on_error=release_all,
)
