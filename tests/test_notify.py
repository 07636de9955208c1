"""Notifications: which events make one, what it says, and delivery to a real command and a
loopback HTTP receiver — one that fails and recovers."""

from __future__ import annotations

import json
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from clanker.errors import ConfigError
from clanker.fleet.notify import note_for, resumed
from clanker.state import events as ev
from clanker.state.fold import fold
from clanker.state.model import State

from .helpers import clanker, events, make_repo


@pytest.mark.parametrize(
    ("event", "kind", "text"),
    [
        (ev.TaskBlocked(task="T3", reason="2 attempts failed"), "task.blocked", "T3 is blocked: 2 attempts failed"),
        (ev.MainRed(sha="abcdef1234", where="health"), "main.red", "main is red at abcdef12 (health)"),
        (ev.MainGreen(sha="1234567890"), "main.green", "main is green again at 12345678"),
        (ev.BudgetWarned(budget="daily_usd", used=8.0, limit=10.0), "budget.warned", "budget daily_usd is 80% spent"),
        (ev.BudgetExceeded(budget="daily_usd", used=10.5, limit=10.0), "budget.exceeded", "budget daily_usd spent"),
        (ev.CredentialExhausted(credential="team", until=9e9), "usage.paused", "credential team hit its usage limit"),
        (ev.Risk(kind="stall", task="T1", message="printed nothing for 600s"), "agent.waiting", "stall: printed"),
        (ev.Risk(kind="auth", message="run claude /login"), "agent.waiting", "auth: run claude /login"),
        (ev.Risk(kind="conflict", message="x"), None, ""),
        (ev.TaskClaimed(task="T1", slave="c1"), None, ""),
    ],
)
def test_which_events_make_a_notification_and_what_it_says(event: ev.Event, kind: str | None, text: str) -> None:
    note = note_for(event)
    if kind is None:
        assert note is None
        return
    assert note is not None and note.kind == kind and note.text.startswith(text)
    body = note.payload(Path("/home/me/proj"))
    assert body["text"].startswith("clanker (proj): ") and body["event"]["type"] == event.type
    assert json.loads(json.dumps(body)) == body


def test_a_usage_limit_that_reset_is_said_once() -> None:
    st = fold(State(), [(ev.CredentialExhausted(actor="c1", credential="team", until=100.0), 1)])
    said: set[tuple[str, float]] = set()
    assert resumed(st, said, 50.0) == []
    (back,) = resumed(st, said, 150.0)
    assert back.kind == "usage.resumed" and "team is usable again" in back.text
    assert resumed(st, said, 200.0) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("notify: {url: x}\n", "must be a list"),
        ("notify:\n  - {}\n", "give `command` (a list) or `url`"),
        ("notify:\n  - {url: 'ftp://x'}\n", "url must start with http:// or https://"),
        ("notify:\n  - {url: 'https://x', events: [task.landed]}\n", "task.landed: not a kind"),
        ("notify:\n  - {url: 'https://x', command: [a]}\n", "give `command` (a list) or `url`"),
    ],
)
def test_bad_notify_settings_are_one_line_errors(tmp_path: Path, text: str, message: str) -> None:
    from clanker.config import load

    (tmp_path / "clanker.yaml").write_text(text)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load(tmp_path, tmp_path / "clanker.yaml")


class Receiver:
    """A loopback webhook receiver that answers 500 to its first `fail` requests."""

    def __init__(self, fail: int) -> None:
        self.got: list[dict[str, Any]] = []
        self.refused = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_a: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server API
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if outer.refused < fail:
                    outer.refused += 1
                    self.send_response(500)
                else:
                    outer.got.append(body)
                    self.send_response(200)
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()


@pytest.mark.e2e
def test_a_blocked_task_and_the_end_of_the_run_reach_a_command_and_a_webhook_that_recovers(
    tmp_path: Path, socket_name: str
) -> None:
    hook = Receiver(fail=2)
    inbox = tmp_path / "inbox.jsonl"
    writer = [sys.executable, "-c", f"import sys; open({str(inbox)!r}, 'a').write(sys.stdin.read() + '\\n')"]
    try:
        cfg = {"slaves": 2, "heartbeat_secs": 0.5, "max_attempts": 1, "agent": {"kind": "fake"},
               "planner": {"agent": "none"}, "retry": {"base_secs": 0.05, "cap_secs": 0.2},
               "notify": [{"url": hook.url, "events": ["task.blocked", "run.finished"]},
                          {"command": writer}]}  # fmt: skip
        repo = make_repo(tmp_path / "r", yaml.safe_dump(cfg, sort_keys=False))
        clanker(repo, "task", "add", "Doomed", "--prompt", "fake: exit 3 the model refused", check=True)
        clanker(repo, "task", "add", "Fine", "--prompt", "fake: write ok.txt fine", check=True)
        proc = clanker(repo, "run", "--until-done", "--timeout", "60", timeout=90)
    finally:
        hook.close()
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert [b["kind"] for b in hook.got] == ["task.blocked", "run.finished"]  # after two refusals
    assert hook.refused == 2 and "T1 is blocked" in hook.got[0]["text"]
    assert hook.got[1]["text"].endswith("run finished: 1/2 tasks done — some tasks are blocked")
    kinds = [json.loads(line)["kind"] for line in inbox.read_text().splitlines() if line.strip()]
    assert "task.blocked" in kinds and kinds[-1] == "run.finished"  # the command takes every kind
    risks = [e for e in events(repo) if e["type"] == "risk" and e["kind"] == "notify"]
    assert len(risks) == 1 and hook.url in risks[0]["message"] and "HTTP 500" in risks[0]["message"]  # once a streak
