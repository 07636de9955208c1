"""Real OpenSSH servers on 127.0.0.1 for the executor tests: each "host" is an `sshd` of its own
(its port, host key and workdir), all accepting one key made for the test, and one client config
(`ssh -F`) naming them, so clanker reaches them as a user reaches theirs: by an alias."""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Host:
    alias: str
    port: int
    workdir: Path
    config: Path  # its sshd_config
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.config)], stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd for {self.alias} exited with {self.proc.returncode}")
            time.sleep(0.05)
        raise RuntimeError(f"sshd for {self.alias} did not listen on {self.port}")

    def kill(self) -> None:
        """The host stops answering: its sshd and every session under it (and what they run)."""
        assert self.proc is not None
        for pid in [*_descendants(self.proc.pid), self.proc.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(5)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None


@dataclass
class Hosts:
    root: Path
    client_config: Path
    hosts: dict[str, Host] = field(default_factory=dict)

    @property
    def options(self) -> list[str]:
        return ["-F", str(self.client_config)]

    def ssh(self, alias: str, command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ssh", *self.options, "-o", "BatchMode=yes", alias, command],
                              capture_output=True, text=True, timeout=30, check=False)  # fmt: skip

    def stop(self) -> None:
        for h in self.hosts.values():
            h.stop()


def start_hosts(root: Path, names: list[str]) -> Hosts:
    if not Path(SSHD).exists():
        if os.environ.get("CLANKER_REQUIRE_AGENTS") == "1":
            pytest.fail("sshd is missing: install openssh-server (.ci/run does)")
        pytest.skip("sshd is not installed (openssh-server)")
    root.mkdir(parents=True, exist_ok=True)
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # sshd's privilege separation directory
    key = root / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    user = getpass.getuser()
    client: list[str] = []
    hosts = Hosts(root, root / "ssh_config")
    for name in names:
        d = root / name
        d.mkdir()
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "host_key")], check=True)
        shutil.copy(key.with_suffix(".pub"), d / "authorized_keys")
        port = _free_port()
        (d / "sshd_config").write_text(
            "\n".join(
                [
                    f"Port {port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {d / 'host_key'}",
                    f"PidFile {d / 'sshd.pid'}",
                    f"AuthorizedKeysFile {d / 'authorized_keys'}",
                    "StrictModes no",
                    "UsePAM no",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PubkeyAuthentication yes",
                    "PermitRootLogin prohibit-password",
                    "AllowTcpForwarding no",
                    "X11Forwarding no",
                    "PrintMotd no",
                    "MaxStartups 100",
                    "MaxSessions 100",
                    "LogLevel ERROR",
                    "",
                ]
            )
        )
        client += [
            f"Host {name}",
            "  HostName 127.0.0.1",
            f"  Port {port}",
            f"  User {user}",
            f"  IdentityFile {key}",
            "  IdentitiesOnly yes",
            f"  UserKnownHostsFile {root / 'known_hosts'}",
            "  StrictHostKeyChecking accept-new",
            "  LogLevel ERROR",
            "",
        ]
        host = Host(name, port, root / f"{name}-work", d / "sshd_config")
        host.start()
        hosts.hosts[name] = host
    hosts.client_config.write_text("\n".join(client))
    return hosts
