"""`clanker init`: `.clanker/` kept out of git, a clanker.yaml for the kind of project this is
(gate, worktree.setup, worktree.copy), then the gate preflight and what it found."""

from __future__ import annotations

import json
from pathlib import Path

from ..config import CONFIG_NAME, Config, load
from ..project import recipes
from ..state import atomic
from ..state.paths import prepare
from ..system import git
from . import Done, Echo
from .doctor import gate_check

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


def _write(cfg: Config) -> list[str]:
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


def init(repo: Path, config: Path | None, no_preflight: bool, echo: Echo) -> Done:
    """Set up `.clanker/`, write a starter clanker.yaml if there is none, check its gate."""
    for line in _write(load(repo, config)):
        echo(line)
    cfg = load(repo, config)
    if no_preflight or not cfg.gate:
        return Done()
    echo("gate preflight (the gate on main in a fresh worktree; `--no-preflight` skips it):")
    text, code = gate_check(repo, config, lambda line: echo(line.strip()))
    echo(text)
    return Done(code)
