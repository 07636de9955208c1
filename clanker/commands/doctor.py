"""`clanker doctor`: is everything clanker needs in place? Each line is ok, warn or fail, with the fix."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..agents import adapter_for, probe
from ..config import AgentConfig, Config, load
from ..errors import ClankerError
from ..fleet import envpass
from ..fleet.panes import view
from ..project import preflight, traps
from ..state import credentials, heartbeat
from ..state import log as eventlog
from ..state.events import Event, SetupRetry
from ..state.locks import is_held
from ..state.paths import Paths, prepare
from ..state.store import Store
from ..system import git, remote, tmux
from . import Done, Echo


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | warn | fail
    detail: str
    fix: str = ""

    def to_json(self) -> dict[str, str]:
        return {"check": self.name, "status": self.status, "detail": self.detail, "fix": self.fix}


def _version(text: str) -> tuple[int, ...]:
    m = re.search(r"(\d+)\.(\d+)", text)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def run_checks(repo: Path, config_path: Path | None = None) -> list[Check]:
    checks: list[Check] = []
    tv = tmux.version()
    if not tv:
        checks.append(Check("tmux", "fail", "tmux is not installed", "install tmux (e.g. `apt-get install tmux`)"))
    elif _version(tv) < (3, 2):
        checks.append(Check("tmux", "warn", f"{tv}: pane-scoped hooks need 3.2+", "upgrade tmux"))
    else:
        checks.append(Check("tmux", "ok", tv))
    gv = git.version()
    if not gv:
        checks.append(Check("git", "fail", "git is not installed", "install git"))
    elif _version(gv) < (2, 38):
        checks.append(
            Check("git", "fail", f"{gv}: mainlining needs `git merge-tree --write-tree` (2.38+)", "upgrade git")
        )
    else:
        checks.append(Check("git", "ok", gv))
    checks.append(Check("inside tmux", "ok", "yes" if tmux.inside() else "no (clanker will create its own session)"))
    try:
        cfg = load(repo, config_path)
    except ClankerError as e:
        checks.append(Check("config", "fail", str(e), "fix clanker.yaml (see clanker.yaml.example)"))
        return checks
    checks.append(Check("config", "ok", str(cfg.path) if cfg.path else "no clanker.yaml: defaults"))
    checks += _agent_checks(cfg)
    checks += _repo_checks(cfg)
    checks += _environment_checks(cfg)
    checks += _fleet_checks(cfg)
    checks += _executor_checks(cfg)
    return checks


def _executor_checks(cfg: Config) -> list[Check]:
    """Each executor answers (ssh: a login shell on the host with git there; a container: its
    exec runs), with its slots and whether clanker marked it down."""
    out = []
    state = Store(Paths(cfg.repo, cfg.worktrees), "doctor").state() if cfg.executors else None
    room = sum(cfg.slots_of(x) for x in cfg.executors)
    if cfg.executors and room < cfg.slaves:
        out.append(Check("executor slots", "warn", f"{room} slot(s) for {cfg.slaves} slaves: "
                         f"{cfg.slaves - room} can only judge and land", "add slots, or lower `slaves`"))  # fmt: skip
    for x in cfg.executors:
        name = f"executor {x.name}"
        down = state.down.get(x.name) if state else None
        slots = f"{cfg.slots_of(x)} slot{'s' if cfg.slots_of(x) != 1 else ''}"
        if x.kind == "local":
            out.append(Check(name, "ok", f"this machine, {slots}"))
            continue
        if x.kind == "ssh":
            problem = remote.probe(x.host, x.ssh_options)
            fix = remote.fix_for(x.host) if problem and "Permission denied" in problem else (
                f"check the host answers: `ssh {x.host} git --version`")  # fmt: skip
        else:
            problem = remote.probe_exec(list(x.exec))
            fix = f"start the container, then check `{' '.join(x.exec)} true` works"
        if problem:
            out.append(Check(name, "fail", f"{x.kind} {x.host or ' '.join(x.exec)}: {problem}", fix))
        elif down is not None and down.until > time.time():
            out.append(Check(name, "warn", f"answers now; marked down by the fleet: {down.reason}",
                             "the fleet tries it again by itself after its backoff"))  # fmt: skip
        else:
            out.append(Check(name, "ok", f"{x.kind} {x.host or ' '.join(x.exec)} answers, {slots}"))
    return out


def _environment_checks(cfg: Config) -> list[Check]:
    """Would a gate in a worktree test the worktree? What did the last preflight say? Does each
    slave have the variables this shell has (keys exported after the tmux server started)?"""
    out = []
    paths = Paths(cfg.repo, cfg.worktrees)
    for finding in traps.findings(cfg, paths.worktrees):
        fix = "give each worktree its own environment with worktree.setup (see `clanker init`, README)"
        out.append(Check("gate env", "warn", finding, fix))
    if cfg.worktree.setup or cfg.worktree.copy or cfg.worktree.link:
        parts = [f"{k} {len(v)}" for k, v in (("copy", cfg.worktree.copy), ("link", cfg.worktree.link),
                                               ("setup", cfg.worktree.setup)) if v]  # fmt: skip
        out.append(Check("worktree env", "ok", ", ".join(parts)))
    st = Store(paths, "doctor").state() if paths.events.exists() else None
    if st is not None and preflight.needed(cfg):
        p = st.preflights.get(preflight.key(cfg))
        if p is None:
            out.append(Check("gate preflight", "warn", "not run for these settings yet", "`clanker doctor --gate`"))
        elif p.passed:
            out.append(Check("gate preflight", "ok", f"passed on {p.sha[:10]}: the gate tests the worktree"))
        else:
            first = preflight.render(p.detail, cfg.repo).splitlines()[0].removeprefix("clanker: ")
            out.append(Check("gate preflight", "fail", first, "`clanker doctor --gate` shows why and the fix"))
    for sid, f in sorted((st.setup_failed if st else {}).items()):
        out.append(
            Check(f"setup {sid}", "fail", f"worktree.setup failed: `{f.command}` ({f.log})", "fix it, then --gate")
        )
    beats = heartbeat.read_all(paths)
    have = [n for n in envpass.checked(cfg) if os.environ.get(n)]
    for sid, beat in sorted(beats.items()):
        if sid == "ctl" or beat.stopped or not heartbeat.pid_alive(beat.pid) or beat.env is None:
            continue
        creds = {c.env for c in cfg.credentials}
        lacking = [n for n in have if n not in beat.env]
        if lacking:
            status = "fail" if creds & set(lacking) else "warn"
            out.append(
                Check(
                    f"env {sid}",
                    status,
                    f"lacks {', '.join(lacking)}, which this shell has",
                    "restart the fleet from this shell: `clanker stop`, then `clanker`",
                )
            )
        else:
            out.append(Check(f"env {sid}", "ok", f"has {len(beat.env)} of the agent/credential variables"))
    return out


def gate_check(repo: Path, config_path: Path | None, say: Callable[[str], None]) -> tuple[str, int]:
    """`clanker doctor --gate`: run the preflight now, record it (a pass lets the fleet start, and
    slaves whose setup failed try again), and return its report and exit code."""
    cfg = load(repo, config_path)
    paths = Paths(cfg.repo, cfg.worktrees)
    if not cfg.gate:
        return "no gate commands: nothing to preflight (add `gate:` to clanker.yaml)", 1
    store = Store(paths, "doctor")
    found = preflight.run(cfg, paths, "preflight-doctor", 0, say)
    ran = found.event("doctor", preflight.key(cfg))
    events: list[Event] = [ran]
    if found.passed:
        events.append(SetupRetry(actor="doctor", reason="clanker doctor --gate passed"))
    store.append(*events)
    data = ran.payload()
    lines = []
    if found.passed:
        lines.append(
            f"ok    gate preflight: the gate passes on {found.sha[:10]} in a fresh worktree and tests the worktree"
            f" ({found.seconds:.1f}s)"
        )
        if found.partial:
            lines.append("warn  gate preflight: part of your checkout could not be watched (inotify limits)")
    else:
        lines.append(preflight.render(data, cfg.repo))
    log = paths.setup_log("preflight-doctor")
    if cfg.worktree.setup and log.is_file():
        lines.append(f"\nsetup log ({log}), last lines:")
        lines += ["  " + ln for ln in log.read_text(encoding="utf-8", errors="replace").splitlines()[-15:]]
    for sid, f in sorted(store.state().setup_failed.items()):
        lines.append(f"{sid}: its worktree.setup failed (`{f.command}`): {f.log}")
    mine = preflight.key(cfg)
    others = sorted(
        sid
        for sid, b in heartbeat.read_all(paths).items()
        if sid != "ctl" and b.gate_key and b.gate_key != mine and not b.stopped and heartbeat.pid_alive(b.pid)
    )
    if others:
        lines.append(
            f"note: {', '.join(others)} run with another environment than this shell (PATH, VIRTUAL_ENV, …): this "
            "check speaks for slaves started from here; run it from their shell, or restart the fleet from here"
        )
    return "\n".join(lines), 0 if found.passed else 1


def _agent_checks(cfg: Config) -> list[Check]:
    out = []
    seen: set[tuple[str, str | None]] = set()
    for role, agent in (("agent", cfg.agent), ("judge agent", cfg.judge_agent)):
        if agent is None:
            out.append(Check(role, "ok", "none: the gate alone decides"))
            continue
        if (agent.kind, agent.binary) in seen:
            out.append(Check(role, "ok", f"{agent.kind} (as above)"))
            continue
        seen.add((agent.kind, agent.binary))
        if agent.kind == "fake":
            out.append(Check(role, "ok", "fake (built in)"))
        elif agent.kind == "command":
            found = shutil.which(agent.command[0]) if agent.command else None
            if found:
                out.append(Check(role, "ok", f"command: {found}"))
            else:
                fix = "install it or fix agent.command in clanker.yaml"
                out.append(Check(role, "fail", f"command {agent.command[0]!r} not found on PATH", fix))
        else:
            out += _real_agent(role, agent, cfg)
    for cred in credentials.missing(cfg.credentials):
        out.append(Check(f"credential {cred.name}", "fail", f"${cred.env} is not set", f"export {cred.env}=…"))
    for cred in cfg.credentials:
        if cred not in credentials.missing(cfg.credentials):
            out.append(Check(f"credential {cred.name}", "ok", f"${cred.env} is set"))
    return out


def _real_agent(role: str, agent: AgentConfig, cfg: Config) -> list[Check]:
    p = probe.probe(agent)
    name = agent.binary or agent.kind
    if p.binary is None:
        return [Check(role, "fail", f"{name} not found on PATH", f"install {agent.kind}, or set agent.binary")]
    out = [Check(role, "ok", f"{agent.kind} {p.version or '(version unknown)'} at {p.binary}")]
    missing = [f for f, ok in p.features.items() if not ok]
    have = [f for f, ok in p.features.items() if ok]
    if have:
        out.append(Check(f"{agent.kind} features", "ok", ", ".join(have)))
    if missing:
        out.append(
            Check(
                f"{agent.kind} features", "warn", "not in this version: " + ", ".join(missing), f"upgrade {agent.kind}"
            )
        )
    if not cfg.credentials:
        login = probe.has_login(agent.kind)
        if login:
            out.append(Check(f"{agent.kind} login", "ok", f"uses {login}"))
        else:
            fix = adapter_for(agent).auth_fix()
            out.append(Check(f"{agent.kind} login", "warn", "no key in the environment and no login found", fix))
    return out


def _repo_checks(cfg: Config) -> list[Check]:
    out = []
    repo = cfg.repo
    if git.branch_head(repo, cfg.mainline_branch) is None:
        out.append(
            Check(
                "main branch",
                "fail",
                f"branch {cfg.mainline_branch!r} has no commit",
                "commit something first, or set mainline.branch",
            )
        )
    else:
        out.append(Check("main branch", "ok", cfg.mainline_branch))
    if git.is_ignored(repo, ".clanker/events.log"):
        out.append(Check(".clanker ignored", "ok", "git ignores .clanker/"))
    else:
        out.append(Check(".clanker ignored", "fail", "git would see .clanker/", "run `clanker init`"))
    if not cfg.gate:
        out.append(
            Check(
                "gate",
                "warn",
                "no gate commands: nothing checks a change before main",
                "add `gate: [your test command]` to clanker.yaml",
            )
        )
    else:
        out.append(Check("gate", "ok", f"{len(cfg.gate)} command(s)"))
    if cfg.slaves < 2:
        out.append(Check("slaves", "warn", "1 slave: nobody can judge its work", "set `slaves: 2` or more"))
    else:
        out.append(Check("slaves", "ok", str(cfg.slaves)))
    paths = Paths(repo, cfg.worktrees)
    try:
        trees = git.worktrees(repo)
    except ClankerError as e:
        trees = []
        out.append(Check("worktrees", "fail", str(e)))
    for w in trees:
        if w.prunable:
            out.append(Check("worktree", "warn", f"{w.path} is gone but registered", "run `git worktree prune`"))
        elif w.locked:
            out.append(Check("worktree", "warn", f"{w.path} is locked", f"`git worktree unlock {w.path}` if unused"))
        elif w.path.is_relative_to(paths.worktrees) and w.path.exists() and git.porcelain(w.path):
            out.append(
                Check(
                    "worktree",
                    "warn",
                    f"{w.path} has uncommitted changes ({w.branch or 'detached'})",
                    "the slave saves them when it next starts a job; inspect with `git -C … status`",
                )
            )
    mine = [w for w in trees if w.path.is_relative_to(paths.worktrees)]
    out.append(Check("worktrees", "ok", f"{len(mine)} slave worktree(s) under {paths.worktrees}"))
    bad = eventlog.unreadable(paths.events)
    if bad:
        where = ", ".join(str(n) for n, _ in bad[:5]) + (" …" if len(bad) > 5 else "")
        out.append(
            Check(
                "events.log",
                "warn",
                f"{len(bad)} line(s) skipped as unreadable (line {where}: {bad[0][1]})",
                "nothing to do: readers skip them; a torn write or a hand edit left them",
            )
        )
    free = shutil.disk_usage(repo).free
    gib = free / 2**30
    if free < 100 * 2**20:
        out.append(Check("disk", "fail", f"{gib:.2f} GiB free", "free some disk space"))
    elif free < 2**30:
        out.append(Check("disk", "warn", f"{gib:.2f} GiB free", "free some disk space"))
    else:
        out.append(Check("disk", "ok", f"{gib:.0f} GiB free"))
    return out


def _fleet_checks(cfg: Config) -> list[Check]:
    out = []
    paths = Paths(cfg.repo, cfg.worktrees)
    panes = {}
    if tmux.available():
        try:
            panes = view(tmux.Tmux(cfg.tmux_socket), cfg.repo).panes
        except ClankerError:
            panes = {}
    beats = heartbeat.read_all(paths)
    now = time.time()
    ctl = beats.get("ctl")
    controller_alive = ctl is not None and not ctl.stopped and heartbeat.pid_alive(ctl.pid)
    for n in range(1, cfg.slaves + 1):
        sid = f"c{n}"
        p = panes.get(sid)
        beat = beats.get(sid)
        if p is None:
            out.append(
                Check(
                    f"pane {sid}",
                    "warn",
                    "not attached",
                    "run `clanker` (or `clanker slave " + str(n) + "` in a pane)",
                )
            )
        elif p.dead:
            if not p.created:
                fix = f"a pane clanker did not create: type `clanker slave {n}` in it again"
            elif controller_alive:
                fix = "the running controller starts it again on its next tick"
            else:
                fix = "no controller is running: `clanker` (or `clanker run --until-done`) starts it again"
            out.append(Check(f"pane {sid}", "warn", f"{p.id} is dead", fix))
        else:
            out.append(Check(f"pane {sid}", "ok", f"{p.id} in session {p.session}"))
        if beat and not beat.stopped and heartbeat.is_dead(beat, cfg.heartbeat_secs, now):
            out.append(
                Check(
                    f"heartbeat {sid}",
                    "warn",
                    f"stale ({beat.age(now):.0f}s, pid {beat.pid} gone)",
                    "its claims are released automatically; restart it with `clanker`",
                )
            )
        elif beat and heartbeat.is_hung(beat, cfg.hung_secs, now):
            still = max(beat.age(now), now - beat.loop)
            fix = (
                "the controller kills it and its agent; its work goes back"
                if controller_alive
                else "`clanker` kills it"
            )
            out.append(Check(f"heartbeat {sid}", "warn", f"pid {beat.pid} alive but not moving for {still:.0f}s", fix))
    for lock in sorted(paths.locks.glob("*.lock")) if paths.locks.is_dir() else []:
        if is_held(str(lock)):
            out.append(Check("lock", "ok", f"{lock.name} held (freed by the kernel if its holder dies)"))
    return out


def doctor(repo: Path, config_path: Path | None, as_json: bool, gate: bool, echo: Echo) -> Done:
    """`clanker doctor [--json] [--gate]`: every check with its fix, or the gate preflight now."""
    if gate:
        prepare(load(repo, config_path))
        text, code = gate_check(repo, config_path, lambda line: echo(line.strip()))
        echo(text)
        return Done(code)
    checks = run_checks(repo, config_path)
    echo(json.dumps([ch.to_json() for ch in checks], indent=1) if as_json else render(checks))
    return Done(exit_code(checks))


def render(checks: list[Check]) -> str:
    lines = []
    for c in checks:
        fix = f"  → {c.fix}" if c.fix and c.status != "ok" else ""
        lines.append(f"{c.status:<4}  {c.name:<16} {c.detail}{fix}")
    return "\n".join(lines)


def exit_code(checks: list[Check]) -> int:
    return 1 if any(c.status == "fail" for c in checks) else 0
