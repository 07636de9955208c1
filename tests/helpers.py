"""Test helpers: waiting on a condition (never a bare sleep), repos, running clanker."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from clanker.state.codec import make
from clanker.state.events import Event

T = TypeVar("T")


# The top-level keys of `clanker status --json`.
STATUS_KEYS = {"gate", "budget", "merge_queue", "scheduler", "executors", "tasks", "slaves", "counts", "archived"}


def retry_until(predicate: Callable[[], T], seconds: float = 30.0, interval: float = 0.05) -> T:
    """Return the first truthy value of `predicate`, or fail the test after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {seconds}s: {predicate}")
        time.sleep(interval)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def make_repo(path: Path, config: str | None = None, files: dict[str, str] | None = None) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    for name, text in (files or {"README.md": "# test repo\n"}).items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    if config is not None:
        (path / "clanker.yaml").write_text(config)
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")
    return path.resolve()


# Commands that replace the process (attach) or need a real terminal run as a real process.
SUBPROCESS_ONLY = frozenset({"attach", "demo", "slave"})


def clanker(
    repo: Path, *args: str, timeout: float = 120, check: bool = False, input_text: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `clanker --repo REPO ARGS…` in this process (the entry point, as tmuxp's tests do),
    from inside `repo`, with stdin `input_text`; stdout, stderr and the exit code come back as from
    a process. `clanker_process` runs the real binary instead."""
    if not args or args[0] in SUBPROCESS_ONLY:
        return clanker_process(repo, *args, timeout=timeout, check=check, input_text=input_text)
    from clanker.cli import entry

    out, err = io.StringIO(), io.StringIO()
    here = os.getcwd()
    stdin = sys.stdin
    try:
        os.chdir(repo)
        sys.stdin = io.StringIO(input_text or "")
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = entry(["--repo", str(repo), *args])
    finally:
        sys.stdin = stdin
        os.chdir(here)
    proc = subprocess.CompletedProcess(["clanker", *args], code, out.getvalue(), err.getvalue())
    if check and code != 0:
        raise AssertionError(f"clanker {' '.join(args)} exited {code}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def clanker_process(
    repo: Path, *args: str, timeout: float = 120, check: bool = False, input_text: str | None = None
) -> subprocess.CompletedProcess[str]:
    """The real `clanker` binary as a process (its own signals, stdio and exit)."""
    proc = subprocess.run(
        [sys.executable, "-m", "clanker", "--repo", str(repo), *args],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        input=input_text,
        stdin=None if input_text is not None else subprocess.DEVNULL,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"clanker {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def clanker_bg(repo: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "clanker", "--repo", str(repo), *args],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def status(repo: Path) -> dict[str, Any]:
    proc = clanker(repo, "status", "--json", check=True)
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def events(repo: Path) -> list[dict[str, Any]]:
    log = repo / ".clanker" / "events.log"
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def gate_passes_on_every_commit(repo: Path, gate: list[str], branch: str = "main") -> list[str]:
    """Check out every commit of `branch` in a scratch worktree and run the gate; returns failures."""
    shas = git(repo, "rev-list", "--reverse", branch).splitlines()
    scratch = repo.parent / f"{repo.name}-gatecheck"
    git(repo, "worktree", "add", "-q", "--detach", str(scratch), shas[0])
    failures = []
    try:
        for sha in shas:
            git(scratch, "checkout", "-q", "--detach", sha)
            for cmd in gate:
                if subprocess.run(["sh", "-c", cmd], cwd=scratch, capture_output=True).returncode != 0:
                    failures.append(sha)
                    break
    finally:
        git(repo, "worktree", "remove", str(scratch))
    return failures


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def event(
    type_: str, actor: str = "cli", task: str | None = None, data: dict[str, Any] | None = None, ts: float | None = None
) -> Event:
    """An event from its flat form (type, actor, task, fields): the same path as reading a log line."""
    return make(type_, actor, task, ts, **(data or {}))
