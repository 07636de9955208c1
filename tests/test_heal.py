"""The fleet heals itself: what a slave still holds between jobs, what a torn log line hides, what
git already knows. Real repositories, the real slave object, no tmux."""

from __future__ import annotations

from pathlib import Path

import pytest

from clanker.config import load
from clanker.fleet.slave import Slave
from clanker.state.model import TaskState
from clanker.state.paths import Paths, prepare
from clanker.state.store import Store
from clanker.system import git as gitw
from clanker.system.tmux import Tmux

from .helpers import clanker, event, git, make_repo


def test_a_slave_between_jobs_completes_a_landing_git_already_has(tmp_path: Path) -> None:
    # The landing's task.mainlined never reached the log; main has the commit (its trailer says
    # which task). The slave that still holds it finishes it on its next look, without a restart.
    repo = make_repo(tmp_path / "r", "slaves: 2\nagent:\n  kind: fake\n")
    cfg = load(repo)
    prepare(cfg)
    slave = Slave(cfg, 1)
    store = slave.store
    store.append(event("task.added", "cli", "T1", {"title": "landed"}))
    store.append(event("task.added", "cli", "T2", {"title": "not landed"}))
    for tid in ("T1", "T2"):
        store.append(event("task.claimed", "c2", tid, {"slave": "c2"}))
        store.append(event("task.submitted", "c2", tid, {"slave": "c2"}))
        store.append(event("task.judge_claimed", "c9", tid, {"slave": "c9"}))
        store.append(event("task.verdict", "c9", tid, {"slave": "c9", "verdict": "done"}))
        store.append(event("task.landing", "c1", tid, {"slave": "c1"}))
    (repo / "f.txt").write_text("T1's change\n")
    git(repo, "add", "f.txt")
    git(repo, "commit", "-q", "-m", f"landed\n\n{gitw.TRAILER}: T1")
    head = git(repo, "rev-parse", "main").strip()

    job = slave._claim()
    assert job is not None and (job.kind, job.batch) == ("mainline", ("T2",)), "healed, then it lands T2"
    st = store.state()
    assert st.tasks["T1"].state == TaskState.DONE
    assert st.tasks["T2"].state == TaskState.LANDING, "not on main: given back, and claimed again to land"
    landed = [e for e in store.paths.events.read_text().splitlines() if '"task.mainlined"' in e]
    assert len(landed) == 1 and head in landed[0] and '"recovered":true' in landed[0]


@pytest.mark.e2e
def test_a_task_on_the_mainline_from_an_old_log_is_blocked_not_committed_to_main(tmp_path: Path, tm: Tmux) -> None:
    # Before branches were checked at add/import, `branch: main` made a slave commit its (failing)
    # attempt straight onto main. A log that still holds such a task: the slave refuses to start it.
    repo = make_repo(tmp_path / "r", "slaves: 2\nheartbeat_secs: 0.5\ngate: [sh gate.sh]\nagent:\n  kind: fake\n",
                     files={"gate.sh": "test ! -e broken\n"})  # fmt: skip
    store = Store(Paths(repo), "cli")
    store.append(
        event("task.added", "cli", "T1", {"title": "evil", "prompt": "fake: write broken 1", "branch": "main"})
    )
    before = git(repo, "rev-parse", "main").strip()
    proc = clanker(repo, "run", "--until-done", "--timeout", "60", timeout=90)
    assert proc.returncode == 1, proc.stdout  # blocked
    t = store.state().tasks["T1"]
    assert t.state == TaskState.BLOCKED and "mainline" in t.reason
    assert git(repo, "rev-parse", "main").strip() == before and not (repo / "broken").exists()


def test_conflict_markers_are_looked_for_only_in_the_files_that_conflicted(tmp_path: Path) -> None:
    from clanker.jobs.work import markers_left

    (tmp_path / "a.py").write_text("x = 1\n<<<<<<< HEAD\ny = 2\n=======\ny = 3\n>>>>>>> main\n")
    (tmp_path / "docs.md").write_text("How git shows a conflict:\n<<<<<<< HEAD\n")  # on purpose
    (tmp_path / "fine.py").write_text("s = '<<<<<<< not at the start'\n")
    found = markers_left(tmp_path, ["a.py", "fine.py", "gone.py"])
    assert found == {"a.py": [2, 6]}, "docs.md did not conflict; fine.py has none at a line start"


def test_a_health_failure_of_an_older_main_than_a_green_landing_is_dropped(tmp_path: Path) -> None:
    # A health check of main at A ran while the regression fix landed (B, gated green): its failure
    # used to re-mark main red and file a duplicate regression. A failure at A is stale once main is
    # at a landed commit that descends from A; one at the head itself, or after a push by hand, is not.
    from clanker.jobs.regressions import stale
    from clanker.state.fold import fold
    from clanker.state.model import State

    repo = make_repo(tmp_path / "r")
    a = git(repo, "rev-parse", "main").strip()
    (repo / "fix.txt").write_text("fixed\n")
    git(repo, "add", "fix.txt")
    git(repo, "commit", "-q", "-m", "fix")
    b = git(repo, "rev-parse", "main").strip()
    evs = [event("task.added", "cli", "R1", {"title": "regression", "tags": ["regression"]}),
           event("task.claimed", "c1", "R1", {"slave": "c1"}), event("task.submitted", "c1", "R1", {"slave": "c1"}),
           event("task.judge_claimed", "c2", "R1", {"slave": "c2"}),
           event("task.mainlined", "c2", "R1", {"slave": "c2", "sha": b})]  # fmt: skip
    st = fold(State(), [(e, 0) for e in evs])
    older = lambda x, y: gitw.is_ancestor(repo, x, y)  # noqa: E731
    assert stale(st, a, b, older), "main moved on to a landed, green commit"
    assert not stale(st, b, b, older), "a failure of the head itself counts"
    assert not stale(State(), a, b, older), "a commit nobody landed (a push by hand) proves nothing"
    assert not stale(st, b, a, older), "a tested sha newer than the head is not stale"
    # The fold: a stale result frees the health job and leaves main's colour alone.
    ran = event("health.ran", "c3", None, {"slave": "c3", "passed": False, "sha": a, "stale": True})
    claimed = fold(st, [(event("health.claimed", "c3", None, {"slave": "c3"}), 0)])
    after = fold(claimed, [(ran, 0)])
    assert not after.main_red and after.health_slave is None
    assert fold(claimed, [(event("health.ran", "c3", None, {"slave": "c3", "passed": False, "sha": b}), 0)]).main_red
