"""`clanker logs T3 [--follow] [--tail N]` and `clanker logs --setup c2`."""

from __future__ import annotations

from ..errors import UsageError
from ..state import logs
from ..state.intake import get
from ..state.store import Store
from . import Done, Echo


def show_logs(
    store: Store, task: str | None, follow: bool, tail_n: int | None, setup_of: str | None, echo: Echo
) -> Done:
    if setup_of is not None:
        echo(logs.setup_log(store.paths, setup_of, tail_n))
        return Done()
    if task is None:
        raise UsageError("which task? `clanker logs T3` (or `clanker logs --setup c1` for a setup log)")
    get(store.state(), task)
    text = logs.tail(store.paths, task, tail_n)
    if text:
        echo(text)
    elif not follow:
        echo(f"no log for {task} yet")
    if follow:
        logs.follow(store.paths, task)
    return Done()
