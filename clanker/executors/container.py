"""A container as an executor: an existing engine's exec (`docker exec -i NAME`, `podman exec -i
NAME`, `devcontainer exec --workspace-folder .`), with the repository mounted inside it at
`workspace_mount` (flocks' setting). Worktrees are made on this machine by this machine's git
and seen by the container through the mount, so only paths change: nothing is copied."""

from __future__ import annotations

from pathlib import Path

import msgspec

from ..agents.launch import Process
from ..config import ExecutorConfig
from ..errors import ConfigError
from . import launch


class Container(msgspec.Struct, frozen=True):
    x: ExecutorConfig
    repo: Path

    def path(self, here: Path) -> str:
        """Where `here` (inside the repository) is inside the container."""
        try:
            rel = here.resolve().relative_to(self.repo.resolve())
        except ValueError:
            raise ConfigError(
                "clanker.yaml", None, f"executors ({self.x.name})",
                f"{here} is outside the repository, so the container can't see it at {self.x.workspace_mount}: "
                "keep worktrees under the repository (the default, .clanker/worktrees)",
            ) from None  # fmt: skip
        return self.x.workspace_mount if str(rel) == "." else f"{self.x.workspace_mount.rstrip('/')}/{rel}"

    def wrap(self, proc: Process, prompt: str | None) -> Process:
        return launch.through(list(self.x.exec), proc, self.path(proc.cwd), self.x.env, prompt, joined=False)
