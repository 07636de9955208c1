"""Where everything lives under `.clanker/` (DESIGN §3)."""

from __future__ import annotations

from pathlib import Path

import msgspec

from ..config import Config
from ..config import cache as config_cache
from ..system import git
from . import atomic

IGNORE_LINE = "/.clanker/"


class Paths(msgspec.Struct, frozen=True):
    repo: Path  # the repository's top-level directory (realpath)
    worktrees_root: Path | None = None

    @property
    def state_dir(self) -> Path:
        return self.repo / ".clanker"

    @property
    def events(self) -> Path:
        return self.state_dir / "events.log"

    @property
    def snapshot(self) -> Path:
        return self.state_dir / "state.json"

    @property
    def archive(self) -> Path:
        return self.state_dir / "archive.jsonl"

    @property
    def heartbeats(self) -> Path:
        return self.state_dir / "heartbeat"

    def heartbeat(self, slave: str) -> Path:
        return self.heartbeats / f"{slave}.json"

    @property
    def logs(self) -> Path:
        return self.state_dir / "logs"

    def attempt_log(self, task: str, attempt: int, role: str = "work") -> Path:
        """Raw agent stream of one attempt; the readable rendering sits beside it as `.txt`."""
        name = f"{attempt}.jsonl" if role == "work" else f"{role}-{attempt}.jsonl"
        return self.logs / task / name

    @property
    def history(self) -> Path:
        return self.state_dir / "history"

    @property
    def locks(self) -> Path:
        return self.state_dir / "locks"

    @property
    def worktrees(self) -> Path:
        return self.worktrees_root or self.state_dir / "worktrees"

    def worktree(self, slave: str) -> Path:
        return self.worktrees / slave

    def scratch(self, name: str) -> Path:
        """A throwaway worktree of clanker's own (the gate preflight's)."""
        return self.worktrees / name

    @property
    def setup(self) -> Path:
        return self.state_dir / "setup"

    def setup_state(self, name: str) -> Path:
        """When the worktree `name` was last set up, and for which inputs."""
        return self.setup / f"{name}.json"

    def setup_log(self, name: str) -> Path:
        return self.logs / "setup" / f"{name}.log"

    @property
    def prompts(self) -> Path:
        return self.state_dir / "prompts"

    def ensure(self) -> None:
        for d in (self.state_dir, self.heartbeats, self.logs, self.history, self.locks, self.prompts):
            d.mkdir(parents=True, exist_ok=True)


def ensure_ignored(cfg: Config) -> str:
    """Keep `.clanker/` (and a worktree root of its own inside the repository) out of git;
    returns where the rule lives (or already lived)."""
    rules = []
    if not _ruled_out(cfg.repo) and not git.is_ignored(cfg.repo, ".clanker/events.log"):
        rules.append(IGNORE_LINE)
    root = cfg.worktrees
    if root is not None and root.is_relative_to(cfg.repo) and root != cfg.repo:
        rel = root.relative_to(cfg.repo).as_posix()
        # The slaves' worktrees would show up in `git status` (and `git add -A` would take them
        # in as embedded repositories).
        if not rel.startswith(".clanker/") and not git.is_ignored(cfg.repo, f"{rel}/c1"):
            rules.append(f"/{rel}/")
    if not rules:
        return "already ignored"
    target = cfg.repo / ".gitignore" if cfg.git_ignore == "gitignore" else git.git_dir(cfg.repo) / "info" / "exclude"
    existing = target.read_text(encoding="utf-8") if target.exists() else ""
    sep = "" if not existing or existing.endswith("\n") else "\n"
    atomic.write_text(target, existing + sep + "\n".join(rules) + "\n")
    return str(target)


RULES = frozenset({IGNORE_LINE, ".clanker/", "/.clanker", ".clanker"})


def _ruled_out(repo: Path) -> bool:
    """`.clanker/` is ignored by a rule of the top `.gitignore` or of `.git/info/exclude` (the
    rule clanker writes, or a plain form of it), read from the files themselves: asking
    `git check-ignore` was a process at every command's start. Only where no `!` rule of the top
    `.gitignore` could take it back (it outranks info/exclude; nothing inside an ignored
    directory can be re-included); anything else is asked of git."""
    dotgit = repo / ".git"
    if not dotgit.is_dir():
        return False  # a submodule's or a linked worktree's checkout: git knows where its files are
    found = False
    for f in (repo / ".gitignore", dotgit / "info" / "exclude"):
        try:
            lines = [line.strip() for line in f.read_text(encoding="utf-8").splitlines()]
        except (OSError, UnicodeDecodeError):
            continue
        if f.name == ".gitignore" and any(line.startswith("!") for line in lines):
            return False
        found = found or any(line in RULES for line in lines)
    return found


def prepare(cfg: Config) -> Paths:
    paths = Paths(cfg.repo, cfg.worktrees)
    paths.ensure()
    ensure_ignored(cfg)
    config_cache.flush()  # the settings' parse, if it was made before `.clanker/` was
    return paths
