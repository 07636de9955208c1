"""The environment of the shell that started the controller, handed to the panes it spawns.

A tmux server keeps the environment it was started with; a pane spawned into a server that has
been running for days gets that old environment, so a key exported in the shell since is missing
in every slave. So the spawning process writes the variables agents and gates need into a file
only its user can read, outside `.clanker/`, and passes just the file's path (`CLANKER_ENV_FILE`)
on the pane's command line; the new process reads the file and deletes it at once. Secret values
never appear in a command line (`ps`), in tmux's environment (global or session), in `.clanker/`
or in a pane.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
import time
from pathlib import Path

from ..config import Config
from ..state import secrets

ENV_FILE = "CLANKER_ENV_FILE"
# On a slave's command line when a controller started it in a pane the controller made, marked
# and keeps: the slave needn't mark the pane itself, nor see to `.clanker/` being ignored.
SPAWNED = "CLANKER_SPAWNED"
_spawned: bool | None = None
# What the agent CLIs read: keys, tokens, endpoints, accounts.
AGENT_VARS = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_MODEL",
    "CLAUDE_CONFIG_DIR",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_ORG_ID",
    "CODEX_API_KEY",
    "CODEX_HOME",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "GOOGLE_GEMINI_BASE_URL",
    "GOOGLE_CLOUD_PROJECT",
    "GOOGLE_CLOUD_LOCATION",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GOOGLE_GENAI_USE_VERTEXAI",
    "OPENROUTER_API_KEY",
    "AIDER_MODEL",
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "NO_PROXY",
    "SSL_CERT_FILE",
    "NODE_EXTRA_CA_CERTS",
    "SSH_AUTH_SOCK",
)
STALE_SECS = 3600  # a file no pane picked up (the spawn failed, the server was killed) is removed after this
_swept: set[Path] = set()  # directories this process has cleared of stale files already


def wanted(cfg: Config) -> list[str]:
    """Every variable a slave should have if the controller's shell has it (clanker's own
    CLANKER_* settings too, except the two that travel on the command line)."""
    own = [n for n in os.environ if n.startswith("CLANKER_") and n not in ("CLANKER_TMUX_SOCKET", ENV_FILE)]
    names = [*AGENT_VARS, *(c.env for c in cfg.credentials), *cfg.env_pass, *sorted(own)]
    return list(dict.fromkeys(names))


def checked(cfg: Config) -> list[str]:
    """The variables doctor compares between its shell and each slave."""
    return list(dict.fromkeys([*AGENT_VARS, *(c.env for c in cfg.credentials), *cfg.env_pass]))


def seen(cfg: Config) -> list[str]:
    """The wanted variables this process has (names only: the heartbeat shows them to doctor)."""
    return [n for n in wanted(cfg) if os.environ.get(n)]


def _dir() -> Path:
    """A directory only this user can enter, outside the repository."""
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    d = Path(base) / f"clanker-{os.getuid()}"
    d.mkdir(mode=0o700, exist_ok=True)
    st = d.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        d = Path(tempfile.mkdtemp(prefix="clanker-env-"))  # someone else's, or too open: a new one
    return d


def handoff(cfg: Config) -> dict[str, str]:
    """Write the wanted variables this process has to a new private file; returns the variable
    that tells the new pane where it is (empty when there is nothing to hand over)."""
    values = {n: os.environ[n] for n in wanted(cfg) if os.environ.get(n)}
    if not values:
        return {}
    d = _dir()
    if d not in _swept:  # once per process, not per spawn: a controller spawns a fleet at once
        _swept.add(d)
        now = time.time()
        for old in d.glob("env-*.json"):
            with contextlib.suppress(OSError):
                if now - old.stat().st_mtime > STALE_SECS:
                    old.unlink()
    fd, path = tempfile.mkstemp(dir=d, prefix="env-", suffix=".json")
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, json.dumps(values).encode("utf-8"))
    finally:
        os.close(fd)
    return {ENV_FILE: path}


def discard(env: dict[str, str]) -> None:
    """The handoff in `env` will not be taken (its pane was never made): remove its file."""
    if env.get(ENV_FILE):
        with contextlib.suppress(OSError):
            os.unlink(env[ENV_FILE])


def spawned() -> bool:
    """Whether a controller started this process in a pane of its own (asked once: the variable
    is taken out of the environment, so the agents and gates this process starts never see it)."""
    global _spawned
    if _spawned is None:
        _spawned = os.environ.pop(SPAWNED, None) == "1"
    return _spawned


def adopt() -> list[str]:
    """In a process started with CLANKER_ENV_FILE: take the variables in, delete the file.
    Returns the names taken. The handed-over values win over the (older) tmux server's."""
    path = os.environ.pop(ENV_FILE, None)
    if not path:
        return []
    try:
        raw = Path(path).read_text(encoding="utf-8")
    except OSError:
        return []
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
    try:
        values = json.loads(raw)
    except ValueError:
        return []
    if not isinstance(values, dict):
        return []
    taken = []
    for name, value in values.items():
        if isinstance(name, str) and isinstance(value, str):
            os.environ[name] = value
            taken.append(name)
    secrets.register_env({n: os.environ[n] for n in taken})
    return taken
