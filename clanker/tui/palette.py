"""The `/` prompt's commands: each runs the same function as its CLI command (`commands/`) and
puts the one-line answer on the bottom line; slow ones (/land, /doctor) run in the background."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..commands import Done
from ..commands import fleet as fleet_cmd
from ..commands import land as land_cmd
from ..commands import plan as plan_cmd
from ..commands import task as task_cmd
from ..commands.doctor import render, run_checks
from ..errors import ClankerError, UsageError
from ..fleet import panes as fleet
from ..state.intake import Branches
from . import prompt

if TYPE_CHECKING:
    from .app import App


def execute(app: App, text: str) -> None:
    """Run one `/` command line."""
    cmd = prompt.parse(text)
    ctl = app.ctl
    store = ctl.store
    if cmd.name == "task":
        done = task_cmd.add(store, cmd.fields, Branches.of(ctl.cfg))
        app.say(f"added {done.message}: {cmd.fields['title']}")
    elif cmd.name == "slaves":
        set_slaves(app, int(cmd.args[0]))
    elif cmd.name == "cap":
        n = None if cmd.args[0] == "off" else int(cmd.args[0])
        show(app, fleet_cmd.cap(store, ctl.cfg, n, cmd.args[1] if len(cmd.args) > 1 else ""))
    elif cmd.name == "pause":
        show(app, fleet_cmd.pause(store, cmd.args[0] if cmd.args else None))
    elif cmd.name == "resume":
        show(app, fleet_cmd.resume(store, cmd.args[0] if cmd.args else None))
    elif cmd.name == "retry":
        show(app, task_cmd.retry(store, cmd.args[0]))
    elif cmd.name == "cancel":
        show(app, task_cmd.cancel(store, cmd.args[0]))
    elif cmd.name == "land":
        app.say("landing… (the gate runs on each task)")
        cfg, ids = ctl.cfg, list(cmd.args)
        app.background("land", lambda: land_cmd.land_now(cfg, store, ids), lambda d: show(app, d))
    elif cmd.name == "plan":
        show(app, plan_cmd.plan(ctl.cfg, store, cmd.args[0] if cmd.args else None))
    elif cmd.name == "attach":
        attach(app, cmd.args[0])
    elif cmd.name == "doctor":
        app.say("running the doctor…")
        cfg = ctl.cfg
        app.background("doctor", lambda: render(run_checks(cfg.repo, cfg.path)).splitlines(), app.show_doctor)
    elif cmd.name == "help":
        app.show_help()
    elif cmd.name == "quit":
        ctl.stopping.set()
    app.log_dirty.set()


def show(app: App, done: Done) -> None:
    app.say(done.message or ("done" if done.code == 0 else f"exit {done.code}"), "acid" if done.code == 0 else "red")


def toggle_pause(app: App, sid: str | None) -> None:
    state = app.ctl.store.state()
    paused = ("*" in state.paused) if sid is None else (sid in state.paused)
    show(app, (fleet_cmd.resume if paused else fleet_cmd.pause)(app.ctl.store, sid))
    app.log_dirty.set()


def attach(app: App, sid: str) -> None:
    r = app.row(sid)
    if not r.pane:
        raise UsageError(f"{sid} has no pane to attach to")
    try:
        app.ctl.tm.focus(r.pane)
    except ClankerError as e:
        raise UsageError(f"can't switch to {sid} ({r.pane}): {e}") from None
    app.say(f"switched to {sid} — Ctrl-b l (last window) or `clanker attach ctl` comes back")


def take_over(app: App, sid: str) -> None:
    """`t`: take over the selected slave's agent session (again: give it back), then switch to it."""
    store = app.ctl.store
    taken = sid in store.state().takeovers
    show(app, fleet_cmd.takeover(store, sid, release=taken))
    if not taken:
        attach(app, sid)
    app.log_dirty.set()


def set_slaves(app: App, n: int) -> None:
    """`/slaves N`: clanker.yaml's `slaves:` line changes; extra slaves stop, new ones start."""
    ctl = app.ctl
    before = ctl.cfg.slaves
    ctl.reconfigure(fleet_cmd.set_slaves(ctl.cfg, n))
    where = ctl.cfg.path or "clanker.yaml"
    if n < before:
        extra = {f"c{i}" for i in range(n + 1, before + 1)}
        cfg, tm = ctl.cfg, ctl.tm
        app.background(
            "slaves",
            lambda: fleet.stop(cfg, tm, only=extra),
            lambda stopped: app.say(f"stopped {', '.join(sorted(stopped)) or 'nothing'}"),
        )
        app.say(f"slaves {before} → {n} (saved in {where}); stopping {', '.join(sorted(extra))}…")
    else:
        app.say(f"slaves {before} → {n} (saved in {where})")
    app.tick()  # spawn the new ones now
