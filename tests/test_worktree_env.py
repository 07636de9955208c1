"""Worktree environments, the gate preflight and the env handoff, on real git repos (no tmux)."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from clanker.config import Config, WorktreeConfig, load
from clanker.errors import ConfigError
from clanker.fleet import envpass, panes
from clanker.jobs.overlap import after_main_moved, at_submit, landed_since, relative
from clanker.project import preflight, recipes, traps
from clanker.project.workspace import SetupFailed, Workspace, port_base, remap
from clanker.state import secrets
from clanker.state.codec import make
from clanker.state.model import State, TaskState
from clanker.state.paths import Paths
from clanker.state.store import Store
from clanker.system import git

from .helpers import event, make_repo, retry_until
from .helpers import git as sh_git


def config(repo: Path, **worktree: object) -> Config:
    return Config(repo=repo, gate=("sh gate.sh",), worktree=WorktreeConfig(**worktree))  # type: ignore[arg-type]


def workspace(repo: Path, cfg: Config, name: str = "c1", slot: int = 1) -> Workspace:
    paths = Paths(repo)
    paths.ensure()
    path = paths.worktree(name)
    git.ensure_worktree(repo, path, "main")
    return Workspace(cfg, paths, name, path, slot)


# --- remapping paths into the worktree -------------------------------------------------------------


def test_remap_moves_checkout_paths_to_the_worktree_copy_when_it_exists(tmp_path: Path) -> None:
    checkout, wt, own = tmp_path / "repo", tmp_path / "repo/.clanker/worktrees/c1", tmp_path / "repo/.clanker"
    for d in (checkout / ".venv/bin", checkout / "src", wt / ".venv/bin", wt / "src", checkout / "node_modules"):
        d.mkdir(parents=True)
    env = {
        "PATH": os.pathsep.join([str(checkout / ".venv/bin"), "/usr/bin", str(checkout / "node_modules/.bin")]),
        "VIRTUAL_ENV": str(checkout / ".venv"),
        "PYTHONPATH": str(checkout / "src"),
        "NODE_PATH": str(wt / "lib"),
        "HOME": str(checkout),
    }
    out = remap(env, checkout, wt, (own,))
    assert out["PATH"].split(os.pathsep) == [str(wt / ".venv/bin"), "/usr/bin", str(checkout / "node_modules/.bin")]
    assert out["VIRTUAL_ENV"] == str(wt / ".venv") and out["PYTHONPATH"] == str(wt / "src")
    assert "NODE_PATH" not in out and "HOME" not in out  # inside clanker's own dir / not a path variable
    assert remap({"PATH": "relative/bin:/usr/bin"}, checkout, wt, (own,)) == {}


def test_each_slave_gets_its_own_port_range(tmp_path: Path) -> None:
    cfg = Config(repo=tmp_path, worktree=WorktreeConfig(port_base=30000, port_span=50))
    assert [port_base(cfg, n) for n in (0, 1, 2)] == [30000, 30050, 30100]


# --- copy, link, setup ------------------------------------------------------------------------------


def test_copy_brings_ignored_files_and_follows_changes(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", None, {".gitignore": ".env\nconf/*.local\n", "README.md": "x\n"})
    (repo / ".env").write_text("A=1\n")
    (repo / "conf").mkdir()
    (repo / "conf/db.local").write_text("db\n")
    (repo / ".envrc").write_text("not ignored\n")
    told: list[str] = []
    ws = workspace(repo, config(repo, copy=(".env*", "conf/*.local")))
    ws.say = told.append
    assert sorted(ws.sync()) == [".env", "conf/db.local"]
    assert (ws.path / ".env").read_text() == "A=1\n" and ws.sync() == []
    assert any(".envrc is not ignored" in t for t in told) and not (ws.path / ".envrc").exists()
    (repo / ".env").write_text("A=2\n")
    assert ws.sync() == [".env"] and (ws.path / ".env").read_text() == "A=2\n"
    assert sh_git(ws.path, "status", "--porcelain") == ""


def test_link_shares_a_directory_and_keeps_the_link_out_of_commits(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", None, {".gitignore": "node_modules/\n", "README.md": "x\n"})
    (repo / "node_modules/lib").mkdir(parents=True)
    ws = workspace(repo, config(repo, link=("node_modules",)))
    assert ws.sync() == ["node_modules"]
    link = ws.path / "node_modules"
    assert link.is_symlink() and link.resolve() == (repo / "node_modules").resolve()
    # `node_modules/` matches a directory, not a symlink: clanker excludes the link itself, in
    # that worktree only (the user's checkout keeps its own ignore rules untouched).
    assert "node_modules" not in (repo / ".git/info/exclude").read_text()
    assert git.porcelain(ws.path) == [] and ws.sync() == []
    own = git.excludes_file(ws.path)
    assert own is not None and "/node_modules" in own.read_text()


def test_setup_runs_once_per_inputs_and_its_artifacts_are_never_committed(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", None, {"requirements.txt": "a\n", "README.md": "x\n"})
    script = 'echo run >> "$CLANKER_CHECKOUT/runs"; mkdir -p env; echo $CLANKER_PORT_BASE > env/port'
    ws = workspace(repo, config(repo, setup=(script,)), "c2", 2)
    assert ws.ensure() is True and ws.ensure() is False
    assert (repo / "runs").read_text() == "run\n" and (ws.path / "env/port").read_text() == f"{20000 + 200}\n"
    assert git.porcelain(ws.path) == [], "setup's output is excluded from clanker's commits"
    # … and from the commits of an agent or gate working there (their git sees the same rules).
    agent_git = {**os.environ, **ws.git_env()}
    subprocess.run(["git", "add", "-A"], cwd=ws.path, env=agent_git, check=True)
    assert subprocess.run(["git", "diff", "--cached", "--quiet"], cwd=ws.path, env=agent_git).returncode == 0
    # … in that worktree only: the same name in the user's checkout is still theirs to see.
    (repo / "env").mkdir()
    (repo / "env/mine").write_text("x\n")
    assert "?? env/" in sh_git(repo, "status", "--porcelain").splitlines()
    # A new commit that changes a setup input: setup runs again.
    (ws.path / "requirements.txt").write_text("a\nb\n")
    sh_git(ws.path, "commit", "-qam", "more requirements")
    assert ws.ensure() is True and (repo / "runs").read_text() == "run\nrun\n"
    assert "setup of c2" in Paths(repo).setup_log("c2").read_text()


def test_a_failing_setup_raises_with_its_output_and_whether_main_has_the_same_inputs(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", None, {"requirements.txt": "broken\n", "README.md": "x\n"})
    ws = workspace(repo, config(repo, setup=("echo cannot install broken; exit 3",)))
    with pytest.raises(SetupFailed) as info:
        ws.ensure()
    assert info.value.command == "echo cannot install broken; exit 3" and "cannot install broken" in info.value.tail
    assert "worktree.setup failed in c1" in str(info.value)
    assert ws.inputs_match("main")
    (ws.path / "requirements.txt").write_text("fixed\n")
    assert not ws.inputs_match("main")


# --- the preflight ----------------------------------------------------------------------------------


def preflight_repo(tmp_path: Path, files: dict[str, str], **worktree: object) -> tuple[Config, Paths]:
    repo = make_repo(tmp_path / "r", None, {"README.md": "x\n", **files})
    cfg = Config(repo=repo, gate=("sh gate.sh",), worktree=WorktreeConfig(**worktree))  # type: ignore[arg-type]
    paths = Paths(repo)
    paths.ensure()
    return cfg, paths


def test_preflight_passes_a_gate_that_tests_the_worktree_and_leaves_no_worktree(tmp_path: Path) -> None:
    cfg, paths = preflight_repo(tmp_path, {"gate.sh": "cat lib.txt\n", "lib.txt": "lib\n"})
    found = preflight.run(cfg, paths, "preflight-t", 0, lambda s: None)
    assert found.passed and found.kind == "ok" and found.sha == git.rev(cfg.repo, "main")
    assert not paths.scratch("preflight-t").exists()
    assert [w.path.name for w in git.worktrees(cfg.repo)] == ["r"]


def test_preflight_catches_a_gate_that_reads_the_checkout(tmp_path: Path) -> None:
    repo = tmp_path / "r"
    cfg, paths = preflight_repo(tmp_path, {"gate.sh": f"sh {repo.resolve()}/check.sh\n", "check.sh": "echo ok\n"})
    found = preflight.run(cfg, paths, "preflight-t", 0, lambda s: None)
    assert not found.passed and found.kind == "trap" and found.opened == ("check.sh",)
    assert any("absolute path" in c for c in found.causes)  # no static finding: the general cause
    screen = preflight.render(found.event("t", "k").payload(), cfg.repo)
    assert "does not test the worktree" in screen and str(cfg.repo / "check.sh") in screen


def test_preflight_catches_the_trap_even_when_the_gate_also_reads_config_from_the_checkout(tmp_path: Path) -> None:
    # Like pytest (pyproject.toml) or npm (package.json) searching parent directories: a config
    # file read from the worktree *and* the checkout is no evidence, and must not hide the real
    # trap — the package imported from the checkout only.
    gate = (
        'cat pyproject.toml "$CLANKER_CHECKOUT/pyproject.toml" > /dev/null\n'
        "python3 -c \"import sys, os; sys.path.insert(0, os.environ['CLANKER_CHECKOUT'] + '/src'); import pkg\"\n"
    )
    files = {"gate.sh": gate, "pyproject.toml": "[project]\nname = 'pkg'\n", "src/pkg/__init__.py": "OK = 1\n"}
    cfg, paths = preflight_repo(tmp_path, files)
    found = preflight.run(cfg, paths, "preflight-t", 0, lambda s: None)
    assert found.kind == "trap" and found.opened == ("src/pkg/__init__.py",), found


def test_preflight_is_not_fooled_by_git_reading_the_checkout_meanwhile(tmp_path: Path) -> None:
    # An editor's git panel runs `git status` in the checkout all the time: it reads .gitignore.
    cfg, paths = preflight_repo(
        tmp_path, {"gate.sh": "sleep 0.5; cat lib.txt\n", "lib.txt": "x\n", ".gitignore": "*.o\n"}
    )
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            subprocess.run(["git", "status", "--porcelain"], cwd=cfg.repo, capture_output=True)
            stop.wait(0.05)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        found = preflight.run(cfg, paths, "preflight-t", 0, lambda s: None)
    finally:
        stop.set()
        poller.join(5)
    assert found.passed and found.kind == "ok", found


def test_preflight_ignores_a_coincidental_read_of_the_checkout(tmp_path: Path) -> None:
    # The first run also reads the checkout's README (as an editor might): the confirmation run
    # doesn't repeat it, so it is not held against the gate.
    gate = 'if [ ! -e "$CLANKER_CHECKOUT/.seen" ]; then\n  cat "$CLANKER_CHECKOUT/README.md"\n'
    gate += '  touch "$CLANKER_CHECKOUT/.seen"\nfi\n'
    cfg, paths = preflight_repo(tmp_path, {"gate.sh": gate, ".gitignore": ".seen\n"})
    found = preflight.run(cfg, paths, "preflight-t", 0, lambda s: None)
    assert found.passed and found.kind == "ok"


def test_preflight_names_the_missing_ignored_file_and_the_line_to_add(tmp_path: Path) -> None:
    gate = "test -f src/app/_version.py || { echo \"ModuleNotFoundError: No module named 'app._version'\"; exit 1; }\n"
    cfg, paths = preflight_repo(tmp_path, {"gate.sh": gate, ".gitignore": "src/app/_version.py\n"})
    (cfg.repo / "src/app").mkdir(parents=True)
    (cfg.repo / "src/app/_version.py").write_text("V = 1\n")
    found = preflight.run(cfg, paths, "preflight-t", 0, lambda s: None)
    assert not found.passed and found.kind == "gate" and found.failed == "sh gate.sh"
    assert found.fix == "worktree:\n  copy:\n    - src/app/_version.py"
    fixed = Config(repo=cfg.repo, gate=cfg.gate, worktree=WorktreeConfig(copy=("src/app/_version.py",)))
    assert preflight.run(fixed, paths, "preflight-t", 0, lambda s: None).passed


def test_preflight_reports_a_failing_setup(tmp_path: Path) -> None:
    cfg, paths = preflight_repo(tmp_path, {"gate.sh": "true\n"}, setup=("echo no network; exit 1",))
    found = preflight.run(cfg, paths, "preflight-t", 0, lambda s: None)
    assert found.kind == "setup" and found.failed == "echo no network; exit 1" and "no network" in found.tail
    assert "worktree.setup fails" in preflight.render(found.event("t", "k").payload(), cfg.repo)


def test_the_preflight_key_changes_with_the_gate_and_the_environment_settings(tmp_path: Path) -> None:
    base = config(tmp_path)
    assert preflight.key(base) == preflight.key(config(tmp_path))
    assert preflight.key(base) != preflight.key(config(tmp_path, copy=(".env",)))
    assert preflight.key(base) != preflight.key(Config(repo=tmp_path, gate=("make test",)))
    assert not preflight.needed(Config(repo=tmp_path)) and preflight.needed(base)
    assert not preflight.needed(Config(repo=tmp_path, gate=("x",), gate_preflight=False))


# --- recipes (clanker init) -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "ecosystem", "gate", "setup"),
    [
        ({"pyproject.toml": "[project]\nname='a'\n", "uv.lock": ""}, "python-uv", None, ("uv sync --frozen",)),
        (
            {
                "pyproject.toml": "[project]\nname='a'\n[project.optional-dependencies]\ntest=['pytest']\n",
                "tests/t.py": "",
            },
            "python-pip",
            (".venv/bin/python -m pytest -q",),
            ("python3 -m venv .venv && .venv/bin/pip install -q -e '.[test]'",),
        ),
        ({"poetry.lock": "", "pyproject.toml": "[tool.poetry]\n", "tests/t.py": ""}, "python-poetry", None, None),
        (
            {"package.json": '{"scripts": {"test": "vitest"}}', "pnpm-lock.yaml": ""},
            "node-pnpm",
            ("pnpm test",),
            ("pnpm install --frozen-lockfile",),
        ),
        (
            {"package.json": '{"scripts": {"test": "jest"}}', "package-lock.json": "{}"},
            "node-npm",
            ("npm test",),
            ("npm ci",),
        ),
        (
            {"pyproject.toml": "[tool.ruff]\nline-length = 99\n", "requirements.txt": "django\npytest\n"},
            "python-pip",
            (".venv/bin/python -m pytest -q",),
            ("python3 -m venv .venv && .venv/bin/pip install -q -r requirements.txt",),
        ),
        ({"go.mod": "module x\n"}, "go", ("go test ./...",), ("go mod download",)),
        ({"Cargo.toml": "[package]\n"}, "rust", ("cargo test",), ()),
        ({"Makefile": "test:\n\techo ok\n"}, "make", ("make test",), ()),
        ({"README.md": "x"}, "none", (), ()),
    ],
)
def test_recipes_fit_the_project(
    tmp_path: Path,
    files: dict[str, str],
    ecosystem: str,
    gate: tuple[str, ...] | None,
    setup: tuple[str, ...] | None,
) -> None:
    repo = make_repo(tmp_path / "p", None, {".gitignore": ".env*\n", **files})
    (repo / ".env.local").write_text("K=v\n")
    r = recipes.detect(repo)
    assert r.ecosystem == ecosystem and r.copy == (".env.local",)
    if gate is not None:
        assert r.gate == gate
    if setup is not None:
        assert r.setup == setup


def test_init_writes_a_starter_with_the_recipe_that_loads(tmp_path: Path) -> None:
    from clanker.commands import init as setup

    repo = make_repo(tmp_path / "p", None, {"package.json": '{"scripts": {"test": "node t.js"}}', "yarn.lock": ""})
    text = setup.starter(recipes.detect(repo), "main")
    (repo / "clanker.yaml").write_text(text)
    cfg = load(repo, repo / "clanker.yaml")
    assert cfg.gate == ("yarn test",) and cfg.worktree.setup == ("yarn install --frozen-lockfile",)


# --- static trap findings ---------------------------------------------------------------------------


def test_findings_name_an_editable_install_of_the_checkout(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", None, {"README.md": "x\n"})
    site = repo / ".venv/lib/python3.11/site-packages"
    (site / "pkg-1.0.dist-info").mkdir(parents=True)
    (repo / ".venv/pyvenv.cfg").write_text("home = /usr/bin\n")
    (site / "pkg-1.0.dist-info/direct_url.json").write_text(
        json.dumps({"url": f"file://{repo}", "dir_info": {"editable": True}})
    )
    cfg = Config(repo=repo, gate=(f"{repo}/run-tests", f"env > {repo}-gateenv.txt"))
    env = {"VIRTUAL_ENV": str(repo / ".venv"), "PATH": f"{repo / '.venv/bin'}:/usr/bin"}
    found = traps.findings(cfg, repo / ".clanker", env)
    assert any("editable install of your checkout (pkg)" in f for f in found)
    assert [f for f in found if "absolute path" in f] == [
        f"the gate command `{repo}/run-tests` names your checkout ({repo}) by its absolute path"
    ]
    assert traps.findings(Config(repo=repo), repo / ".clanker", {"PATH": "/usr/bin"}) == []


# --- handing the environment to a pane --------------------------------------------------------------


def _no_handed_vars(monkeypatch: pytest.MonkeyPatch) -> None:
    """None of the variables a pane is handed: the agents' and clanker's own (CI sets some)."""
    for name in [*envpass.AGENT_VARS, *(n for n in os.environ if n.startswith("CLANKER_"))]:
        monkeypatch.delenv(name, raising=False)


def test_handoff_writes_a_private_file_that_the_pane_reads_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    _no_handed_vars(monkeypatch)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-secret-value-123456")
    monkeypatch.setenv("MY_SETTING", "on")
    cfg = Config(repo=tmp_path, env_pass=("MY_SETTING",))
    out = envpass.handoff(cfg)
    path = Path(out[envpass.ENV_FILE])
    assert not path.is_relative_to(tmp_path / ".clanker") and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert json.loads(path.read_text()) == {"ANTHROPIC_API_KEY": "sk-ant-secret-value-123456", "MY_SETTING": "on"}
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    monkeypatch.delenv("MY_SETTING")
    monkeypatch.setenv(envpass.ENV_FILE, str(path))
    secrets.clear()
    assert sorted(envpass.adopt()) == ["ANTHROPIC_API_KEY", "MY_SETTING"]
    assert os.environ["ANTHROPIC_API_KEY"] == "sk-ant-secret-value-123456" and not path.exists()
    assert envpass.ENV_FILE not in os.environ
    assert secrets.redact("key sk-ant-secret-value-123456") == "key [redacted]"
    assert envpass.seen(cfg) == ["ANTHROPIC_API_KEY", "MY_SETTING"]
    assert envpass.handoff(Config(repo=tmp_path, env_pass=())) != {}  # the key is still there
    secrets.clear()


def test_a_slave_knows_its_controller_made_its_pane_and_keeps_that_from_its_children(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    _no_handed_vars(monkeypatch)
    handed = panes.slave_env(Config(repo=tmp_path))
    assert handed[envpass.SPAWNED] == "1" and envpass.SPAWNED not in panes.pane_env(Config(repo=tmp_path))
    envpass.discard(handed)
    monkeypatch.setattr(envpass, "_spawned", None)
    monkeypatch.setenv(envpass.SPAWNED, "1")
    assert envpass.spawned() and envpass.SPAWNED not in os.environ, "an agent it starts never sees it"
    assert envpass.spawned(), "asked again, the same answer"
    monkeypatch.setattr(envpass, "_spawned", None)
    assert not envpass.spawned(), "a slave a person started marks its own pane"


def test_files_no_pane_picked_up_are_cleared_once_per_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A killed server leaves its unread files: an hour old, they go at the next process's first
    spawn — once per process, not at each of its spawns (a fleet spawns many at once)."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    monkeypatch.setattr(envpass, "_swept", set())
    _no_handed_vars(monkeypatch)
    monkeypatch.setenv("MY_SETTING", "on")
    cfg = Config(repo=tmp_path, env_pass=("MY_SETTING",))
    d = envpass._dir()
    stale, recent = d / "env-stale.json", d / "env-recent.json"
    for path, age in ((stale, 2 * 3600), (recent, 600)):
        path.write_text("{}")
        os.utime(path, (time.time() - age, time.time() - age))
    first = Path(envpass.handoff(cfg)[envpass.ENV_FILE])
    assert not stale.exists() and recent.exists() and first.exists()
    stale.write_text("{}")
    os.utime(stale, (time.time() - 2 * 3600, time.time() - 2 * 3600))
    envpass.handoff(cfg)
    assert stale.exists()  # this process swept already


def test_nothing_to_hand_over_writes_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    _no_handed_vars(monkeypatch)
    assert envpass.handoff(Config(repo=tmp_path)) == {}


# --- overlap between live branches -----------------------------------------------------------------


def fold_store(repo: Path) -> Store:
    paths = Paths(repo)
    paths.ensure()
    return Store(paths, "test")


def branch_with(repo: Path, branch: str, path: str, text: str) -> None:
    sh_git(repo, "branch", branch, "main")
    wt = repo.parent / f"wt-{branch.replace('/', '-')}"
    sh_git(repo, "worktree", "add", "-q", str(wt), branch)
    (wt / path).write_text(text)
    sh_git(wt, "commit", "-qam", f"edit {path}")
    sh_git(repo, "worktree", "remove", str(wt))


def test_a_submitted_task_that_conflicts_with_an_earlier_one_is_held_and_refreshed_when_main_moves(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path / "r", None, {"shared.txt": "one\n", "other.txt": "x\n"})
    branch_with(repo, "clanker/T1", "shared.txt", "first\n")
    branch_with(repo, "clanker/T2", "shared.txt", "second\n")
    branch_with(repo, "clanker/T3", "other.txt", "third\n")
    store = fold_store(repo)
    for tid in ("T1", "T2", "T3"):
        store.append(event("task.added", "cli", tid, {"title": tid}))
        store.append(event("task.claimed", f"c{tid[1]}", tid, {"slave": f"c{tid[1]}"}))
    store.append(event("task.submitted", "c1", "T1", {"slave": "c1", "files": ["shared.txt"]}))
    cfg = Config(repo=repo)
    st = store.state()
    held = at_submit(cfg, st, st.tasks["T2"], ["shared.txt"], "c2")
    assert [e.type for e in held] == ["risk", "task.held"] and held[-1].payload()["behind"] == ["T1"]
    assert "conflicts with T1 in shared.txt" in held[0].payload()["message"]
    assert at_submit(cfg, st, st.tasks["T3"], ["other.txt"], "c3") == []  # no overlap at all
    store.append(event("task.submitted", "c2", "T2", {"slave": "c2", "files": ["shared.txt"]}), *held)
    assert store.state().tasks["T2"].held_behind == ("T1",)
    # T1 lands: T2 no longer merges into main, so it goes back to its author, not to a judge.
    before = sh_git(repo, "rev-parse", "main").strip()
    sh_git(repo, "merge", "-q", "--ff-only", "clanker/T1")
    # Told what the landing changed, only tasks that changed one of those files are replayed.
    assert after_main_moved(cfg, store.state(), "c1", landed=["other.txt"]) == []
    # At submit, a branch known to contain main's head needs no replay; once main moved, it gets one.
    assert (
        at_submit(cfg, store.state(), st.tasks["T2"], ["shared.txt"], "c2", contains=before)[-1].type == "task.refresh"
    )
    refresh = after_main_moved(cfg, store.state(), "c1", landed=["shared.txt"])
    assert [e.type for e in refresh] == ["risk", "task.refresh"] and refresh[1].task_id == "T2"
    store.append(*refresh)
    t2 = store.state().tasks["T2"]
    assert t2.state == TaskState.REWORK and t2.conflicts == 1 and "shared.txt" in t2.reason


def _landed(store: Store, tid: str, files: list[str], base: str, sha: str) -> None:
    """Task `tid` taken through to main (its commit `sha` on `base`), as the fleet's events say it."""
    steps: list[tuple[str, str, dict[str, Any]]] = [
        ("task.added", "cli", {"title": tid}),
        ("task.claimed", "c1", {"slave": "c1"}),
        ("task.submitted", "c1", {"slave": "c1", "files": files}),
        ("task.judge_claimed", "c2", {"slave": "c2"}),
        ("task.verdict", "c2", {"slave": "c2", "verdict": "done"}),
        ("task.landing", "c2", {"slave": "c2"}),
        ("task.mainlined", "c2", {"slave": "c2", "sha": sha, "base": base}),
    ]
    for type_, actor, data in steps:
        store.append(event(type_, actor, tid, data))


def test_what_main_s_landings_changed_is_known_from_the_log_only_while_nothing_else_moved_it(tmp_path: Path) -> None:
    store = fold_store(make_repo(tmp_path / "r"))
    m0, m1, m2, m3 = ("0" * 40, "1" * 40, "2" * 40, "3" * 40)
    _landed(store, "T1", ["a.txt"], m0, m1)
    _landed(store, "T2", ["b/c.txt"], m1, m2)
    _landed(store, "T3", ["d.txt"], m2, m3)  # a batch in one commit: two tasks, one move
    _landed(store, "T4", ["e.txt"], m2, m3)
    st = store.state()
    assert landed_since(st, m0, m3) == frozenset({"a.txt", "b/c.txt", "d.txt", "e.txt"})
    assert landed_since(st, m1, m2) == frozenset({"b/c.txt"})
    assert landed_since(st, m3, m3) == frozenset(), "main did not move"
    assert landed_since(st, m0, "9" * 40) is None, "main's head is no landing of the log: something else moved it"
    assert landed_since(st, "8" * 40, m3) is None, "a start the kept landings do not reach"
    _landed(store, "T5", ["f.txt"], "7" * 40, "6" * 40)  # landed on a commit pushed by hand
    assert landed_since(store.state(), m0, "6" * 40) is None


def test_a_branch_main_moved_away_from_only_elsewhere_is_not_merged_again_at_submit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path / "r", None, {"a.txt": "a\n", "b.txt": "b\n"})
    m0 = sh_git(repo, "rev-parse", "main").strip()
    branch_with(repo, "clanker/T1", "a.txt", "one\n")
    branch_with(repo, "clanker/T2", "b.txt", "two\n")  # elsewhere
    branch_with(repo, "clanker/T3", "a.txt", "three\n")  # the same line as T1
    store = fold_store(repo)
    sh_git(repo, "merge", "-q", "--ff-only", "clanker/T1")
    _landed(store, "T1", ["a.txt"], m0, sh_git(repo, "rev-parse", "main").strip())
    for tid in ("T2", "T3"):
        store.append(event("task.added", "cli", tid, {"title": tid}))
        store.append(event("task.claimed", "c1", tid, {"slave": "c1"}))
    merges: list[str] = []
    real = git.merge_tree

    def merge_tree(r: Path, a: str, b: str) -> git.MergeResult:
        merges.append(b)
        return real(r, a, b)

    monkeypatch.setattr(git, "merge_tree", merge_tree)
    cfg, st = Config(repo=repo), store.state()
    assert at_submit(cfg, st, st.tasks["T2"], ["b.txt"], "c1", contains=m0) == []
    assert merges == [], "main moved by a landing of other files only: no merge to try"
    refresh = at_submit(cfg, st, st.tasks["T3"], ["a.txt"], "c1", contains=m0)
    assert merges == ["clanker/T3"] and refresh[-1].type == "task.refresh", "the same file: merged, and it conflicts"
    # A commit pushed to main by hand: what it changed is not in the log, so git is asked.
    (repo / "b.txt").write_text("pushed\n")
    sh_git(repo, "commit", "-qam", "by hand")
    merges.clear()
    assert at_submit(cfg, st, st.tasks["T2"], ["b.txt"], "c1", contains=m0)[-1].type == "task.refresh"
    assert merges == ["clanker/T2"]


def test_relative_keeps_only_paths_inside_the_worktree(tmp_path: Path) -> None:
    wt = tmp_path / "wt"
    assert relative(wt, [str(wt / "a/b.py"), "./c.txt", "/etc/passwd", "../x", "d"]) == ["a/b.py", "c.txt", "d"]


# --- config ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("worktree:\n  copy: [/etc/passwd]\n", "worktree.copy: '/etc/passwd' must be a path inside the repository"),
        ("worktree:\n  link: [../up]\n", "worktree.link: '../up' must be a path inside the repository"),
        ("worktree:\n  setup: nope\n", "worktree.setup: must be a list"),
        ("worktree:\n  port_base: 80\n", "worktree.port_base: must be between 1024 and 65000"),
        ("env:\n  pass: [not-a-name]\n", "env.pass: must be an environment variable name"),
        ("gate_preflight: sometimes\n", "gate_preflight: must be true or false"),
        ("worktrees: a\nworktree:\n  root: b\n", "give `worktree.root` or the older `worktrees`, not both"),
    ],
)
def test_bad_environment_settings_are_one_line_errors(tmp_path: Path, text: str, problem: str) -> None:
    repo = make_repo(tmp_path / "r", text)
    with pytest.raises(ConfigError) as info:
        load(repo, repo / "clanker.yaml")
    assert problem in str(info.value) and "clanker.yaml:" in str(info.value)


def test_worktree_root_outside_the_repo_is_normalised(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", "worktree:\n  root: ../wts\n")
    cfg = load(repo, repo / "clanker.yaml")
    assert cfg.worktrees == tmp_path.resolve() / "wts" or cfg.worktrees == (tmp_path / "wts")


def test_the_state_keeps_the_preflight_and_setup_failures_across_a_snapshot(tmp_path: Path) -> None:
    from clanker.state.snapshot import state_from_json, state_to_json

    repo = make_repo(tmp_path / "r", None, {"README.md": "x\n"})
    store = fold_store(repo)
    store.append(
        event("preflight.claimed", "c1", None, {"slave": "c1", "key": "k"}),
        event("preflight.ran", "c1", None, {"slave": "c1", "key": "k", "passed": False, "kind": "trap", "sha": "s"}),
        event("setup.failed", "c2", None, {"slave": "c2", "command": "npm ci", "main_sha": "s", "log": "l"}),
    )
    st = store.state()
    again = state_from_json(json.loads(json.dumps(state_to_json(st))))
    assert again.preflight == st.preflight and again.setup_failed == st.setup_failed
    assert again.preflight is not None and again.preflight.kind == "trap" and not again.preflight.trusted
    assert isinstance(st, State) and st.setup_failed["c2"].command == "npm ci"


def test_running_the_fake_gate_needs_no_shell_quirks() -> None:
    # The preflight breaks files with a line no language accepts.
    proc = subprocess.run([sys.executable, "-c", preflight.PROBE], capture_output=True)
    assert proc.returncode != 0


def test_a_worktree_root_inside_the_checkout_is_kept_out_of_its_git_status(tmp_path: Path) -> None:
    from clanker.state.paths import prepare

    repo = make_repo(tmp_path / "r", "worktree:\n  root: .worktrees\n")
    cfg = load(repo, repo / "clanker.yaml")
    paths = prepare(cfg)
    git.ensure_worktree(repo, paths.worktree("c1"), "main")
    assert sh_git(repo, "status", "--porcelain") == ""
    prepare(cfg)  # once is enough
    assert (repo / ".git/info/exclude").read_text().count("/.worktrees/") == 1


@pytest.mark.parametrize(
    ("gitignore", "exclude", "ours"),
    [
        ("", "/.clanker/\n", True),  # what `clanker init` writes
        (".env\n.clanker\n", "", True),
        ("!keep.log\n", "/.clanker/\n", False),  # a re-include the top .gitignore could mean: git is asked
        ("# /.clanker/\n", "", False),
    ],
)
def test_clanker_s_own_ignore_rule_is_read_from_the_files_and_anything_else_asked_of_git(
    tmp_path: Path, gitignore: str, exclude: str, ours: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clanker.state import paths as state_paths

    repo = make_repo(tmp_path / "r", None, {".gitignore": gitignore} if gitignore else None)
    (repo / ".git/info/exclude").write_text(exclude)
    asked: list[str] = []
    real = git.is_ignored

    def is_ignored(r: Path, path: str) -> bool:
        asked.append(path)
        return real(r, path)

    monkeypatch.setattr(git, "is_ignored", is_ignored)
    cfg = load(repo)
    assert state_paths._ruled_out(repo) is ours
    state_paths.prepare(cfg)
    assert asked == ([] if ours else [".clanker/events.log"])
    # Either way it is ignored afterwards, and by one rule: git agrees.
    (repo / ".clanker" / "events.log").write_text("")
    assert sh_git(repo, "status", "--porcelain", "--", ".clanker") == ""
    assert real(repo, ".clanker/events.log")


def test_an_interrupted_gate_leaves_no_command_running(tmp_path: Path) -> None:
    marker = tmp_path / "gate-still-running"
    script = (
        # Ctrl-C raises KeyboardInterrupt (a shell running the tests in the background ignores SIGINT).
        "import signal\nsignal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "from pathlib import Path\nfrom clanker.project.gate import run_gate\n"
        f"run_gate(('sleep 30; touch {marker}',), Path({str(tmp_path)!r}), 60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script])
    retry_until(lambda: _running(f"sleep 30; touch {marker}"), 20)
    proc.send_signal(signal.SIGINT)
    proc.wait(20)
    retry_until(lambda: not _running(f"sleep 30; touch {marker}"), 10)


def _running(cmdline: str) -> bool:
    ps = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True).stdout
    return any(line.strip() == f"sh -c {cmdline}" for line in ps.splitlines())


def test_a_task_nobody_can_judge_is_named_in_the_summary() -> None:
    from clanker.fleet.controller import no_judge, summary

    evs = [
        make("task.added", "cli", "T1", title="one"),
        make("task.claimed", "c1", "T1", slave="c1"),
        make("task.submitted", "c1", "T1", slave="c1"),
        make("setup.failed", "c2", None, slave="c2", command="npm ci"),
    ]
    state = State()
    from clanker.state.fold import fold

    state = fold(state, [(e, n) for n, e in enumerate(evs, 1)])
    assert no_judge(state, 2) == ["T1 waits for a judge: c2 can't work (worktree.setup failed)"]
    assert no_judge(state, 1) == ["T1 waits for a judge, and its author c1 is the only slave: set `slaves: 2` or more"]
    assert no_judge(state, 3) == []
    assert "T1 waits for a judge" in summary(state, 3, 10.0, slaves=2)


def test_a_gate_past_its_timeout_fails_and_is_stopped(tmp_path: Path) -> None:
    from clanker.project.gate import run_gate

    result = run_gate(("echo started; sleep 30",), tmp_path, 1)
    assert not result.passed and result.failed == "echo started; sleep 30" and 1 <= result.seconds < 10
    assert "started" in result.output and "(timed out after 1s)" in result.output
    assert not _running("echo started; sleep 30")


def test_passwords_in_urls_and_passed_variables_are_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    secrets.clear()
    secrets.register_env({"DATABASE_URL": "postgres://app:hunter2-long-pass@db/x", "HOME": "/home/me"})
    assert (
        secrets.redact("postgres://app:hunter2-long-pass@db/x in /home/me")
        == "postgres://app:[redacted]@db/x in /home/me"
    )
    monkeypatch.setenv("PLAIN_SETTING", "a-long-ordinary-value")
    secrets.register_names(["PLAIN_SETTING"])  # env.pass and credentials: secrets whatever their names
    assert secrets.redact("v=a-long-ordinary-value") == "v=[redacted]"
    secrets.clear()


def test_two_tasks_claimed_in_the_same_millisecond_still_have_an_order(tmp_path: Path) -> None:
    # The log keeps times to the millisecond: two claims can carry the same time. One of the two
    # must still come first, or neither is held behind the other and the conflict reaches a judge.
    repo = make_repo(tmp_path / "r", None, {"shared.txt": "one\n"})
    branch_with(repo, "clanker/T1", "shared.txt", "first\n")
    branch_with(repo, "clanker/T2", "shared.txt", "second\n")
    store = fold_store(repo)
    same = 1_800_000_000.123
    for tid in ("T1", "T2"):
        store.append(event("task.added", "cli", tid, {"title": tid}, ts=same))
        store.append(event("task.claimed", f"c{tid[1]}", tid, {"slave": f"c{tid[1]}"}, ts=same))
    store.append(event("task.submitted", "c1", "T1", {"slave": "c1", "files": ["shared.txt"]}, ts=same))
    st = store.state()
    held = at_submit(Config(repo=repo), st, st.tasks["T2"], ["shared.txt"], "c2")
    assert [e.type for e in held] == ["risk", "task.held"], "T2 waits behind T1, though they tie in time"
