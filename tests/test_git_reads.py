"""What clanker reads from git's own files instead of starting a process, checked against git
itself on real repositories: loose and packed refs, HEAD, a merge in progress, a loose commit's
tree; and the fallbacks to git where the files can't say."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from clanker.errors import GitError
from clanker.jobs.overlap import may_meet
from clanker.jobs.watch import ConflictWatch
from clanker.state.paths import Paths
from clanker.state.store import Store
from clanker.system import git as cgit
from tests.helpers import git, make_repo


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo", files={"README.md": "# r\n", "src/a.py": "a = 1\n"})


@pytest.fixture
def spawned(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The git commands clanker's wrapper starts from now on (they still run)."""
    calls: list[list[str]] = []
    real = cgit.run

    def run(args: list[str], cwd: Path, check: bool = True, input: str | None = None) -> object:
        calls.append(args)
        return real(args, cwd, check, input)

    monkeypatch.setattr(cgit, "run", run)
    return calls


def test_a_loose_and_a_packed_branch_read_as_git_reads_them(repo: Path, spawned: list[list[str]]) -> None:
    git(repo, "branch", "loose")
    git(repo, "branch", "packed")
    git(repo, "pack-refs", "--all")
    git(repo, "branch", "-f", "loose", "HEAD")  # a loose ref again, overriding its packed line
    (repo / "b.txt").write_text("b\n")
    git(repo, "add", "b.txt")
    git(repo, "commit", "-q", "-m", "b")
    git(repo, "branch", "-f", "loose", "HEAD")
    spawned.clear()
    for name in ("main", "loose", "packed"):
        assert cgit.branch_head(repo, name) == git(repo, "rev-parse", f"refs/heads/{name}")
    assert cgit.branch_head(repo, "nope") is None
    assert spawned == []  # all read from the files


def _worked_on(repo: Path) -> Path:
    """A linked worktree on branch clanker/T1, one commit ahead of main."""
    wt = repo.parent / "wt"
    git(repo, "worktree", "add", "-q", "-b", "clanker/T1", str(wt), "main")
    (wt / "c.txt").write_text("c\n")
    git(wt, "add", "c.txt")
    git(wt, "commit", "-q", "-m", "c")
    return wt


def test_a_linked_worktree_reads_the_shared_refs_and_its_own_head(repo: Path, spawned: list[list[str]]) -> None:
    wt = _worked_on(repo)
    spawned.clear()
    assert cgit.head(wt) == git(wt, "rev-parse", "HEAD") != cgit.head(repo)
    assert cgit.current_branch(wt) == "clanker/T1"
    assert cgit.branch_head(wt, "main") == git(repo, "rev-parse", "main")
    assert not cgit.merge_in_progress(wt)
    assert spawned == []
    git(wt, "checkout", "-q", "--detach")
    assert cgit.current_branch(wt) is None and cgit.head(wt) == git(wt, "rev-parse", "HEAD")


def test_a_merge_in_progress_is_seen_in_the_worktree_that_has_it(repo: Path) -> None:
    git(repo, "checkout", "-q", "-b", "side")
    (repo / "src" / "a.py").write_text("a = 2\n")
    git(repo, "commit", "-qam", "side")
    git(repo, "checkout", "-q", "main")
    (repo / "src" / "a.py").write_text("a = 3\n")
    git(repo, "commit", "-qam", "main")
    subprocess.run(["git", "merge", "-q", "side"], cwd=repo, capture_output=True)
    assert cgit.merge_in_progress(repo)
    git(repo, "merge", "--abort")
    assert not cgit.merge_in_progress(repo)


def test_what_the_files_cannot_say_is_asked_of_git(repo: Path, spawned: list[list[str]]) -> None:
    (repo / ".git" / "reftable").mkdir()  # another ref backend: the files are not the truth there
    assert cgit.branch_head(repo, "main") == git(repo, "rev-parse", "main")
    assert spawned and spawned[-1][0] == "rev-parse"
    (repo / ".git" / "reftable").rmdir()
    git(repo, "symbolic-ref", "refs/heads/alias", "refs/heads/main")  # a symbolic branch
    spawned.clear()
    assert cgit.branch_head(repo, "alias") == git(repo, "rev-parse", "main")
    assert spawned and spawned[-1][0] == "rev-parse"


def test_a_commits_tree_is_read_from_its_loose_object_and_from_git_once_packed(
    repo: Path, spawned: list[list[str]]
) -> None:
    sha = git(repo, "rev-parse", "HEAD")
    want = git(repo, "rev-parse", "HEAD^{tree}")
    spawned.clear()
    assert cgit.tree_of(repo, sha) == want and cgit.has_object(repo, sha)
    assert spawned == []
    git(repo, "gc", "-q", "--prune=now")  # now only in a pack
    assert not (repo / ".git" / "objects" / sha[:2] / sha[2:]).exists()
    assert cgit.tree_of(repo, sha) == want and cgit.has_object(repo, sha)
    assert not cgit.has_object(repo, "0" * 40)
    assert cgit.tree_of(repo, "main") == want  # not a sha: git resolves it


def test_commit_all_trusts_a_fresh_look_and_still_commits_nothing_when_nothing_is_staged(repo: Path) -> None:
    before = git(repo, "rev-parse", "HEAD")
    assert cgit.commit_all(repo, "none", changes=False) is None
    (repo / "new.txt").write_text("n\n")
    sha = cgit.commit_all(repo, "new", changes=True)
    assert sha == git(repo, "rev-parse", "HEAD") != before
    assert git(repo, "show", "--format=%s", "-s", "HEAD") == "new"
    # status shows an embedded repository's own edits, which `add -A` leaves alone: nothing to commit
    sub = make_repo(repo / "sub", files={"x": "1\n"})
    git(repo, "add", "sub")
    git(repo, "commit", "-q", "-m", "sub")
    (sub / "x").write_text("2\n")
    assert cgit.porcelain(repo) == ["sub"]
    assert cgit.commit_all(repo, "sub edit", changes=True) is None


def _two_packs(repo: Path) -> None:
    """Two packs and a gc.autoPackLimit of 1: git's automatic maintenance would repack them as one."""
    git(repo, "repack", "-dq")
    (repo / "two.txt").write_text("2\n")
    git(repo, "add", "two.txt")
    git(repo, "commit", "-q", "-m", "two")
    git(repo, "repack", "-dq")
    git(repo, "config", "gc.autoPackLimit", "1")
    git(repo, "config", "gc.autoDetach", "false")  # in the foreground, so the test sees it done


def _packs(repo: Path) -> int:
    return int(dict(line.split(": ") for line in git(repo, "count-objects", "-v").splitlines())["packs"])


def test_clanker_commits_leave_maintenance_to_maintain(repo: Path, tmp_path: Path) -> None:
    plain = make_repo(tmp_path / "plain")
    _two_packs(plain)
    (plain / "x.txt").write_text("x\n")
    git(plain, "add", "x.txt")
    git(plain, "commit", "-q", "-m", "x")
    assert _packs(plain) == 1  # what a plain commit does: it starts maintenance, which repacks

    _two_packs(repo)
    (repo / "x.txt").write_text("x\n")
    assert cgit.commit_all(repo, "x")
    assert _packs(repo) == 2  # clanker's commit did not
    git(repo, "config", "maintenance.auto", "false")
    cgit.maintain(repo)  # the repository said no
    assert _packs(repo) == 2
    git(repo, "config", "--unset", "maintenance.auto")
    cgit.maintain(repo)
    assert _packs(repo) == 1


def test_a_rename_counts_at_both_paths_in_the_changed_files(repo: Path) -> None:
    git(repo, "checkout", "-q", "-b", "mv")
    git(repo, "mv", "src/a.py", "src/b.py")
    git(repo, "commit", "-q", "-m", "mv")
    assert sorted(cgit.changed_files(repo, "main", "mv")) == ["src/a.py", "src/b.py"]


@pytest.mark.parametrize(
    ("ours", "theirs", "meet"),
    [
        (["src/a.py"], ["src/a.py"], True),
        (["src/a.py"], ["src/b.py"], False),  # same directory, different files: git merges them
        (["src"], ["src/a.py"], True),  # a file where the other makes a directory
        (["src/a.py"], ["src"], True),
        (["a/b/c"], ["a"], True),
        (["ab/c"], ["a"], False),  # a prefix of the name is not a directory
        ([], ["src/a.py"], False),
        (["x"], [], False),
    ],
)
def test_which_changes_may_meet_in_a_merge(ours: list[str], theirs: list[str], meet: bool) -> None:
    assert may_meet(ours, theirs) is meet
    assert may_meet(theirs, ours) is meet


def test_a_commit_takes_the_repositorys_identity_and_falls_back_only_for_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty.gitconfig"
    empty.write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(empty))
    repo = tmp_path / "bare-identity"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    git(repo, "config", "user.name", "First")
    git(repo, "config", "--add", "user.name", "Person")  # the last one counts, as in git
    (repo / "a.txt").write_text("a\n")
    assert cgit.commit_all(repo, "a")
    assert git(repo, "log", "-1", "--format=%an <%ae>") == f"Person <{cgit.FALLBACK_IDENTITY[1]}>"


def test_the_conflict_watch_reads_the_worktree_once_when_the_agent_ends_right_after_a_write(
    repo: Path, tmp_path: Path, spawned: list[list[str]]
) -> None:
    state = Paths(make_repo(tmp_path / "state"))
    state.ensure()
    with ConflictWatch(Store(state, "c1"), "T1", repo, (), "c1") as watch:
        (repo / "src" / "b.py").write_text("b = 2\n")
        deadline = time.monotonic() + 10
        while not watch._flag.is_set() and time.monotonic() < deadline:  # the watcher saw the write
            time.sleep(0.01)
        assert watch._flag.is_set()
    # The agent ended within the debounce: its look mid-run gives way to the one at the end.
    assert [a for a in spawned if "status" in a] == [
        ["--no-optional-locks", "status", "--porcelain", "-z", "--untracked-files=all"]
    ]
    assert watch.left == ["src/b.py"] and watch.fresh


def test_a_detach_at_head_is_git_s_own_and_needs_no_git(repo: Path, spawned: list[list[str]]) -> None:
    wt = _worked_on(repo)
    (wt / "left.txt").write_text("a file the detach must not touch\n")
    at = git(wt, "rev-parse", "HEAD")
    spawned.clear()
    cgit.detach(wt)
    cgit.detach(wt)  # already detached: nothing to do
    assert spawned == []
    # git agrees: detached at the same commit, the files and the index as they were, and the
    # branch free for another worktree.
    assert git(wt, "rev-parse", "HEAD") == at
    assert subprocess.run(["git", "symbolic-ref", "-q", "HEAD"], cwd=wt, capture_output=True).returncode == 1
    assert git(wt, "status", "--porcelain") == "?? left.txt"
    other = repo.parent / "other"
    git(repo, "worktree", "add", "-q", str(other), "clanker/T1")
    assert git(other, "rev-parse", "HEAD") == at
    # A git command holding HEAD's lock: the detach is git's, which says what is wrong.
    git(other, "checkout", "-q", "-b", "clanker/T2")
    lock = other / git(other, "rev-parse", "--git-dir") / "HEAD.lock"
    lock.write_text("")
    with pytest.raises(GitError):
        cgit.detach(other)
    assert spawned[-1][:3] == ["checkout", "-q", "--detach"]


def test_a_slave_s_worktree_is_made_in_one_git_run_and_made_again_after_a_hand_removal(
    repo: Path, spawned: list[list[str]]
) -> None:
    import shutil

    wt = repo.parent / "wts" / "c1"
    spawned.clear()
    cgit.ensure_worktree(repo, wt, "main")
    assert [a[:2] for a in spawned] == [["worktree", "add"]], "no prune before the first try"
    shutil.rmtree(wt)  # a person removed it; git still has it registered
    spawned.clear()
    cgit.ensure_worktree(repo, wt, "main")
    assert [a[:2] for a in spawned] == [["worktree", "add"], ["worktree", "prune"], ["worktree", "add"]]
    assert cgit.head(wt) == git(repo, "rev-parse", "main")
    spawned.clear()
    cgit.ensure_worktree(repo, wt, "main")
    assert spawned == [], "there already: nothing to run"
