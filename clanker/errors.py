"""Typed errors. Each one owns a one-line message that says what is wrong and what to do."""

from __future__ import annotations


class ClankerError(Exception):
    """A known failure: printed as one line, exit code 1."""

    exit_code = 1


class UsageError(ClankerError):
    """Bad input from the user (arguments, config): exit code 2."""

    exit_code = 2


class ConfigError(UsageError):
    """clanker.yaml is invalid; the message names the file, line and key."""

    def __init__(self, path: str, line: int | None, key: str, problem: str) -> None:
        where = f"{path}:{line}" if line else path
        super().__init__(f"{where}: {key}: {problem}")
        self.path = path
        self.line = line
        self.key = key


class NotARepoError(UsageError):
    def __init__(self, cwd: str) -> None:
        super().__init__(f"{cwd} is not inside a git repository: cd into one, or run `git init` first")


class IllegalTransition(ClankerError):
    """A task event that its current state does not allow (the transition table says no)."""

    def __init__(self, task: str, event: str, state: str | None) -> None:
        super().__init__(f"task {task}: can't apply {event} in state {state or 'absent'}")
        self.task = task
        self.event = event
        self.state = state


class UnknownTask(UsageError):
    def __init__(self, task: str) -> None:
        super().__init__(f"no task {task!r}: `clanker task list` shows the ids")


class TmuxError(ClankerError):
    """A tmux command failed; carries the subcommand and tmux's stderr. Exit code 5: clanker's
    own means to run slaves failed — not the tasks (1), not the input (2)."""

    exit_code = 5

    def __init__(self, args: list[str], stderr: str) -> None:
        super().__init__(f"tmux {' '.join(args[:2])} failed: {stderr.strip() or 'no message'}")
        self.args_ = args
        self.stderr = stderr


class GitError(ClankerError):
    """A git command failed; carries the command and git's stderr."""

    def __init__(self, args: list[str], stderr: str, returncode: int) -> None:
        first = (stderr.strip().splitlines() or ["no message"])[0]
        super().__init__(f"git {' '.join(args[:3])} failed ({returncode}): {first}")
        self.args_ = args
        self.stderr = stderr
        self.returncode = returncode
