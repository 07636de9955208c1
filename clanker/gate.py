"""The gate: the user's shell commands, run in a worktree; all must pass."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

OUTPUT_TAIL = 4000


@dataclass(frozen=True)
class GateResult:
    passed: bool
    output: str  # the tail of the combined output
    seconds: float
    failed: str | None = None  # the first command that failed

    def last_line(self) -> str:
        lines = [
            line
            for line in self.output.strip().splitlines()
            if line.strip() and not (line.startswith("(exit ") or line.startswith("$ "))
        ]
        return lines[-1] if lines else ""


def run_gate(commands: tuple[str, ...], cwd: Path, timeout: float, env: dict[str, str] | None = None) -> GateResult:
    started = time.monotonic()
    chunks: list[str] = []
    full_env = {**os.environ, **(env or {})}
    for k in ("TMUX", "TMUX_PANE"):
        full_env.pop(k, None)
    for cmd in commands:
        chunks.append(f"$ {cmd}\n")
        proc = subprocess.Popen(
            ["sh", "-c", cmd],
            cwd=cwd,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            chunks.append(out.decode("utf-8", "replace") + f"\n(timed out after {timeout:.0f}s)\n")
            return GateResult(False, _tail(chunks), time.monotonic() - started, cmd)
        chunks.append(out.decode("utf-8", "replace"))
        if proc.returncode != 0:
            chunks.append(f"(exit {proc.returncode})\n")
            return GateResult(False, _tail(chunks), time.monotonic() - started, cmd)
    return GateResult(True, _tail(chunks), time.monotonic() - started)


def _tail(chunks: list[str]) -> str:
    text = "".join(chunks)
    return text[-OUTPUT_TAIL:]
