"""History summaries: what each attempt did, for people and for later prompts (seed: "History")."""

from __future__ import annotations

import time
from pathlib import Path

from ..state import atomic
from ..state.paths import Paths
from ..state.secrets import redact


def write(paths: Paths, task: str, name: str, sections: dict[str, str]) -> Path:
    """`history/<task>/<name>.md` with one heading per non-empty section."""
    lines = [f"# {task} · {name} · {time.strftime('%Y-%m-%d %H:%M:%S')}", ""]
    for heading, body in sections.items():
        if body and body.strip():
            lines += [f"## {heading}", body.strip(), ""]
    path = paths.history / task / f"{name}.md"
    atomic.write_text(path, redact("\n".join(lines)))  # gate output and agent text may hold a key
    return path


def short(text: str, limit: int = 300) -> str:
    """The first meaningful lines of an agent's answer, at most `limit` characters."""
    flat = " ".join(line.strip() for line in text.strip().splitlines() if line.strip())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
