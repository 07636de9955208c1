"""Task commands: add, import (flocks' JSONL), list, show, cancel, retry.

Titles and prompts are data: stored exactly as given (quotes, `$()`, newlines, unicode) and never
passed through a shell.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ..errors import IllegalTransition, UnknownTask, UsageError
from ..text import sanitize
from .events import Event, PlanRequested, TaskAdded, TaskCancelled, TaskRetried
from .fold import fold
from .model import State, Task, TaskState
from .store import Store

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


def add(store: Store, fields: dict[str, Any]) -> str:
    created: list[str] = []

    def decide(st: State) -> list[Event]:
        ev = added_event(st, fields)
        created.append(ev.task)
        return [ev]

    store.transact(decide)
    return created[0]


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


def import_file(store: Store, path: Path) -> list[str]:
    rows = parse_jsonl(path)
    created: list[str] = []

    coming = frozenset(str(r["id"]) for r in rows if r.get("id"))

    def decide(st: State) -> list[Event]:
        evs: list[Event] = []
        for row in rows:
            # Importing the same file twice adds nothing: rows are matched by id, or by title and
            # prompt when they have no id.
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
        created.extend(str(e.task_id) for e in evs)
        return evs

    store.transact(decide)
    return created


def get(state: State, task_id: str) -> Task:
    t = state.tasks.get(task_id)
    if t is None:
        raise UnknownTask(task_id)
    return t


def cancel(store: Store, task_id: str) -> None:
    def decide(st: State) -> list[Event]:
        t = get(st, task_id)
        if t.state in (TaskState.DONE, TaskState.CANCELLED, TaskState.SPLIT):
            raise UsageError(f"task {task_id} is {t.state}: nothing to cancel")
        return [TaskCancelled(actor="cli", task=task_id, reason="cancelled by the user")]

    store.transact(decide)


def retry(store: Store, task_id: str) -> None:
    def decide(st: State) -> list[Event]:
        t = get(st, task_id)
        if t.state not in (TaskState.BLOCKED, TaskState.CANCELLED, TaskState.READY, TaskState.REWORK):
            raise UsageError(f"task {task_id} is {t.state}: only blocked or cancelled tasks can be retried")
        return [TaskRetried(actor="cli", task=task_id)]

    try:
        store.transact(decide)
    except IllegalTransition as e:
        raise UsageError(str(e)) from None


def show(t: Task) -> str:
    return sanitize(_show(t))


def _show(t: Task) -> str:
    lines = [
        f"{t.id}  {t.title}",
        f"state     {t.state}" + (f"  (slave {t.slave})" if t.slave else ""),
        f"branch    {t.branch}",
        f"attempts  {t.attempts}   judge rounds {t.judge_rounds}   conflicts {t.conflicts}",
        f"tokens    work {t.work.tokens} (${t.work.cost_usd:.4f})   judge {t.judge.tokens} (${t.judge.cost_usd:.4f})",
    ]
    if t.author:
        lines.append(f"author    {t.author}")
    if t.priority or t.tags:
        lines.append(f"priority  {t.priority}   tags {', '.join(t.tags) or '-'}")
    if t.paths:
        lines.append(f"paths     {', '.join(t.paths)}")
    if t.depends_on:
        lines.append(f"depends   {', '.join(t.depends_on)}")
    if t.sha:
        lines.append(f"landed    {t.sha}")
    if t.reason:
        lines.append(f"reason    {t.reason}")
    if t.summary:
        lines.append(f"summary   {t.summary}")
    lines += ["", "prompt:", t.prompt]
    if t.description:
        lines += ["", "description:", t.description]
    return "\n".join(lines)


def request_plan(store: Store, cfg_has_planner: bool, has_docs: bool, split: str | None) -> str:
    """Queue a planner run: from the plan docs, or to split one task. Returns what was asked."""
    if not cfg_has_planner:
        raise UsageError("no planner: set `planner: {agent: same}` (the default) in clanker.yaml, not `none`")
    if split is None and not has_docs:
        raise UsageError("nothing to plan from: list your plan documents in clanker.yaml, `planner: {docs: [PLAN.md]}`")

    def decide(st: State) -> list[Event]:
        if split is not None:
            t = get(st, split)
            if t.state not in (TaskState.READY, TaskState.BLOCKED, TaskState.REWORK):
                raise UsageError(f"task {split} is {t.state}: only ready, blocked or rework tasks can be split")
        return [PlanRequested(actor="cli", request=split or "", reason="asked")]

    store.transact(decide)
    return f"planner asked to split {split}" if split else "planner asked to plan from the docs"
