"""`clanker attach cN` and `clanker stop`: the fleet's panes."""

from __future__ import annotations

from ..config import Config
from ..errors import UsageError
from ..fleet import panes as fleet
from ..system.tmux import Tmux, exec_attach
from . import Done


def attach(cfg: Config, slave: str) -> Done:
    """Switch to (or attach to) the pane of slave cN to watch its agent."""
    tm = Tmux(cfg.tmux_socket)
    sid = slave if slave.startswith("c") or slave == "ctl" else f"c{slave}"
    pane = fleet.view(tm, cfg.repo).panes.get(sid)
    if pane is None:
        raise UsageError(f"no pane for {sid} in this repo: `clanker status` lists the slaves")
    exec_attach(tm, pane.id)
    return Done()


def stop(cfg: Config) -> Done:
    """Stop the controller and every slave of this repo (each checkpoints its work first)."""
    stopped = fleet.stop(cfg, Tmux(cfg.tmux_socket))
    return Done(0, f"stopped {', '.join(stopped)}" if stopped else "nothing was running")
