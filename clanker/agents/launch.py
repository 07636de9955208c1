"""The one function through which every agent is started (DESIGN §9).

`prepare` gives the final argv, environment and stdin of an agent on this machine; an executor
(clanker/executors: ssh, a container) wraps that Process to run it elsewhere, without the slave
changing.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from ..system.proc import child_env
from .base import AgentRequest, Launch


class Process(msgspec.Struct, frozen=True):
    argv: list[str]
    cwd: Path
    env: dict[str, str]  # the whole environment it starts with
    stdin: str | None
    extra: dict[str, str] = msgspec.field(default_factory=dict)  # what clanker set in `env`: all a remote run gets
    hold_stdin: bool = False  # keep stdin open after `stdin` is written (a remote run's lifeline)


def prepare(req: AgentRequest, launch: Launch) -> Process:
    layers = (
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
    extra = {k: v for layer in layers for k, v in layer.items()}
    return Process(argv=list(launch.argv), cwd=launch.cwd, env=child_env(*layers), stdin=launch.stdin, extra=extra)
