"""The adapter interface every agent implements (DESIGN §7).

An adapter builds the launch (argv, env, stdin) for a prompt in a worktree, parses the agent's
structured stream into readable progress lines and a result, and classifies the outcome from the
result's fields, because exit codes lie.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import NamedTuple, Protocol

import msgspec

from ..config import AgentConfig, Price
from ..state.usage import Usage
from ..text import sanitize

__all__ = ["sanitize"]


class Outcome(StrEnum):
    OK = "ok"
    TRANSIENT = "transient"
    OUT_OF_BUDGET = "out_of_budget"
    AUTH = "auth"
    PERMANENT = "permanent"


class AgentRequest(msgspec.Struct, frozen=True):
    role: str  # worker | judge | planner
    prompt: str
    task_id: str
    slave: str
    worktree: Path
    attempt: int
    prompt_file: Path
    config: AgentConfig
    resume_session: str | None = None
    env: dict[str, str] = msgspec.field(default_factory=dict)  # credential and per-run additions
    prices: dict[str, Price] = msgspec.field(default_factory=dict)


class Launch(msgspec.Struct, frozen=True):
    argv: list[str]
    cwd: Path
    env: dict[str, str] = msgspec.field(default_factory=dict)  # added to the slave's environment
    stdin: str | None = None  # None: stdin is /dev/null


class Ran(NamedTuple):
    """A shell command the agent ran, and its exit code when the agent's stream says it (None: not said)."""

    command: str
    exit: int | None


class AgentResult(msgspec.Struct):
    text: str = ""
    usage: Usage = Usage()
    session_id: str | None = None
    is_error: bool = False
    error: str = ""
    error_kind: str | None = None  # a kind the agent itself stated (the fake agent does)
    files: list[str] = msgspec.field(default_factory=list)
    commands: list[Ran] = msgspec.field(default_factory=list)  # in the order the agent ran them
    reset_at: float | None = None  # out of budget until then (epoch seconds), when the agent says
    model: str | None = None
    api_status: int | None = None  # the HTTP status of the API error the agent reported
    subtype: str = ""  # the agent's own result kind (claude: success, error_max_turns, …)
    agent_error: str | None = None  # an error code the agent stated (claude: authentication_failed, …)
    complete: bool = True  # False when the stream ended without the agent's final result
    rejected: bool = False  # a rate-limit event said requests are rejected until `reset_at`


class StreamParser(Protocol):
    def feed(self, line: str) -> list[str]:
        """One line of the agent's stdout → zero or more readable progress lines."""
        ...

    def files_so_far(self) -> list[str]:
        """Files the stream has said the agent wrote so far (read while it runs; no side effects)."""
        ...

    def feed_stderr(self, line: str) -> list[str]: ...

    def usage_so_far(self) -> tuple[Usage, str | None]:
        """What the stream has reported the run used so far, and the model (to price tokens
        the agent reports without a cost); read while it runs, no side effects."""
        ...

    def result(self) -> AgentResult: ...


class Adapter(Protocol):
    name: str

    def launch(self, req: AgentRequest) -> Launch: ...

    def parser(self) -> StreamParser: ...

    def classify(self, result: AgentResult, exit_code: int | None) -> Outcome: ...

    def auth_fix(self) -> str:
        """One line telling the person how to give this agent credentials."""
        ...


VERDICT = re.compile(r"^\s*VERDICT:[ \t]*(done|rework|blocked)\b[ \t:—-]*(.*)$", re.IGNORECASE | re.MULTILINE)


def parse_verdict(text: str) -> tuple[str, str] | None:
    """The last `VERDICT: done|rework|blocked [reasons]` line of a judge's answer."""
    found = VERDICT.findall(text)
    if not found:
        return None
    verdict, reasons = found[-1]
    return verdict.lower(), reasons.strip()
