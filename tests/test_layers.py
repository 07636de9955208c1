"""The layers of ARCHITECTURE.md, checked: a module imports only from its own folder or a layer
below it, and only the system wrappers start processes."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "clanker"

# Lowest first. Folders of one rank do not import each other.
RANKS = {
    "errors": 0,
    "text": 0,
    "units": 0,
    "__init__": 0,
    "system": 1,
    "config": 1,
    "state": 2,
    "agents": 3,
    "project": 3,
    "executors": 4,
    "jobs": 5,
    "fleet": 6,
    "commands": 7,
    "tui": 8,
    "start": 9,
    "cli": 10,
    "__main__": 11,
}
# Only these start child processes: git and tmux through their wrappers, everything else through
# system/proc.
PROCESS_MODULES = {"system/git.py", "system/tmux.py", "system/proc.py", "system/remote.py"}


def _layer(rel: Path) -> str:
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imports(rel: Path, source: str) -> list[tuple[int, str]]:
    """(line, layer) of every clanker module the module at `rel` (below clanker/) imports."""
    package = list(rel.parent.parts)
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                parts = [*base, *(node.module.split(".") if node.module else [])]
            elif node.module and node.module.split(".")[0] == "clanker":
                parts = node.module.split(".")[1:]
            else:
                continue
            names = [parts[0]] if parts else [a.name for a in node.names]
            found += [(node.lineno, name) for name in names]
        elif isinstance(node, ast.Import):
            found += [
                (node.lineno, a.name.split(".")[1])
                for a in node.names
                if a.name.startswith("clanker.") and "." in a.name
            ]
    return found


MODULES = sorted(p for p in ROOT.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_a_module_imports_only_downwards(path: Path) -> None:
    rel = path.relative_to(ROOT)
    own = _layer(rel)
    assert own in RANKS, f"{rel}: a new folder? give it a rank in ARCHITECTURE.md and here"
    wrong = [
        f"line {line}: {own} imports {target}"
        for line, target in _imports(rel, path.read_text(encoding="utf-8"))
        if target != own and RANKS.get(target, -1) >= RANKS[own]
    ]
    assert not wrong, f"{rel} reaches up or sideways: {wrong}"


def _starts_processes(source: str) -> bool:
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import) and any(a.name == "subprocess" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and node.module == "subprocess":
            return True
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "os":
            starts = node.attr in ("system", "popen", "fork") or node.attr.startswith(("exec", "spawn"))
            if starts:
                return True
    return False


def test_only_the_system_wrappers_start_processes() -> None:
    users = {str(p.relative_to(ROOT)) for p in MODULES if _starts_processes(p.read_text(encoding="utf-8"))}
    assert users == PROCESS_MODULES


def test_the_checks_catch_what_they_are_for() -> None:
    # Neither check is vacuous: an upward import and a stray subprocess are both seen.
    upward = "from ..fleet import slave\nfrom clanker.tui import app\nfrom . import log\n"
    assert [t for _, t in _imports(Path("state/x.py"), upward)] == ["fleet", "tui", "state"]
    assert _starts_processes("import subprocess\n") and _starts_processes("import os\nos.execvp('x', [])\n")
    assert not _starts_processes("import os\nos.getpid()\n")
