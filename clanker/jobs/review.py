"""When the planner should compare the plan documents with what has landed: after enough
landings, or when the documents changed. Kept apart from the planner's job so the controller,
which asks for reviews, doesn't import any job code to do so."""

from __future__ import annotations

import hashlib

from ..config import Config
from ..state.model import State

REVIEW = "review"  # a plan request that compares the plan documents with what has landed


def docs_fingerprint(cfg: Config) -> str:
    """The plan documents' contents, as one short hash ("" without any)."""
    h = hashlib.sha1()
    for name in cfg.planner_docs:
        try:
            h.update(name.encode() + b"\0" + (cfg.repo / name).read_bytes())
        except OSError:
            h.update(name.encode() + b"\0missing")
    return h.hexdigest()[:16] if cfg.planner_docs else ""


def review_due(state: State, every: int, docs: str) -> str | None:
    """Why the planner should compare the plan with main now, or None (pure): after `every`
    landings since the last review, or when the plan documents changed since it — never on a
    timer, so no tokens are spent while nothing changed."""
    if not docs or state.plan_request == REVIEW or REVIEW in state.plan_requests:
        return None
    landed, seen = state.mainlined - state.reviewed[0], state.reviewed[1]
    if every > 0 and landed >= every:
        return f"{landed} landings since the plan was last compared with main"
    if seen and docs != seen:
        return "the plan documents changed"
    return None
