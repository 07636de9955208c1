"""Adapter for any program: the prompt on stdin and in $CLANKER_PROMPT_FILE, cwd = the worktree."""

from __future__ import annotations

from ..state.usage import Usage
from .base import AgentRequest, AgentResult, Launch, Outcome

MAX_RESULT_CHARS = 8000


class TextParser:
    """Plain text output: every line is progress; the result is the tail of it."""

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._size = 0

    def feed(self, line: str) -> list[str]:
        self._lines.append(line)
        self._size += len(line) + 1
        while self._size > MAX_RESULT_CHARS and len(self._lines) > 1:
            self._size -= len(self._lines.pop(0)) + 1
        return [line] if line.strip() else []

    def files_so_far(self) -> list[str]:
        return []

    def usage_so_far(self) -> tuple[Usage, str | None]:
        return Usage(), None  # a plain command reports no usage

    def feed_stderr(self, line: str) -> list[str]:
        return self.feed(line)

    def result(self) -> AgentResult:
        return AgentResult(text="\n".join(self._lines))


class CommandAdapter:
    name = "command"

    def launch(self, req: AgentRequest) -> Launch:
        return Launch([*req.config.command, *req.config.args], req.worktree, stdin=req.prompt)

    def parser(self) -> TextParser:
        return TextParser()

    def auth_fix(self) -> str:
        return "the agent command failed to authenticate: check its credentials (see `clanker doctor`)"

    def classify(self, result: AgentResult, exit_code: int | None) -> Outcome:
        if exit_code == 0:
            return Outcome.OK
        result.is_error = True
        result.error = result.error or f"exited with code {exit_code}: {result.text.strip()[-300:]}"
        return Outcome.PERMANENT
