"""The preflight job: one slave checks that the gate can be trusted before anything is dispatched
(DESIGN §6a); see `clanker/preflight.py` for how."""

from __future__ import annotations

from typing import Any

from ..project import preflight
from ..project.gate import GateResult
from ..state.model import Event, State
from . import regressions
from .context import JobContext


def run_preflight_job(ctx: JobContext) -> None:
    key = preflight.key(ctx.cfg)
    ctx.say(f"▶ gate preflight: the gate on {ctx.main} in a fresh worktree, before anything is dispatched")
    ctx.heart.update(job="preflight", task=None, phase="preflight")
    found = preflight.run(ctx.cfg, ctx.paths, f"preflight-{ctx.sid}", ctx.index + 1, ctx.say)
    data: dict[str, Any] = {"slave": ctx.sid, "key": key, **found.to_json(), "trusted": found.passed}

    def decide(st: State) -> list[Event]:
        prev = st.preflight
        regression = (
            not found.passed
            and found.kind == "gate"
            and prev is not None
            and prev.key == key
            and prev.trusted
            and prev.sha != found.sha
        )
        if not regression:
            return [Event("preflight.ran", ctx.sid, None, data)]
        # The same gate and environment passed on an earlier main: main itself broke since.
        data.update(kind="regression", trusted=True)
        result = GateResult(False, found.tail, found.seconds, found.failed or None)
        where = "the gate preflight of a new run"
        return [
            Event("preflight.ran", ctx.sid, None, data),
            *regressions.events(st, ctx.sid, result, found.sha, where, ctx.cfg.health_fix_prompt),
        ]

    ctx.store.transact(decide)
    if found.passed:
        ctx.say(f"  ✓ the gate passes on {ctx.main} and tests the worktree ({found.seconds:.1f}s): dispatching")
    else:
        for line in preflight.render(data, ctx.repo).splitlines():
            ctx.say(f"  {line}")
    ctx.heart.update(job=None, task=None, phase="idle")
