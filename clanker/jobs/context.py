"""What a job needs from the slave running it."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..agents import adapter_for
from ..agents.base import AgentRequest
from ..agents.runner import AgentRun, RunResult
from ..config import AgentConfig, Config
from ..gate import GateResult
from ..heartbeat import Heart
from ..locks import launch_lock
from ..paths import Paths
from ..store import Store


@dataclass
class JobContext:
    cfg: Config
    paths: Paths
    store: Store
    sid: str
    worktree: Path
    heart: Heart
    say: Callable[[str], None]
    stopping: threading.Event = field(default_factory=threading.Event)
    current: AgentRun | None = None

    @property
    def repo(self) -> Path:
        return self.paths.repo

    @property
    def main(self) -> str:
        return self.cfg.mainline_branch

    def run_agent(
        self, agent: AgentConfig, role: str, task_id: str, attempt: int, prompt: str, resume: str | None = None
    ) -> RunResult:
        """Run an agent once, showing its progress in the pane and logging its raw stream."""
        prompt_file = self.paths.prompts / f"{task_id}-{role}-{attempt}.md"
        prompt_file.parent.mkdir(parents=True, exist_ok=True)
        prompt_file.write_text(prompt, encoding="utf-8")
        req = AgentRequest(role, prompt, task_id, self.sid, self.worktree, attempt, prompt_file, agent, resume)
        log = self.paths.attempt_log(task_id, attempt, "work" if role == "worker" else role)
        run = AgentRun(
            adapter_for(agent),
            req,
            log,
            lambda line: self.say(f"  │ {line}"),
            # Simultaneous agent starts can corrupt an agent's settings file: start one at a time.
            launch_guard=lambda: launch_lock(self.paths),
            on_start=lambda pgid: self.heart.update(agent_pgid=pgid),
        )
        self.current = run
        self.heart.update(phase=f"{role} agent")
        try:
            result = run.run()
        finally:
            self.current = None
            self.heart.update(agent_pgid=None)
        return result

    def record_gate(self, task_id: str, role: str, result: GateResult) -> None:
        self.store.emit(
            "gate.ran",
            task_id,
            slave=self.sid,
            role=role,
            passed=result.passed,
            seconds=round(result.seconds, 2),
            failed=result.failed,
            tail=result.output[-600:],
        )

    def backoff(self, n: int, base: float = 1.0, cap: float = 30.0) -> float:
        """Exponential backoff with full jitter; returns the delay waited (interrupted by a stop)."""
        delay = random.uniform(0, min(cap, base * 2**n))
        self.stopping.wait(delay)
        return delay
