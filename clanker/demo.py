"""`clanker demo`: a scratch repo, a gate, seven tasks for the fake agent, three slaves in tmux."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from . import atomic, git
from .config import load
from .store import Store
from .paths import Paths
from . import tasks as taskcmd
from .setup import prepare

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

TASKS = [
    {"id": "T1", "title": "Add a greeting script", "paths": ["bin"],
     "prompt": "Add bin/hello.sh that prints a greeting.\nfake: sleep 1\nfake: write bin/hello.sh echo \"hello from clanker\""},
    {"id": "T2", "title": "Write the usage docs", "paths": ["docs"],
     "prompt": "Document how to run the greeting.\nfake: sleep 1\nfake: write docs/usage.md # Usage\\n\\nRun `sh bin/hello.sh`."},
    {"id": "T3", "title": "Add a settings file (its first try breaks the gate)", "paths": ["etc"],
     "prompt": "Add etc/settings.ini.\nfake: fail-gate-once\nfake: sleep 1\nfake: write etc/settings.ini [greeting]\\nname = world"},
    {"id": "T4", "title": "Add a farewell script (the judge asks for rework once)", "paths": ["lib"],
     "prompt": "Add lib/bye.sh.\nfake: sleep 1\nfake: write lib/bye.sh echo bye\nfake: on-attempt 2 write lib/bye.sh # says goodbye\\necho bye\n"
               "fake-judge: rework-once add a comment saying what the script does"},
    {"id": "T5", "title": "Start a changelog", "paths": ["CHANGELOG.md"],
     "prompt": "Start CHANGELOG.md.\nfake: write CHANGELOG.md # Changelog\\n\\n- first release"},
    {"id": "T6", "title": "Add a test script", "paths": ["tests"],
     "prompt": "Add tests/run.sh.\nfake: sleep 1\nfake: write tests/run.sh sh bin/hello.sh | grep -q hello"},
    {"id": "T7", "title": "Mention the tests in the docs (after T2)", "paths": ["docs"], "depends_on": ["T2", "T6"],
     "prompt": "Append a testing section to docs/usage.md.\nfake: append docs/usage.md \\n## Testing\\n\\nRun `sh tests/run.sh`."},
]  # fmt: skip


def make_repo(where: Path | None = None) -> Path:
    repo = Path(tempfile.mkdtemp(prefix="clanker-demo-")) if where is None else where
    repo = repo.resolve()
    git.init(repo)
    atomic.write_text(repo / "README.md", "# clanker demo\n\nA scratch repository that clanker's fake agents work on.\n")
    atomic.write_text(repo / "gate.sh", GATE)
    atomic.write_text(repo / "clanker.yaml", CONFIG)
    git.commit_all(repo, "demo: initial commit")
    cfg = load(repo, repo / "clanker.yaml")
    prepare(cfg)
    store = Store(Paths(repo), "demo")
    for t in TASKS:
        taskcmd.add(store, t)
    return repo


def interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()
