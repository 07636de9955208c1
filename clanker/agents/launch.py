"""The one function through which every agent is started (DESIGN §9).

Today it runs locally; a remote executor (ssh, kubectl exec, devcontainer exec) wraps the final
argv, maps the worktree path and moves branches here, without the slave changing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .base import AgentRequest, Launch


@dataclass(frozen=True)
class Process:
    argv: list[str]
    cwd: Path
    env: dict[str, str]
    stdin: str | None


def prepare(req: AgentRequest, launch: Launch) -> Process:
    env = dict(os.environ)
    # The agent must not reach the slave's tmux server or think it is inside a terminal multiplexer.
    for k in ("TMUX", "TMUX_PANE"):
        env.pop(k, None)
    env.update(
        {
            "CLANKER_ROLE": req.role,
            "CLANKER_TASK_ID": req.task_id,
            "CLANKER_SLAVE": req.slave,
            "CLANKER_WORKTREE": str(req.worktree),
            "CLANKER_PROMPT_FILE": str(req.prompt_file),
            "CLANKER_ATTEMPT": str(req.attempt),
            "CLAUDE_CODE_DISABLE_TERMINAL_TITLE": "1",
        }
    )
    env.update(req.config.env)
    env.update(req.env)
    env.update(launch.env)
    return Process(argv=list(launch.argv), cwd=launch.cwd, env=env, stdin=launch.stdin)
