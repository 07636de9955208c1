"""New tasks: their ids, the checks a new task must pass, and the `task.added` events for tasks
from the CLI, a flocks JSONL file, or the planner."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ..errors import UnknownTask, UsageError
from .events import Event, TaskAdded
from .fold import fold
from .model import State, Task

ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def next_id(state: State) -> str:
    n = len(state.tasks) + 1
    while f"T{n}" in state.tasks:
        n += 1
    return f"T{n}"


def check_id(task_id: str) -> None:
    if not ID_RE.fullmatch(task_id):
        raise UsageError(f"bad task id {task_id!r}: use letters, digits, '.', '_' or '-' (at most 64)")


def added_event(state: State, fields: dict[str, Any], coming: frozenset[str] = frozenset()) -> TaskAdded:
    """The event that adds a task; `coming` are ids added in the same batch (forward references)."""
    task_id = fields.get("id") or next_id(state)
    check_id(task_id)
    if task_id in state.tasks:
        raise UsageError(f"task {task_id} exists already: pick another --id")
    title = fields.get("title") or ""
    if not str(title).strip():
        raise UsageError("a task needs a title")
    depends_on = _strs(fields.get("depends_on"))
    unknown = [d for d in depends_on if d not in state.tasks and d not in coming]
    if unknown:
        raise UsageError(f"task {task_id} depends on {', '.join(unknown)}, which do not exist: add them first")
    return TaskAdded(
        actor="cli",
        task=task_id,
        title=str(title),
        prompt=str(fields.get("prompt") or title),
        description=str(fields.get("description") or ""),
        priority=int(fields.get("priority") or 0),
        paths=tuple(_strs(fields.get("paths"))),
        tags=tuple(_strs(fields.get("tags"))),
        depends_on=tuple(depends_on),
        branch=str(fields["branch"]) if fields.get("branch") else None,
        parent=str(fields["parent"]) if fields.get("parent") else None,
    )


def _strs(value: Any) -> list[str]:
    """A list of strings; one string alone is one item (not one item per character)."""
    if isinstance(value, str):
        return [value] if value else []
    return [str(v) for v in value or []]


def parse_jsonl(path: Path) -> list[dict[str, Any]]:
    """flocks' task file: one JSON object per line with id, title, prompt, description, branch."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise UsageError(f"{path}: can't read it ({e.strerror})") from None
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise UsageError(f"{path}:{n}: not valid JSON ({e.msg})") from None
        if not isinstance(obj, dict):
            raise UsageError(f"{path}:{n}: each line must be a JSON object")
        if not (obj.get("title") or obj.get("prompt")):
            raise UsageError(f"{path}:{n}: a task needs a title or a prompt")
        obj.setdefault("title", _title_from(str(obj.get("prompt"))))
        if obj.get("id") is not None:
            if isinstance(obj["id"], bool) or not isinstance(obj["id"], str | int):
                raise UsageError(f"{path}:{n}: id must be a string, got {obj['id']!r}")
            obj["id"] = str(obj["id"])
        try:
            obj["priority"] = int(obj.get("priority") or 0)
        except (TypeError, ValueError):
            raise UsageError(f"{path}:{n}: priority must be a whole number") from None
        rows.append(obj)
    return rows


def _title_from(prompt: str) -> str:
    first = prompt.strip().splitlines()[0] if prompt.strip() else "untitled"
    return first if len(first) <= 80 else first[:79] + "…"


def import_events(state: State, rows: list[dict[str, Any]]) -> list[Event]:
    """The events that add these rows as tasks. Importing the same rows twice adds nothing: rows
    are matched by id, or by title and prompt when they have no id."""
    coming = frozenset(str(r["id"]) for r in rows if r.get("id"))
    evs: list[Event] = []
    st = state
    for row in rows:
        if row.get("id") and row["id"] in st.tasks:
            continue
        if not row.get("id") and any(
            t.title == row.get("title") and t.prompt == str(row.get("prompt") or row.get("title"))
            for t in st.tasks.values()
        ):
            continue
        ev = added_event(st, row, coming)
        evs.append(ev)
        st = fold(st, [(ev, st.offset)])
    return evs


def get(state: State, task_id: str) -> Task:
    t = state.tasks.get(task_id)
    if t is None:
        raise UnknownTask(task_id)
    return t
