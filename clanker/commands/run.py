"""`clanker run --until-done` (the headless controller for scripts and CI) and the tmux session
that runs the controller's screen when `clanker` is typed outside tmux."""

from __future__ import annotations

import sys
import time

from ..config import Config
from ..fleet import panes as fleet
from ..fleet.controller import Controller, summary
from ..project import preflight
from ..state.paths import prepare
from ..state.store import Store
from ..system.tmux import Tmux
from . import Done, Echo


def run_until_done(cfg: Config, timeout: float | None, keep: bool, echo: Echo) -> Done:
    """Spawn the slaves, run every task, report: 0 all done, 1 some blocked, 3 out of time, 4 the
    gate preflight failed (nothing dispatched), 5 tmux kept failing, 6 a budget is spent, 7 a
    signal stopped the run."""
    prepare(cfg)
    if cfg.slaves < 2:
        echo("warning: slaves: 1 — nobody but its author could judge a task, so nothing lands on its own;")
        echo("  set `slaves: 2` or more, or land submitted work yourself with `clanker land`")
    ctl = Controller(cfg, out=echo)
    try:
        code = ctl.run_until_done(timeout)
    finally:
        if not keep:
            ctl.stop_spawned()
    st = ctl.store.state()
    return Done(code, summary(st, code, timeout, cfg.repo, preflight.key(cfg), cfg.slaves, ctl.tmux_error))


def dry_run(cfg: Config, store: Store, echo: Echo) -> Done:
    """What `run` would start now and what it would hold back (and why); nothing is started."""
    from ..fleet import dryrun  # it claims as the slaves would: every job kind, which `run` needs not

    echo(dryrun.render(cfg, store.state(), time.time()))
    return Done(0)


def controller_session(tm: Tmux, cfg: Config) -> str:
    """The session running this repo's controller (created when missing); returns its pane."""
    fv = fleet.view(tm, cfg.repo)
    ctl = fv.panes.get("ctl")
    if ctl is not None and not ctl.dead:
        return ctl.id
    cmd = [sys.executable, "-m", "clanker", "--repo", str(cfg.repo)]
    name = fleet.session_name(cfg)
    env = fleet.pane_env(cfg)
    if tm.has_session(name):
        pane = tm.new_window(name, "ctl", str(cfg.repo), cmd, env)
    else:
        pane = tm.new_session(name, "ctl", str(cfg.repo), cmd, env, fleet.hidden(cfg))
    tm.mark(pane, "ctl", str(cfg.repo), created=True)
    return pane
