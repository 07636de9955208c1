"""What an installed agent CLI is and can do: its version, and the adapter features its own
`--help` says it supports (flags change between releases; asking the binary beats a version table)."""

from __future__ import annotations

import mmap
import os
import shutil
from pathlib import Path

import msgspec

from ..config import AgentConfig
from ..system.proc import output

# feature → (help command, text that must appear in it)
FEATURES: dict[str, dict[str, tuple[tuple[str, ...], str]]] = {
    "claude": {
        "stream-json output": (("--help",), "stream-json"),
        "resume a session": (("--help",), "--resume"),
        "max turns": (("--help",), "--max-turns"),
        "append system prompt": (("--help",), "--append-system-prompt"),
        "skip permissions": (("--help",), "--dangerously-skip-permissions"),
    },
    "codex": {
        "json events": (("exec", "--help"), "--json"),
        "resume a thread": (("exec", "--help"), "resume"),
        "sandbox modes": (("exec", "--help"), "--sandbox"),
    },
    "gemini": {
        "stream-json output": (("--help",), "stream-json"),
        "yolo (no prompts)": (("--help",), "--yolo"),
        "resume a session": (("--help",), "--resume"),
    },
    "aider": {
        "one-shot message": (("--help",), "--message"),
        "no auto commits": (("--help",), "--no-auto-commits"),
    },
}

# Where each agent keeps a login when no key is in the environment.
LOGIN_FILES = {
    "claude": (".claude/.credentials.json",),
    "codex": (".codex/auth.json",),
    "gemini": (".gemini/oauth_creds.json",),
}
KEY_VARS = {
    "claude": ("ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN"),
    "codex": ("CODEX_API_KEY", "OPENAI_API_KEY"),
    "gemini": ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
    "aider": ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY", "OPENROUTER_API_KEY", "DEEPSEEK_API_KEY"),
}


class Probe(msgspec.Struct, frozen=True):
    binary: str | None  # resolved path, None when not found
    version: str
    features: dict[str, bool]


def _run(argv: list[str]) -> str:
    return output(argv, timeout=20)


def probe(agent: AgentConfig) -> Probe:
    name = agent.binary or agent.kind
    found = shutil.which(name)
    if found is None:
        return Probe(None, "", {})
    version = (_run([found, "--version"]).strip().splitlines() or [""])[0]
    helps: dict[tuple[str, ...], str] = {}
    features = {}
    for feature, (cmd, needle) in FEATURES.get(agent.kind, {}).items():
        if cmd not in helps:
            helps[cmd] = _run([found, *cmd])
        # Some flags are hidden from --help (claude's --max-turns): then look in the program itself.
        features[feature] = needle in helps[cmd] or _in_program(found, needle)
    return Probe(found, version, features)


def _in_program(path: str, needle: str, limit: int = 1 << 30) -> bool:
    real = Path(path).resolve()
    try:
        size = real.stat().st_size
        if not size or size > limit:
            return False
        with open(real, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            return m.find(needle.encode()) != -1
    except (OSError, ValueError):
        return False


def has_login(kind: str) -> str | None:
    """How the agent would authenticate without a configured credential, if it can."""
    for var in KEY_VARS.get(kind, ()):
        if os.environ.get(var):
            return f"${var}"
    home = Path(os.environ.get("HOME", "~")).expanduser()
    for rel in LOGIN_FILES.get(kind, ()):
        if (home / rel).exists():
            return f"~/{rel}"
    return None
