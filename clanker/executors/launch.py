"""Running an agent's Process through an executor: the same script for an ssh host and for a
container, so the one way secrets travel is the same for both.

The agent's environment goes over the child's stdin, never its command line (visible in `ps` on
both sides) nor the remote disk: a preamble of base64 lines (`E` a variable, `P` the prompt, `I`
the agent's stdin), an empty line, and then nothing more — the pipe is held open for the run, so
when clanker stops it (or the connection drops) the remote side sees the end of it and stops
the agent's whole process group.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping

import msgspec

from ..agents.launch import Process
from ..system import remote

# $1: the directory to run in; the rest: the agent's argv.
SCRIPT = r"""exec 3>&2 2>/dev/null  # the agent's stderr stays; the shell's own job notices go
cd "$1" || { echo "clanker: no directory $1 here" >&3; exit 97; }
shift
mkdir -p .git/clanker 2>/dev/null || mkdir -p .clanker-run
box=.git/clanker; [ -d "$box" ] || box=.clanker-run
: > "$box/stdin"
while IFS= read -r line && [ -n "$line" ]; do
  case "$line" in
    E*) export "$(printf %s "${line#E}" | base64 -d)" ;;
    P*) printf %s "${line#P}" | base64 -d > "$box/prompt.md"; export CLANKER_PROMPT_FILE="$PWD/$box/prompt.md" ;;
    I*) printf %s "${line#I}" | base64 -d > "$box/stdin" ;;
  esac
done
export CLANKER_WORKTREE="$PWD"
set -m
"$@" < "$box/stdin" 2>&3 3>&- &
pid=$!
{ cat > /dev/null; kill -TERM -- "-$pid" 2>/dev/null; } > /dev/null 2>&1 3>&- &
wait "$pid"
"""
LOCAL_ONLY = ("CLANKER_WORKTREE", "CLANKER_PROMPT_FILE")  # paths on this machine: set there anew


def _line(tag: str, text: str) -> str:
    return tag + base64.b64encode(text.encode("utf-8")).decode("ascii")


def preamble(env: Mapping[str, str], prompt: str | None, stdin: str | None) -> str:
    lines = [_line("E", f"{k}={v}") for k, v in env.items() if k not in LOCAL_ONLY]
    if prompt is not None:
        lines.append(_line("P", prompt))
    if stdin:
        lines.append(_line("I", stdin))
    return "\n".join([*lines, "", ""])


def through(
    prefix: list[str], proc: Process, where: str, env: Mapping[str, str], prompt: str | None, joined: bool
) -> Process:
    """`proc` run by `prefix` (ssh's argv up to the host, or a container's exec) in `where`, with
    what clanker set in its environment (and `env`, the executor's own) sent over stdin.
    `joined`: the command goes as one shell line (ssh hands it to the login shell), not as argv."""
    sent = {**proc.extra, **env}
    command = remote.login_argv(SCRIPT, where, *proc.argv)
    argv = [*prefix, remote.joined(command)] if joined else [*prefix, *command]
    return msgspec.structs.replace(proc, argv=argv, stdin=preamble(sent, prompt, proc.stdin), hold_stdin=True)
