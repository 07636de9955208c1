"""The command line: each command parses its options and calls one function of `commands/`,
imported when the command runs (a slave, `status` or `task add` loads only what it uses).

`entry` adds click's own errors (bad usage: exit 2) to the error boundary of start.py, which a
slave the fleet spawned goes through without click.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click

from . import __version__
from .commands import Done
from .config import Config
from .errors import UsageError
from .start import begin, guard, leave, settings
from .state.intake import Branches
from .state.paths import Paths, prepare
from .state.store import Store
from .system import git
from .text import one_line


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
            self._cfg = settings(self.repo, self.config_opt)
        return self._cfg

    def reload(self) -> None:
        self._cfg = None

    def store(self) -> Store:
        prepare(self.cfg)
        return Store(Paths(self.cfg.repo, self.cfg.worktrees), "cli")


pass_ctx = click.make_pass_decorator(Ctx)


def finish(done: Done) -> None:
    """Print the command's line and leave with its code."""
    if done.message:
        click.echo(done.message)
    raise SystemExit(done.code)


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
    begin()
    ctx.obj = Ctx(repo.resolve() if repo else None, config_path)
    if ctx.invoked_subcommand is None:
        controller_cmd(ctx.obj)


def controller_cmd(c: Ctx) -> None:
    """The controller with its screen: here, inside tmux; outside, in a session you attach to."""
    from .commands import demo as demo_cmd_
    from .commands import run as run_cmd_
    from .fleet.controller import Controller
    from .system.tmux import Tmux, exec_attach, inside

    cfg = c.cfg
    prepare(cfg)
    if inside():
        from .tui.app import run_tui  # the screen (and blessed) only when there is one to draw

        raise SystemExit(run_tui(Controller(cfg, screen_pane=os.environ.get("TMUX_PANE") or None)))
    if not demo_cmd_.interactive():
        raise UsageError("`clanker` needs a terminal: use `clanker run --until-done` in scripts")
    tm = Tmux(cfg.tmux_socket)
    exec_attach(tm, run_cmd_.controller_session(tm, cfg))


@cli.command("run")
@click.option("--until-done", is_flag=True, help="Exit when every task is done (0) or stuck (1).")
@click.option("--dry-run", is_flag=True, help="Say what would start now and what is held back; start nothing.")
@click.option("--timeout", type=float, default=None, help="Give up after this many seconds (exit 3).")
@click.option("--keep", is_flag=True, help="Leave the slave panes running afterwards.")
@click.option("--max-attempts", type=click.IntRange(min=1), default=None, help="max_attempts for this run's slaves.")
@pass_ctx
def run_cmd(
    c: Ctx, until_done: bool, dry_run: bool, timeout: float | None, keep: bool, max_attempts: int | None
) -> None:
    """Headless controller for scripts and CI: spawn the slaves, run every task, report."""
    for note in c.cfg.notes:
        click.echo(f"note: {note}", err=True)
    if max_attempts is not None:
        with _env("CLANKER_MAX_ATTEMPTS", str(max_attempts)):  # read by this run's config and its slaves'
            c.reload()
            _run(c, until_done, dry_run, timeout, keep)
        return
    _run(c, until_done, dry_run, timeout, keep)


@contextlib.contextmanager
def _env(name: str, value: str) -> Iterator[None]:
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def _run(c: Ctx, until_done: bool, dry_run: bool, timeout: float | None, keep: bool) -> None:
    from .commands import run as run_cmd_

    if dry_run:
        finish(run_cmd_.dry_run(c.cfg, c.store(), click.echo))
        return
    if not until_done:
        raise click.UsageError("clanker run needs --until-done (or --dry-run to see what it would start)")
    finish(run_cmd_.run_until_done(c.cfg, timeout, keep, click.echo))


@cli.command("slave")
@click.argument("number", type=int)
@click.option("--executor", default=None, metavar="NAME", help="Run its agents on this executor (kept).")
@pass_ctx
def slave_cmd(c: Ctx, number: int, executor: str | None) -> None:
    """Run slave cN in this terminal (any tmux pane works: the controller adopts it)."""
    prepare(c.cfg)
    from .fleet.slave import run_slave

    raise SystemExit(run_slave(c.cfg, number, executor))


@cli.command("status")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def status_cmd(c: Ctx, as_json: bool) -> None:
    """Tasks and slaves at a glance."""
    from .commands import status as status_cmd_

    finish(status_cmd_.status(c.cfg, c.store(), as_json, click.echo))


@cli.command("budget")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def budget_cmd(c: Ctx, as_json: bool) -> None:
    """Spend against each budget (today and in total) and the burn rate."""
    import json

    from .state import budget

    spend = budget.standing(c.store().state(), c.cfg.budget, time.time())
    if as_json:
        click.echo(json.dumps(budget.to_json(spend), ensure_ascii=False))
    else:
        if not c.cfg.budget.any:
            click.echo("no budget set: add `budget:` to clanker.yaml (daily_usd, total_usd, task_usd, …)")
        elif spend.held:
            click.echo(f"SPENT: {spend.held} — no new agent run starts")
        click.echo(budget.summary(spend))


@cli.command("doctor")
@click.option("--json", "as_json", is_flag=True)
@click.option("--gate", "gate", is_flag=True, help="Run the gate preflight now (on main, in a fresh worktree).")
@pass_ctx
def doctor_cmd(c: Ctx, as_json: bool, gate: bool) -> None:
    """Check tmux, git, config, agents, panes, heartbeats, locks, worktrees, disk."""
    from .commands import doctor as doctor_cmd_

    finish(doctor_cmd_.doctor(c.repo, c.config_opt, as_json, gate, click.echo))


@cli.command("init")
@click.option("--no-preflight", is_flag=True, help="Don't run the gate preflight afterwards.")
@pass_ctx
def init_cmd(c: Ctx, no_preflight: bool) -> None:
    """Create .clanker/, keep it out of git, write a starter clanker.yaml for this kind of project,
    then check its gate on main in a fresh worktree (the preflight)."""
    from .commands import init as init_cmd_

    finish(init_cmd_.init(c.repo, c.config_opt, no_preflight, click.echo))


@cli.command("logs")
@click.argument("task", required=False)
@click.option("--follow", "-f", is_flag=True)
@click.option("--tail", "-n", "tail_n", type=click.IntRange(min=1), default=None)
@click.option("--setup", "setup_of", default=None, metavar="SLAVE", help="The worktree setup log of cN instead.")
@pass_ctx
def logs_cmd(c: Ctx, task: str | None, follow: bool, tail_n: int | None, setup_of: str | None) -> None:
    """The readable log of a task's agent runs (or, with --setup cN, of a worktree's setup)."""
    from .commands import logs as logs_cmd_

    finish(logs_cmd_.show_logs(c.store(), task, follow, tail_n, setup_of, click.echo))


@cli.command("attach")
@click.argument("slave")
@pass_ctx
def attach_cmd(c: Ctx, slave: str) -> None:
    """Switch to (or attach to) the pane of slave cN to watch its agent."""
    from .commands import panes as panes_cmd

    finish(panes_cmd.attach(c.cfg, slave))


@cli.command("stop")
@pass_ctx
def stop_cmd(c: Ctx) -> None:
    """Stop the controller and every slave of this repo (each checkpoints its work first)."""
    from .commands import panes as panes_cmd

    finish(panes_cmd.stop(c.cfg))


@cli.command("demo")
@click.option("--headless", is_flag=True, help="No terminal needed: run to the end and report.")
@click.option("--dir", "where", type=click.Path(file_okay=False, path_type=Path), help="Where to make the repo.")
@click.option("--timeout", type=float, default=600.0, show_default=True)
def demo_cmd(headless: bool, where: Path | None, timeout: float) -> None:
    """A scratch repo with a gate and seven tasks for the fake agent, worked by three slaves."""
    from .commands import demo as demo_cmd_

    finish(demo_cmd_.demo(headless, where, timeout, click.echo))


@cli.command("land")
@click.argument("tasks", nargs=-1)
@click.option("--yes", "-y", is_flag=True, help="Don't ask for confirmation.")
@pass_ctx
def land_cmd(c: Ctx, tasks: tuple[str, ...], yes: bool) -> None:
    """Mainline submitted tasks now (you are the judge): rebase, gate, fast-forward, validate."""
    confirm = None if yes else (lambda question: click.confirm(question, default=False))
    from .commands import land as land_cmd_

    finish(land_cmd_.land(c.cfg, c.store(), list(tasks), confirm, click.echo))


@cli.command("plan")
@click.option("--split", "split", default=None, metavar="TASK", help="Split this task instead.")
@pass_ctx
def plan_cmd(c: Ctx, split: str | None) -> None:
    """Ask the planner to turn the plan docs into tasks (a slave runs it), or to split a task."""
    from .commands import plan as plan_cmd_

    finish(plan_cmd_.plan(c.cfg, c.store(), split))


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
    from .commands import task as task_cmd

    finish(
        task_cmd.add_from_cli(
            c.store(), Branches.of(c.cfg), title, prompt, prompt_file, description, paths, priority, depends_on, task_id
        )
    )


@task_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_ctx
def task_import(c: Ctx, file: Path) -> None:
    """Import tasks from JSONL (flocks' format: id, title, prompt, description, branch)."""
    from .commands import task as task_cmd

    finish(task_cmd.import_file(c.store(), file, Branches.of(c.cfg)))


@task_group.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.option("--all", "everything", is_flag=True, help="Also the older finished tasks, from the archive.")
@pass_ctx
def task_list(c: Ctx, as_json: bool, everything: bool) -> None:
    """One line per task (finished ones beyond the newest 200 with --all)."""
    from .commands import task as task_cmd

    finish(task_cmd.list_tasks(c.store(), as_json, click.echo, everything))


@task_group.command("show")
@click.argument("task")
@pass_ctx
def task_show(c: Ctx, task: str) -> None:
    """Everything about one task."""
    from .commands import task as task_cmd

    finish(task_cmd.show(c.store(), task, click.echo))


@task_group.command("cancel")
@click.argument("task")
@pass_ctx
def task_cancel(c: Ctx, task: str) -> None:
    """Cancel a task (its branch is kept)."""
    from .commands import task as task_cmd

    finish(task_cmd.cancel(c.store(), task))


@task_group.command("retry")
@click.argument("task", required=False)
@click.option("--all-failed", is_flag=True, help="Every blocked task (flocks' retry --all-failed).")
@pass_ctx
def task_retry(c: Ctx, task: str | None, all_failed: bool) -> None:
    """Give a blocked or cancelled task another round of attempts."""
    from .commands import task as task_cmd

    if all_failed == (task is not None):
        raise click.UsageError("name one task to retry, or give --all-failed for every blocked one")
    finish(task_cmd.retry_failed(c.store()) if all_failed else task_cmd.retry(c.store(), str(task)))


@cli.command("history")
@click.argument("task", required=False)
@click.option("--week", default=None, metavar="YYYY-Www", help="Only that ISO week's notes.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def history_cmd(c: Ctx, task: str | None, week: str | None, as_json: bool) -> None:
    """The notes of every attempt and judgement: one task's in full, or a line each."""
    from .commands import history

    finish(history.history(c.cfg, task, week, as_json, click.echo))


@cli.command("import-flocks")
@click.argument("source", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write (default: clanker.yaml here; - for stdout).")  # fmt: skip
@pass_ctx
def import_flocks_cmd(c: Ctx, source: Path, output: Path | None) -> None:
    """Write the clanker.yaml equivalent to a flocks.toml (its comments kept)."""
    from .commands import flocks

    finish(flocks.import_flocks(c.repo, source, output))


@cli.command("takeover")
@click.argument("slave")
@click.option("--release", is_flag=True, help="Give it back without your changes (they are stashed).")
@pass_ctx
def takeover_cmd(c: Ctx, slave: str, release: bool) -> None:
    """Take over slave cN's agent session in its pane; the task goes on when you leave it."""
    from .commands import fleet as fleet_cmd

    sid = slave if slave.startswith("c") else f"c{slave}"
    finish(fleet_cmd.takeover(c.store(), sid, release))


@cli.command("cap")
@click.argument("n", metavar="N|off")
@click.option("--reason", default="", help="Why (shown where an idle slave says what holds it).")
@pass_ctx
def cap_cmd(c: Ctx, n: str, reason: str) -> None:
    """Run at most N agents at once, below `slaves`, until `clanker cap off`."""
    from .commands import fleet as fleet_cmd

    if n != "off" and not n.isdigit():
        raise click.BadParameter(f"{n!r} is neither a number of agents nor off", param_hint="N")
    finish(fleet_cmd.cap(c.store(), c.cfg, None if n == "off" else int(n), reason))


@cli.command("pause")
@click.argument("slave", required=False)
@pass_ctx
def pause_cmd(c: Ctx, slave: str | None) -> None:
    """Pause one slave, or the fleet (it finishes the job in hand)."""
    from .commands import fleet as fleet_cmd

    finish(fleet_cmd.pause(c.store(), slave))


@cli.command("resume")
@click.argument("slave", required=False)
@pass_ctx
def resume_cmd(c: Ctx, slave: str | None) -> None:
    """Resume one slave, or the fleet."""
    from .commands import fleet as fleet_cmd

    finish(fleet_cmd.resume(c.store(), slave))


# --- the error boundary --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    leave(entry(argv))


def entry(argv: list[str] | None = None) -> int:
    def run() -> int:
        try:
            cli.main(args=argv, prog_name="clanker", standalone_mode=False)
            return 0
        except click.exceptions.Exit as e:
            return e.exit_code
        except click.ClickException as e:
            click.echo(f"clanker: {one_line(e.format_message())}", err=True)
            return 2 if isinstance(e, click.UsageError | click.BadParameter) else e.exit_code
        except click.exceptions.Abort:
            return 130

    return guard(run)
