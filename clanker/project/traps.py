"""Static signs that a gate would test the user's checkout instead of the worktree it runs in.

These are cheap reads of the environment (no gate run), used by `clanker doctor` and to name the
likely cause when the preflight catches a gate reading the checkout. The preflight's open-watch
is the proof; these are the explanation.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote, urlparse

from ..config import Config


def _inside(path: Path, root: Path, own: Path) -> bool:
    real = Path(os.path.realpath(path))
    return real.is_relative_to(root) and not real.is_relative_to(own)


def _venvs(env: Mapping[str, str], checkout: Path, own: Path) -> list[Path]:
    """Virtual environments inside the checkout that the environment uses (VIRTUAL_ENV, PATH)."""
    found: list[Path] = []
    candidates = [env.get("VIRTUAL_ENV", "")]
    candidates += [str(Path(p).parent) for p in env.get("PATH", "").split(os.pathsep) if p]
    for c in candidates:
        if c and (Path(c) / "pyvenv.cfg").is_file() and _inside(Path(c), checkout, own):
            real = Path(os.path.realpath(c))
            if real not in found:
                found.append(real)
    return found


def editable_installs(venv: Path, checkout: Path, own: Path) -> list[str]:
    """Distributions installed in `venv` in editable mode from inside `checkout`."""
    out = []
    for direct in venv.glob("lib/python*/site-packages/*.dist-info/direct_url.json"):
        try:
            data = json.loads(direct.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        url = str(data.get("url", ""))
        if not (data.get("dir_info") or {}).get("editable") or not url.startswith("file:"):
            continue
        if _inside(Path(unquote(urlparse(url).path)), checkout, own):
            out.append(direct.parent.name.split("-")[0])
    for pth in venv.glob("lib/python*/site-packages/*.pth"):
        try:
            lines = pth.read_text(encoding="utf-8").splitlines()
        except OSError:
            continue
        if any(ln.strip().startswith("/") and _inside(Path(ln.strip()), checkout, own) for ln in lines):
            name = pth.stem.removeprefix("__editable__.").split("-")[0]
            if name not in out:
                out.append(name)
    return out


def findings(cfg: Config, own: Path, env: Mapping[str, str] | None = None) -> list[str]:
    """One sentence per reason a gate run in a worktree could read the checkout's tracked files."""
    env = os.environ if env is None else env
    checkout = cfg.repo
    out = []
    for venv in _venvs(env, checkout, own):
        rel = venv.relative_to(checkout)
        dists = editable_installs(venv, checkout, own)
        if dists:
            how = "shared by worktree.link" if str(rel) in cfg.worktree.link else "on the PATH slaves inherit"
            out.append(
                f"{rel}/ ({how}) has an editable install of your checkout ({', '.join(dists)}): "
                "python there imports the code from your checkout, not from the worktree"
            )
    named = re.compile(re.escape(str(checkout)) + r"(?=$|[/\s'\";:)])")
    for cmd in cfg.gate:
        if named.search(cmd) and str(own) not in cmd:
            out.append(f"the gate command `{cmd}` names your checkout ({checkout}) by its absolute path")
    for link in cfg.worktree.link:
        base = checkout / link
        if base.name != "node_modules" or not base.is_dir():
            continue
        for entry in [*base.iterdir(), *(p for s in base.glob("@*") if s.is_dir() for p in s.iterdir())]:
            if entry.is_symlink() and _inside(entry, checkout, own) and not _inside(entry, base, own):
                out.append(f"{link}/{entry.relative_to(base)} links back into your checkout, and {link} is linked")
                break
    return out
