"""An OpenSSH host as an executor: code moves with git, over the same ssh.

On the host, each slave has a clone of its own under `workdir` (`<workdir>/<repo>-<id>/<slave>`).
Before a run, clanker pushes the task branch and `main` there and checks the branch out; the agent
runs in that clone (launch.py); after it, what it left is committed there and fetched back into
the task branch here, where the gate, the judge and mainlining go on as for a local run. What a
run cut short left uncommitted is committed on the host before the next run there and kept under
`refs/clanker/left/`, never thrown away.
"""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path

import msgspec

from ..agents.launch import Process
from ..config import ExecutorConfig
from ..errors import GitError
from ..project.gate import OUTPUT_TAIL, GateResult
from ..state.secrets import redact
from ..system import git, remote
from ..system.remote import RemoteError
from . import launch

# $1 clone, $2 name, $3 email: the clone exists, what an earlier run left there is committed, and
# its head is printed (clanker fetches it if it never came back: the run was cut short).
PREPARE = r"""mkdir -p "$1" && cd "$1" || exit 1
if [ ! -d .git ]; then git init -q && git symbolic-ref HEAD refs/heads/clanker-unborn; fi
if git rev-parse -q --verify HEAD > /dev/null; then
  if [ -n "$(git status --porcelain)" ]; then
    git add -A && git -c user.name="$2" -c user.email="$3" -c commit.gpgsign=false \
      commit -q --no-verify -m "wip: left on this host when a run ended early" || exit 1
  fi
  git update-ref refs/clanker/last HEAD && echo "head $(git rev-parse HEAD) $(git symbolic-ref -q --short HEAD)"
fi
"""
# $1 clone, $2 branch: the task branch as pushed, checked out.
CHECKOUT = r"""cd "$1" && git checkout -q -f -B "$2" refs/clanker/in/task && git clean -q -fd"""
# $1 clone, $2 message, $3 name, $4 email: what the agent left, committed; prints the head.
COLLECT = r"""cd "$1" && git add -A &&
{ git diff --cached --quiet || git -c user.name="$3" -c user.email="$4" -c commit.gpgsign=false \
    commit -q --no-verify -m "$2"; } && git rev-parse HEAD"""


# $1 clone, $2 setup fingerprint, $3 port base, $4 port span, $5 how many setup commands, then
# the setup commands and the gate's: setup runs when its fingerprint changed, then the gate, each
# command in bash; the last line says how it went (\036passed, \036failed CMD, \036setup CMD).
GATE = r"""cd "$1" || exit 1
key="$2"; export CLANKER_WORKTREE="$PWD" CLANKER_PORT_BASE="$3" CLANKER_PORT_SPAN="$4"; n="$5"; shift 5
run() {
  printf '$ %s\n' "$1"; bash -c "$1" 2>&1; code=$?
  [ "$code" -eq 0 ] || printf '(exit %d)\n' "$code"; return "$code"
}
if [ "$n" -gt 0 ] && [ "$(cat .git/clanker-setup 2>/dev/null)" != "$key" ]; then
  while [ "$n" -gt 0 ]; do
    run "$1" || { printf '\036setup %s\n' "$1"; exit 0; }
    shift; n=$((n - 1))
  done
  printf %s "$key" > .git/clanker-setup
else
  shift "$n"
fi
for c in "$@"; do run "$c" || { printf '\036failed %s\n' "$c"; exit 0; }; done
printf '\036passed\n'
"""


def repo_id(repo: Path) -> str:
    """A name for this repository on a host several projects may share."""
    name = re.sub(r"[^A-Za-z0-9._-]", "-", repo.name) or "repo"
    return f"{name}-{hashlib.sha1(str(repo.resolve()).encode()).hexdigest()[:8]}"


class SshHost(msgspec.Struct, frozen=True):
    x: ExecutorConfig
    repo: Path  # the controller's repository
    slave: str

    @property
    def clone(self) -> str:
        return f"{self.x.workdir.rstrip('/')}/{repo_id(self.repo)}/{self.slave}"

    @property
    def url(self) -> str:
        """The clone as a git remote: scp-like for a plain destination, a URL for ssh://."""
        if self.x.host.startswith("ssh://"):
            path = self.clone if self.clone.startswith("/") else f"~/{self.clone}"
            return f"{self.x.host.rstrip('/')}/{path}"
        return f"{self.x.host}:{self.clone}"

    @property
    def ssh(self) -> list[str]:
        return remote.ssh(self.x.ssh_options)

    def _run(self, script: str, *args: str, timeout: float = 120.0) -> str:
        return remote.run(self.x.host, self.x.ssh_options, script, *args, timeout=timeout)

    def up(self, branch: str, sha: str, main_branch: str, main_sha: str) -> str | None:
        """The task branch at `sha` (and main) checked out in this slave's clone on the host.
        Returns the ref here where work an earlier run left on the host was collected, if any."""
        name, mail = git.identity(self.repo)
        said = self._run(PREPARE, self.clone, name, mail).split()
        collected = None
        if len(said) >= 2 and said[0] == "head" and not git.has_object(self.repo, said[1]):
            collected = f"refs/clanker/left/{self.x.name}/{self.slave}/{said[1][:12]}"
            try:
                git.fetch(self.repo, self.url, f"+refs/clanker/last:{collected}", self.ssh)
            except GitError as e:
                raise RemoteError(self.x.host, _kind(str(e)), f"git fetch: {_last(str(e))}") from None
        try:
            git.push(self.repo, self.url, [f"{sha}:refs/clanker/in/task", f"{main_sha}:refs/heads/{main_branch}"],
                     self.ssh)  # fmt: skip
        except GitError as e:
            raise RemoteError(self.x.host, _kind(str(e)), f"git push: {_last(str(e))}") from None
        self._run(CHECKOUT, self.clone, branch)
        return collected

    def down(self, branch: str, message: str) -> str:
        """Commit what the agent left on the host and fetch it back; the commit's sha."""
        name, mail = git.identity(self.repo)
        sha = self._run(COLLECT, self.clone, message, name, mail).strip().splitlines()[-1]
        try:
            git.fetch(self.repo, self.url, f"+refs/heads/{branch}:refs/clanker/from/{self.slave}", self.ssh)
        except GitError as e:
            raise RemoteError(self.x.host, _kind(str(e)), f"git fetch: {_last(str(e))}") from None
        return sha

    def gate(
        self, commands: tuple[str, ...], setup: tuple[str, ...], fingerprint: str, ports: tuple[int, int],
        timeout: float,
    ) -> GateResult:  # fmt: skip
        """The worktree gate in this slave's clone on the host (its `worktree.setup` first, when
        its fingerprint changed): what the agent's environment there makes of the change."""
        started = time.monotonic()
        args = (self.clone, fingerprint, str(ports[0]), str(ports[1]), str(len(setup)), *setup, *commands)
        try:
            out = self._run(GATE, *args, timeout=timeout)
        except RemoteError as e:
            if "no answer in" not in e.message:
                raise
            return GateResult(False, f"(timed out after {timeout:.0f}s on {self.x.name})", timeout, commands[0])
        body, _, verdict = out.rstrip("\n").rpartition("\036")
        secs = time.monotonic() - started
        tail = redact(body)[-OUTPUT_TAIL:]
        if verdict == "passed":
            return GateResult(True, tail, secs)
        kind, _, cmd = verdict.partition(" ")
        return GateResult(False, tail, secs, f"worktree.setup: {cmd}" if kind == "setup" else cmd or None)

    def wrap(self, proc: Process, prompt: str | None) -> Process:
        prefix = remote.argv(self.x.host, self.x.ssh_options, "")[:-1]
        return launch.through(prefix, proc, self.clone, self.x.env, prompt, joined=True)


def _last(text: str) -> str:
    return " ".join(text.strip().splitlines()[-2:])[:300]


def _kind(text: str) -> str:
    return remote.kind_of(remote.SSH_FAILED, text) if "fatal: Could not read from remote" in text else "failed"
