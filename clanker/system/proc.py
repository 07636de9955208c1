"""Child processes, one way: each in a session (and so a process group) of its own, with the
environment scrubbed once, and stopped as a group — TERM, a grace period, then KILL.

A new session means the whole tree (an agent's tools, a gate's test runner and its servers) stops
together, and that the child has no controlling terminal to retitle the pane through.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import IO

# What a child must not inherit: the way to the slave's tmux server (an agent or a test suite
# would think it runs inside tmux, and could drive it) and the pane's private key handoff file.
SCRUBBED = ("TMUX", "TMUX_PANE", "CLANKER_ENV_FILE")
GRACE_SECS = 5.0  # how long a child has between TERM and KILL

Popen = subprocess.Popen[bytes]
PIPE = subprocess.PIPE
STDOUT = subprocess.STDOUT
DEVNULL = subprocess.DEVNULL
TimeoutExpired = subprocess.TimeoutExpired
Sink = int | IO[bytes] | None


def child_env(*layers: Mapping[str, str]) -> dict[str, str]:
    """This process's environment, scrubbed, with `layers` laid over it in order."""
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    for layer in layers:
        env.update(layer)
    return env


def spawn(
    argv: list[str],
    cwd: Path | None,
    env: Mapping[str, str],
    *,
    stdin: Sink = DEVNULL,
    stdout: Sink = PIPE,
    stderr: Sink = PIPE,
) -> Popen:
    """Start `argv` in a session of its own. `env` should come from `child_env`."""
    return subprocess.Popen(
        argv,
        cwd=cwd,
        env={k: v for k, v in env.items() if k not in SCRUBBED},
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        start_new_session=True,
    )


def signal_group(pgid: int, sig: int = signal.SIGTERM) -> bool:
    """Signal a whole process group; False when it is gone (or not ours)."""
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def stop(proc: Popen, grace: float = GRACE_SECS) -> int:
    """TERM the child's group, give it `grace` seconds, then KILL the group; its exit code.
    The group is signalled even when the leader already exited: its children may not have."""
    signal_group(proc.pid, signal.SIGTERM)
    try:
        return proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        signal_group(proc.pid, signal.SIGKILL)
        return proc.wait()


def wait(proc: Popen, timeout: float) -> int | None:
    """The exit code within `timeout`, or None (the child still runs)."""
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


def output(argv: list[str], timeout: float, cwd: Path | None = None) -> str:
    """Run a short command (a `--version`, a `--help`) and return what it printed, stdout then
    stderr; "" when it cannot start. Past `timeout` it is stopped and what it printed is kept."""
    try:
        proc = spawn(argv, cwd, child_env())
    except OSError:
        return ""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(proc, grace=1.0)
        out, err = proc.communicate()
    except BaseException:
        stop(proc, grace=1.0)
        raise
    return (out + err).decode("utf-8", "replace")
