"""The one module that runs `ssh` for clanker's own commands on an executor's host (agents run
through system/proc like every agent, with an argv built here).

`ssh` is OpenSSH as the user has it: their `~/.ssh/config` (aliases, keys, ProxyJump) applies,
with `BatchMode` so a missing key fails at once instead of asking for a password no one types.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

SSH_FAILED = 255  # ssh's own exit code: it never reached (or lost) the host
BASE_OPTIONS = ("-T", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "ServerAliveInterval=15")
_AUTH = re.compile(r"permission denied \((?:publickey|password|keyboard)|host key verification failed|"
                   r"no matching host key|too many authentication failures", re.I)  # fmt: skip


@dataclass(frozen=True)
class RemoteError(Exception):
    """A command on a host failed: `kind` is transient (try again, maybe elsewhere), auth (fix
    the key), or failed (the command itself)."""

    host: str
    kind: str
    message: str

    def __str__(self) -> str:
        return f"{self.host}: {self.message}"


def shared() -> list[str]:
    """One connection per host, shared by every command and run that goes there (OpenSSH's
    ControlMaster): a job's push, run and fetch cost one handshake, not six. The sockets live in
    a directory only this user can enter."""
    where = Path(tempfile.gettempdir()) / f"clanker-ssh-{os.getuid()}"
    where.mkdir(mode=0o700, exist_ok=True)
    return ["-o", "ControlMaster=auto", "-o", f"ControlPath={where}/%C", "-o", "ControlPersist=60"]


def ssh(options: Sequence[str]) -> list[str]:
    """ssh and its options up to the destination (git's GIT_SSH_COMMAND too)."""
    return ["ssh", *BASE_OPTIONS, *shared(), *options]


def argv(host: str, options: Sequence[str], command: str) -> list[str]:
    """ssh's argv for one remote shell command line (it reaches the login shell as one string)."""
    return [*ssh(options), host, command]


def login_argv(script: str, *args: str) -> list[str]:
    """`script` run by bash as a login shell (the host's PATH: npm globals, ~/.local/bin, mise
    shims), with `args` as its positional parameters."""
    return ["bash", "-lc", script, "clanker", *args]


def joined(argv: Sequence[str]) -> str:
    """One shell line for `argv`: what ssh hands the remote login shell."""
    return " ".join(shlex.quote(a) for a in argv)


def login(script: str, *args: str) -> str:
    return joined(login_argv(script, *args))


def kind_of(code: int, stderr: str) -> str:
    if code == SSH_FAILED and _AUTH.search(stderr):
        return "auth"
    return "transient" if code == SSH_FAILED else "failed"


def fix_for(host: str) -> str:
    return f"make `ssh -o BatchMode=yes {host} true` work without a password (a key in ssh-agent or ~/.ssh/config)"


def run(host: str, options: Sequence[str], script: str, *args: str, timeout: float = 120.0) -> str:
    """Run `script` on `host` (a login shell) and return its stdout; RemoteError if it fails."""
    try:
        proc = subprocess.run(
            argv(host, options, login(script, *args)),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise RemoteError(host, "transient", f"no answer in {timeout:.0f}s") from None
    except OSError as e:
        raise RemoteError(host, "failed", f"can't run ssh: {e.strerror}") from None
    if proc.returncode != 0:
        last = " ".join(proc.stderr.strip().splitlines()[-2:])[:300] or f"exit {proc.returncode}"
        kind = kind_of(proc.returncode, proc.stderr)
        raise RemoteError(host, kind, f"{last} — {fix_for(host)}" if kind == "auth" else last)
    return proc.stdout


def probe(host: str, options: Sequence[str]) -> str | None:
    """None when `host` runs a login shell with git in it; else what went wrong, in one line."""
    try:
        run(host, options, "git --version > /dev/null || { echo 'git is not installed there' >&2; exit 1; }",
            timeout=20)  # fmt: skip
    except RemoteError as e:
        return e.message
    return None


def probe_exec(prefix: list[str]) -> str | None:
    """None when a container's exec runs a login shell; else what went wrong, in one line."""
    try:
        proc = subprocess.run([*prefix, "bash", "-lc", "true"], stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=20, check=False)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"can't run {prefix[0] if prefix else 'it'}: {e}"
    if proc.returncode != 0:
        return " ".join(proc.stderr.strip().splitlines()[-2:])[:300] or f"exit {proc.returncode}"
    return None
