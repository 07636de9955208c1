"""What the screen's overlays say: help, a slave's details, its task's log (pure text)."""

from __future__ import annotations

from ..commands.task import describe
from ..fleet.rows import SlaveRow
from ..jobs import history
from ..state import logs
from ..state.model import State
from ..state.paths import Paths
from . import prompt

HELP = """\
keys
  ↑ ↓        select a slave            Enter   its details
  a          attach: switch to its pane (Ctrl-b then l comes back)
  l          its task's log            p / P   pause or resume it / the fleet
  t          take over its agent session in its pane (t again: give it back)
  /          command prompt (Tab completes commands and ids)
  ?          this help                 Esc     close an overlay
  q, Ctrl-C  quit this screen — the slaves keep running; `clanker` brings it back

commands
"""


def help_lines() -> list[str]:
    return [*HELP.splitlines(), *(f"  {u}" for u in prompt.USAGE.values())]


def details_lines(state: State, row: SlaveRow, last_task: str | None, paths: Paths | None = None) -> list[str]:
    beat = "-" if row.heartbeat_age_s is None else f"{row.heartbeat_age_s:.0f}s ago"
    lines = [f"{row.id}  {row.state}  phase {row.phase or '-'}  heartbeat {beat}  pane {row.pane or '-'}", ""]
    task_id = row.task or last_task
    t = state.tasks.get(task_id) if task_id else None
    if t is None:
        return [*lines, "no task yet"]
    if not row.task:
        lines.append(f"(last task it touched: {t.id})")
    notes = history.newest_fields(paths, t.id) if paths is not None else []
    return lines + describe(t).splitlines() + ([""] + notes if notes else [])


def log_lines(paths: Paths, task_id: str) -> list[str]:
    return (logs.tail(paths, task_id, 500) or f"no log for {task_id} yet").splitlines()
