"""New tasks: their ids, the checks a new task must pass, and the `task.added` events for tasks
from the CLI, a flocks JSONL file, or the planner."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import msgspec

from ..config.model import DEFAULT_BRANCH_PREFIX, DEFAULT_MAIN, Config
from ..errors import UnknownTask, UsageError
from .events import Event, TaskAdded
from .fold import fold
from .model import State, Task, prompt_key

ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# git's refname rules (git-check-ref-format(1)): no control characters, space, ~ ^ : ? * [ \,
# no "..", "@{", "//", no component starting with "." or ending with ".lock", no "." or "/" at the end.
_REF_BAD = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//|(^|/)\.|\.lock(/|$)|[./]$")


class Branches(msgspec.Struct, frozen=True):
    """Where task branches may live: under `prefix`, and never the mainline itself."""

    main: str = DEFAULT_MAIN
    prefix: str = DEFAULT_BRANCH_PREFIX

    @classmethod
    def of(cls, cfg: Config) -> Branches:
        return cls(cfg.mainline_branch, cfg.branch_prefix)

    def default(self, task_id: str) -> str:
        return f"{self.prefix}{task_id}"

    def check(self, branch: str) -> None:
        if branch == self.main or not branch.startswith(self.prefix) or branch == self.prefix:
            raise UsageError(
                f"branch {branch!r} is not a task branch: it must be under {self.prefix} "
                f"(and never {self.main}); leave it out and clanker names it {self.prefix}<id>"
            )
        self.check_safe(branch)

    def check_safe(self, branch: str) -> None:
        """What a branch clanker commits to must be whatever its prefix: a valid name, not main."""
        if branch == self.main:
            raise UsageError(f"branch {branch!r} is the mainline: a task never commits to it")
        if _REF_BAD.search(branch) or branch in ("", "@"):
            raise UsageError(f"branch {branch!r} is not a valid git branch name (see `git check-ref-format`)")


DEFAULT_BRANCHES = Branches()  # task branches under clanker/, never main


def next_id(state: State) -> str:
    n = state.total + 1
    while state.known(f"T{n}"):
        n += 1
    return f"T{n}"


def check_id(task_id: str) -> None:
    if not ID_RE.fullmatch(task_id):
        raise UsageError(f"bad task id {task_id!r}: use letters, digits, '.', '_' or '-' (at most 64)")


def added_event(
    state: State,
    fields: dict[str, Any],
    coming: frozenset[str] = frozenset(),
    branches: Branches = DEFAULT_BRANCHES,
) -> TaskAdded:
    """The event that adds a task; `coming` are ids added in the same batch (forward references).
    Raises UsageError for anything a task can't be made of."""
    task_id = fields.get("id")
    if task_id is None:
        task_id = next_id(state)
    if not isinstance(task_id, str):
        raise UsageError(f"a task id must be a string, got {task_id!r}")
    check_id(task_id)
    if state.known(task_id):
        raise UsageError(f"task {task_id} exists already: pick another --id")
    title = _text(fields, "title")
    if not title.strip():
        raise UsageError("a task needs a title")
    prompt = _text(fields, "prompt")
    description = _text(fields, "description")
    branch = _text(fields, "branch") or branches.default(task_id)
    branches.check(branch)
    depends_on = _strs(fields.get("depends_on"), "depends_on")
    unknown = [d for d in depends_on if not state.known(d) and d not in coming]
    if unknown:
        raise UsageError(f"task {task_id} depends on {', '.join(unknown)}, which do not exist: add them first")
    return TaskAdded(
        actor="cli",
        task=task_id,
        title=title,
        prompt=prompt or title,
        description=description,
        priority=_priority(fields.get("priority")),
        paths=tuple(_strs(fields.get("paths"), "paths")),
        tags=tuple(_strs(fields.get("tags"), "tags")),
        depends_on=tuple(depends_on),
        # The default branch is not written: the fold names it, so lines stay as they were.
        branch=branch if branch != DEFAULT_BRANCH_PREFIX + task_id else None,
        parent=_text(fields, "parent") or None,
        origin=_text(fields, "origin"),
    )


def _text(fields: dict[str, Any], key: str) -> str:
    value = fields.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise UsageError(f"{key} must be text, got {value!r}"[:200])
    return value


def _priority(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"priority must be a whole number, got {value!r}"[:200])
    return value


def _strs(value: Any, key: str) -> list[str]:
    """A list of strings; one string alone is one item (not one item per character)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise UsageError(f"{key} must be a list of strings, got {value!r}"[:200])
    return [v for v in value if v]


def parse_jsonl(path: Path, branches: Branches = DEFAULT_BRANCHES) -> list[dict[str, Any]]:
    """flocks' task file: one JSON object per line with id, title, prompt, description, branch."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise UsageError(f"{path}: can't read it ({e.strerror})") from None
    except UnicodeDecodeError as e:
        at = path.read_bytes()[: e.start].count(b"\n") + 1
        raise UsageError(f"{path}:{at}: not UTF-8 text (byte {e.start}): save the file as UTF-8") from None
    return parse_jsonl_text(text, str(path), branches)


def parse_jsonl_text(text: str, path: str, branches: Branches = DEFAULT_BRANCHES) -> list[dict[str, Any]]:
    """The rows of JSONL task text (`path` names it in errors: a file, or the command that printed it)."""
    rows = []
    seen: dict[str, int] = {}
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
        if obj.get("id") is not None:
            if isinstance(obj["id"], bool) or not isinstance(obj["id"], str | int):
                raise UsageError(f"{path}:{n}: id must be a string, got {obj['id']!r}"[:200])
            row_id = obj["id"] = str(obj["id"])
            if row_id in seen:
                raise UsageError(f"{path}:{n}: id {row_id} is already on line {seen[row_id]}: ids must be unique")
            seen[row_id] = n
        try:
            if obj.get("title") is None:
                obj["title"] = _title_from(_text(obj, "prompt"))
            # Every field is checked here, so a bad one is reported with its line.
            _strs(obj.get("depends_on"), "depends_on")
            added_event(
                State(),
                {**obj, "id": "T1" if obj.get("id") is None else obj["id"], "depends_on": None},
                branches=branches,
            )
        except UsageError as e:
            raise UsageError(f"{path}:{n}: {e}") from None
        rows.append(obj)
    return rows


def _title_from(prompt: str) -> str:
    first = prompt.strip().splitlines()[0] if prompt.strip() else "untitled"
    return first if len(first) <= 80 else first[:79] + "…"


def import_events(state: State, rows: list[dict[str, Any]], branches: Branches = DEFAULT_BRANCHES) -> list[Event]:
    """The events that add these rows as tasks. Importing the same rows twice adds nothing: rows
    are matched by id, or by title and prompt when they have no id."""
    coming = frozenset(str(r["id"]) for r in rows if r.get("id"))
    evs: list[Event] = []
    st = state
    for row in rows:
        if row.get("id") and st.known(str(row["id"])):
            continue
        title, prompt = row.get("title"), str(row.get("prompt") or row.get("title"))
        if not row.get("id") and (
            any(t.title == title and t.prompt == prompt for t in st.tasks.values())
            or prompt_key(str(title), prompt) in st.archive.keys
        ):
            continue
        ev = added_event(st, row, coming, branches)
        evs.append(ev)
        st = fold(st, [(ev, st.offset)])
    return evs


def get(state: State, task_id: str) -> Task:
    t = state.task(task_id)
    if t is None:
        raise UnknownTask(task_id)
    return t
