"""`clanker demo`: a scratch repo, a gate, seven tasks for the fake agent, three slaves in tmux."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from ..config import load
from ..errors import UsageError
from ..fleet import panes as fleet
from ..state import atomic
from ..state.paths import Paths, prepare
from ..state.store import Store
from ..system import git
from ..system.tmux import Tmux, exec_attach
from . import Done, Echo, task
from .run import controller_session, run_until_done

GATE = """#!/bin/sh
# The demo's gate: every commit of main must pass it.
if [ -e GATE_FAIL ]; then echo "GATE_FAIL marker present: the change is broken"; exit 1; fi
for f in $(git ls-files '*.sh'); do sh -n "$f" || exit 1; done
echo "gate ok: $(git ls-files | wc -l) files checked"
"""

CONFIG = """\
# The demo's clanker.yaml (see clanker.yaml.example for every key)
slaves: 3
heartbeat_secs: 1
agent:
  kind: fake
judge:
  agent: same
gate:
  - sh gate.sh
mainline:
  branch: main
"""


def _task(tid: str, title: str, paths: list[str], *lines: str, **extra: object) -> dict[str, object]:
    return {"id": tid, "title": title, "paths": paths, "prompt": "\n".join(lines), **extra}


TASKS = [
    _task("T1", "Add a greeting script", ["bin"],
          "Add bin/hello.sh that prints a greeting.", "fake: sleep 2",
          'fake: write bin/hello.sh echo "hello from clanker"'),
    _task("T2", "Write the usage docs", ["docs"],
          "Document how to run the greeting.", "fake: sleep 2",
          "fake: write docs/usage.md # Usage\\n\\nRun `sh bin/hello.sh`."),
    _task("T3", "Add a settings file (its first try breaks the gate)", ["etc"],
          "Add etc/settings.ini.", "fake: fail-gate-once", "fake: sleep 2",
          "fake: write etc/settings.ini [greeting]\\nname = world"),
    _task("T4", "Add a farewell script (the judge asks for rework once)", ["lib"],
          "Add lib/bye.sh.", "fake: sleep 2", "fake: write lib/bye.sh echo bye",
          "fake: on-attempt 2 write lib/bye.sh # says goodbye\\necho bye",
          "fake-judge: rework-once add a comment saying what the script does"),
    _task("T5", "Start a changelog", ["CHANGELOG.md"],
          "Start CHANGELOG.md.", "fake: sleep 1", "fake: write CHANGELOG.md # Changelog\\n\\n- first release"),
    _task("T6", "Add a test script", ["tests"],
          "Add tests/run.sh.", "fake: sleep 2", "fake: write tests/run.sh sh bin/hello.sh | grep -q hello"),
    _task("T7", "Mention the tests in the docs (after T2 and T6)", ["docs"],
          "Append a testing section to docs/usage.md.", "fake: sleep 1",
          "fake: append docs/usage.md \\n## Testing\\n\\nRun `sh tests/run.sh`.",
          depends_on=["T2", "T6"]),
]  # fmt: skip


def make_repo(where: Path | None = None) -> Path:
    repo = Path(tempfile.mkdtemp(prefix="clanker-demo-")) if where is None else where
    repo = repo.resolve()
    git.init(repo)
    atomic.write_text(
        repo / "README.md", "# clanker demo\n\nA scratch repository that clanker's fake agents work on.\n"
    )
    atomic.write_text(repo / "gate.sh", GATE)
    atomic.write_text(repo / "clanker.yaml", CONFIG)
    git.commit_all(repo, "demo: initial commit")
    cfg = load(repo, repo / "clanker.yaml")
    prepare(cfg)
    store = Store(Paths(repo), "demo")
    for t in TASKS:
        task.add(store, t)
    return repo


def demo(headless: bool, where: Path | None, timeout: float, echo: Echo) -> Done:
    """A scratch repo with a gate and seven tasks for the fake agent, worked by three slaves:
    in a tmux session you are switched to, or (headless, or no terminal) run to the end here."""
    if where is not None and where.exists() and any(where.iterdir()):
        raise UsageError(f"{where} is not empty: pick a new directory for the demo")
    repo = make_repo(where)
    cfg = load(repo, repo / "clanker.yaml")
    echo(f"demo repository: {repo}")
    if headless or not interactive():
        done = run_until_done(cfg, timeout, False, echo)
        echo(done.message)
        shas = git.log_shas(repo, "main")
        return Done(done.code, f"main has {len(shas)} commits; see them with: git -C {repo} log --oneline main")
    tm = Tmux(cfg.tmux_socket)
    pane = controller_session(tm, cfg)
    echo(f"tmux session {fleet.session_name(cfg)}: the controller is in window `ctl`, slaves in `slaves`.")
    echo("Detach with Ctrl-b d; come back with `clanker` in the repo; stop with `clanker stop`.")
    time.sleep(1.0)  # let the person read where things are before the screen changes
    exec_attach(tm, pane)
    return Done()


def interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()
