"""Child processes, one way: each in a session (and so a process group) of its own, with the
environment scrubbed once, and stopped as a group — TERM, a grace period, then KILL.

A new session means the whole tree (an agent's tools, a gate's test runner and its servers) stops
together, and that the child has no controlling terminal to retitle the pane through.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO

from .clock import SYSTEM, Clock

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


def group_alive(pgid: int, inside: Path | None = None) -> bool:
    """Does any live (not zombie) process of group `pgid` remain — with `inside`, one working in
    that directory? Read from /proc: a group's members are not our children once their leader is
    gone, so they can't be waited for. `inside` guards against a group id reused by a stranger."""
    try:
        # After every agent run its group is usually empty: the kernel says so at once, where
        # reading every process's stat takes ~1 ms, and more the busier the machine.
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        pass  # someone else's group (or no valid id): /proc says whether one of them is in `inside`
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text(encoding="ascii", errors="replace").rsplit(")", 1)[1].split()
            if len(fields) <= 2 or fields[2] != str(pgid) or fields[0] == "Z":
                continue
            if inside is None or Path(os.readlink(stat.parent / "cwd")).is_relative_to(inside):
                return True
        except (OSError, IndexError):
            continue  # it exited while we looked, or is not ours to read
    return False


def stop_group(pgid: int, grace: float = GRACE_SECS, clock: Clock = SYSTEM, inside: Path | None = None) -> bool:
    """Stop every process of group `pgid` that is not our child (an agent a dead slave left):
    TERM, up to `grace` seconds for it to go, then KILL. True once none is left. With `inside`,
    only a group with a member working there is ours to stop (else: True, nothing of ours)."""
    if not group_alive(pgid, inside):
        return True
    signal_group(pgid, signal.SIGTERM)
    gone = threading.Event()
    waited = 0.0
    step = 0.05
    while waited < grace:
        if not group_alive(pgid, inside):
            return True
        # Not our children: nothing to wait on but /proc itself, so a short, growing poll.
        clock.wait(gone, step)
        waited += step
        step = min(step * 2, 0.5)
    signal_group(pgid, signal.SIGKILL)
    for _ in range(20):
        if not group_alive(pgid, inside):
            return True
        clock.wait(gone, 0.05)
    return not group_alive(pgid, inside)


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


def capture(
    argv: list[str], timeout: float, cwd: Path | None = None, stdin: str | None = None
) -> tuple[int | None, str, str]:
    """Run a command (with `stdin` as its input) for what it prints: its exit code (None past
    `timeout`: stopped), stdout and stderr apart."""
    try:
        proc = spawn(argv, cwd, child_env(), stdin=PIPE if stdin is not None else DEVNULL)
    except OSError as e:
        return 127, "", f"can't run {argv[0]}: {e.strerror}"
    try:
        out, err = proc.communicate(stdin.encode("utf-8") if stdin is not None else None, timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(proc, grace=1.0)
        out, err = proc.communicate()
        return None, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
    except BaseException:
        stop(proc, grace=1.0)
        raise
    return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def interactive(argv: list[str], cwd: Path, env: Mapping[str, str], stop: Callable[[], bool]) -> int | None:
    """Run `argv` on this process's own terminal (a person types into it) until it exits — its
    exit code — or `stop()` says to end it (None). Not a session of its own: it must stay in
    the terminal's foreground to read the keyboard."""
    proc = subprocess.Popen(argv, cwd=cwd, env={k: v for k, v in env.items() if k not in SCRUBBED})
    while True:
        try:
            return proc.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            if stop():
                proc.terminate()
                try:
                    proc.wait(GRACE_SECS)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                return None
