"""The one function through which every agent is started (DESIGN §9).

Today it runs locally; a remote executor (ssh, kubectl exec, devcontainer exec) wraps the final
argv, maps the worktree path and moves branches here, without the slave changing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..system.proc import child_env
from .base import AgentRequest, Launch


@dataclass(frozen=True)
class Process:
    argv: list[str]
    cwd: Path
    env: dict[str, str]
    stdin: str | None


def prepare(req: AgentRequest, launch: Launch) -> Process:
    env = child_env(
        {
            "CLANKER_ROLE": req.role,
            "CLANKER_TASK_ID": req.task_id,
            "CLANKER_SLAVE": req.slave,
            "CLANKER_WORKTREE": str(req.worktree),
            "CLANKER_PROMPT_FILE": str(req.prompt_file),
            "CLANKER_ATTEMPT": str(req.attempt),
            "CLAUDE_CODE_DISABLE_TERMINAL_TITLE": "1",
        },
        req.config.env,
        req.env,
        launch.env,
    )
    return Process(argv=list(launch.argv), cwd=launch.cwd, env=env, stdin=launch.stdin)
