"""`clanker task add | import | list | show | cancel | retry` (and `/task`, `/retry`, `/cancel`).

Titles and prompts are data: stored exactly as given (quotes, `$()`, newlines, unicode) and never
passed through a shell.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import IllegalTransition, UsageError
from ..state import archive
from ..state.events import Event, TaskCancelled, TaskRetried
from ..state.intake import DEFAULT_BRANCHES, Branches, added_event, get, import_events, parse_jsonl
from ..state.model import State, Task, TaskState
from ..state.store import Store
from ..text import sanitize
from . import Done, Echo
from .status import tasks_json


def add(store: Store, fields: dict[str, Any], branches: Branches = DEFAULT_BRANCHES) -> Done:
    created: list[str] = []

    def decide(st: State) -> list[Event]:
        ev = added_event(st, fields, branches=branches)
        created.append(ev.task)
        return [ev]

    store.transact(decide)
    return Done(0, created[0])


def add_from_cli(
    store: Store,
    branches: Branches,
    title: str,
    prompt: str | None,
    prompt_file: Path | None,
    description: str,
    paths: tuple[str, ...],
    priority: int,
    depends_on: tuple[str, ...],
    task_id: str | None,
) -> Done:
    if prompt and prompt_file:
        raise UsageError("give --prompt or --prompt-file, not both")
    if prompt_file:
        try:
            prompt = prompt_file.read_text(encoding="utf-8")
        except OSError as e:
            raise UsageError(f"{prompt_file}: can't read it ({e.strerror})") from None
        except UnicodeDecodeError:
            raise UsageError(f"{prompt_file}: not UTF-8 text: save it as UTF-8") from None
    fields = {
        "id": task_id,
        "title": title,
        "prompt": prompt,
        "description": description,
        "paths": list(paths),
        "priority": priority,
        "depends_on": list(depends_on),
    }
    return add(store, fields, branches)


def import_file(store: Store, path: Path, branches: Branches = DEFAULT_BRANCHES) -> Done:
    """flocks' JSONL: importing the same file twice adds nothing."""
    rows = parse_jsonl(path, branches)
    created: list[str] = []

    def decide(st: State) -> list[Event]:
        evs = import_events(st, rows, branches)
        created.extend(str(e.task_id) for e in evs)
        return evs

    store.transact(decide)
    return Done(0, f"imported {len(created)} task(s)" + (f": {', '.join(created)}" if created else ""))


def list_tasks(store: Store, as_json: bool, echo: Echo, everything: bool = False) -> Done:
    """The live tasks and the newest finished ones; `everything` reads the archive too."""
    state = store.state()
    old = archive.tasks_of(store.paths.archive, state.archive) if everything and state.archive.entries else []
    if as_json:
        echo(json.dumps(tasks_json(state, old), ensure_ascii=False, separators=(",", ":")))  # C encoder: one line
        return Done()
    for t in [*old, *state.tasks.values()]:
        title = sanitize(t.title).replace("\n", "⏎")
        echo(f"{t.id:<10} {t.state:<12} {(t.slave or t.author or '-'):<5} {title}")
    if state.archive.entries and not everything:
        echo(f"… and {len(state.archive)} older finished task(s): `clanker task list --all`")
    return Done()


def show(store: Store, task_id: str, echo: Echo) -> Done:
    echo(describe(get(store.state(), task_id)))
    return Done()


def cancel(store: Store, task_id: str) -> Done:
    def decide(st: State) -> list[Event]:
        t = get(st, task_id)
        if t.state in (TaskState.DONE, TaskState.CANCELLED, TaskState.SPLIT):
            raise UsageError(f"task {task_id} is {t.state}: nothing to cancel")
        return [TaskCancelled(actor=store.actor, task=task_id, reason="cancelled by the user")]

    store.transact(decide)
    return Done(0, f"cancelled {task_id}")


def retry(store: Store, task_id: str) -> Done:
    def decide(st: State) -> list[Event]:
        t = get(st, task_id)
        if t.state not in (TaskState.BLOCKED, TaskState.CANCELLED, TaskState.READY, TaskState.REWORK):
            raise UsageError(f"task {task_id} is {t.state}: only blocked or cancelled tasks can be retried")
        return [TaskRetried(actor=store.actor, task=task_id)]

    try:
        store.transact(decide)
    except IllegalTransition as e:
        raise UsageError(str(e)) from None
    return Done(0, f"{task_id} is ready again")


def retry_failed(store: Store) -> Done:
    """Every blocked task back in the queue, with its earlier attempts' errors in its next
    prompt (flocks' `retry --all-failed`)."""

    def decide(st: State) -> list[Event]:
        return [TaskRetried(actor=store.actor, task=t.id) for t in st.tasks.values() if t.state == TaskState.BLOCKED]

    done = store.transact(decide)
    if not done:
        return Done(0, "no blocked task to retry")
    ids = [e.task for e in done if isinstance(e, TaskRetried)]
    return Done(0, f"{len(ids)} task(s) ready again: {', '.join(ids)}")


def describe(t: Task) -> str:
    """Everything about one task (`clanker task show`, the TUI's details)."""
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
    return sanitize("\n".join(lines))
