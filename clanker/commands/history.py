"""`clanker history [TASK] [--week W] [--json]`: the notes clanker keeps of every attempt,
judgement and planner-relevant event (`.clanker/history/`), as people and the planner read them."""

from __future__ import annotations

import datetime as dt
import json
import re

from ..config import Config
from ..errors import UsageError
from ..jobs.contextpack import Note
from ..jobs.prompts import history_notes
from ..jobs.rollup import week_of
from ..state.paths import Paths
from . import Done, Echo

WEEK = re.compile(r"^(\d{4})-W(\d{2})$")


def _outcome(note: Note) -> str:
    """A note's line in the list: its outcome (a judgement's verdict), else its first line of text."""
    m = re.search(r"^## (?:Outcome|Verdict)\n(.+)$", note.text, re.M)
    if m:
        return m.group(1).strip()
    return next((ln.strip() for ln in note.text.splitlines() if ln.strip() and not ln.startswith("#")), "")


def history(cfg: Config, task: str | None, week: str | None, as_json: bool, echo: Echo) -> Done:
    if week is not None and not WEEK.match(week):
        raise UsageError(f"--week takes an ISO week like 2026-W48, got {week!r}")
    notes = history_notes(Paths(cfg.repo, cfg.worktrees))
    if task is not None:
        notes = [n for n in notes if n.task == task]
        if not notes:
            raise UsageError(f"no history for {task!r} (yet): `clanker task list` shows the tasks")
    if week is not None:
        notes = [n for n in notes if week_of(n.mtime) == week]
    notes.sort(key=lambda n: n.mtime, reverse=task is None)
    if as_json:
        rows = [
            {"key": n.key, "task": n.task or None, "week": week_of(n.mtime), "at": n.mtime, "files": list(n.paths),
             "rollup": n.rollup, "text": n.text}
            for n in notes
        ]  # fmt: skip
        echo(json.dumps(rows, indent=1))
        return Done(0)
    if task is not None:
        echo("\n".join(n.text.rstrip() for n in notes))
        return Done(0)
    if not notes:
        return Done(0, "no history yet" + (f" in {week}" if week else ""))
    for n in notes:
        when = dt.datetime.fromtimestamp(n.mtime).strftime("%Y-%m-%d %H:%M")
        echo(f"{n.key:<24} {when}  {_outcome(n)[:100]}")
    return Done(0)
