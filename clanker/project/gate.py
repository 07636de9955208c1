"""The gate: the user's shell commands, run in a worktree; all must pass."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import msgspec

from ..state.secrets import redact
from ..system import proc as procs

OUTPUT_TAIL = 4000
Tick = tuple[float, Callable[[], None]]  # (every so many seconds, call this): the caller's loop lives


class GateResult(msgspec.Struct, frozen=True):
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


def run_gate(
    commands: tuple[str, ...],
    cwd: Path,
    timeout: float,
    env: dict[str, str] | None = None,
    log: Path | None = None,
    tick: Tick = (5.0, lambda: None),
) -> GateResult:
    """Run the commands one by one with `sh -c` in `cwd`; stop at the first that fails. With
    `log`, every command's whole output is appended there too (the result keeps only a tail)."""
    started = time.monotonic()
    chunks: list[str] = []
    full_env = procs.child_env(env or {})
    sink = None
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        sink = open(log, "a", encoding="utf-8")  # noqa: SIM115 - closed in the finally below
    try:
        return _run(commands, cwd, timeout, full_env, chunks, started, sink, tick)
    finally:
        if sink is not None:
            sink.close()


def _run(
    commands: tuple[str, ...],
    cwd: Path,
    timeout: float,
    full_env: dict[str, str],
    chunks: list[str],
    started: float,
    sink: TextIO | None,
    tick: Tick,
) -> GateResult:
    def note(text: str) -> None:
        chunks.append(text)
        if sink is not None:
            sink.write(redact(text))
            sink.flush()

    for cmd in commands:
        note(f"$ {cmd}\n")
        proc = procs.spawn(["sh", "-c", cmd], cwd, full_env, stderr=procs.STDOUT)
        try:
            out = _communicate(proc, timeout, tick)
            if out is None:
                procs.stop(proc)
                out, _ = proc.communicate()
                note(out.decode("utf-8", "replace") + f"\n(timed out after {timeout:.0f}s)\n")
                return GateResult(False, _tail(chunks), time.monotonic() - started, cmd)
        except BaseException:
            # Ctrl-C, or the slave stopping: the command runs in a session of its own, so nothing
            # else would stop it.
            procs.stop(proc)
            raise
        note(out.decode("utf-8", "replace"))
        if proc.returncode != 0:
            note(f"(exit {proc.returncode})\n")
            return GateResult(False, _tail(chunks), time.monotonic() - started, cmd)
    return GateResult(True, _tail(chunks), time.monotonic() - started)


def _communicate(proc: procs.Popen, timeout: float, tick: Tick) -> bytes | None:
    """Its whole output, calling tick's function every tick's seconds meanwhile; None past
    `timeout` (still running)."""
    every, call = tick
    deadline = time.monotonic() + timeout
    while True:
        call()
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        try:
            out, _ = proc.communicate(timeout=min(every, left))
            return bytes(out)
        except procs.TimeoutExpired:
            continue  # communicate keeps what it read so far; calling it again goes on


def _tail(chunks: list[str]) -> str:
    text = "".join(chunks)
    return text[-OUTPUT_TAIL:]
