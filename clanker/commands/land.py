"""`clanker land [T…] [--yes]` and `/land`: you are the judge — mainline submitted tasks now."""

from __future__ import annotations

from collections.abc import Callable

from ..config import Config
from ..jobs import landing
from ..state.store import Store
from ..text import sanitize
from . import Done, Echo, quiet


def land(cfg: Config, store: Store, ids: list[str], confirm: Callable[[str], bool] | None, echo: Echo) -> Done:
    """List what would land, ask (`confirm`; None: don't ask), land it, summarise."""
    todo = landing.plan(cfg, landing.candidates(store.state(), ids))
    if not todo:
        return Done(0, "nothing to land: no task is waiting for a judge")
    for task, ahead in todo:
        echo(f"  {task.id:<10} {ahead} commit(s) on {task.branch}  {sanitize(task.title)}")
    if confirm is not None and not confirm(f"land {len(todo)} task(s) on {cfg.mainline_branch}?"):
        return Done(1, "")
    report = landing.land(cfg, [t for t, _ in todo], echo)
    return Done(report.code, landing.summary(report))


def land_now(cfg: Config, store: Store, ids: list[str]) -> Done:
    """The TUI's `/land`: no questions, the summary on one line."""
    done = land(cfg, store, ids, None, quiet)
    return Done(done.code, done.message.replace("\n", " ·"))
