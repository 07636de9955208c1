"""Agent adapters, one module each; `adapter_for` picks one from the config."""

from __future__ import annotations

from ..config import AgentConfig
from .aider import AiderAdapter
from .base import Adapter
from .claude import ClaudeAdapter
from .codex import CodexAdapter
from .command import CommandAdapter
from .fake import FakeAdapter
from .gemini import GeminiAdapter


def adapter_for(cfg: AgentConfig) -> Adapter:
    adapters: dict[str, type[Adapter]] = {
        "fake": FakeAdapter,
        "command": CommandAdapter,
        "claude": ClaudeAdapter,
        "codex": CodexAdapter,
        "gemini": GeminiAdapter,
        "aider": AiderAdapter,
    }
    return adapters[cfg.kind]()
