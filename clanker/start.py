"""How a clanker process starts and ends: the settings it reads, its error boundary, and the
start of a slave the fleet spawned, which skips the command line's parser.

`guard` is the single error boundary: a ClankerError prints one line (exit 1, bad input 2),
Ctrl-C exits 130, and anything unexpected writes a crash log and says where it is (exit 3).
"""

from __future__ import annotations

import gc
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from . import __version__
from .config import Config, load
from .errors import ClankerError
from .state import secrets
from .system import git
from .text import one_line


def settings(repo: Path, config: Path | None) -> Config:
    """The repo's settings; the variables they name hold secrets from here on."""
    cfg = load(repo, config)
    secrets.register_names([*cfg.env_pass, *(c.env for c in cfg.credentials)])
    return cfg


def begin() -> None:
    """What every command does first: a pane clanker spawned takes in the variables its spawner
    handed over, and keys in the environment are secrets in whatever this process prints."""
    from .fleet import envpass

    envpass.adopt()
    secrets.register_env()


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def guard(run: Callable[[], int]) -> int:
    try:
        return run()
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except KeyboardInterrupt:
        say("clanker: interrupted")
        return 130
    except ClankerError as e:
        say(f"clanker: {one_line(str(e))}")
        return e.exit_code
    except Exception:
        path = crash_log()
        say(f"clanker: unexpected error — details in {path}; please report it")
        return 3


def leave(code: int) -> NoReturn:
    # The interpreter's last collection walks every object the imports made: 25-50 ms for a
    # slave, and a fleet stopping at once waits on all of them. Frozen, it skips them (atexit
    # handlers and weakref finalizers still run; Python never promised a cycle's __del__ at exit).
    gc.freeze()
    sys.exit(code)


def spawned_slave(argv: list[str]) -> int | None:
    """A slave as the fleet spawns it (`--repo REPO slave N`, fleet/panes.slave_command), run
    without importing click and building every command (~20 ms of each slave's start); None
    for any other command line, which `cli` parses."""
    if len(argv) != 4 or argv[0] != "--repo" or argv[2] != "slave" or not argv[3].isdigit():
        return None
    repo, number = Path(argv[1]), int(argv[3])

    def run() -> int:
        from .fleet import envpass
        from .fleet.slave import run_slave
        from .state.paths import Paths, prepare

        begin()
        cfg = settings(git.toplevel(repo.resolve()), None)
        if envpass.spawned():
            Paths(cfg.repo, cfg.worktrees).ensure()  # its controller saw to `.clanker/` being ignored
        else:
            prepare(cfg)
        return run_slave(cfg, number, None)

    return guard(run)


def crash_log() -> Path:
    try:
        base = git.toplevel(Path.cwd()) / ".clanker"
    except ClankerError:
        base = Path.home() / ".clanker"
    base.mkdir(parents=True, exist_ok=True)
    path = base / f"crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    import platform  # only a crash needs it: every slave would pay for it at start

    path.write_text(
        f"clanker {__version__}, python {platform.python_version()}, {platform.platform()}\n"
        f"argv: {sys.argv}\n\n{traceback.format_exc()}",
        encoding="utf-8",
    )
    return path
