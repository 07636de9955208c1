"""The only module that talks to tmux (DESIGN §2).

Every call goes through `Tmux.run`, which raises TmuxError with the subcommand and tmux's stderr.
Panes are identified by pane user options (`@clanker_id`, `@clanker_repo`), never by title: agents
rewrite titles. Nothing global is set: options and hooks are scoped to clanker's own panes/windows.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import msgspec

from ..errors import ClankerError, TmuxError

SEP = "\x1f"  # unit separator: cannot appear in a pane title typed by a person
FIELDS = (
    "pane_id",
    "pane_dead",
    "@clanker_repo",
    "@clanker_id",
    "@clanker_created",
    "pane_pid",
    "pane_title",
    "session_name",
    "window_id",
    "pane_tty",
    "pane_current_command",
    "pane_width",
    "pane_height",
)
LIST_FORMAT = SEP.join(f"#{{{f}}}" for f in FIELDS)
# Variables a spawned pane needs from the controller's environment: the tmux server's own
# environment may be from long ago, so the pane command carries these explicitly.
# Nothing secret goes this way (it is on tmux's command line): keys go by envpass's private file.
PASS_ENV = ("PATH", "PYTHONPATH", "VIRTUAL_ENV", "HOME", "LANG", "LC_ALL", "CLANKER_TMUX_SOCKET")


class Pane(msgspec.Struct, frozen=True):
    id: str
    dead: bool
    repo: str
    clanker_id: str
    created: bool  # clanker spawned it (so clanker may kill it)
    pid: int
    title: str
    session: str
    window: str
    tty: str
    command: str
    width: int
    height: int


def parse_panes(lines: list[str]) -> list[Pane]:
    panes = []
    for line in lines:
        f = line.split(SEP)
        if len(f) != len(FIELDS):
            continue
        panes.append(
            Pane(
                id=f[0],
                dead=f[1] == "1",
                repo=f[2],
                clanker_id=f[3],
                created=f[4] == "1",
                pid=int(f[5] or 0),
                title=f[6],
                session=f[7],
                window=f[8],
                tty=f[9],
                command=f[10],
                width=int(f[11] or 0),
                height=int(f[12] or 0),
            )
        )
    return panes


def available() -> bool:
    return shutil.which("tmux") is not None


def version() -> str:
    if not available():
        return ""
    return subprocess.run(["tmux", "-V"], capture_output=True, text=True, check=False).stdout.strip()


def inside() -> bool:
    return bool(os.environ.get("TMUX"))


def pass_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k in PASS_ENV}


class Ran(msgspec.Struct, frozen=True):
    returncode: int
    stdout: list[str]  # its lines, trailing empty ones dropped
    stderr: list[str]  # its non-empty lines


class Server:
    """One tmux server's command line: `tmux [-L name | -S path] ARGS`, run, its output in lines.
    (What clanker used libtmux's Server.cmd for, here: importing libtmux cost each clanker
    process ~70 ms — a fleet starts many — and it looked tmux up on PATH for every command.)"""

    def __init__(self, binary: str, socket: str | None) -> None:
        where = [] if not socket else ["-S", socket] if "/" in socket else ["-L", socket]
        self.prefix = [binary, *where]  # no socket: tmux uses $TMUX inside tmux, else the default server

    def cmd(self, *args: str, env: dict[str, str] | None = None) -> Ran:
        """`env`: the client's environment, when it must not be this process's (see new_session)."""
        try:
            proc = subprocess.run([*self.prefix, *args], capture_output=True, text=True, encoding="utf-8",
                                  errors="backslashreplace", check=False, env=env)  # fmt: skip
        except FileNotFoundError:
            raise ClankerError("tmux is not installed: install it (e.g. `apt-get install tmux`) and retry") from None
        out = proc.stdout.split("\n")
        while out and out[-1] == "":
            out.pop()
        return Ran(proc.returncode, out, [line for line in proc.stderr.split("\n") if line])


class Tmux:
    def __init__(self, socket: str | None = None) -> None:
        binary = shutil.which("tmux")
        if binary is None:
            raise ClankerError("tmux is not installed: install it (e.g. `apt-get install tmux`) and retry")
        self.socket = socket
        self.server = Server(binary, socket)

    def run(self, *args: str) -> list[str]:
        proc = self.server.cmd(*args)
        if proc.returncode != 0:
            raise TmuxError(list(args), "\n".join(proc.stderr))
        return list(proc.stdout)

    def try_run(self, *args: str) -> bool:
        return self.server.cmd(*args).returncode == 0

    def running(self) -> bool:
        return self.try_run("list-sessions")

    # --- discovery: one call per tick ----------------------------------------------------------

    def panes(self) -> list[Pane]:
        """Every pane on the server, with clanker's identity options, in ONE tmux call."""
        proc = self.server.cmd("list-panes", "-a", "-F", LIST_FORMAT)
        if proc.returncode != 0:
            return []  # no server running: no panes
        return parse_panes(list(proc.stdout))

    # --- creating and marking panes ------------------------------------------------------------

    def has_session(self, name: str) -> bool:
        return self.try_run("has-session", "-t", f"={name}")

    def new_session(
        self,
        name: str,
        window: str,
        cwd: str,
        command: list[str],
        env: dict[str, str],
        hide: frozenset[str] = frozenset(),
    ) -> str:
        """A detached session whose first pane runs `command`; returns the pane id.

        remain-on-exit is set in the same tmux invocation, before the server can reap the child,
        so a command that dies at once still leaves a dead pane to inspect and respawn. When this
        starts the tmux server, the server's global environment is copied from this client:
        the variables in `hide` (keys and tokens) are left out of the client's.
        """
        args = [
            "new-session",
            "-d",
            "-P",
            "-F",
            "#{pane_id}",
            "-s",
            name,
            "-n",
            window,
            "-c",
            _arg(cwd),
            "-x",
            "200",
            "-y",
            "50",
            *_env_args(env),
            *map(_arg, command),
            ";",
            "set-option",
            "-w",
            "-t",
            f"={name}:{window}",
            "remain-on-exit",
            "on",
        ]
        # Without `hide` whether or not the server runs yet: one call, not a look first, and a
        # running server's session copies nothing secret from this client either.
        return self._run_hidden(args, hide)[0]

    def _run_hidden(self, args: list[str], hide: frozenset[str]) -> list[str]:
        """A tmux command run as a client whose environment lacks `hide` (it may start the server)."""
        proc = self.server.cmd(*args, env={k: v for k, v in os.environ.items() if k not in hide})
        if proc.returncode != 0:
            raise TmuxError(list(args), "\n".join(proc.stderr))
        return list(proc.stdout)

    def new_window(self, session: str, name: str, cwd: str, command: list[str], env: dict[str, str]) -> str:
        out = self.run(
            "new-window",
            "-d",
            "-P",
            "-F",
            "#{pane_id}",
            "-t",
            f"={session}:",
            "-n",
            name,
            "-c",
            _arg(cwd),
            *_env_args(env),
            *map(_arg, command),
            ";",
            "set-option",
            "-w",
            "-t",
            f"={session}:{name}",
            "remain-on-exit",
            "on",
        )
        return out[0]

    def split(self, target_pane: str, cwd: str, command: list[str], env: dict[str, str]) -> str:
        """Split the window of `target_pane`; remain-on-exit is set on that window first."""
        ran = self._splits(target_pane, cwd, [(command, env)])
        ids = _pane_ids(ran)
        if not ids:
            raise TmuxError(["split-window", "-t", target_pane], "\n".join(ran.stderr))
        return ids[0]

    def split_many(self, target_pane: str, cwd: str, panes: list[tuple[list[str], dict[str, str]]]) -> list[str]:
        """`split` once per (command, environment), tiling the window after each, in one tmux
        call; returns the new panes' ids. A full window fails its split and tmux skips the rest of
        the sequence: the ids are then those of the splits before it (none, if tmux failed)."""
        return _pane_ids(self._splits(target_pane, cwd, panes))

    def _splits(self, target_pane: str, cwd: str, panes: list[tuple[list[str], dict[str, str]]]) -> Ran:
        tile = ["select-layout", "-t", target_pane, "tiled"]
        splits = [part for command, env in panes for part in (_split_args(target_pane, cwd, command, env), tile)]
        return self.server.cmd(*_sequence([["set-option", "-w", "-t", target_pane, "remain-on-exit", "on"], *splits]))

    def mark(self, pane: str, clanker_id: str, repo: str, created: bool) -> None:
        """Give a pane its identity and the title `clanker:<id>`, kept by a pane-scoped hook."""
        self.mark_many([(pane, clanker_id)], repo, created)

    def mark_many(self, panes: list[tuple[str, str]], repo: str, created: bool) -> None:
        """`mark` for several (pane, clanker id) pairs, in one tmux call."""
        commands: list[list[str]] = []
        for pane, clanker_id in panes:
            title = f"clanker:{clanker_id}"
            keep_title = (
                f"if-shell -F '#{{!=:#{{pane_title}},#{{@clanker_title}}}}' "
                f"'select-pane -t {pane} -T \"#{{@clanker_title}}\"'"
            )
            commands += [
                ["set-option", "-p", "-t", pane, "@clanker_id", _arg(clanker_id)],
                ["set-option", "-p", "-t", pane, "@clanker_repo", _arg(repo)],
                ["set-option", "-p", "-t", pane, "@clanker_title", _arg(title)],
                ["select-pane", "-t", pane, "-T", _arg(title)],
                ["set-hook", "-p", "-t", pane, "pane-title-changed", keep_title],
            ]
            if created:
                commands.append(["set-option", "-p", "-t", pane, "@clanker_created", "1"])
        if commands:
            self.run(*_sequence(commands))

    def unmark(self, pane: str) -> None:
        self.try_run("set-option", "-p", "-u", "-t", pane, "@clanker_id")
        self.try_run("set-option", "-p", "-u", "-t", pane, "@clanker_repo")
        self.try_run("set-hook", "-p", "-u", "-t", pane, "pane-title-changed")

    def respawn(self, pane: str, cwd: str, command: list[str], env: dict[str, str]) -> None:
        self.run("respawn-pane", "-t", pane, "-c", _arg(cwd), *_env_args(env), *map(_arg, command))

    def kill_pane(self, pane: str) -> None:
        self.try_run("kill-pane", "-t", pane)

    def kill_panes(self, panes: list[str]) -> None:
        """One tmux call for all of them. A pane already gone fails the command and tmux skips
        the rest of the sequence: then each is killed on its own."""
        if panes and not self.try_run(*_sequence([["kill-pane", "-t", pane] for pane in panes])):
            for pane in panes:
                self.kill_pane(pane)

    def kill_session(self, name: str) -> None:
        self.try_run("kill-session", "-t", f"={name}")

    def session_panes(self, name: str) -> int:
        proc = self.server.cmd("list-panes", "-s", "-t", f"={name}", "-F", "#{pane_id}")
        return len(proc.stdout) if proc.returncode == 0 else 0

    def capture(self, pane: str, escapes: bool = False) -> str:
        args = ["capture-pane", "-p", "-t", pane]
        if escapes:
            args.insert(2, "-e")
        return "\n".join(self.run(*args))

    def send_keys(self, pane: str, *keys: str) -> None:
        self.run("send-keys", "-t", pane, *keys)

    def display(self, pane: str, fmt: str) -> str:
        out = self.run("display-message", "-p", "-t", pane, fmt)
        return out[0] if out else ""

    def set_window_option(self, target: str, key: str, value: str) -> None:
        self.run("set-option", "-w", "-t", target, key, value)

    def focus(self, pane: str) -> None:
        """Show `pane` to the person: switch the current client to it (we are inside tmux)."""
        self.run("switch-client", "-t", pane, ";", "select-window", "-t", pane, ";", "select-pane", "-t", pane)

    def attach_argv(self, pane: str) -> list[str]:
        """argv that attaches a terminal (outside tmux) to the session of `pane`, with it selected."""
        base = ["tmux"]
        if self.socket:
            base += ["-S", self.socket] if "/" in self.socket else ["-L", self.socket]
        return [
            *base,
            "select-window",
            "-t",
            pane,
            ";",
            "select-pane",
            "-t",
            pane,
            ";",
            "attach-session",
            "-t",
            pane,
        ]


def _sequence(commands: list[list[str]]) -> list[str]:
    """Several tmux commands as one invocation's arguments, `;` between them."""
    return [arg for i, command in enumerate(commands) for arg in ([";", *command] if i else command)]


def _pane_ids(ran: Ran) -> list[str]:
    return [line for line in ran.stdout if line.startswith("%")]


def _split_args(target_pane: str, cwd: str, command: list[str], env: dict[str, str]) -> list[str]:
    return ["split-window", "-d", "-P", "-F", "#{pane_id}", "-t", target_pane, "-c", _arg(cwd),
            *_env_args(env), *map(_arg, command)]  # fmt: skip


def _env_args(env: dict[str, str]) -> list[str]:
    args: list[str] = []
    for k, v in sorted(env.items()):
        args += ["-e", _arg(f"{k}={v}")]
    return args


def _arg(value: str) -> str:
    """tmux ends a command at any argument ending in `;` (`a;` is `a` and a separator): a value
    of ours that ends so keeps it escaped, as `\\;`."""
    return value[:-1] + "\\;" if value.endswith(";") else value


def exec_attach(tm: Tmux, pane: str) -> None:
    """Replace this process with a tmux client attached to `pane` (or switch to it inside tmux)."""
    if inside():
        tm.focus(pane)
        return
    argv = tm.attach_argv(pane)
    os.execvp(argv[0], argv)
