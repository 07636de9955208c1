"""`clanker plan [--split T]` and `/plan [T]`: ask the planner to plan from the docs or split a task."""

from __future__ import annotations

from ..config import Config
from ..errors import UsageError
from ..state.events import Event, PlanRequested
from ..state.intake import get
from ..state.model import State, TaskState
from ..state.store import Store
from . import Done


def plan(cfg: Config, store: Store, split: str | None) -> Done:
    """Queue a planner run (a slave takes it): from the plan docs, or to split one task."""
    if cfg.planner_agent is None:
        raise UsageError("no planner: set `planner: {agent: same}` (the default) in clanker.yaml, not `none`")
    if split is None and not cfg.planner_docs:
        raise UsageError("nothing to plan from: list your plan documents in clanker.yaml, `planner: {docs: [PLAN.md]}`")

    def decide(st: State) -> list[Event]:
        if split is not None:
            t = get(st, split)
            if t.state not in (TaskState.READY, TaskState.BLOCKED, TaskState.REWORK):
                raise UsageError(f"task {split} is {t.state}: only ready, blocked or rework tasks can be split")
        return [PlanRequested(actor=store.actor, request=split or "", reason="asked")]

    store.transact(decide)
    return Done(0, f"planner asked to split {split}" if split else "planner asked to plan from the docs")
