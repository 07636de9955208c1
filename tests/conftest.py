"""Fixtures: a private tmux server per test and real git repos in temp dirs.

An autouse fixture isolates HOME, TMUX and GIT_* so no test can touch the user's tmux server,
git config or home directory by accident.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from clanker.state import secrets
from clanker.state.paths import Paths
from clanker.system.tmux import Tmux


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    home = tmp_path / "home"
    home.mkdir()
    gitconfig = home / ".gitconfig"
    gitconfig.write_text(
        "[user]\n\tname = clanker tests\n\temail = tests@clanker.invalid\n[init]\n\tdefaultBranch = main\n"
    )
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(gitconfig))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for var in list(os.environ):
        if var.startswith("GIT_") and var not in ("GIT_CONFIG_GLOBAL", "GIT_CONFIG_NOSYSTEM"):
            monkeypatch.delenv(var)
    for var in ("TMUX", "TMUX_PANE", "CLANKER_TMUX_SOCKET"):
        monkeypatch.delenv(var, raising=False)
    secrets.clear()  # commands run in-process register what they see: no test inherits another's
    yield
    secrets.clear()


@pytest.fixture
def socket_name(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A private tmux socket, exported so every clanker process in the test uses it."""
    name = f"clanker-test-{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("CLANKER_TMUX_SOCKET", name)
    yield name
    subprocess.run(["tmux", "-L", name, "kill-server"], capture_output=True, check=False)


@pytest.fixture
def tm(socket_name: str) -> Tmux:
    return Tmux(socket_name)


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    """A repo directory with clanker's state folders (no git: for tests of the state layer)."""
    p = Paths(tmp_path)
    p.ensure()
    return p
