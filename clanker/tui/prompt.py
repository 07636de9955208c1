"""The `/` prompt: parse a command line, and complete commands and ids. Pure functions.

A bad command is a UsageError with a one-line message; the TUI shows it inline.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

from ..errors import UsageError

# name → usage (the order is the order of the help overlay and of completions)
USAGE: dict[str, str] = {
    "task": "/task add TITLE [--path P]… [--priority N] [--depends-on T]… [--prompt TEXT] [--id ID]",
    "slaves": "/slaves N            how many slaves (saved in clanker.yaml)",
    "cap": "/cap N [WHY]|off     run at most N agents at once, below slaves (until /cap off)",
    "pause": "/pause [cN]          pause one slave, or all (they finish the job in hand)",
    "resume": "/resume [cN]         resume one slave, or all",
    "retry": "/retry T             give a blocked or cancelled task another round",
    "cancel": "/cancel T            cancel a task (its branch is kept)",
    "land": "/land [T]…           mainline submitted tasks now, you being the judge",
    "plan": "/plan [T]            plan tasks from the plan docs, or split task T",
    "attach": "/attach cN           switch to that slave's pane",
    "doctor": "/doctor              check tmux, git, config, agents, panes, locks",
    "help": "/help                keys and commands",
    "quit": "/quit                leave (slaves keep running)",
}
TASK_OPTIONS = {
    "--path": "paths",
    "--priority": "priority",
    "--depends-on": "depends_on",
    "--prompt": "prompt",
    "--id": "id",
}
SLAVE_RE = re.compile(r"c?(\d{1,3})")
MAX_SLAVES = 64  # clanker.yaml's own limit


@dataclass(frozen=True)
class Command:
    name: str
    args: tuple[str, ...] = ()
    fields: dict[str, Any] = field(default_factory=dict)  # /task add: the task's fields


def _slave(word: str) -> str:
    m = SLAVE_RE.fullmatch(word)
    if not m or int(m.group(1)) < 1:
        raise UsageError(f"{word!r} is not a slave: use c1, c2, …")
    return f"c{int(m.group(1))}"


def _words(line: str) -> list[str]:
    try:
        return shlex.split(line)
    except ValueError as e:
        raise UsageError(f"can't read that line: {e}") from None


def parse(line: str) -> Command:
    """Parse the text typed after `/` (a leading `/` is accepted too)."""
    words = _words(line.strip().removeprefix("/"))
    if not words:
        raise UsageError("type a command: /help lists them")
    name, args = words[0].lower(), words[1:]
    if name not in USAGE:
        near = [n for n in USAGE if n.startswith(name[:2])]
        hint = f" — did you mean /{near[0]}?" if near else " — /help lists them"
        raise UsageError(f"unknown command /{name}{hint}")
    usage = USAGE[name].split("  ")[0].strip()
    if name == "task":
        return _task(args)
    if name == "slaves":
        if len(args) != 1 or not args[0].isdigit() or not 1 <= int(args[0]) <= MAX_SLAVES:
            raise UsageError(f"usage: {usage} (N from 1 to {MAX_SLAVES})")
        return Command(name, (str(int(args[0])),))
    if name == "cap":
        if args[:1] == ["off"] and len(args) == 1:
            return Command(name, ("off",))
        if not args or not args[0].isdigit() or not 1 <= int(args[0]) <= MAX_SLAVES:
            raise UsageError(f"usage: {usage} (N from 1 to {MAX_SLAVES})")
        return Command(name, (str(int(args[0])), " ".join(args[1:])))
    if name in ("pause", "resume"):
        if len(args) > 1:
            raise UsageError(f"usage: {usage}")
        return Command(name, tuple(_slave(a) for a in args))
    if name == "attach":
        if len(args) != 1:
            raise UsageError(f"usage: {usage}")
        return Command(name, (_slave(args[0]),))
    if name in ("retry", "cancel"):
        if len(args) != 1:
            raise UsageError(f"usage: {usage}")
        return Command(name, (args[0],))
    if name == "land":
        return Command(name, tuple(args))
    if name == "plan":
        if len(args) > 1:
            raise UsageError(f"usage: {usage}")
        return Command(name, tuple(args))
    if args:
        raise UsageError(f"/{name} takes no arguments")
    return Command(name)


def _task(args: list[str]) -> Command:
    if not args or args[0] != "add":
        raise UsageError(f"usage: {USAGE['task']}")
    fields: dict[str, Any] = {"paths": [], "depends_on": []}
    title: list[str] = []
    it = iter(args[1:])
    for word in it:
        if word.startswith("--"):
            key = TASK_OPTIONS.get(word)
            value = next(it, None)
            if key is None:
                raise UsageError(f"unknown option {word}: {', '.join(TASK_OPTIONS)}")
            if value is None:
                raise UsageError(f"{word} needs a value")
            if key in ("paths", "depends_on"):
                fields[key].append(value)
            elif key == "priority":
                try:
                    fields[key] = int(value)
                except ValueError:
                    raise UsageError(f"--priority must be a whole number, got {value!r}") from None
            else:
                fields[key] = value
        else:
            title.append(word)
    if not title:
        raise UsageError("a task needs a title: /task add Fix the login form")
    fields["title"] = " ".join(title)
    return Command("task", ("add",), fields)


# --- completion ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ids:
    """What can complete each kind of argument."""

    slaves: tuple[str, ...] = ()
    retryable: tuple[str, ...] = ()  # blocked, cancelled, rework or ready tasks
    cancellable: tuple[str, ...] = ()  # live tasks
    landable: tuple[str, ...] = ()  # submitted tasks


@dataclass(frozen=True)
class Completion:
    line: str  # the line after completion (unchanged when there is nothing to add)
    options: tuple[str, ...] = ()  # what the last word could become


def _candidates(words: list[str], ids: Ids) -> list[str]:
    if len(words) <= 1:
        return list(USAGE)
    name = words[0].lower()
    position = len(words) - 1
    if name == "task":
        return ["add"] if position == 1 else [o for o in TASK_OPTIONS if words[-2] not in TASK_OPTIONS]
    if position != 1 and name != "land":
        return []
    return {
        "cap": ["off"],
        "pause": list(ids.slaves),
        "resume": list(ids.slaves),
        "attach": list(ids.slaves),
        "retry": list(ids.retryable),
        "cancel": list(ids.cancellable),
        "land": [t for t in ids.landable if t not in words[1:-1]],
    }.get(name, [])


def complete(line: str, ids: Ids) -> Completion:
    """Complete the last word of `line` (the text after `/`): to the only match, else to the
    longest common prefix of the matches, listing them."""
    words = line.split(" ")
    last = words[-1]
    matches = [c for c in _candidates(words, ids) if c.startswith(last)]
    if not matches:
        return Completion(line)
    if len(matches) == 1:
        return Completion(" ".join([*words[:-1], matches[0]]) + " ", tuple(matches))
    prefix = os.path.commonprefix(matches)
    return Completion(" ".join([*words[:-1], prefix]), tuple(matches))


def hint(line: str) -> str:
    """The usage of the command being typed (shown beside the prompt)."""
    name = line.strip().split(" ")[0].lower() if line.strip() else ""
    if name in USAGE:
        return USAGE[name].split("  ")[0].strip()
    matches = [n for n in USAGE if n.startswith(name)]
    return "  ".join(f"/{m}" for m in matches) if matches else "unknown command"
