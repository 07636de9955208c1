"""What kind of project a repository is, and the gate and worktree setup that suit it.

`clanker init` writes these into a starter clanker.yaml; the gate preflight quotes them as the fix
when a worktree lacks its environment. Every recipe gives each worktree its *own* environment (a
`.venv` or `node_modules` made inside the worktree), never a path back to the user's checkout.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import msgspec

from ..system import git


class Recipe(msgspec.Struct, frozen=True):
    ecosystem: (
        str  # python-uv | python-poetry | python-pip | node-npm | node-pnpm | node-yarn | go | rust | make | none
    )
    gate: tuple[str, ...] = ()
    setup: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()  # one comment line each, written above the keys
    copy: tuple[str, ...] = msgspec.field(default_factory=tuple)  # ignored files the checkout has (.env*)


def _toml(path: Path) -> dict[str, Any]:
    import tomllib  # only `clanker init` and a preflight read a pyproject.toml: not every slave's start

    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return {}


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _python(repo: Path) -> Recipe | None:
    pyproject = _toml(repo / "pyproject.toml")
    # A pyproject.toml holding only tool settings (ruff, black, pytest) is not an installable project.
    installable = (
        "project" in pyproject
        or "poetry" in (pyproject.get("tool") or {})
        or (repo / "setup.py").is_file()
        or (repo / "setup.cfg").is_file()
    )
    reqs = sorted(p.name for p in repo.glob("requirements*.txt"))
    if not installable and not reqs and not (repo / "pyproject.toml").is_file():
        return None
    deps = json.dumps(pyproject).lower()
    req_text = " ".join(_read(repo / r).lower() for r in reqs)
    pytest = (
        "pytest" in deps
        or "pytest" in req_text
        or (repo / "pytest.ini").is_file()
        or (repo / "conftest.py").is_file()
        or (repo / "tests" / "conftest.py").is_file()
    )
    runner = "-m pytest -q" if pytest else "-m unittest discover -s tests" if (repo / "tests").is_dir() else ""
    if (repo / "uv.lock").is_file():
        gate = (f"uv run --frozen python {runner}",) if runner else ()
        return Recipe("python-uv", gate, ("uv sync --frozen",), ("uv makes the worktree's own .venv",))
    if (repo / "poetry.lock").is_file():
        gate = (f".venv/bin/python {runner}",) if runner else ()
        setup = ("POETRY_VIRTUALENVS_IN_PROJECT=true poetry install --no-interaction",)
        return Recipe("python-poetry", gate, setup, ("poetry makes the worktree's own .venv",))
    extras = (pyproject.get("project") or {}).get("optional-dependencies") or {}
    extra = next((e for e in ("test", "tests", "dev") if e in extras), None)
    steps = ["python3 -m venv .venv"]
    steps += [f".venv/bin/pip install -q -r {r}" for r in reqs]
    if installable:
        steps.append(f".venv/bin/pip install -q -e '.[{extra}]'" if extra else ".venv/bin/pip install -q -e .")
    if pytest and "pytest" not in deps and "pytest" not in req_text:
        steps.append(".venv/bin/pip install -q pytest")
    gate = (f".venv/bin/python {runner}",) if runner else ()
    note = "each worktree gets its own .venv" + (", with an editable install of *that worktree*" if installable else "")
    return Recipe("python-pip", gate, (" && ".join(steps),), (note,))


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""


def _node(repo: Path) -> Recipe | None:
    pkg = _json(repo / "package.json")
    if not (repo / "package.json").is_file():
        return None
    test = str((pkg.get("scripts") or {}).get("test") or "")
    has_test = bool(test) and "no test specified" not in test
    for lock, tool, install in (
        ("pnpm-lock.yaml", "pnpm", "pnpm install --frozen-lockfile"),
        ("yarn.lock", "yarn", "yarn install --frozen-lockfile"),
        ("package-lock.json", "npm", "npm ci"),
    ):
        if (repo / lock).is_file():
            gate = (f"{tool} test",) if has_test else ()
            return Recipe(f"node-{tool}", gate, (install,), ("each worktree gets its own node_modules",))
    gate = ("npm test",) if has_test else ()
    return Recipe("node-npm", gate, ("npm install",), ("each worktree gets its own node_modules",))


def _make_test(repo: Path) -> bool:
    try:
        text = (repo / "Makefile").read_text(encoding="utf-8")
    except OSError:
        return False
    return re.search(r"^test\s*:", text, re.MULTILINE) is not None


def detect(repo: Path) -> Recipe:
    """The recipe for `repo` (the first ecosystem that fits), with the ignored `.env*` files it has."""
    copy = tuple(sorted(git.ignored_files(repo, (".env*",), (".clanker",))))
    found = _python(repo) or _node(repo)
    if found is None and (repo / "go.mod").is_file():
        found = Recipe("go", ("go test ./...",), ("go mod download",))
    if found is None and (repo / "Cargo.toml").is_file():
        found = Recipe("rust", ("cargo test",), (), ("cargo builds into the worktree's own target/",))
    if found is None:
        found = Recipe("none")
    if _make_test(repo) and not found.gate:
        eco = found.ecosystem if found.ecosystem != "none" else "make"
        found = Recipe(eco, ("make test",), found.setup, found.notes)
    return Recipe(found.ecosystem, found.gate, found.setup, found.notes, copy)
