"""`clanker logs TASK`: the readable log of a task's agent runs, optionally followed."""

from __future__ import annotations

import os
import sys
import time
from collections import deque
from pathlib import Path

from ..errors import UsageError
from ..system.fswatch import LogWaiter
from .paths import Paths


def log_files(paths: Paths, task: str) -> list[Path]:
    d = paths.logs / task
    if not d.is_dir():
        return []
    return sorted(d.glob("*.txt"), key=lambda p: p.stat().st_mtime)


def newest_write(paths: Paths, task: str) -> float | None:
    """When the task's agent last wrote to one of its logs (None: no log yet). One directory read:
    a screen asks for every working slave a few times a second."""
    try:
        with os.scandir(paths.logs / task) as found:
            return max((e.stat().st_mtime for e in found if e.name.endswith(".txt")), default=None)
    except OSError:
        return None


def tail(paths: Paths, task: str, n: int | None) -> str:
    lines: deque[str] = deque(maxlen=n) if n else deque()
    for f in log_files(paths, task):
        with open(f, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                lines.append(line.rstrip("\n"))
    return "\n".join(lines)


def setup_log(paths: Paths, name: str, n: int | None) -> str:
    """The worktree setup log of slave `name` (c2, or 2), or of a preflight (preflight-c1)."""
    name = name if not name.isdigit() else f"c{name}"
    log = paths.setup_log(name)
    if not log.is_file():
        known = sorted(p.stem for p in log.parent.glob("*.log")) if log.parent.is_dir() else []
        have = f" (there are: {', '.join(known)})" if known else " (no worktree has been set up yet)"
        raise UsageError(f"no setup log for {name}{have}")
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    return "\n".join(lines[-n:] if n else lines)


def follow(paths: Paths, task: str, stop_when: float | None = None) -> None:
    """Print new lines of the task's newest log as they come (Ctrl-C stops)."""
    offsets = {f: f.stat().st_size for f in log_files(paths, task)}
    (paths.logs / task).mkdir(parents=True, exist_ok=True)
    waiter = LogWaiter(paths.logs / task, match=lambda name: name.endswith(".txt"))
    try:
        while stop_when is None or time.monotonic() < stop_when:
            for f in log_files(paths, task):
                pos = offsets.get(f, 0)
                size = f.stat().st_size
                if size > pos:
                    with open(f, encoding="utf-8", errors="replace") as fh:
                        fh.seek(pos)
                        sys.stdout.write(fh.read())
                        sys.stdout.flush()
                    offsets[f] = size
            waiter.wait(5.0)
    finally:
        waiter.close()
