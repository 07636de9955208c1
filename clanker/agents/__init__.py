"""Agent adapters, one module each; `adapter_for` picks one from the config.

The package imports none of them itself: a slave loads only its own agent's adapter, and the fake
agent's program (`clanker.agents.fakebin`, started for every fake run) loads nothing else."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import AgentConfig
    from .base import Adapter

ADAPTERS = {
    "fake": ("fake", "FakeAdapter"),
    "command": ("command", "CommandAdapter"),
    "claude": ("claude", "ClaudeAdapter"),
    "codex": ("codex", "CodexAdapter"),
    "gemini": ("gemini", "GeminiAdapter"),
    "aider": ("aider", "AiderAdapter"),
}


def adapter_for(cfg: AgentConfig) -> Adapter:
    module, name = ADAPTERS[cfg.kind]
    cls: type[Adapter] = getattr(importlib.import_module(f".{module}", __name__), name)
    return cls()
