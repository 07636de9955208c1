"""Agent adapters, one module each; `adapter_for` picks one from the config."""

from __future__ import annotations

from ..config import AgentConfig
from ..errors import UsageError
from .base import Adapter
from .command import CommandAdapter
from .fake import FakeAdapter


def adapter_for(cfg: AgentConfig) -> Adapter:
    if cfg.kind == "fake":
        return FakeAdapter()
    if cfg.kind == "command":
        return CommandAdapter()
    raise UsageError(f"agent kind {cfg.kind!r} is not available yet: use fake or command in clanker.yaml")
