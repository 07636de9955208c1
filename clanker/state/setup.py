"""`clanker init` and first-run setup: `.clanker/` exists and is kept out of git."""

from __future__ import annotations

import json
from pathlib import Path

from ..config import CONFIG_NAME, Config
from ..project import recipes
from ..system import git
from . import atomic
from .paths import Paths

IGNORE_LINE = "/.clanker/"

STARTER = """\
# clanker.yaml — written by `clanker init`{kind}; every key is in clanker.yaml.example.
slaves: 3
agent:
  kind: fake          # fake | command | claude | codex | gemini | aider (see the README)
# gate: commands that must pass on every commit of main, run in each slave's worktree
{gate}{worktree}mainline:
  branch: {branch}
"""


def _items(key: str, items: tuple[str, ...], indent: str = "") -> str:
    if not items:
        return f"{indent}{key}: []\n"
    return f"{indent}{key}:\n" + "".join(f"{indent}  - {json.dumps(i) if _quote(i) else i}\n" for i in items)


def _quote(item: str) -> bool:
    return any(c in item for c in ":#{}[],&*!|>'\"%@`") or item.startswith(("-", "?"))


def starter(recipe: recipes.Recipe, branch: str) -> str:
    """The clanker.yaml `clanker init` writes for a project of this kind."""
    kind = f" for a {recipe.ecosystem} project" if recipe.ecosystem != "none" else ""
    gate = _items("gate", recipe.gate)
    if not recipe.gate:
        gate = "gate: []            # e.g. [make test]: clanker can't vouch for changes without one\n"
    worktree = ""
    if recipe.setup or recipe.copy:
        worktree = "# A fresh worktree has only your tracked files: this gives each one its own environment.\n"
        worktree += "".join(f"# ({note})\n" for note in recipe.notes)
        worktree += "worktree:\n"
        if recipe.setup:
            worktree += _items("setup", recipe.setup, "  ")
        if recipe.copy:
            worktree += "  # ignored files your checkout has that each worktree gets a copy of\n"
            worktree += _items("copy", recipe.copy, "  ")
    return STARTER.format(kind=kind, gate=gate, worktree=worktree, branch=branch)


def ensure_ignored(cfg: Config) -> str:
    """Keep `.clanker/` (and a worktree root of its own inside the repository) out of git;
    returns where the rule lives (or already lived)."""
    rules = []
    if not git.is_ignored(cfg.repo, ".clanker/events.log"):
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
        recipe = recipes.detect(cfg.repo)
        atomic.write_text(path, starter(recipe, branch))
        what = f" for a {recipe.ecosystem} project" if recipe.ecosystem != "none" else ""
        done.append(f"wrote {path}{what}: gate {list(recipe.gate) or 'none yet'}")
        if recipe.setup:
            done.append(f"  each worktree is set up with: {'; '.join(recipe.setup)}")
        if recipe.copy:
            done.append(f"  and gets a copy of: {', '.join(recipe.copy)}")
    else:
        done.append(f"kept your {path}")
    return done


def main_exists(repo: Path, branch: str) -> bool:
    return git.rev(repo, branch) is not None
