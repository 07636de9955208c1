"""A gate result is reused only for the very tree (and settings) it ran on. Real git, real gate
commands that count their runs, the real slave job code."""

from __future__ import annotations

from pathlib import Path

import msgspec
import msgspec.structs
import pytest

from clanker.config import load
from clanker.jobs.context import JobContext
from clanker.state.heartbeat import Heart
from clanker.state.paths import Paths, prepare
from clanker.state.store import Store
from clanker.system import git as gitw
from clanker.system.tmux import Tmux

from .helpers import clanker, event, events, git, make_repo

COUNTING_GATE = 'gate:\n  - echo "$(git rev-parse HEAD^{tree})" >> "$GATE_RUNS"\n'


def _ctx(repo: Path, sid: str = "c1") -> JobContext:
    cfg = load(repo)
    prepare(cfg)
    paths = Paths(repo)
    return JobContext(cfg=cfg, paths=paths, store=Store(paths, sid), sid=sid, worktree=paths.worktree(sid),
                      heart=Heart(paths, sid, 60), say=lambda _s: None)  # fmt: skip


def _commit(repo: Path, name: str, text: str) -> str:
    (repo / name).write_text(text)
    git(repo, "add", name)
    git(repo, "commit", "-q", "-m", name)
    return git(repo, "rev-parse", "HEAD").strip()


def test_a_pass_is_reused_for_its_own_tree_and_key_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runs = tmp_path / "runs.txt"
    monkeypatch.setenv("GATE_RUNS", str(runs))
    repo = make_repo(tmp_path / "r", "slaves: 2\nagent:\n  kind: fake\n" + COUNTING_GATE)
    ctx = _ctx(repo)
    gitw.ensure_worktree(repo, ctx.worktree, "main")
    ctx.store.append(event("task.added", "cli", "T1", {"title": "t"}))
    a = _commit(repo, "a.txt", "a\n")
    tree_a = git(repo, "rev-parse", "HEAD^{tree}").strip()

    assert ctx.gate_tree("T1", "judge", a).passed
    assert runs.read_text().split() == [tree_a]
    t = ctx.store.state().tasks["T1"]
    assert (t.passed_tree, t.passed_key) == (tree_a, ctx.gate_key())

    # The same tree again (a landing on the main the judge saw): not run, recorded as reused.
    assert ctx.gate_tree("T1", "mainline", a).passed
    assert runs.read_text().split() == [tree_a]
    reused = [e for e in events(repo) if e["type"] == "gate.ran" and e.get("reused")]
    assert len(reused) == 1 and reused[0]["tree"] == tree_a and reused[0]["role"] == "mainline"

    # Another tree (main moved meanwhile): the gate runs on it.
    b = _commit(repo, "b.txt", "b\n")
    tree_b = git(repo, "rev-parse", "HEAD^{tree}").strip()
    assert ctx.gate_tree("T1", "mainline", b).passed
    assert runs.read_text().split() == [tree_a, tree_b]

    # The same tree under other gate settings: runs again.
    ctx.cfg = msgspec.structs.replace(ctx.cfg, gate=(*ctx.cfg.gate, "true"))
    assert ctx.gate_tree("T1", "mainline", b).passed
    assert runs.read_text().split() == [tree_a, tree_b, tree_b]


def test_a_worker_pass_and_a_failure_are_never_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runs = tmp_path / "runs.txt"
    monkeypatch.setenv("GATE_RUNS", str(runs))
    repo = make_repo(tmp_path / "r", "slaves: 2\nagent:\n  kind: fake\n" + COUNTING_GATE + "  - test ! -e bad\n")
    ctx = _ctx(repo)
    gitw.ensure_worktree(repo, ctx.worktree, "main")
    ctx.store.append(event("task.added", "cli", "T1", {"title": "t"}))
    a = _commit(repo, "a.txt", "a\n")
    tree = git(repo, "rev-parse", "HEAD^{tree}").strip()
    # A worker's gate (its worktree holds whatever the agent left) is not remembered.
    ctx.record_gate("T1", "work", ctx.gate(sha=a), tree, ctx.gate_key())
    assert ctx.store.state().tasks["T1"].passed_tree == ""
    bad = _commit(repo, "bad", "x\n")
    assert not ctx.gate_tree("T1", "judge", bad).passed
    assert not ctx.gate_tree("T1", "mainline", bad).passed
    assert len(runs.read_text().split()) == 3, "a failure is run again, never taken as a pass"


def test_a_copied_file_changed_in_the_checkout_means_another_key(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", "slaves: 2\nagent:\n  kind: fake\nworktree:\n  copy: [.env]\n",
                     files={".gitignore": ".env\n.clanker/\n"})  # fmt: skip
    (repo / ".env").write_text("A=1\n")
    ctx = _ctx(repo)
    gitw.ensure_worktree(repo, ctx.worktree, "main")
    before = ctx.gate_key()
    (repo / ".env").write_text("A=22\n")
    assert ctx.gate_key() != before


@pytest.mark.e2e
def test_a_lone_task_on_an_unchanged_main_lands_on_the_judges_gate(tmp_path: Path, tm: Tmux) -> None:
    runs = tmp_path / "runs.txt"
    config = f"slaves: 2\nheartbeat_secs: 0.5\nagent:\n  kind: fake\n{COUNTING_GATE}gate_preflight: false\n"
    repo = make_repo(tmp_path / "r", config.replace("$GATE_RUNS", str(runs)))
    clanker(repo, "task", "add", "One", "--prompt", "fake: write one.txt 1", check=True)
    proc = clanker(repo, "run", "--until-done", "--timeout", "90", timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    gates = [e for e in events(repo) if e["type"] == "gate.ran"]
    assert [(g["role"], bool(g.get("reused"))) for g in gates] == [
        ("work", False),
        ("judge", False),
        ("mainline", True),
    ]
    main_tree = git(repo, "rev-parse", "main^{tree}").strip()
    assert gates[1]["tree"] == gates[2]["tree"] == main_tree, "main moved to the very tree the judge's gate passed"
    assert runs.read_text().split().count(main_tree) >= 1
    accepted = next(e for e in events(repo) if e["type"] == "task.verdict" and e["verdict"] == "done")
    landed = next(e for e in events(repo) if e["type"] == "task.mainlined")
    assert landed["sha"] == accepted["candidate"][0] == git(repo, "rev-parse", "main").strip(), "the judge's commit"


def test_the_lander_takes_the_judges_commit_only_on_the_main_it_was_built_on(tmp_path: Path) -> None:
    from clanker.jobs import integrate, mainline
    from clanker.state.model import Task

    repo = make_repo(tmp_path / "r", "slaves: 2\nagent:\n  kind: fake\n")
    ctx = _ctx(repo)
    git(repo, "checkout", "-q", "-b", "clanker/T1")
    _commit(repo, "t1.txt", "t1\n")
    git(repo, "checkout", "-q", "main")
    base = git(repo, "rev-parse", "main").strip()
    task = Task(id="T1", title="t", branch="clanker/T1")
    cand = mainline.build(repo, "main", task)
    assert cand.sha and cand.tree
    judged = msgspec.structs.replace(task, candidate=(cand.sha, cand.base, cand.tree))

    stack, _ = integrate._stack(ctx, base, [judged])
    assert [(s.sha, s.tree) for s in stack] == [(cand.sha, cand.tree)], "the very commit the judge gated"

    # main moved: the squash is built again, on the new head
    moved = _commit(repo, "other.txt", "o\n")
    stack, _ = integrate._stack(ctx, moved, [judged])
    assert stack[0].sha != cand.sha and git(repo, "rev-parse", f"{stack[0].sha}^").strip() == moved

    # a commit that is not there (say, pruned) is never landed: built again
    gone = msgspec.structs.replace(task, candidate=("ab" * 20, moved, cand.tree))
    stack, _ = integrate._stack(ctx, moved, [gone])
    assert stack[0].sha != "ab" * 20 and git(repo, "rev-parse", f"{stack[0].sha}^").strip() == moved
