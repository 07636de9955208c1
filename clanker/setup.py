"""`clanker init` and first-run setup: `.clanker/` exists and is kept out of git."""

from __future__ import annotations

from pathlib import Path

from . import atomic, git
from .config import CONFIG_NAME, Config
from .paths import Paths

IGNORE_LINE = "/.clanker/"

STARTER = """\
# clanker.yaml — see clanker.yaml.example in clanker's repository for every key.
slaves: 3
agent:
  kind: fake          # fake | command (claude, codex, aider, gemini: see the README)
# gate: commands that must pass on every commit of main, run in the worktree
gate: []
mainline:
  branch: {branch}
"""


def ensure_ignored(cfg: Config) -> str:
    """Keep `.clanker/` out of git; returns where the rule lives (or already lived)."""
    if git.is_ignored(cfg.repo, ".clanker/events.log"):
        return "already ignored"
    target = cfg.repo / ".gitignore" if cfg.git_ignore == "gitignore" else git.git_dir(cfg.repo) / "info" / "exclude"
    existing = target.read_text(encoding="utf-8") if target.exists() else ""
    sep = "" if not existing or existing.endswith("\n") else "\n"
    atomic.write_text(target, existing + sep + IGNORE_LINE + "\n")
    return str(target)


def prepare(cfg: Config) -> Paths:
    paths = Paths(cfg.repo, cfg.worktrees)
    paths.ensure()
    ensure_ignored(cfg)
    return paths


def init(cfg: Config) -> list[str]:
    """Set up `.clanker/`, ignore it, and write a starter clanker.yaml if there is none."""
    done = []
    prepare(cfg)
    done.append(f"state in {cfg.repo / '.clanker'} (ignored by git)")
    path = cfg.repo / CONFIG_NAME
    if not path.exists():
        branch = git.current_branch(cfg.repo) or cfg.mainline_branch
        atomic.write_text(path, STARTER.format(branch=branch))
        done.append(f"wrote {path}")
    else:
        done.append(f"kept your {path}")
    return done


def main_exists(repo: Path, branch: str) -> bool:
    return git.rev(repo, branch) is not None
