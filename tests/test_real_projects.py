"""Projects shaped like real ones, end to end: worktree environments, the gate preflight, keys
reaching slaves in an already-running tmux server, and setup failures that are not the task's.

The projects are built by the tests, offline: a Python package in a src layout with an ignored
generated module and an editable install of the checkout in a venv on PATH (the trap), a
Node-style project that needs an ignored directory and a `.env`, and a project whose setup
breaks when a dependency file on main does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from clanker.fleet.panes import view
from clanker.system import git as git_wrapper
from clanker.system.tmux import Tmux

from .helpers import clanker, clanker_bg, events, git, make_repo, retry_until, status

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent

# --- a Python package: src layout, generated ignored _version.py, unittest + doctest ---------------

DEV_SETUP = """\
#!/bin/sh
# This project's developer setup: a venv holding an editable install of the checkout it runs in
# (what `pip install -e .` leaves behind for a src layout: a .pth file and direct_url.json).
set -e
python3 -m venv --without-pip .venv
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$PWD/src" > "$site/__editable__.mypkg-0.1.pth"
mkdir -p "$site/mypkg-0.1.dist-info"
printf 'Metadata-Version: 2.1\\nName: mypkg\\nVersion: 0.1\\n' > "$site/mypkg-0.1.dist-info/METADATA"
printf '{"url": "file://%s", "dir_info": {"editable": true}}' "$PWD" > "$site/mypkg-0.1.dist-info/direct_url.json"
"""
PY_FILES = {
    "README.md": "# mypkg\n",
    ".gitignore": ".venv/\n__pycache__/\nsrc/mypkg/_version.py\n",
    "pyproject.toml": '[project]\nname = "mypkg"\nversion = "0.1"\n',
    "scripts/dev-setup.sh": DEV_SETUP,
    "src/mypkg/__init__.py": "from ._version import VERSION\nfrom .core import add\n\n__all__ = ['VERSION', 'add']\n",
    "src/mypkg/core.py": 'def add(a, b):\n    """\n    >>> add(2, 3)\n    5\n    """\n    return a + b\n',
    "tests/__init__.py": "",
    "tests/test_core.py": (
        "import doctest\nimport unittest\n\nimport mypkg\nfrom mypkg import core\n\n\n"
        "def load_tests(loader, tests, ignore):\n    tests.addTests(doctest.DocTestSuite(core))\n    return tests\n\n\n"
        "class TestAdd(unittest.TestCase):\n    def test_add(self):\n        self.assertEqual(mypkg.add(2, 3), 5)\n\n"
        "    def test_version(self):\n        self.assertEqual(mypkg.VERSION, '0.1')\n"
    ),
}
PY_GATE = "python -m unittest discover -s tests -t ."
# Quoted: the fake agent splits its directives like a shell, and `\n` is a new line in the file.
BREAK_ADD = "fake: write src/mypkg/core.py 'def add(a, b):\\n    return a - b\\n'"
ADD_MUL = (
    "fake: write src/mypkg/mul.py 'def mul(a, b):\\n    return a * b\\n'\n"
    "fake: write tests/test_mul.py 'import unittest\\nfrom mypkg.mul import mul\\n\\n\\n"
    "class TestMul(unittest.TestCase):\\n    def test_mul(self):\\n        self.assertEqual(mul(2, 3), 6)\\n'"
)


def python_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user's checkout: committed, its own .venv (editable install of *this* checkout) active
    in the shell that runs clanker, and the generated module present (ignored)."""
    repo = make_repo(tmp_path / "mypkg", None, PY_FILES)
    subprocess.run(["sh", "scripts/dev-setup.sh"], cwd=repo, check=True)
    (repo / "src/mypkg/_version.py").write_text('VERSION = "0.1"\n')
    venv = repo / ".venv"
    monkeypatch.setenv("VIRTUAL_ENV", str(venv))
    monkeypatch.setenv("PATH", f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}")
    gate = subprocess.run(["sh", "-c", PY_GATE], cwd=repo, capture_output=True, text=True)
    assert gate.returncode == 0, gate.stdout + gate.stderr  # the gate passes in the user's own checkout
    return repo


def write_config(repo: Path, gate: str, worktree: str = "", extra: str = "") -> None:
    text = f"slaves: 2\nheartbeat_secs: 0.5\nmax_attempts: 2\nagent:\n  kind: fake\ngate:\n  - {gate}\n{extra}"
    if worktree:
        text += "worktree:\n" + worktree
    (repo / "clanker.yaml").write_text(text)


def run(repo: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return clanker(repo, "run", "--until-done", "--timeout", str(timeout), timeout=timeout + 60)


def test_python_editable_install_trap_is_refused_and_setup_makes_it_land(
    tmp_path: Path, socket_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = python_project(tmp_path, monkeypatch)
    main_before = git(repo, "rev-parse", "main")
    write_config(repo, PY_GATE)
    clanker(repo, "task", "add", "Break add", "--prompt", BREAK_ADD, check=True)
    clanker(repo, "task", "add", "Add mul", "--prompt", ADD_MUL, check=True)

    # 1. As a new user would: the gate imports the package from the checkout (editable install).
    doctor = clanker(repo, "doctor")
    assert "warn  gate env" in doctor.stdout and "editable install of your checkout (mypkg)" in doctor.stdout
    proc = run(repo)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 4, out
    assert "does not test the worktree" in out and "src/mypkg/core.py" in out
    assert "editable install" in out and "worktree:" in out and "setup:" in out
    assert not [e for e in events(repo) if e["type"] in ("task.claimed", "task.judge_claimed")], "nothing dispatched"
    assert git(repo, "rev-parse", "main") == main_before
    trap = next(e for e in events(repo) if e["type"] == "preflight.ran")
    assert trap["kind"] == "trap" and not trap["passed"] and "src/mypkg/core.py" in trap["opened"]

    # 2. Each worktree gets its own venv now, but lacks the generated module: an environment
    #    problem, named with the exact line to add — never a regression task.
    write_config(repo, PY_GATE, "  setup:\n    - sh scripts/dev-setup.sh\n")
    proc = run(repo)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 4, out
    assert "an environment problem, not a regression" in out
    assert "src/mypkg/_version.py" in out and "copy:" in out
    assert not [e for e in events(repo) if e["type"] == "task.added" and "regression" in (e.get("tags") or [])]
    setup_log = (repo / ".clanker/logs/setup").glob("preflight-*.log")
    assert any("dev-setup.sh" in p.read_text() for p in setup_log)

    # 3. With the copy too: the breaking task never lands, the good one does.
    write_config(repo, PY_GATE, "  setup:\n    - sh scripts/dev-setup.sh\n  copy:\n    - src/mypkg/_version.py\n")
    proc = run(repo)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out  # T1 is blocked: its gate failed every time
    tasks = {t["id"]: t for t in status(repo)["tasks"]}
    assert tasks["T2"]["state"] == "done" and tasks["T1"]["state"] == "blocked"
    failures = [e for e in events(repo) if e["type"] == "gate.ran" and e["task"] == "T1"]
    assert failures and not any(e["passed"] for e in failures)
    assert "return a + b" in git(repo, "show", "main:src/mypkg/core.py")
    assert "mul" in git(repo, "show", "main:src/mypkg/mul.py")
    tree = git(repo, "ls-tree", "-r", "--name-only", "main").splitlines()
    assert not [p for p in tree if p.startswith(".venv") or p.endswith("_version.py")], tree
    # Every commit of main passes the gate, run in a worktree set up like a slave's.
    check = subprocess.run(
        [sys.executable, str(ROOT / "scripts/check-main"), str(repo)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "0 fail" in check.stdout


# --- a Node-style project: ignored node_modules and .env ----------------------------------------

NODE_TEST = """\
const fs = require('fs');
const leftpad = require('leftpad');
const env = Object.fromEntries(
  fs.readFileSync('.env', 'utf8').split('\\n').filter(Boolean).map((l) => l.split('=')),
);
if (!env.API_URL) { console.error('API_URL missing in .env'); process.exit(1); }
if (leftpad('7', 3) !== '007') { console.error('leftpad broke'); process.exit(1); }
console.log('ok', env.API_URL);
"""


def test_node_project_needs_its_ignored_directory_and_env_file(tmp_path: Path, socket_name: str) -> None:
    node = shutil.which("node")
    assert node, "the tests need Node.js (the README's quickstart installs it)"
    repo = make_repo(
        tmp_path / "web",
        None,
        {
            "README.md": "# web\n",
            ".gitignore": "node_modules/\n.env\n",
            "package.json": '{"name": "web", "private": true, "scripts": {"test": "node test.js"}}\n',
            "test.js": NODE_TEST,
        },
    )
    lib = repo / "node_modules" / "leftpad"
    lib.mkdir(parents=True)
    (lib / "index.js").write_text("module.exports = (s, n) => String(s).padStart(n, '0');\n")
    (repo / ".env").write_text("API_URL=http://127.0.0.1:9\n")
    assert subprocess.run(["node", "test.js"], cwd=repo, capture_output=True).returncode == 0
    # Worktrees outside the checkout, so node can't find the checkout's node_modules by walking up.
    root = f"  root: ../{repo.name}-worktrees\n"
    write_config(repo, "node test.js", root)
    clanker(repo, "task", "add", "Add a page", "--prompt", "fake: write pages/index.html <h1>hi</h1>", check=True)

    proc = run(repo)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 4 and "Cannot find module 'leftpad'" in out, out
    assert "node_modules/" in out  # the likely cause: an environment directory the worktree lacks

    write_config(repo, "node test.js", root + "  link:\n    - node_modules\n")
    proc = run(repo)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 4 and ".env" in out and "copy:" in out, out

    write_config(repo, "node test.js", root + "  link:\n    - node_modules\n  copy:\n    - .env\n")
    proc = run(repo)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [t["state"] for t in status(repo)["tasks"]] == ["done"]
    tree = git(repo, "ls-tree", "-r", "--name-only", "main").splitlines()
    assert "pages/index.html" in tree and not [p for p in tree if p.startswith("node_modules") or p == ".env"]
    # The worktree has the link and the copy, and git there sees neither as a change.
    wt = tmp_path / "web-worktrees" / "c1"
    if not wt.exists():
        wt = tmp_path / "web-worktrees" / "c2"
    assert (wt / "node_modules").is_symlink() and (wt / ".env").read_text() == (repo / ".env").read_text()
    assert git_wrapper.porcelain(wt) == []  # clanker's git there (and its agents') ignores them
    # The copy follows the original when it changes.
    (repo / ".env").write_text("API_URL=http://127.0.0.1:10\n")
    clanker(repo, "task", "add", "Another page", "--prompt", "fake: write pages/two.html two", check=True)
    assert run(repo).returncode == 0
    wts = [p for p in (tmp_path / "web-worktrees").iterdir() if p.name.startswith("c")]
    assert any((p / ".env").read_text() == "API_URL=http://127.0.0.1:10\n" for p in wts)


# --- setup that fails on main's inputs: the environment's fault, not the task's -------------------

SETUP_SH = """\
#!/bin/sh
if grep -q broken requirements.txt; then echo "cannot install: requirement 'broken' not found"; exit 1; fi
touch .ready
"""


def test_setup_failure_is_not_charged_and_the_slave_recovers_when_inputs_change(
    tmp_path: Path, socket_name: str, tm: Tmux
) -> None:
    repo = make_repo(
        tmp_path / "svc",
        None,
        {
            "README.md": "# svc\n",
            ".gitignore": ".ready\n",
            "requirements.txt": "requests\n",
            "scripts/setup.sh": SETUP_SH,
            "gate.sh": "test -f .ready || { echo 'not set up'; exit 1; }\necho gate ok\n",
        },
    )
    write_config(repo, "sh gate.sh", "  setup:\n    - sh scripts/setup.sh\n")
    clanker(repo, "task", "add", "Long one", "--prompt", "fake: sleep 3\nfake: write a.txt a", check=True)
    proc = clanker_bg(repo, "run", "--until-done", "--timeout", "120")
    try:
        # The long task's agent is running (its worktree was set up from a good main) …
        retry_until(lambda: (repo / ".clanker/logs/T1/1.txt").exists(), 60)
        # … when a bad dependency lands on main by hand; then new work arrives.
        (repo / "requirements.txt").write_text("requests\nbroken\n")
        git(repo, "commit", "-q", "-am", "add a broken requirement")
        clanker(repo, "task", "add", "Short one", "--prompt", "fake: write b.txt b", check=True)
        failed = retry_until(lambda: [e for e in events(repo) if e["type"] == "setup.failed"], 60)
        sid = failed[0]["slave"]
        assert failed[0]["command"] == "sh scripts/setup.sh" and failed[0]["task"] == "T2"
        # The slave says so in its pane, and waits.
        pane = view(tm, repo).panes[sid]
        retry_until(lambda: "the environment, not the task" in tm.capture(pane.id), 10)
        # The user fixes the dependency: the slave notices and sets up again by itself.
        (repo / "requirements.txt").write_text("requests\n")
        git(repo, "commit", "-q", "-am", "drop the broken requirement")
        out, _ = proc.communicate(timeout=150)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    tasks = {t["id"]: t for t in status(repo)["tasks"]}
    assert tasks["T1"]["state"] == "done" and tasks["T2"]["state"] == "done"
    assert tasks["T2"]["attempts"] == 1, "the setup failure cost no attempt"
    evs = events(repo)
    assert not [e for e in evs if e["type"] == "task.failed" and e["task"] == "T2"]
    types = [e["type"] for e in evs if e["type"].startswith("setup.") and e.get("slave") == sid]
    assert types[:3] == ["setup.failed", "setup.retry", "setup.ok"], types
    released = next(e for e in evs if e["type"] == "task.released" and e["task"] == "T2")
    assert released["refund"] is True and "environment" in released["reason"]
    assert not [e for e in evs if e["type"] == "task.added" and "regression" in (e.get("tags") or [])]
    assert "sh scripts/setup.sh" in clanker(repo, "logs", "--setup", sid).stdout


# --- keys exported only in the controller's shell, tmux server started long before -----------------

SECRET = "sk-ant-api03-clanker-test-secret-0123456789abcdef"
TEAM = "team-token-clanker-test-9876543210"
PASSWORD = "hunter2-clanker-db-password"  # inside a URL in a variable named like no secret
SECRETS = (SECRET, TEAM, PASSWORD)


def keyed_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # The gate prints the keys (as a careless test script would): they must not get anywhere.
    repo = make_repo(
        tmp_path / "r", None, {"README.md": "# r\n", "gate.sh": 'echo "key $ANTHROPIC_API_KEY db $DATABASE_URL"\n'}
    )
    extra = "credentials:\n  - {name: team, env: TEAM_TOKEN}\nenv:\n  pass: [EXTRA_SETTING, DATABASE_URL]\n"
    write_config(repo, "sh gate.sh", extra=extra)
    return repo


def export_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    monkeypatch.setenv("TEAM_TOKEN", TEAM)
    monkeypatch.setenv("EXTRA_SETTING", "visible-value")
    monkeypatch.setenv("DATABASE_URL", f"postgres://app:{PASSWORD}@db.internal/app")


def nowhere_under_clanker(repo: Path) -> None:
    for path in (repo / ".clanker").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not [s for s in SECRETS if s.encode() in data], path


def test_a_key_exported_in_the_controllers_shell_reaches_the_agent_and_nothing_else(
    tmp_path: Path, socket_name: str, tm: Tmux, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = keyed_repo(tmp_path, monkeypatch)
    # A tmux server that has been running since before the keys were exported.
    tm.run("new-session", "-d", "-s", "person", "-x", "120", "-y", "40", "sleep 600")
    export_keys(monkeypatch)
    prompt = "fake: print-env ANTHROPIC_API_KEY\nfake: print-env TEAM_TOKEN\nfake: print-env EXTRA_SETTING\n"
    prompt += "fake: sleep 1.5\nfake: write out.txt done"
    clanker(repo, "task", "add", "Use the key", "--prompt", prompt, check=True)

    seen_in_ps: list[str] = []
    stop = threading.Event()

    def watch_ps() -> None:
        while not stop.is_set():
            ps = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True).stdout
            seen_in_ps.extend(line for line in ps.splitlines() if any(s in line for s in SECRETS))
            stop.wait(0.05)

    watcher = threading.Thread(target=watch_ps, daemon=True)
    watcher.start()
    panes: dict[str, str] = {}
    proc = clanker_bg(repo, "run", "--until-done", "--timeout", "90", "--keep")
    try:
        retry_until(lambda: (repo / ".clanker/logs/T1/1.txt").exists(), 60)
        for p in view(tm, repo).panes.values():
            panes[p.clanker_id] = p.id
        out, _ = proc.communicate(timeout=120)
    finally:
        stop.set()
        watcher.join(5)
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    log = (repo / ".clanker/logs/T1/1.txt").read_text()
    # The agent had both secrets and the passed-through setting (env.pass values count as
    # secrets too: shown redacted; an empty value would print as nothing).
    assert "ANTHROPIC_API_KEY=[redacted]" in log and "TEAM_TOKEN=[redacted]" in log, log
    assert "EXTRA_SETTING=[redacted]" in log
    assert any("key [redacted] db [redacted]" in e.get("tail", "") for e in events(repo))  # the gate printed them
    assert seen_in_ps == [], "a secret was on a command line"
    nowhere_under_clanker(repo)  # events, logs, history (the gate output), setup logs
    assert not [s for s in SECRETS if s in out]
    for scope in (["-g"], ["-t", "person"]):
        env = "\n".join(tm.run("show-environment", *scope))
        assert not [s for s in SECRETS if s in env]
    for pane in panes.values():
        shown = tm.capture(pane)
        assert not [s for s in SECRETS if s in shown]
    # Doctor looks at what the slaves actually have: the same as this shell.
    doctor = clanker(repo, "doctor")
    assert "ok    env c1" in doctor.stdout or "ok    env c2" in doctor.stdout, doctor.stdout
    handed = Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()) / f"clanker-{os.getuid()}"
    leftovers = [p for p in handed.glob("env-*.json")] if handed.is_dir() else []
    assert not [p for p in leftovers if SECRET in p.read_text()], "a handed-over file was left behind"
    clanker(repo, "stop")


def test_a_tmux_server_clanker_starts_itself_never_holds_the_keys(
    tmp_path: Path, socket_name: str, tm: Tmux, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = keyed_repo(tmp_path, monkeypatch)
    export_keys(monkeypatch)
    assert not tm.running()
    clanker(
        repo, "task", "add", "Use the key", "--prompt", "fake: print-env TEAM_TOKEN\nfake: write out.txt x", check=True
    )
    proc = clanker(repo, "run", "--until-done", "--timeout", "90", "--keep", timeout=150)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "TEAM_TOKEN=[redacted]" in (repo / ".clanker/logs/T1/1.txt").read_text()
    env = "\n".join(tm.run("show-environment", "-g"))
    assert "HOME=" in env and not [s for s in SECRETS if s in env], "the server copied the controller's keys"
    nowhere_under_clanker(repo)
    clanker(repo, "stop")
