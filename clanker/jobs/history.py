"""History summaries: what each attempt did, for people and for later prompts (seed: "History")."""

from __future__ import annotations

import re
import time
from pathlib import Path

from ..agents.base import Ran
from ..project.gate import GateResult
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


# The seed's summary fields an agent is asked for, as `- name: text` lines under `SUMMARY:`.
FIELDS = {
    "decisions": "Decisions and rationale",
    "assumptions": "Assumptions",
    "hazards": "Errors, fixes and known hazards",
    "todo": "TODOs and follow-ups",
    "missing tests": "Missing tests",
}
_BLOCK = re.compile(r"^\s*SUMMARY:\s*$", re.M)
_ITEM = re.compile(r"^\s*[-*]\s*([a-z ]+?)\s*:\s*(.+?)\s*$", re.I)


def summary_block(text: str) -> dict[str, str] | None:
    """The agent's `SUMMARY:` block as {heading: text}; None when it wrote none."""
    found = list(_BLOCK.finditer(text))
    if not found:
        return None
    out: dict[str, list[str]] = {}
    for line in text[found[-1].end() :].splitlines()[1:]:
        m = _ITEM.match(line)
        if m is None:
            if line.strip():
                break  # the block ends at the first line that is not an item
            continue
        heading = FIELDS.get(m.group(1).lower())
        if heading:
            out.setdefault(heading, []).append(m.group(2))
    return {k: "\n".join(f"- {v}" for v in vs) for k, vs in out.items()}


_COUNTS = re.compile(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed)\b")
_FAILED = re.compile(r"^(?:FAILED|ERROR) (\S+)", re.M)


def test_results(output: str) -> str:
    """What a gate's output says of its tests: pytest-style counts and the failing tests' names."""
    counts = {}
    for n, kind in _COUNTS.findall(output):
        counts[kind] = n  # the last summary line wins
    failing = list(dict.fromkeys(_FAILED.findall(output)))[:10]
    parts = [", ".join(f"{n} {k}" for k, n in counts.items())] if counts else []
    parts += [f"failing: {name}" for name in failing]
    return "\n".join(f"- {p}" for p in parts)


def commands_in(log_text: str) -> list[str]:
    """The shell commands an agent ran, as its readable log shows them (`$ cmd` lines)."""
    seen = []
    for line in log_text.splitlines():
        body = line.strip().removeprefix("│").strip()
        if body.startswith("$ "):
            seen.append(body[2:].strip())
    return list(dict.fromkeys(c for c in seen if c))[:20]


def _exit(code: int | None) -> str:
    return "exit code not reported" if code is None else f"exit {code}"


def commands_run(agent: list[Ran], gate_commands: tuple[str, ...], gate: GateResult) -> str:
    """The note's "Commands run": the agent's commands with the exit codes its stream gave
    (unsaid ones said so), then the gate's, each with how it ended (it stops at the first failure)."""
    lines = [f"- `{r.command}` (agent, {_exit(r.exit)})" for r in list(dict.fromkeys(agent))[:20]]
    ended = "passed"
    for cmd in gate_commands:
        if ended == "passed" and cmd == gate.failed:
            m = re.search(r"^\(exit (\d+)\)$", gate.output, re.M)
            ended = "timed out" if "(timed out after" in gate.output else f"exit {m.group(1) if m else '≠ 0'}"
            lines.append(f"- `{cmd}` (gate, {ended})")
            continue
        lines.append(f"- `{cmd}` (gate, {'exit 0' if ended == 'passed' else 'not run'})")
    return "\n".join(lines)


SEED_FIELDS = ("Outcome", *FIELDS.values(), "Summary block", "Files touched", "Commands run", "Test results")


def newest_fields(paths: Paths, task: str, lines: int = 40) -> list[str]:
    """The seed's fields of a task's newest note, as lines for a screen (its long sections out)."""
    folder = paths.history / task
    notes = sorted(folder.glob("*.md"), key=lambda p: p.stat().st_mtime) if folder.is_dir() else []
    if not notes:
        return []
    out, keep = [f"latest note: {notes[-1].stem}"], False
    for line in notes[-1].read_text(encoding="utf-8", errors="replace").splitlines()[1:]:
        if line.startswith("## "):
            keep = line[3:] in SEED_FIELDS
        if keep and line.strip():
            out.append(line)
    return out[:lines]
