"""The command line. Each command parses its options and calls one function; no logic lives here.

`main` is the single error boundary: a ClankerError prints one line (exit 1, bad input 2), Ctrl-C
exits 130, and anything unexpected writes a crash log and says where it is (exit 3).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import click

from . import __version__
from .commands import demo as demo_mod
from .commands import doctor as doctor_mod
from .config import Config, load
from .errors import ClankerError, UsageError
from .fleet import envpass
from .fleet import panes as fleet
from .fleet import status as st_mod
from .fleet.controller import Controller, summary
from .fleet.slave import run_slave
from .jobs import landing
from .project import preflight
from .state import intake as taskcmd
from .state import logs as logs_mod
from .state import secrets, setup
from .state.paths import Paths
from .state.store import Store
from .system import git
from .system.tmux import Tmux, exec_attach, inside
from .text import sanitize


@dataclass
class Ctx:
    repo_opt: Path | None
    config_opt: Path | None
    _cfg: Config | None = None

    @property
    def repo(self) -> Path:
        return git.toplevel(self.repo_opt or Path.cwd())

    @property
    def cfg(self) -> Config:
        if self._cfg is None:
            self._cfg = load(self.repo, self.config_opt)
            secrets.register_names([*self._cfg.env_pass, *(c.env for c in self._cfg.credentials)])
        return self._cfg

    def store(self) -> Store:
        setup.prepare(self.cfg)
        return Store(Paths(self.cfg.repo, self.cfg.worktrees), "cli")


pass_ctx = click.make_pass_decorator(Ctx)


@click.group(invoke_without_command=True)
@click.option(
    "--repo",
    type=click.Path(file_okay=False, path_type=Path),
    help="The repository (default: the one around the cwd).",
)
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), help="clanker.yaml to use.")
@click.version_option(__version__, prog_name="clanker")
@click.pass_context
def cli(ctx: click.Context, repo: Path | None, config_path: Path | None) -> None:
    """Run a fleet of CLI coding agents on one git repository in tmux, keeping main green.

    With no command: the controller (inside tmux), or a new tmux session running it (outside).
    """
    envpass.adopt()  # a pane clanker spawned: take in the variables its spawner handed over
    secrets.register_env()  # keys in the environment are secrets in whatever this process prints
    ctx.obj = Ctx(repo.resolve() if repo else None, config_path)
    if ctx.invoked_subcommand is None:
        controller_cmd(ctx.obj)


def controller_cmd(c: Ctx) -> None:
    cfg = c.cfg
    setup.prepare(cfg)
    if inside():
        raise SystemExit(Controller(cfg, headless=False).run())
    if not demo_mod.interactive():
        raise UsageError("`clanker` needs a terminal: use `clanker run --until-done` in scripts")
    tm = Tmux(cfg.tmux_socket)
    pane = open_controller_session(tm, cfg)
    exec_attach(tm, pane)


def open_controller_session(tm: Tmux, cfg: Config) -> str:
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


@cli.command("run")
@click.option("--until-done", is_flag=True, required=True, help="Exit when every task is done (0) or stuck (1).")
@click.option("--timeout", type=float, default=None, help="Give up after this many seconds (exit 3).")
@click.option("--keep", is_flag=True, help="Leave the slave panes running afterwards.")
@pass_ctx
def run_cmd(c: Ctx, until_done: bool, timeout: float | None, keep: bool) -> None:
    """Headless controller for scripts and CI: spawn the slaves, run every task, report."""
    cfg = c.cfg
    setup.prepare(cfg)
    raise SystemExit(headless_run(cfg, timeout, keep))


def headless_run(cfg: Config, timeout: float | None, keep: bool) -> int:
    if cfg.slaves < 2:
        click.echo("warning: slaves: 1 — nobody but its author could judge a task, so nothing lands on its own;")
        click.echo("  set `slaves: 2` or more, or land submitted work yourself with `clanker land`")
    ctl = Controller(cfg, headless=True)
    try:
        code = ctl.run(until_done=True, timeout=timeout)
    finally:
        if not keep:
            ctl.stop_spawned()
    click.echo(summary(ctl.store.state(), code, timeout, cfg.repo, preflight.key(cfg), cfg.slaves))
    return code


@cli.command("slave")
@click.argument("number", type=int)
@pass_ctx
def slave_cmd(c: Ctx, number: int) -> None:
    """Run slave cN in this terminal (any tmux pane works: the controller adopts it)."""
    setup.prepare(c.cfg)
    raise SystemExit(run_slave(c.cfg, number))


@cli.command("status")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def status_cmd(c: Ctx, as_json: bool) -> None:
    """Tasks and slaves at a glance."""
    cfg = c.cfg
    store = c.store()
    state = store.state()
    panes = {}
    with contextlib.suppress(ClankerError):
        panes = fleet.view(Tmux(cfg.tmux_socket), cfg.repo).panes
    rows = st_mod.slave_rows(cfg, store.paths, state, panes)
    if as_json:
        click.echo(json.dumps(st_mod.to_json(state, rows), indent=1, ensure_ascii=False))
    else:
        click.echo(st_mod.render(state, rows, cfg=cfg, paths=store.paths))


@cli.command("doctor")
@click.option("--json", "as_json", is_flag=True)
@click.option("--gate", "gate", is_flag=True, help="Run the gate preflight now (on main, in a fresh worktree).")
@pass_ctx
def doctor_cmd(c: Ctx, as_json: bool, gate: bool) -> None:
    """Check tmux, git, config, agents, panes, heartbeats, locks, worktrees, disk."""
    if gate:
        setup.prepare(c.cfg)
        text, code = doctor_mod.gate_check(c.repo, c.config_opt, lambda line: click.echo(line.strip()))
        click.echo(text)
        raise SystemExit(code)
    checks = doctor_mod.run_checks(c.repo, c.config_opt)
    if as_json:
        click.echo(json.dumps([ch.to_json() for ch in checks], indent=1))
    else:
        click.echo(doctor_mod.render(checks))
    raise SystemExit(doctor_mod.exit_code(checks))


@cli.command("init")
@click.option("--no-preflight", is_flag=True, help="Don't run the gate preflight afterwards.")
@pass_ctx
def init_cmd(c: Ctx, no_preflight: bool) -> None:
    """Create .clanker/, keep it out of git, write a starter clanker.yaml for this kind of project,
    then check its gate on main in a fresh worktree (the preflight)."""
    for line in setup.init(c.cfg):
        click.echo(line)
    cfg = load(c.repo, c.config_opt)
    if no_preflight or not cfg.gate:
        return
    click.echo("gate preflight (the gate on main in a fresh worktree; `--no-preflight` skips it):")
    text, code = doctor_mod.gate_check(c.repo, c.config_opt, lambda line: click.echo(line.strip()))
    click.echo(text)
    raise SystemExit(code)


@cli.command("logs")
@click.argument("task", required=False)
@click.option("--follow", "-f", is_flag=True)
@click.option("--tail", "-n", "tail_n", type=click.IntRange(min=1), default=None)
@click.option("--setup", "setup_of", default=None, metavar="SLAVE", help="The worktree setup log of cN instead.")
@pass_ctx
def logs_cmd(c: Ctx, task: str | None, follow: bool, tail_n: int | None, setup_of: str | None) -> None:
    """The readable log of a task's agent runs (or, with --setup cN, of a worktree's setup)."""
    store = c.store()
    if setup_of is not None:
        click.echo(logs_mod.setup_log(store.paths, setup_of, tail_n))
        return
    if task is None:
        raise UsageError("which task? `clanker logs T3` (or `clanker logs --setup c1` for a setup log)")
    taskcmd.get(store.state(), task)
    text = logs_mod.tail(store.paths, task, tail_n)
    if text:
        click.echo(text)
    elif not follow:
        click.echo(f"no log for {task} yet")
    if follow:
        logs_mod.follow(store.paths, task)


@cli.command("attach")
@click.argument("slave")
@pass_ctx
def attach_cmd(c: Ctx, slave: str) -> None:
    """Switch to (or attach to) the pane of slave cN to watch its agent."""
    cfg = c.cfg
    tm = Tmux(cfg.tmux_socket)
    sid = slave if slave.startswith("c") or slave == "ctl" else f"c{slave}"
    pane = fleet.view(tm, cfg.repo).panes.get(sid)
    if pane is None:
        raise UsageError(f"no pane for {sid} in this repo: `clanker status` lists the slaves")
    exec_attach(tm, pane.id)


@cli.command("stop")
@pass_ctx
def stop_cmd(c: Ctx) -> None:
    """Stop the controller and every slave of this repo (each checkpoints its work first)."""
    cfg = c.cfg
    stopped = fleet.stop(cfg, Tmux(cfg.tmux_socket))
    click.echo(f"stopped {', '.join(stopped)}" if stopped else "nothing was running")


@cli.command("demo")
@click.option("--headless", is_flag=True, help="No terminal needed: run to the end and report.")
@click.option("--dir", "where", type=click.Path(file_okay=False, path_type=Path), help="Where to make the repo.")
@click.option("--timeout", type=float, default=600.0, show_default=True)
def demo_cmd(headless: bool, where: Path | None, timeout: float) -> None:
    """A scratch repo with a gate and seven tasks for the fake agent, worked by three slaves."""
    if where is not None and where.exists() and any(where.iterdir()):
        raise UsageError(f"{where} is not empty: pick a new directory for the demo")
    repo = demo_mod.make_repo(where)
    cfg = load(repo, repo / "clanker.yaml")
    click.echo(f"demo repository: {repo}")
    if headless or not demo_mod.interactive():
        code = headless_run(cfg, timeout, keep=False)
        shas = git.log_shas(repo, "main")
        click.echo(f"main has {len(shas)} commits; see them with: git -C {repo} log --oneline main")
        raise SystemExit(code)
    tm = Tmux(cfg.tmux_socket)
    pane = open_controller_session(tm, cfg)
    click.echo(f"tmux session {fleet.session_name(cfg)}: the controller is in window `ctl`, slaves in `slaves`.")
    click.echo("Detach with Ctrl-b d; come back with `clanker` in the repo; stop with `clanker stop`.")
    time.sleep(1.0)  # let the person read where things are before the screen changes
    exec_attach(tm, pane)


@cli.command("land")
@click.argument("tasks", nargs=-1)
@click.option("--yes", "-y", is_flag=True, help="Don't ask for confirmation.")
@pass_ctx
def land_cmd(c: Ctx, tasks: tuple[str, ...], yes: bool) -> None:
    """Mainline submitted tasks now (you are the judge): rebase, gate, fast-forward, validate."""
    cfg = c.cfg
    todo = landing.plan(cfg, landing.candidates(c.store().state(), list(tasks)))
    if not todo:
        click.echo("nothing to land: no task is waiting for a judge")
        return
    for task, ahead in todo:
        click.echo(f"  {task.id:<10} {ahead} commit(s) on {task.branch}  {sanitize(task.title)}")
    if not yes and not click.confirm(f"land {len(todo)} task(s) on {cfg.mainline_branch}?", default=False):
        raise SystemExit(1)
    report = landing.land(cfg, [t for t, _ in todo], click.echo)
    click.echo(landing.summary(report))
    raise SystemExit(report.code)


@cli.command("plan")
@click.option("--split", "split", default=None, metavar="TASK", help="Split this task instead.")
@pass_ctx
def plan_cmd(c: Ctx, split: str | None) -> None:
    """Ask the planner to turn the plan docs into tasks (a slave runs it), or to split a task."""
    cfg = c.cfg
    click.echo(taskcmd.request_plan(c.store(), cfg.planner_agent is not None, bool(cfg.planner_docs), split))


# --- tasks -------------------------------------------------------------------------------------


@cli.group("task")
def task_group() -> None:
    """Add, import, list, show, cancel and retry tasks."""


@task_group.command("add")
@click.argument("title")
@click.option("--prompt", default=None, help="What the agent should do (default: the title).")
@click.option("--prompt-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
@click.option("--description", default="")
@click.option("--path", "paths", multiple=True, help="A path the task will touch (ownership lock); repeatable.")
@click.option("--priority", type=int, default=0)
@click.option("--depends-on", "depends_on", multiple=True)
@click.option("--id", "task_id", default=None)
@pass_ctx
def task_add(
    c: Ctx,
    title: str,
    prompt: str | None,
    prompt_file: Path | None,
    description: str,
    paths: tuple[str, ...],
    priority: int,
    depends_on: tuple[str, ...],
    task_id: str | None,
) -> None:
    """Add a task."""
    if prompt and prompt_file:
        raise UsageError("give --prompt or --prompt-file, not both")
    if prompt_file:
        prompt = prompt_file.read_text(encoding="utf-8")
    fields = {
        "id": task_id,
        "title": title,
        "prompt": prompt,
        "description": description,
        "paths": list(paths),
        "priority": priority,
        "depends_on": list(depends_on),
    }
    click.echo(taskcmd.add(c.store(), fields))


@task_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_ctx
def task_import(c: Ctx, file: Path) -> None:
    """Import tasks from JSONL (flocks' format: id, title, prompt, description, branch)."""
    created = taskcmd.import_file(c.store(), file)
    click.echo(f"imported {len(created)} task(s)" + (f": {', '.join(created)}" if created else ""))


@task_group.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def task_list(c: Ctx, as_json: bool) -> None:
    """One line per task."""
    state = c.store().state()
    if as_json:
        click.echo(json.dumps(st_mod.to_json(state, [])["tasks"], indent=1, ensure_ascii=False))
        return
    for t in state.tasks.values():
        title = sanitize(t.title).replace("\n", "⏎")
        click.echo(f"{t.id:<10} {t.state:<12} {(t.slave or t.author or '-'):<5} {title}")


@task_group.command("show")
@click.argument("task")
@pass_ctx
def task_show(c: Ctx, task: str) -> None:
    """Everything about one task."""
    click.echo(taskcmd.show(taskcmd.get(c.store().state(), task)))


@task_group.command("cancel")
@click.argument("task")
@pass_ctx
def task_cancel(c: Ctx, task: str) -> None:
    """Cancel a task (its branch is kept)."""
    taskcmd.cancel(c.store(), task)
    click.echo(f"cancelled {task}")


@task_group.command("retry")
@click.argument("task")
@pass_ctx
def task_retry(c: Ctx, task: str) -> None:
    """Give a blocked or cancelled task another round of attempts."""
    taskcmd.retry(c.store(), task)
    click.echo(f"{task} is ready again")


# --- the error boundary --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    sys.exit(entry(argv))


def entry(argv: list[str] | None = None) -> int:
    try:
        cli.main(args=argv, prog_name="clanker", standalone_mode=False)
        return 0
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.ClickException as e:
        click.echo(f"clanker: {e.format_message()}", err=True)
        return 2 if isinstance(e, click.UsageError | click.BadParameter) else e.exit_code
    except click.exceptions.Abort:
        return 130
    except KeyboardInterrupt:
        click.echo("clanker: interrupted", err=True)
        return 130
    except ClankerError as e:
        click.echo(f"clanker: {e}", err=True)
        return e.exit_code
    except Exception:
        path = _crash_log()
        click.echo(f"clanker: unexpected error — details in {path}; please report it", err=True)
        return 3


def _crash_log() -> Path:
    try:
        base = git.toplevel(Path.cwd()) / ".clanker"
    except ClankerError:
        base = Path.home() / ".clanker"
    base.mkdir(parents=True, exist_ok=True)
    path = base / f"crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    path.write_text(
        f"clanker {__version__}, python {platform.python_version()}, {platform.platform()}\n"
        f"argv: {sys.argv}\n\n{traceback.format_exc()}",
        encoding="utf-8",
    )
    return path
