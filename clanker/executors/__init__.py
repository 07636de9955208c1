"""Where an agent runs: this machine, an OpenSSH host (ssh.py), or a container (container.py)."""

from __future__ import annotations

from pathlib import Path

from ..config import ExecutorConfig
from ..state import events as ev
from ..state.model import State
from .container import Container
from .ssh import SshHost

BACKOFF_BASE_SECS = 30.0  # a host that stopped answering is tried again after this, doubled each time
BACKOFF_CAP_SECS = 600.0


def of(x: ExecutorConfig, repo: Path, slave: str) -> SshHost | Container | None:
    """The executor behind this setting; None for this machine (nothing to wrap)."""
    if x.kind == "ssh":
        return SshHost(x, repo, slave)
    if x.kind == "container":
        return Container(x, repo)
    return None


def down_event(state: State, executor: str, reason: str, now: float, actor: str) -> ev.ExecutorDown:
    """The executor marked down, to be tried again after a backoff that doubles each time."""
    before = state.down.get(executor)
    failures = (before.failures + 1) if before else 1
    wait = min(BACKOFF_CAP_SECS, BACKOFF_BASE_SECS * 2 ** (failures - 1))
    return ev.ExecutorDown(actor=actor, executor=executor, reason=reason[:300], until=now + wait, failures=failures)
