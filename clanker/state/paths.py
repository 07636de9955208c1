"""Where everything lives under `.clanker/` (DESIGN §3)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Paths:
    repo: Path  # the repository's top-level directory (realpath)
    worktrees_root: Path | None = None

    @property
    def state_dir(self) -> Path:
        return self.repo / ".clanker"

    @property
    def events(self) -> Path:
        return self.state_dir / "events.log"

    @property
    def snapshot(self) -> Path:
        return self.state_dir / "state.json"

    @property
    def heartbeats(self) -> Path:
        return self.state_dir / "heartbeat"

    def heartbeat(self, slave: str) -> Path:
        return self.heartbeats / f"{slave}.json"

    @property
    def logs(self) -> Path:
        return self.state_dir / "logs"

    def attempt_log(self, task: str, attempt: int, role: str = "work") -> Path:
        """Raw agent stream of one attempt; the readable rendering sits beside it as `.txt`."""
        name = f"{attempt}.jsonl" if role == "work" else f"{role}-{attempt}.jsonl"
        return self.logs / task / name

    @property
    def history(self) -> Path:
        return self.state_dir / "history"

    @property
    def locks(self) -> Path:
        return self.state_dir / "locks"

    @property
    def worktrees(self) -> Path:
        return self.worktrees_root or self.state_dir / "worktrees"

    def worktree(self, slave: str) -> Path:
        return self.worktrees / slave

    def scratch(self, name: str) -> Path:
        """A throwaway worktree of clanker's own (the gate preflight's)."""
        return self.worktrees / name

    @property
    def setup(self) -> Path:
        return self.state_dir / "setup"

    def setup_state(self, name: str) -> Path:
        """When the worktree `name` was last set up, and for which inputs."""
        return self.setup / f"{name}.json"

    def setup_log(self, name: str) -> Path:
        return self.logs / "setup" / f"{name}.log"

    @property
    def prompts(self) -> Path:
        return self.state_dir / "prompts"

    def ensure(self) -> None:
        for d in (self.state_dir, self.heartbeats, self.logs, self.history, self.locks, self.prompts):
            d.mkdir(parents=True, exist_ok=True)
