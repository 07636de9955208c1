"""The judge and the mainline queue, end to end on a private tmux server with the fake agent.
After every scenario the gate runs on every commit of main."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import clanker, clanker_bg, events, gate_passes_on_every_commit, git, make_repo, retry_until, status

pytestmark = pytest.mark.e2e

GATE = """#!/bin/sh
if [ -e GATE_FAIL ]; then echo "GATE_FAIL: marker present"; exit 1; fi
if [ -e a.txt ] && [ -e b.txt ]; then echo "a.txt and b.txt clash"; exit 1; fi
if [ -e bad.txt ] && [ -e one.txt ]; then echo "bad.txt breaks one.txt"; exit 1; fi
if [ -e x1.txt ] && [ -e x2.txt ] && [ ! -e x3.txt ]; then echo "x1 and x2 need x3"; exit 1; fi
echo gate ok
"""


def repo_with(tmp_path: Path, extra: str = "", slaves: int = 2, files: dict[str, str] | None = None) -> Path:
    config = f"slaves: {slaves}\nheartbeat_secs: 0.5\nagent:\n  kind: fake\ngate:\n  - sh gate.sh\n{extra}"
    return make_repo(tmp_path / "r", config, {"README.md": "# r\n", "gate.sh": GATE, **(files or {})})


def add(repo: Path, title: str, *lines: str, **opts: str) -> None:
    args = [f"--{k.replace('_', '-')}={v}" for k, v in opts.items()]
    clanker(repo, "task", "add", title, "--prompt", "\n".join(lines), *args, check=True)


def run(repo: Path, timeout: float = 150) -> str:
    proc = clanker(repo, "run", "--until-done", "--timeout", str(timeout), timeout=timeout + 30)
    out = f"{proc.returncode}\n{proc.stdout}{proc.stderr}"
    assert proc.returncode == 0, out
    return out


def main_is_green(repo: Path, allowed: set[str] = frozenset()) -> None:  # type: ignore[assignment]
    assert git(repo, "rev-list", "--merges", "main") == "", "main is linear"
    assert set(gate_passes_on_every_commit(repo, ["sh gate.sh"])) <= allowed


def verdicts(repo: Path, task: str) -> list[str]:
    return [e["verdict"] for e in events(repo) if e["type"] == "task.verdict" and e["task"] == task]


def test_two_tasks_editing_the_same_lines_one_is_reworked_and_both_land(tmp_path: Path, socket_name: str) -> None:
    repo = repo_with(tmp_path, files={"shared.txt": "line one\n"})
    add(repo, "First edit", "fake: on-attempt 1 write shared.txt first version")
    add(repo, "Second edit", "fake: sleep 0.5", "fake: on-attempt 1 write shared.txt second version")
    run(repo)
    assert [t["state"] for t in status(repo)["tasks"]] == ["done", "done"]
    # The conflict is caught before any judge sees it: the later task is held behind the earlier
    # one, and sent back to its author when main moves under it.
    assert not [e for e in events(repo) if e["type"] == "task.verdict" and e.get("conflict")]
    conflicts = [e for e in events(repo) if e["type"] == "task.refresh"]
    assert len(conflicts) == 1 and "shared.txt" in conflicts[0]["reasons"]
    loser = conflicts[0]["task"]
    winner = "T1" if loser == "T2" else "T2"
    evs = events(repo)
    at = {k: [i for i, e in enumerate(evs) if f"{e['type']}:{e.get('task')}" == k] for k in (
        f"task.judge_claimed:{winner}", f"task.judge_claimed:{loser}", f"task.mainlined:{winner}")}  # fmt: skip
    warned = [
        i for i, e in enumerate(evs) if e["type"] == "risk" and e.get("task") == loser and "shared.txt" in e["files"]
    ]
    # Warned while they worked, before either was judged; serialised: the later one was judged
    # only after the earlier one landed.
    assert warned and warned[0] < min(at[f"task.judge_claimed:{winner}"] + at[f"task.judge_claimed:{loser}"])
    assert any(e["type"] == "task.held" and e["task"] == loser and e["behind"] == [winner] for e in evs)
    assert min(at[f"task.judge_claimed:{loser}"]) > min(at[f"task.mainlined:{winner}"])
    # The reworked task resolved the conflict in its own branch (keeping both sides) and landed.
    assert sorted(git(repo, "show", "main:shared.txt").splitlines()) == ["first version", "second version"]
    assert verdicts(repo, loser)[-1] == "done"
    main_is_green(repo)


def test_conflict_markers_an_agent_leaves_never_reach_main(tmp_path: Path, socket_name: str) -> None:
    repo = repo_with(tmp_path, "max_attempts: 4\n", files={"shared.txt": "line one\n"})
    add(repo, "First edit", "fake: on-attempt 1 write shared.txt first version")
    # Its second attempt merges main, meets the conflict and leaves the markers in place.
    add(repo, "Second edit", "fake: sleep 0.5", "fake: on-attempt 1 write shared.txt second version",
        "fake: on-attempt 2 leave-conflicts")  # fmt: skip
    run(repo)
    assert [t["state"] for t in status(repo)["tasks"]] == ["done", "done"]
    evs = events(repo)
    loser = next(e["task"] for e in evs if e["type"] == "task.conflicted")
    assert next(e for e in evs if e["type"] == "task.conflicted")["files"] == ["shared.txt"]
    failed = [e["error"] for e in evs if e["type"] == "task.failed" and e["task"] == loser]
    assert any("conflict markers left in shared.txt (line 1" in f for f in failed), failed
    # The markers were caught before any gate or judge: the attempt that left them was never submitted.
    at_fail = next(i for i, e in enumerate(evs) if e["type"] == "task.failed" and "markers" in e.get("error", ""))
    submitted = [i for i, e in enumerate(evs) if e["type"] == "task.submitted" and e["task"] == loser]
    assert len(submitted) == 2 and submitted[0] < at_fail < submitted[1]
    for sha in git(repo, "rev-list", "main").split():
        assert "<<<<<<<" not in git(repo, "show", f"{sha}:shared.txt")
    assert sorted(git(repo, "show", "main:shared.txt").splitlines()) == ["first version", "second version"]
    main_is_green(repo)


def test_a_task_that_passes_alone_but_fails_after_rebase_never_reaches_main(tmp_path: Path, socket_name: str) -> None:
    repo = repo_with(tmp_path)
    for mine in ("a", "b"):
        add(
            repo,
            f"Add {mine}.txt",
            f"fake: write {mine}.txt {mine}",
            f"fake: on-attempt 2 delete {mine}.txt",
            f"fake: on-attempt 2 write {mine}.ok fixed",
        )
    run(repo)
    reworked = [e for e in events(repo) if e["type"] == "task.verdict" and e["verdict"] == "rework"]
    assert len(reworked) == 1 and "a.txt and b.txt clash" in reworked[0]["reasons"]
    # The broken combination was never a commit of main.
    for sha in git(repo, "rev-list", "main").splitlines():
        files = set(git(repo, "ls-tree", "--name-only", sha).splitlines())
        assert not {"a.txt", "b.txt"} <= files
    main_is_green(repo)


def test_a_batch_of_four_with_one_bad_task_lands_three_and_bisects_the_culprit(
    tmp_path: Path, socket_name: str
) -> None:
    extra = "judge:\n  max_parallel: 4\nmainline:\n  batch_max: 4\n  batch_wait_secs: 60\n"
    repo = repo_with(tmp_path, extra, slaves=4)
    add(repo, "One", "fake: write one.txt 1")
    add(repo, "Two", "fake: write two.txt 2")
    add(repo, "Three", "fake: write three.txt 3")
    # Fine on main alone (its judge passes it), but it breaks one.txt's feature in the batch.
    add(
        repo,
        "Bad",
        "fake: sleep 1.5",
        "fake: write bad.txt oops",
        "fake: on-attempt 2 delete bad.txt",
        "fake: on-attempt 2 write good.txt fixed",
    )
    run(repo)
    evs = events(repo)
    first = [e for e in evs if e["type"] == "task.landing"][:4]
    assert sorted(e["task"] for e in first) == ["T1", "T2", "T3", "T4"], "the four went as one batch"
    mainline_gates = [e for e in evs if e["type"] == "gate.ran" and e["role"] == "mainline"]
    assert [g["passed"] for g in mainline_gates[:3]] == [False, True, True], "stack fails; bisection finds T4"
    assert verdicts(repo, "T4")[:2] == ["done", "rework"]
    assert "bad.txt breaks one.txt" in next(
        e["reasons"] for e in evs if e["type"] == "task.verdict" and e["verdict"] == "rework"
    )
    landed_first = [e["task"] for e in evs if e["type"] == "task.mainlined"][:3]
    assert sorted(landed_first) == ["T1", "T2", "T3"]
    assert [t["state"] for t in status(repo)["tasks"]] == ["done"] * 4
    main_is_green(repo)


@pytest.mark.parametrize("mode", ["one", "each"])
def test_every_commit_a_batch_puts_on_main_passed_the_gate(tmp_path: Path, socket_name: str, mode: str) -> None:
    # Each task passes alone; main + X1 + X2 fails; main + X1 + X2 + X3 passes. Gating only the tip
    # used to put the red X2 commit on main under a green tip.
    extra = f"judge:\n  max_parallel: 4\nmainline:\n  batch_max: 3\n  batch_wait_secs: 60\n  batch_commits: {mode}\n"
    repo = repo_with(tmp_path, extra, slaves=4)
    add(repo, "X1", "fake: write x1.txt 1")
    add(repo, "X2", "fake: sleep 1.5", "fake: write x2.txt 2")
    add(repo, "X3", "fake: sleep 3", "fake: write x3.txt 3")
    run(repo)
    assert [t["state"] for t in status(repo)["tasks"]] == ["done"] * 3
    main_is_green(repo)  # the gate passes on every commit of main
    evs = events(repo)
    batch = [e["task"] for e in evs if e["type"] == "task.landing"][:3]
    assert batch == ["T1", "T2", "T3"], "the three went as one batch, in this order"
    commits = git(repo, "rev-list", "main").split()
    if mode == "one":
        assert len(commits) == 2, "initial + one commit for the batch"
        body = git(repo, "log", "-1", "--format=%B", "main")
        assert [line for line in body.splitlines() if line.startswith("Clanker-Task:")] == [
            "Clanker-Task: T1", "Clanker-Task: T2", "Clanker-Task: T3"
        ]  # fmt: skip
        shas = {e["sha"] for e in evs if e["type"] == "task.mainlined"}
        assert shas == {commits[0]}
    else:
        assert len(commits) == 4, "one commit per task"
        assert verdicts(repo, "T2")[:2] == ["done", "rework"], "its prefix failed: back to its author"
        assert "x1 and x2 need x3" in next(
            e["reasons"] for e in evs if e["type"] == "task.verdict" and e["verdict"] == "rework"
        )


def test_a_bad_commit_on_main_is_found_by_the_health_check_and_fixed(tmp_path: Path, socket_name: str) -> None:
    extra = "health:\n  every_minutes: 0.01\n  fix_prompt: 'fake: delete GATE_FAIL'\n"
    repo = repo_with(tmp_path, extra)
    add(repo, "Ordinary work", "fake: sleep 2", "fake: write work.txt done")
    proc = clanker_bg(repo, "run", "--until-done", "--timeout", "150")
    # The run's gate preflight passed on a green main; then a bad commit lands on main by hand.
    retry_until(lambda: any(e["type"] == "preflight.ran" and e["passed"] for e in events(repo)), 60)
    (repo / "GATE_FAIL").write_text("pushed by mistake\n")
    git(repo, "add", "GATE_FAIL")
    git(repo, "commit", "-q", "-m", "a bad commit straight to main")
    bad = git(repo, "rev-parse", "HEAD")
    out, _ = proc.communicate(timeout=200)
    assert proc.returncode == 0, out
    tasks = {t["id"]: t for t in status(repo)["tasks"]}
    regressions = [t for t in tasks.values() if t["id"].startswith("R")]
    assert len(regressions) == 1, "the same failure is filed once, however often it is seen"
    assert regressions[0]["state"] == "done" and tasks["T1"]["state"] == "done"
    added = next(e for e in events(repo) if e["type"] == "task.added" and e["task"] == "R1")
    assert added["tags"] == ["regression"] and "GATE_FAIL: marker present" in added["prompt"]
    # Green again after the fix: the fix's own landing gated main (main.green), or a later health
    # check passed; a health run of the old red main that finishes after the fix landed is stale.
    log = events(repo)
    failed_at = next(i for i, e in enumerate(log) if e["type"] == "health.ran" and not e["passed"])
    greens = [i for i, e in enumerate(log) if e["type"] == "main.green" or (e["type"] == "health.ran" and e["passed"])]
    assert greens and greens[-1] > failed_at, "main is green again after the fix"
    late = [e for e in log[greens[-1] :] if e["type"] == "health.ran" and not e["passed"]]
    assert all(e.get("stale") for e in late), late
    assert not (repo / "GATE_FAIL").exists() and git(repo, "status", "--porcelain") == ""
    main_is_green(repo, allowed={bad})  # only the commit pushed by hand ever failed


def test_a_rework_verdict_goes_back_to_the_same_slave_and_branch_with_the_reasons(
    tmp_path: Path, socket_name: str
) -> None:
    repo = repo_with(tmp_path)
    add(
        repo,
        "Feature",
        "fake: write f.txt v1",
        "fake: on-attempt 2 append f.txt v2",
        "fake-judge: rework-once please also write v2",
    )
    run(repo)
    claims = [e for e in events(repo) if e["type"] == "task.claimed"]
    assert len(claims) == 2 and claims[0]["slave"] == claims[1]["slave"]
    assert verdicts(repo, "T1") == ["rework", "done"]
    second = (repo / ".clanker" / "prompts" / "T1-worker-2.md").read_text()
    assert "The judge asked for rework" in second and "please also write v2" in second
    # One branch carries both attempts; main got one squashed commit.
    log = git(repo, "log", "--format=%s", "clanker/T1").splitlines()
    assert sum("attempt 1" in s for s in log) == 1 and sum("attempt 2" in s for s in log) == 1
    assert git(repo, "show", "main:f.txt") == "v1\nv2"
    assert len(git(repo, "log", "--format=%H", "--grep=Clanker-Task: T1", "main").splitlines()) == 1
    main_is_green(repo)


def test_your_checkout_of_main_is_never_clobbered(tmp_path: Path, socket_name: str) -> None:
    repo = repo_with(tmp_path)
    (repo / "README.md").write_text("# r\nmy unsaved notes\n")  # you are editing the file the task changes
    add(repo, "Improve the readme", "fake: write README.md # r, improved")
    runner = clanker_bg(repo, "run", "--until-done", "--timeout", "120")
    retry_until(lambda: any(e["type"] == "risk" and e.get("kind") == "mainline" for e in events(repo)), 60)
    assert (repo / "README.md").read_text() == "# r\nmy unsaved notes\n", "clanker waits rather than overwrite"
    assert len(git(repo, "rev-list", "main").splitlines()) == 1
    git(repo, "checkout", "README.md")  # you drop your edit: now it can land
    out, _ = runner.communicate(timeout=150)
    assert runner.returncode == 0, out
    assert (repo / "README.md").read_text() == "# r, improved\n" and git(repo, "status", "--porcelain") == ""
    main_is_green(repo)


def test_follow_ups_are_created_only_once_the_parent_is_done(tmp_path: Path, socket_name: str) -> None:
    repo = repo_with(tmp_path)
    add(repo, "Parent", "fake: write p.txt parent", "fake: follow-up Document p.txt")
    run(repo)
    evs = events(repo)
    added = next(e for e in evs if e["type"] == "task.added" and e["task"] == "T1-F1")
    mainlined = next(e for e in evs if e["type"] == "task.mainlined" and e["task"] == "T1")
    assert added["ts"] >= mainlined["ts"] and added["parent"] == "T1" and added["tags"] == ["follow-up"]
    assert added["title"] == "Document p.txt"
    assert {t["id"]: t["state"] for t in status(repo)["tasks"]} == {"T1": "done", "T1-F1": "done"}
    main_is_green(repo)


def test_check_main_script(tmp_path: Path) -> None:
    repo = repo_with(tmp_path)
    script = Path(__file__).resolve().parent.parent / "scripts" / "check-main"
    ok = subprocess.run([sys.executable, str(script), str(repo)], capture_output=True, text=True)
    assert ok.returncode == 0 and "1 commit(s) of main pass the gate" in ok.stdout
    (repo / "GATE_FAIL").write_text("x\n")
    git(repo, "add", "GATE_FAIL")
    git(repo, "commit", "-q", "-m", "bad")
    bad = subprocess.run([sys.executable, str(script), str(repo)], capture_output=True, text=True)
    assert bad.returncode == 1 and f"FAIL {git(repo, 'rev-parse', '--short', 'HEAD')}" in bad.stdout


def test_touching_a_file_another_task_owns_is_flagged_as_a_conflict(tmp_path: Path, socket_name: str) -> None:
    repo = repo_with(tmp_path)
    add(repo, "Owns lib", "fake: write lib/a.txt mine", "fake: sleep 2", path="lib")
    add(
        repo,
        "Strays into lib",
        "fake: sleep 0.5",
        "fake: write lib/stray.txt oops",
        "fake: write docs/d.txt d",
        path="docs",
    )
    run(repo)
    risks = [e for e in events(repo) if e["type"] == "risk" and e.get("kind") == "conflict"]
    assert len(risks) == 1, risks
    assert risks[0]["task"] == "T2" and risks[0]["files"] == ["lib/stray.txt"] and risks[0]["owners"] == ["T1"]
    main_is_green(repo)
