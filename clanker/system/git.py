"""The only module that runs git. Small functions over one `run()` that raises GitError.

Nothing here deletes unmerged work: no `branch -D`, no forced worktree removal, no hard reset.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import zlib
from functools import cache
from pathlib import Path
from stat import S_ISDIR

import msgspec

from ..errors import GitError, NotARepoError

# Identity for commits clanker makes itself, used only when the repo has none configured.
FALLBACK_IDENTITY = ("clanker", "clanker@localhost")
TRAILER = "Clanker-Task"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_") or k.startswith("GIT_CONFIG")}
    env["GIT_TERMINAL_PROMPT"] = "0"
    env["LC_ALL"] = "C"
    return env


EXCLUDES = "clanker-exclude"  # a linked worktree's own ignore file, in its private git dir


_GIT_FILES: dict[str, tuple[tuple[int, int, int, int], Path | None]] = {}  # `.git` → (its stat, what it said)


def worktree_git_dir(wt: Path) -> Path | None:
    """The private git dir of a linked worktree (`.git` is a file there), else None."""
    # Asked before every git command (its ignore file) and at every ref read: `.git` is read once,
    # and again only when it changes (a worktree made anew in the same place); else one stat.
    dotgit = os.path.join(wt, ".git")
    try:
        st = os.stat(dotgit)
    except OSError:
        return None
    key = (st.st_mode, st.st_ino, st.st_mtime_ns, st.st_size)
    known = _GIT_FILES.get(dotgit)
    if known is not None and known[0] == key:
        return known[1]
    found = None if S_ISDIR(st.st_mode) else _gitdir_of(wt)
    _GIT_FILES[dotgit] = (key, found)
    return found


def _gitdir_of(wt: Path) -> Path | None:
    try:
        text = (wt / ".git").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    if not text.startswith("gitdir:"):
        return None
    found = Path(text.split(":", 1)[1].strip())
    return found if found.is_absolute() else (wt / found).resolve()


def excludes_file(wt: Path) -> Path | None:
    """The worktree's own ignore file, when clanker made one (see `Workspace`)."""
    gd = worktree_git_dir(wt)
    path = gd / EXCLUDES if gd is not None else None
    return path if path is not None and path.is_file() else None


def run(args: list[str], cwd: Path, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
    # What setup made in one of clanker's worktrees is ignored there alone: git has no per-worktree
    # info/exclude, and the shared one would hide those names in the user's checkout too.
    own = excludes_file(cwd)
    extra = ["-c", f"core.excludesFile={own}"] if own is not None else []
    proc = subprocess.run(
        ["git", *extra, *args], cwd=cwd, env=_env(), input=input, capture_output=True, text=True, check=False
    )
    if check and proc.returncode != 0:
        raise GitError(args, proc.stderr or proc.stdout, proc.returncode)
    return proc


def out(args: list[str], cwd: Path) -> str:
    return run(args, cwd).stdout.strip()


def global_excludes() -> Path | None:
    """The user's own global ignore file (core.excludesFile, else git's default place)."""
    proc = subprocess.run(
        ["git", "config", "--global", "--path", "core.excludesFile"], env=_env(), capture_output=True, text=True
    )
    if proc.returncode == 0 and proc.stdout.strip():
        return Path(proc.stdout.strip()).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    default = Path(base) / "git" / "ignore"
    return default if default.is_file() else None


def version() -> str:
    try:
        return subprocess.run(["git", "--version"], capture_output=True, text=True, check=False).stdout.strip()
    except FileNotFoundError:
        return ""


def toplevel(cwd: Path) -> Path:
    """The main worktree's top level (a linked worktree resolves to its main repo)."""
    if (cwd / ".git").is_dir() and (cwd / ".git" / "HEAD").is_file():
        return cwd.resolve()  # the top of a repository's own checkout: what git would say
    proc = run(["rev-parse", "--path-format=absolute", "--git-common-dir"], cwd, check=False)
    if proc.returncode != 0:
        raise NotARepoError(str(cwd))
    common = Path(proc.stdout.strip())
    if common.name == ".git":
        return common.parent.resolve()
    return Path(out(["rev-parse", "--show-toplevel"], cwd)).resolve()


def git_dir(repo: Path) -> Path:
    return Path(out(["rev-parse", "--path-format=absolute", "--git-common-dir"], repo))


def init(path: Path, branch: str = "main") -> None:
    path.mkdir(parents=True, exist_ok=True)
    run(["init", "-q", "-b", branch], path)


@cache
def _identity(repo: Path) -> tuple[str, str]:
    have: dict[str, str] = {}
    for line in run(["config", "--get-regexp", r"^user\.(name|email)$"], repo, check=False).stdout.splitlines():
        key, _, value = line.partition(" ")
        have[key] = value.strip()  # the last one counts, as in git
    return have.get("user.name", ""), have.get("user.email", "")


@cache
def _identity_args(repo: Path) -> tuple[str, ...]:
    have_name, have_mail = _identity(repo)
    args: list[str] = []
    if not have_name:
        args += ["-c", f"user.name={FALLBACK_IDENTITY[0]}"]
    if not have_mail:
        args += ["-c", f"user.email={FALLBACK_IDENTITY[1]}"]
    return tuple(args)


def rev(repo: Path, ref: str) -> str | None:
    if ref.startswith("refs/heads/"):
        found = _read_ref(repo, ref)
        if found is not UNKNOWN:
            return found
    proc = run(["rev-parse", "--verify", "-q", f"{ref}^{{commit}}"], repo, check=False)
    return proc.stdout.strip() or None


def branch_head(repo: Path, branch: str) -> str | None:
    """The commit branch `branch` is at (never a tag or another ref of that name)."""
    return rev(repo, f"refs/heads/{branch}")


# Reading refs from the files git keeps (the "files" ref backend) instead of starting a process
# for each: a job reads main and its branch several times. Anything unusual (a reftable repo, a
# symbolic ref, a git dir elsewhere) is left to git itself.
UNKNOWN = "?"
_HEX = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")


def _git_dirs(wt: Path) -> tuple[Path, Path] | None:
    """(the checkout's own git dir, the common git dir) of the repository or linked worktree at
    `wt`, from the files git keeps; None when the layout is not the usual one."""
    dot = wt / ".git"
    if dot.is_dir():
        own = dot
    else:
        found = worktree_git_dir(wt)
        if found is None:
            return None
        own = found
    try:
        common = (own / (own / "commondir").read_text(encoding="utf-8").strip()).resolve()
    except FileNotFoundError:
        common = own
    except OSError:
        return None
    if (common / "reftable").is_dir():
        return None
    return own, common


def _read_ref(wt: Path, ref: str) -> str | None:
    """`ref`'s sha (None: no such ref), or UNKNOWN when only git can tell."""
    dirs = _git_dirs(wt)
    if dirs is None:
        return UNKNOWN
    common = dirs[1]
    try:
        text = (common / ref).read_text(encoding="ascii").strip()
    except FileNotFoundError:
        text = ""
    except (OSError, UnicodeDecodeError):
        return UNKNOWN
    if text:
        return text if _HEX.fullmatch(text) else UNKNOWN
    try:
        packed = (common / "packed-refs").read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError):
        return UNKNOWN
    at = packed.find(f" {ref}\n")
    if at < 0:
        return None
    sha = packed[packed.rfind("\n", 0, at) + 1 : at]
    return sha if _HEX.fullmatch(sha) else UNKNOWN


def _head(wt: Path) -> str:
    """The checkout's HEAD file ("ref: refs/heads/B" or a sha), or UNKNOWN."""
    dirs = _git_dirs(wt)
    if dirs is None:
        return UNKNOWN
    try:
        return (dirs[0] / "HEAD").read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return UNKNOWN


def head(wt: Path) -> str | None:
    """The commit checked out in `wt`."""
    text = _head(wt)
    if text.startswith("ref: refs/heads/"):
        found = _read_ref(wt, text[5:])
        if found is not UNKNOWN:
            return found
    elif _HEX.fullmatch(text):
        return text
    proc = run(["rev-parse", "--verify", "-q", "HEAD"], wt, check=False)
    return proc.stdout.strip() or None


def branch_exists(repo: Path, branch: str) -> bool:
    return rev(repo, f"refs/heads/{branch}") is not None


def current_branch(cwd: Path) -> str | None:
    text = _head(cwd)
    if text.startswith("ref: refs/heads/"):
        return text.removeprefix("ref: refs/heads/")
    if _HEX.fullmatch(text):
        return None  # detached
    proc = run(["symbolic-ref", "-q", "--short", "HEAD"], cwd, check=False)
    return proc.stdout.strip() or None


class Worktree(msgspec.Struct, frozen=True):
    path: Path
    head: str | None
    branch: str | None
    locked: bool
    prunable: bool


def worktrees(repo: Path) -> list[Worktree]:
    found: list[Worktree] = []
    cur: dict[str, str] = {}
    for line in [*out(["worktree", "list", "--porcelain"], repo).splitlines(), ""]:
        if not line:
            if "worktree" in cur:
                br = cur.get("branch")
                found.append(
                    Worktree(
                        Path(cur["worktree"]),
                        cur.get("HEAD"),
                        br.removeprefix("refs/heads/") if br else None,
                        "locked" in cur,
                        "prunable" in cur,
                    )
                )
            cur = {}
            continue
        key, _, value = line.partition(" ")
        cur[key] = value
    return found


def ensure_worktree(repo: Path, path: Path, base: str) -> None:
    """A detached worktree at `path` (created from `base` if it does not exist yet)."""
    if (path / ".git").exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    add = ["worktree", "add", "--detach", "-q", str(path), base]
    if run(add, repo, check=False).returncode != 0:
        # Most often registered still, its directory removed by hand: pruned, then made again.
        run(["worktree", "prune"], repo)
        run(add, repo)


def checkout_branch(wt: Path, branch: str, base: str) -> tuple[str, str]:
    """Check out `branch` in `wt`, creating it at branch `base` when it does not exist. Returns
    the commits of the branch and of `base` (read once each). Raises GitError when the checkout
    fails (the branch is checked out in another worktree, say)."""
    have, at = rev(wt, f"refs/heads/{branch}"), branch_head(wt, base)
    if at is None:
        raise GitError(["checkout", "-b", branch, base], f"{base} is not a commit", 128)
    if have is not None:
        run(["checkout", "-q", branch], wt)
        return have, at
    # `checkout -b B main` reads `main` twice: once for the files, again to create the branch.
    # A landing between the two makes B's commit newer than its files, and the next commit of
    # the worktree deletes what that landing brought (a fault campaign lost a task that way).
    run(["checkout", "-q", "-b", branch, at], wt)
    return at, at


def detach(wt: Path, ref: str = "HEAD") -> None:
    """Let go of the branch so another worktree may check it out; files stay as they are."""
    if ref == "HEAD" and _detach_here(wt):
        return
    run(["checkout", "-q", "--detach", ref], wt)


def _detach_here(wt: Path) -> bool:
    """Detach at the commit checked out, by git's own lock-and-rename of HEAD (what a checkout
    of the same commit does, minus its reflog line): every work job ends so, and a process for
    it was one of the few a task needs beyond the floor. False: left to git."""
    dirs = _git_dirs(wt)
    text = _head(wt)
    if dirs is None or not text.startswith("ref: refs/heads/"):
        return dirs is not None and bool(_HEX.fullmatch(text))  # already detached: nothing to do
    sha = _read_ref(wt, text[5:])
    if sha is None or sha is UNKNOWN:
        return False
    lock = dirs[0] / "HEAD.lock"
    try:
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except OSError:
        return False  # a git command holds it (or can't be told): git decides
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(sha + "\n")
        os.replace(lock, dirs[0] / "HEAD")
    except OSError:
        lock.unlink(missing_ok=True)
        return False
    return True


def porcelain(wt: Path) -> list[str]:
    # --no-optional-locks: plain `status` writes index.lock, which a file watcher would see as a change.
    proc = run(["--no-optional-locks", "status", "--porcelain", "-z", "--untracked-files=all"], wt)
    entries = [e for e in proc.stdout.split("\0") if e]
    paths: list[str] = []
    source: str | None = None  # what the entry after a rename or copy is: its source path
    for e in entries:
        if source is not None:
            if source == "R":  # a rename changes its source too; a copy leaves it as it was
                paths.append(e)
            source = None
            continue
        if "R" in e[:2] or "C" in e[:2]:
            source = "R" if "R" in e[:2] else "C"
        paths.append(e[3:])
    return paths


# Commits and merges clanker makes don't start `git maintenance run --auto` each (two extra
# processes per task); `maintain()` runs it once every so many landings instead.
NO_AUTO = ("-c", "maintenance.auto=false")


def commit_all(wt: Path, message: str, changes: bool | None = None, stat: list[str] | None = None) -> str | None:
    """Commit everything in `wt` (new, changed, deleted). Returns the sha, or None if nothing changed.
    `changes` is what a `porcelain()` of `wt` just said (True: something to commit), if known;
    `stat` gets the commit's summary (`2 files changed, 9 insertions(+)`), from the same process."""
    # A merge in progress is committed even when its tree equals HEAD's: the commit records main
    # as a parent, which is what makes the next rebase onto main clean.
    if changes is False and not merge_in_progress(wt):
        return None
    run(["add", "-A"], wt)
    if not changes and not _staged(wt) and not merge_in_progress(wt):
        return None
    quiet = ["-q"] if stat is None else []
    args = [*_identity_args(wt), *NO_AUTO, "commit", *quiet, "--no-verify", "-F", "-"]
    proc = run(args, wt, input=message, check=False)
    if stat is not None:
        stat += [ln.strip() for ln in proc.stdout.splitlines() if " changed" in ln and ("file" in ln)]
    if proc.returncode != 0:
        if changes and not _staged(wt) and not merge_in_progress(wt):
            return None  # what status showed adds nothing (a submodule's own edits, say)
        raise GitError(["commit"], proc.stderr or proc.stdout, proc.returncode)
    return head(wt)


def _staged(wt: Path) -> bool:
    return run(["diff", "--cached", "--quiet"], wt, check=False).returncode != 0


def maintain(repo: Path) -> None:
    """What git would do after a commit now and then (`maintenance run --auto`: pack loose objects
    when there are many), unless the repository turned automatic maintenance off."""
    if run(["config", "--type=bool", "maintenance.auto"], repo, check=False).stdout.strip() == "false":
        return
    run(["maintenance", "run", "--auto", "--quiet"], repo, check=False)


def stash(wt: Path, message: str) -> None:
    """Save everything uncommitted (untracked files too) in a stash entry: kept, not discarded."""
    run([*_identity_args(wt), "stash", "push", "-u", "-q", "-m", message], wt)


def changed_files(repo: Path, base: str, head: str) -> list[str]:
    # --no-renames: a renamed file counts at both its paths (each may meet another task's change).
    return [p for p in out(["diff", "--name-only", "--no-renames", f"{base}...{head}"], repo).splitlines() if p]


def diff(repo: Path, base: str, head: str, max_chars: int = 20000) -> str:
    text = run(["diff", "--stat", "-p", f"{base}...{head}"], repo).stdout
    return text if len(text) <= max_chars else text[:max_chars] + "\n… (diff truncated)\n"


def numstat(repo: Path, base: str, head: str) -> list[tuple[str, str, str]]:
    """(added, deleted, path) of each file base...head changed; a renamed file at both its paths."""
    rows = []
    for line in out(["diff", "--numstat", "--no-renames", f"{base}...{head}"], repo).splitlines():
        added, deleted, path = line.split("\t", 2)
        rows.append((added, deleted, path))
    return rows


def commits_ahead(repo: Path, base: str, head: str) -> int:
    return int(out(["rev-list", "--count", f"{base}..{head}"], repo) or 0)


class MergeResult(msgspec.Struct, frozen=True):
    tree: str | None  # the merged tree, None on conflict
    conflicts: tuple[str, ...]


def merge_tree(repo: Path, onto: str, branch: str) -> MergeResult:
    """Replay `branch` onto `onto` in memory (no worktree touched): the tree a rebase would give."""
    proc = run(["merge-tree", "--write-tree", "--name-only", "--no-messages", onto, branch], repo, check=False)
    lines = proc.stdout.splitlines()
    if proc.returncode == 0:
        return MergeResult(lines[0].strip(), ())
    if proc.returncode == 1 and lines:
        return MergeResult(None, tuple(dict.fromkeys(line for line in lines[1:] if line)))
    raise GitError(["merge-tree", onto, branch], proc.stderr, proc.returncode)


def commit_tree(repo: Path, tree: str, parent: str, message: str) -> str:
    args = [*_identity_args(repo), "commit-tree", tree, "-p", parent, "-F", "-"]
    return run(args, repo, input=message).stdout.strip()


def is_ancestor(repo: Path, older: str, newer: str) -> bool:
    return run(["merge-base", "--is-ancestor", older, newer], repo, check=False).returncode == 0


def checked_out_at(repo: Path, branch: str) -> Path | None:
    """The worktree that has `branch` checked out, if any — read from the HEAD files git keeps for
    each worktree (what `git worktree list` reads), without starting a process."""
    common = _common_dir(repo.resolve())
    if common.name != ".git":  # a bare repository, or a separate git dir: ask git
        return next((w.path for w in worktrees(repo) if w.branch == branch), None)
    want = f"ref: refs/heads/{branch}"
    linked = [(d / "HEAD", d / "gitdir") for d in sorted((common / "worktrees").glob("*"))]
    for head, gitdir in [(common / "HEAD", None), *linked]:
        try:
            if head.read_text(encoding="utf-8").strip() != want:
                continue
            return common.parent if gitdir is None else Path(gitdir.read_text(encoding="utf-8").strip()).parent
        except OSError:
            continue
    return None


@cache
def _common_dir(repo: Path) -> Path:
    return git_dir(repo)


def has_object(repo: Path, sha: str) -> bool:
    """Whether object `sha` is in the repository (a loose object is seen without a process)."""
    dirs = _git_dirs(repo)
    if dirs is not None and _HEX.fullmatch(sha) and (dirs[1] / "objects" / sha[:2] / sha[2:]).is_file():
        return True
    return run(["cat-file", "-e", sha], repo, check=False).returncode == 0


def tree_of(repo: Path, ref: str) -> str:
    return _loose_commit_tree(repo, ref) or out(["rev-parse", f"{ref}^{{tree}}"], repo)


def _loose_commit_tree(repo: Path, sha: str) -> str | None:
    """The tree of commit `sha` when it is a loose object (main's newest commits are: clanker
    just made them), read from the object file: a commit starts `commit <size>\0tree <sha>`."""
    dirs = _git_dirs(repo)
    if dirs is None or not _HEX.fullmatch(sha):
        return None
    try:
        raw = (dirs[1] / "objects" / sha[:2] / sha[2:]).read_bytes()
        start = zlib.decompressobj().decompress(raw, 200)
    except (OSError, zlib.error):
        return None
    found = re.match(rb"commit \d+\0tree ([0-9a-f]{40}(?:[0-9a-f]{24})?)\n", start)
    return found.group(1).decode() if found else None


def _over_ssh(ssh: list[str]) -> dict[str, str]:
    """git's environment for a remote reached with this ssh argv (the executor's options)."""
    return {**_env(), "GIT_SSH_COMMAND": " ".join(shlex.quote(a) for a in ssh), "GIT_SSH_VARIANT": "ssh"}


def push(repo: Path, url: str, refspecs: list[str], ssh: list[str]) -> None:
    """Push `refspecs` to `url` over ssh (forced: the remote copy is clanker's alone)."""
    proc = subprocess.run(["git", "push", "-q", "--force", url, *refspecs], cwd=repo, env=_over_ssh(ssh),
                          capture_output=True, text=True, check=False)  # fmt: skip
    if proc.returncode != 0:
        raise GitError(["push", url, *refspecs], proc.stderr or proc.stdout, proc.returncode)


def fetch(repo: Path, url: str, refspec: str, ssh: list[str]) -> None:
    proc = subprocess.run(["git", "fetch", "-q", "--no-tags", url, refspec], cwd=repo, env=_over_ssh(ssh),
                          capture_output=True, text=True, check=False)  # fmt: skip
    if proc.returncode != 0:
        raise GitError(["fetch", url, refspec], proc.stderr or proc.stdout, proc.returncode)


def identity(repo: Path) -> tuple[str, str]:
    """This repository's committer (name, email), for commits made on its behalf elsewhere."""
    name, mail = _identity(repo)
    return name or FALLBACK_IDENTITY[0], mail or FALLBACK_IDENTITY[1]


def update_ref(repo: Path, ref: str, new: str, old: str) -> bool:
    """Compare-and-swap: move `ref` to `new` only if it is still `old`."""
    return run(["update-ref", ref, new, old], repo, check=False).returncode == 0


def ff_checkout(wt: Path, new: str) -> bool:
    """Fast-forward the branch checked out in `wt` to `new`, keeping uncommitted edits.

    git refuses (and we return False) when an edit would be overwritten: the user's files win.
    """
    return run([*NO_AUTO, "merge", "-q", "--ff-only", "--no-edit", new], wt, check=False).returncode == 0


def checkout_detached(wt: Path, ref: str) -> None:
    run(["checkout", "-q", "--detach", ref], wt)


def landed_sha(repo: Path, branch: str, task_id: str) -> str | None:
    """The commit on `branch` that carries this task's trailer, if it already landed."""
    pattern = f"^{TRAILER}: {re.escape(task_id)}$"
    found = out(["log", branch, "--format=%H", "-E", f"--grep={pattern}", "-n", "1"], repo)
    return found or None


def log_shas(repo: Path, branch: str) -> list[str]:
    return out(["rev-list", "--reverse", branch], repo).splitlines()


def is_ignored(repo: Path, path: str) -> bool:
    return run(["check-ignore", "-q", path], repo, check=False).returncode == 0


def merge_no_commit(wt: Path, ref: str) -> list[str]:
    """Merge `ref` into the checked-out branch, leaving conflicts in the files; returns conflicted paths."""
    proc = run([*_identity_args(wt), "merge", "--no-ff", "--no-commit", ref], wt, check=False)
    if proc.returncode == 0:
        return []
    conflicted = out(["diff", "--name-only", "--diff-filter=U"], wt).splitlines()
    if not conflicted:
        raise GitError(["merge", ref], proc.stderr or proc.stdout, proc.returncode)
    return conflicted


def merge_in_progress(wt: Path) -> bool:
    dirs = _git_dirs(wt)
    if dirs is not None:
        return (dirs[0] / "MERGE_HEAD").is_file()
    return run(["rev-parse", "-q", "--verify", "MERGE_HEAD"], wt, check=False).returncode == 0


def _globs(patterns: tuple[str, ...] | list[str]) -> list[str]:
    # `:(glob)`: shell-like patterns (`*` stays within a directory, `**/` crosses them).
    return [f":(glob){p}" for p in patterns]


def tracked_files(repo: Path) -> list[str]:
    return [p for p in run(["ls-files", "-z"], repo).stdout.split("\0") if p]


def ignored_files(repo: Path, patterns: tuple[str, ...], exclude: tuple[str, ...] = ()) -> list[str]:
    """Files git ignores in `repo`'s working tree that match `patterns`, none under `exclude`."""
    if not patterns:
        return []
    # Filtered here, not with `:(exclude)`: with an exclude pathspec git also lists nested
    # worktrees (clanker's own, under .clanker/) as if they were ignored files.
    proc = run(["ls-files", "-z", "--others", "--ignored", "--exclude-standard", "--", *_globs(patterns)], repo)
    return [
        p
        for p in proc.stdout.split("\0")
        if p and not p.endswith("/") and not any(p == e or p.startswith(e.rstrip("/") + "/") for e in exclude)
    ]


def untracked_files(repo: Path, patterns: tuple[str, ...]) -> list[str]:
    """Files matching `patterns` that are neither tracked nor ignored (git would commit them)."""
    if not patterns:
        return []
    proc = run(["ls-files", "-z", "--others", "--exclude-standard", "--", *_globs(patterns)], repo)
    return [p for p in proc.stdout.split("\0") if p]


def ignored_entries(repo: Path) -> list[str]:
    """Everything git ignores in the working tree, an ignored directory as one `dir/` entry."""
    proc = run(["ls-files", "-z", "--others", "--ignored", "--exclude-standard", "--directory"], repo)
    return [p for p in proc.stdout.split("\0") if p]


def index_entries(wt: Path, patterns: tuple[str, ...]) -> str:
    """`mode sha stage path` of the tracked files matching `patterns`: a cheap content fingerprint."""
    if not patterns:
        return ""
    return run(["ls-files", "-s", "--", *_globs(patterns)], wt).stdout


def differs(wt: Path, ref: str, patterns: tuple[str, ...]) -> bool:
    """Do the files matching `patterns` in `wt`'s working tree differ from `ref`'s?"""
    if not patterns:
        return False
    return run(["diff", "--quiet", ref, "--", *_globs(patterns)], wt, check=False).returncode == 1


def changed_between(repo: Path, old: str, new: str, patterns: tuple[str, ...]) -> list[str]:
    if not patterns:
        return []
    return [p for p in out(["diff", "--name-only", old, new, "--", *_globs(patterns)], repo).splitlines() if p]


def restore(wt: Path, files: list[str]) -> None:
    """Put tracked files back as HEAD has them (used on files clanker itself changed as a probe)."""
    if files:
        run(["checkout", "-q", "HEAD", "--", *files], wt)


def add_worktree(repo: Path, path: Path, ref: str) -> None:
    run(["worktree", "prune"], repo)
    path.parent.mkdir(parents=True, exist_ok=True)
    run(["worktree", "add", "--detach", "-q", str(path), ref], repo)


def discard_scratch_worktree(repo: Path, path: Path, sha: str) -> bool:
    """Remove one of clanker's throwaway worktrees (a preflight's), only while it is detached at
    `sha` with no tracked file changed: then nothing in it is work, just `sha` (which is on main)
    and what the gate and setup generated. Returns False (and keeps it) otherwise."""
    if not (path / ".git").exists():
        run(["worktree", "prune"], repo, check=False)
        return True
    head = run(["rev-parse", "HEAD"], path, check=False).stdout.strip()
    dirty = run(["diff", "--quiet", "HEAD"], path, check=False).returncode != 0
    if head != sha or dirty or current_branch(path) is not None:
        return False
    return run(["worktree", "remove", "--force", str(path)], repo, check=False).returncode == 0


def untracked_entries(wt: Path) -> list[str]:
    """Untracked, unignored paths of the working tree, a whole new directory as one `dir/` entry."""
    proc = run(["ls-files", "-z", "--others", "--exclude-standard", "--directory"], wt)
    return [p for p in proc.stdout.split("\0") if p]


def modified_tracked(wt: Path) -> list[str]:
    """Tracked files whose content in the working tree differs from HEAD."""
    return [p for p in run(["diff", "--name-only", "-z", "HEAD"], wt).stdout.split("\0") if p]
