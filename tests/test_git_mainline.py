"""git wrappers and mainlining with real repositories: squash, compare-and-swap, a person's checkout."""

from __future__ import annotations

from pathlib import Path

import pytest

from clanker.errors import GitError
from clanker.jobs import mainline
from clanker.state.model import Task
from clanker.state.paths import Paths
from clanker.system import git as cgit
from tests.helpers import git, make_repo

FILES = {"README.md": "# test repo\n", "src/a.py": "a = 1\n", "docs/guide.md": "guide\n"}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = make_repo(tmp_path / "repo", files=FILES)
    with open(path / ".git" / "info" / "exclude", "a") as f:
        f.write("/.clanker/\n")  # where the mainline lock lives; `clanker init` does the same
    return path


def head(repo: Path, ref: str = "main") -> str:
    return git(repo, "rev-parse", ref)


def task_branch(repo: Path, branch: str, changes: list[dict[str, str | None]], base: str = "main") -> str:
    """Commit each change set on `branch` in a scratch worktree (one commit per dict; None deletes)."""
    wt = repo.parent / f"wt-{branch.replace('/', '-')}"
    if not wt.exists():
        git(repo, "worktree", "add", "-q", "-b", branch, str(wt), base)
    for n, change in enumerate(changes):
        for name, text in change.items():
            if text is None:
                (wt / name).unlink()
            else:
                (wt / name).parent.mkdir(parents=True, exist_ok=True)
                (wt / name).write_text(text)
        git(wt, "add", "-A")
        git(wt, "commit", "-q", "-m", f"wip {n}")
    git(repo, "worktree", "remove", str(wt))
    return head(repo, branch)


def commit_on_main(repo: Path, name: str, text: str) -> str:
    """Advance main (checked out in the repo itself) by one commit."""
    (repo / name).parent.mkdir(parents=True, exist_ok=True)
    (repo / name).write_text(text)
    git(repo, "add", name)
    git(repo, "commit", "-q", "-m", f"main: {name}")
    return head(repo)


def show(repo: Path, ref: str, name: str) -> str:
    return git(repo, "show", f"{ref}:{name}")


def task(tid: str = "T1", title: str = "Change a", summary: str = "") -> Task:
    return Task(tid, title, branch=f"clanker/{tid}", summary=summary)


# --- git wrappers ------------------------------------------------------------------------------------


def test_merge_tree_clean(repo: Path) -> None:
    task_branch(repo, "clanker/T1", [{"src/a.py": "a = 2\n"}])
    commit_on_main(repo, "docs/guide.md", "guide v2\n")
    res = cgit.merge_tree(repo, head(repo), "clanker/T1")
    assert res.tree is not None and res.conflicts == ()
    assert git(repo, "show", f"{res.tree}:src/a.py") == "a = 2"
    assert git(repo, "show", f"{res.tree}:docs/guide.md") == "guide v2"


def test_merge_tree_conflict(repo: Path) -> None:
    task_branch(repo, "clanker/T1", [{"src/a.py": "a = 2\n", "new.txt": "fine\n"}])
    main_before = commit_on_main(repo, "src/a.py", "a = 3\n")
    res = cgit.merge_tree(repo, head(repo), "clanker/T1")
    assert res.tree is None and res.conflicts == ("src/a.py",)
    # Nothing was touched: no worktree left mid-merge.
    assert head(repo) == main_before and git(repo, "status", "--porcelain") == ""
    assert not cgit.merge_in_progress(repo)


def test_commit_all(repo: Path) -> None:
    assert cgit.commit_all(repo, "nothing") is None
    (repo / "new.txt").write_text("n\n")
    (repo / "src" / "a.py").write_text("a = 9\n")
    (repo / "docs" / "guide.md").unlink()
    sha = cgit.commit_all(repo, "everything\n\nbody")
    assert sha is not None and sha == head(repo)
    assert git(repo, "show", "--name-status", "--format=", sha).splitlines() == [
        "D\tdocs/guide.md",
        "A\tnew.txt",
        "M\tsrc/a.py",
    ]
    assert git(repo, "log", "-1", "--format=%B", sha) == "everything\n\nbody"
    assert cgit.commit_all(repo, "again") is None and head(repo) == sha


def test_update_ref_is_compare_and_swap(repo: Path) -> None:
    old = head(repo)
    new = commit_on_main(repo, "x.txt", "x\n")
    git(repo, "branch", "other", old)
    assert not cgit.update_ref(repo, "refs/heads/other", new, "f" * 40)
    assert head(repo, "other") == old
    assert cgit.update_ref(repo, "refs/heads/other", new, old)
    assert head(repo, "other") == new


def test_a_task_branch_starts_where_its_files_do_when_main_moves_during_the_checkout(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`checkout -b B main` reads `main` for the files, then again to create B. A landing between
    the two reads (here made certain: git asks the fsmonitor hook in between, and the hook lands a
    commit) once left B one commit ahead of its files, and the task's next commit deleted that
    landing's file from main."""
    wt = tmp_path / "wt"
    git(repo, "worktree", "add", "-q", "--detach", str(wt), "main")
    old = head(repo)
    landed = task_branch(repo, "landing", [{"landed.txt": "from another task\n"}])
    hook = tmp_path / "fsmonitor-hook"
    hook.write_text(
        f"#!/bin/sh\n[ -e {tmp_path}/moved ] || {{ touch {tmp_path}/moved; "
        f"git -C {repo} update-ref refs/heads/main {landed}; }}\nexit 1\n"
    )
    hook.chmod(0o755)
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "core.fsmonitor")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", str(hook))
    cgit.checkout_branch(wt, "clanker/T5", "main")
    assert (tmp_path / "moved").exists()  # main did move in the middle
    monkeypatch.delenv("GIT_CONFIG_COUNT")
    assert head(repo) == landed
    assert head(repo, "clanker/T5") == old  # the commit the files came from, not the newer main
    assert cgit.porcelain(wt) == []  # nothing for a later commit to delete


def test_porcelain_lists_changed_and_untracked_files(repo: Path) -> None:
    assert cgit.porcelain(repo) == []
    (repo / "src" / "a.py").write_text("changed\n")
    (repo / "deep" / "er").mkdir(parents=True)
    (repo / "deep" / "er" / "new file.txt").write_text("x\n")
    git(repo, "mv", "docs/guide.md", "docs/moved.md")
    # A rename counts at both paths: another task's change to the old one meets it too.
    assert sorted(cgit.porcelain(repo)) == ["deep/er/new file.txt", "docs/guide.md", "docs/moved.md", "src/a.py"]


# --- build: one squashed commit on main ------------------------------------------------------------


def test_build_squashes_the_branch_into_one_commit_on_main(repo: Path) -> None:
    base = head(repo)
    task_branch(repo, "clanker/T1", [{"src/a.py": "a = 2\n"}, {"src/b.py": "b = 1\n"}, {"docs/guide.md": None}])
    cand = mainline.build(repo, "main", task(summary="Did the thing.\nTwo lines."))
    assert cand.base == base and cand.sha is not None and cand.conflicts == ()
    assert cand.tree == git(repo, "rev-parse", f"{cand.sha}^{{tree}}"), "the tree it carries is the commit's"
    assert git(repo, "rev-list", "--parents", "-n", "1", cand.sha).split() == [cand.sha, base]
    assert git(repo, "rev-list", "--count", f"{base}..{cand.sha}") == "1"
    assert git(repo, "log", "-1", "--format=%B", cand.sha) == (
        "Change a\n\nDid the thing.\nTwo lines.\n\nClanker-Task: T1"
    )
    trailer = git(repo, "log", "-1", "--format=%(trailers:key=Clanker-Task,valueonly)", cand.sha)
    assert trailer == "T1"
    assert show(repo, cand.sha, "src/a.py") == "a = 2" and show(repo, cand.sha, "src/b.py") == "b = 1"
    assert git(repo, "ls-tree", "--name-only", "-r", cand.sha).splitlines() == ["README.md", "src/a.py", "src/b.py"]
    # Building moves nothing: main is where it was.
    assert head(repo) == base


def test_build_replays_onto_a_main_that_moved(repo: Path) -> None:
    task_branch(repo, "clanker/T1", [{"src/a.py": "a = 2\n"}])
    new_main = commit_on_main(repo, "docs/guide.md", "guide v2\n")
    cand = mainline.build(repo, "main", task())
    assert cand.base == new_main and cand.sha is not None
    assert git(repo, "rev-parse", f"{cand.sha}^") == new_main
    assert show(repo, cand.sha, "src/a.py") == "a = 2" and show(repo, cand.sha, "docs/guide.md") == "guide v2"


def test_build_reports_conflicts(repo: Path) -> None:
    task_branch(repo, "clanker/T1", [{"src/a.py": "a = 2\n"}])
    new_main = commit_on_main(repo, "src/a.py", "a = 3\n")
    cand = mainline.build(repo, "main", task())
    assert cand == mainline.Candidate(new_main, None, ("src/a.py",))


def test_build_of_a_branch_that_changes_nothing(repo: Path) -> None:
    git(repo, "branch", "clanker/T1", "main")
    cand = mainline.build(repo, "main", task())
    assert cand == mainline.Candidate(head(repo), None)
    landed = mainline.land(Paths(repo), "main", cand)
    assert landed.ok and landed.sha == head(repo)


def test_build_needs_main(repo: Path) -> None:
    task_branch(repo, "clanker/T1", [{"src/a.py": "a = 2\n"}])
    with pytest.raises(GitError, match="does not exist"):
        mainline.build(repo, "trunk", task())


def test_message_without_summary_or_title() -> None:
    assert mainline.message(Task("T9", "  ")) == "T9\n\nClanker-Task: T9\n"


# --- land: compare-and-swap, and a person's checkout of main ----------------------------------------


def test_land_when_main_is_not_checked_out(repo: Path) -> None:
    git(repo, "checkout", "-q", "--detach")
    task_branch(repo, "clanker/T1", [{"src/a.py": "a = 2\n"}])
    cand = mainline.build(repo, "main", task())
    landed = mainline.land(Paths(repo), "main", cand)
    assert landed == mainline.Landed(True, cand.sha)
    assert head(repo) == cand.sha


@pytest.mark.parametrize("checked_out", [True, False])
def test_land_fails_with_moved_when_main_moved(repo: Path, checked_out: bool) -> None:
    task_branch(repo, "clanker/T1", [{"src/a.py": "a = 2\n"}])
    cand = mainline.build(repo, "main", task())
    moved = commit_on_main(repo, "docs/guide.md", "someone else\n")
    if not checked_out:
        git(repo, "checkout", "-q", "--detach")
    landed = mainline.land(Paths(repo), "main", cand)
    assert not landed.ok and landed.reason == "moved"
    assert head(repo) == moved
    # Rebuilt on the new main, it lands.
    again = mainline.build(repo, "main", task())
    assert again.base == moved
    assert mainline.land(Paths(repo), "main", again).ok and head(repo) == again.sha


def test_land_fails_with_moved_when_main_was_rewound(repo: Path) -> None:
    first = head(repo)
    second = commit_on_main(repo, "docs/guide.md", "guide v2\n")
    task_branch(repo, "clanker/T1", [{"src/a.py": "a = 2\n"}])
    cand = mainline.build(repo, "main", task())
    assert cand.base == second
    git(repo, "reset", "-q", "--hard", first)  # someone took `second` back out of main
    landed = mainline.land(Paths(repo), "main", cand)
    assert not landed.ok and landed.reason == "moved"
    assert head(repo) == first  # the commit that was taken out is not brought back


def test_land_fast_forwards_a_checkout_and_keeps_an_unrelated_edit(repo: Path) -> None:
    task_branch(repo, "clanker/T1", [{"src/a.py": "a = 2\n", "src/new.py": "n = 1\n"}])
    (repo / "README.md").write_text("# my own uncommitted notes\n")
    (repo / "scratch.txt").write_text("untracked, mine\n")
    cand = mainline.build(repo, "main", task())
    landed = mainline.land(Paths(repo), "main", cand)
    assert landed == mainline.Landed(True, cand.sha)
    assert head(repo) == cand.sha and cgit.current_branch(repo) == "main"
    # The person's files moved with main, and their edits are still there, uncommitted.
    assert (repo / "src" / "a.py").read_text() == "a = 2\n" and (repo / "src" / "new.py").exists()
    assert (repo / "README.md").read_text() == "# my own uncommitted notes\n"
    assert (repo / "scratch.txt").read_text() == "untracked, mine\n"
    assert cgit.run(["status", "--porcelain"], repo).stdout == " M README.md\n?? scratch.txt\n"


def test_land_refuses_to_overwrite_an_edit_to_a_file_the_task_changes(repo: Path) -> None:
    task_branch(repo, "clanker/T1", [{"src/a.py": "a = 2\n"}])
    before = head(repo)
    (repo / "src" / "a.py").write_text("a = 'mine, not committed'\n")
    cand = mainline.build(repo, "main", task())
    landed = mainline.land(Paths(repo), "main", cand)
    assert not landed.ok and landed.reason.startswith("checkout")
    assert str(repo) in landed.reason
    assert head(repo) == before
    assert (repo / "src" / "a.py").read_text() == "a = 'mine, not committed'\n"
    # Once the person commits or stashes, the same candidate lands.
    git(repo, "stash", "-q")
    assert mainline.land(Paths(repo), "main", cand).ok and head(repo) == cand.sha
    assert (repo / "src" / "a.py").read_text() == "a = 2\n"


def test_land_fast_forwards_main_checked_out_in_a_linked_worktree(repo: Path, tmp_path: Path) -> None:
    git(repo, "checkout", "-q", "--detach")
    person = tmp_path / "person"
    git(repo, "worktree", "add", "-q", str(person), "main")
    (person / "docs" / "guide.md").write_text("editing the guide\n")
    task_branch(repo, "clanker/T1", [{"src/a.py": "a = 2\n"}])
    cand = mainline.build(repo, "main", task())
    assert mainline.land(Paths(repo), "main", cand).ok
    assert head(repo) == cand.sha
    assert (person / "src" / "a.py").read_text() == "a = 2\n"
    assert (person / "docs" / "guide.md").read_text() == "editing the guide\n"


# --- landed_sha ------------------------------------------------------------------------------------------


def land_task(repo: Path, tid: str, name: str) -> str:
    task_branch(repo, f"clanker/{tid}", [{name: f"{tid}\n"}])
    cand = mainline.build(repo, "main", task(tid, f"task {tid}"))
    landed = mainline.land(Paths(repo), "main", cand)
    assert landed.ok and landed.sha is not None
    return landed.sha


def test_landed_sha_finds_a_landed_task(repo: Path) -> None:
    assert cgit.landed_sha(repo, "main", "T1") is None
    sha1 = land_task(repo, "T1", "one.txt")
    sha10 = land_task(repo, "T10", "ten.txt")
    dotted = land_task(repo, "fix-1.2_x", "dotted.txt")
    assert cgit.landed_sha(repo, "main", "T1") == sha1
    assert cgit.landed_sha(repo, "main", "T10") == sha10
    assert cgit.landed_sha(repo, "main", "fix-1.2_x") == dotted
    assert cgit.landed_sha(repo, "main", "T") is None  # a prefix is not a match
    assert cgit.landed_sha(repo, "main", "fix-1x2_x") is None  # '.' is not a wildcard
    assert cgit.landed_sha(repo, "main", "T2") is None


def test_landed_sha_ignores_the_trailer_text_in_a_body(repo: Path) -> None:
    (repo / "x.txt").write_text("x\n")
    git(repo, "add", "x.txt")
    git(repo, "commit", "-q", "-m", "mentions it\n\nsee Clanker-Task: T5 for details")
    assert cgit.landed_sha(repo, "main", "T5") is None


def test_checked_out_at_reads_what_git_worktree_list_says(repo: Path, tmp_path: Path) -> None:
    def listed(branch: str) -> Path | None:
        return next((w.path for w in cgit.worktrees(repo) if w.branch == branch), None)

    assert cgit.checked_out_at(repo, "main") == listed("main") == repo.resolve()
    git(repo, "worktree", "add", "-q", "-b", "side", str(tmp_path / "side"), "main")
    assert cgit.checked_out_at(repo, "side") == listed("side") == (tmp_path / "side").resolve()
    git(repo, "checkout", "-q", "--detach")
    git(tmp_path / "side", "checkout", "-q", "main")  # main moves to the linked worktree
    assert cgit.checked_out_at(repo, "main") == listed("main") == (tmp_path / "side").resolve()
    assert cgit.checked_out_at(repo, "nowhere") is None and listed("nowhere") is None
