"""Task sources: real files for jsonl and markdown, a real command for script, and a loopback
mock of the GitHub REST API (issues listed, comments posted, issues closed)."""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from clanker.config import SourceConfig
from clanker.fleet.sources import GitHub, Jsonl, Markdown, Script, add_events
from clanker.state import events as ev
from clanker.state.fold import fold
from clanker.state.intake import DEFAULT_BRANCHES
from clanker.state.model import State

from .helpers import clanker, events, git, make_repo, status


def test_jsonl_script_and_markdown_sources_read_real_files_and_commands(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text('{"id": "a1", "title": "First", "prompt": "do it"}\n\n{"prompt": "Second thing\\nmore"}\n')
    got = Jsonl(tasks).pull()
    assert [(s.origin, s.fields["title"]) for s in got] == [
        ("jsonl:a1", "First"),
        ("jsonl:Second thing", "Second thing"),
    ]
    printer = [sys.executable, "-c", 'print(\'{"id": 7, "title": "From a script", "paths": ["src"]}\')']
    (spec,) = Script(tuple(printer), tmp_path).pull()
    assert (spec.origin, spec.fields) == ("script:7", {"title": "From a script", "paths": ["src"]})
    todo = tmp_path / "TODO.md"
    todo.write_text("# Todo\n- [ ] Fix the login\n- [x] Done already\n* [ ] Write docs\nnot a task\n")
    md = Markdown(todo)
    assert [s.fields["title"] for s in md.pull()] == ["Fix the login", "Write docs"]
    md.landed("markdown:TODO.md:Write docs", "T2", "abc")
    assert todo.read_text() == "# Todo\n- [ ] Fix the login\n- [x] Done already\n* [x] Write docs\nnot a task\n"
    with pytest.raises(Exception, match="failed"):
        Script((sys.executable, "-c", "import sys; sys.exit(3)"), tmp_path).pull()


def test_a_task_is_added_once_by_its_origin_even_after_it_was_cancelled(tmp_path: Path) -> None:
    todo = tmp_path / "TODO.md"
    todo.write_text("- [ ] One\n- [ ] Two\n")
    specs = Markdown(todo).pull()
    first = add_events(State(), specs, DEFAULT_BRANCHES)
    assert [(e.task, e.title, e.origin) for e in first if isinstance(e, ev.TaskAdded)] == [
        ("T1", "One", "markdown:TODO.md:One"), ("T2", "Two", "markdown:TODO.md:Two")
    ]  # fmt: skip
    st = fold(State(), [(e, n) for n, e in enumerate(first, 1)])
    st = fold(st, [(ev.TaskCancelled(actor="cli", task="T1", reason="not wanted"), 9)])
    assert add_events(st, specs, DEFAULT_BRANCHES) == []  # neither again, not even the cancelled one
    todo.write_text("- [ ] One\n- [ ] Two\n- [ ] Three\n")
    (third,) = add_events(st, Markdown(todo).pull(), DEFAULT_BRANCHES)
    assert isinstance(third, ev.TaskAdded) and (third.task, third.title, third.tags) == ("T3", "Three", ("sourced",))


class GitHubMock:
    """The few REST endpoints clanker uses, on 127.0.0.1, recording what it was asked."""

    def __init__(self, issues: list[dict[str, Any]], token: str) -> None:
        self.issues = issues
        self.comments: list[tuple[int, str]] = []
        self.closed: list[int] = []
        self.auth: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_a: Any) -> None:
                pass

            def _reply(self, code: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> Any:
                return json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"null")

            def do_GET(self) -> None:  # noqa: N802 - http.server API
                outer.auth.append(self.headers.get("Authorization", ""))
                if self.headers.get("Authorization") != f"Bearer {token}":
                    return self._reply(401, {"message": "Bad credentials"})
                if self.path.startswith("/repos/me/proj/issues?labels=clanker&state=open"):
                    return self._reply(200, [i for i in outer.issues if i["number"] not in outer.closed])
                self._reply(404, {})

            def do_POST(self) -> None:  # noqa: N802
                n = int(self.path.split("/")[-2])
                outer.comments.append((n, self._body()["body"]))
                self._reply(201, {"id": len(outer.comments)})

            def do_PATCH(self) -> None:  # noqa: N802
                n = int(self.path.rsplit("/", 1)[1])
                if self._body() == {"state": "closed"}:
                    outer.closed.append(n)
                self._reply(200, {"number": n, "state": "closed"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()


ISSUES = [
    {"number": 12, "title": "Write hello", "body": "fake: write hello.txt hi"},
    {"number": 13, "title": "A pull request", "body": "", "pull_request": {}},
    {"number": 14, "title": "Hopeless", "body": "fake: exit 3 the model refused"},
]


@pytest.mark.e2e
def test_github_issues_become_tasks_and_hear_back_when_they_land_or_are_blocked(
    tmp_path: Path, socket_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_GH_TOKEN", "ghp_mocktoken000")
    gh = GitHubMock(ISSUES, "ghp_mocktoken000")
    try:
        cfg = {"slaves": 2, "heartbeat_secs": 0.5, "max_attempts": 1, "agent": {"kind": "fake"},
               "gate": ["true"], "planner": {"agent": "none"},
               "source": {"type": "github", "repo": "me/proj", "token_env": "MY_GH_TOKEN", "base_url": gh.url,
                          "close_on_land": True, "poll_secs": 1}}  # fmt: skip
        repo = make_repo(tmp_path / "r", yaml.safe_dump(cfg, sort_keys=False))
        proc = clanker(repo, "run", "--until-done", "--timeout", "60", timeout=90)
        again = GitHub(SourceConfig(**cfg["source"])).pull()  # type: ignore[arg-type]
    finally:
        gh.close()
    assert proc.returncode == 1, proc.stdout + proc.stderr  # one landed, one blocked
    tasks = {t["title"]: t for t in status(repo)["tasks"]}
    assert set(tasks) == {"Write hello", "Hopeless"}  # the pull request is not a task
    assert tasks["Write hello"]["state"] == "done" and tasks["Hopeless"]["state"] == "blocked"
    assert git(repo, "show", "main:hello.txt") == "hi"
    sha = next(e["sha"] for e in events(repo) if e["type"] == "task.mainlined")
    assert (12, f"Landed on main as {sha} by clanker (task {tasks['Write hello']['id']}).") in gh.comments
    assert gh.closed == [12]
    (blocked,) = [body for n, body in gh.comments if n == 14]
    assert blocked.startswith(f"clanker could not finish task {tasks['Hopeless']['id']}: ")
    assert all(a == "Bearer ghp_mocktoken000" for a in gh.auth)
    assert [s.origin for s in again] == ["github:me/proj#14"]  # the closed one is gone from the list
    log = (repo / ".clanker" / "events.log").read_text()
    assert "ghp_mocktoken000" not in log


@pytest.mark.e2e
def test_a_markdown_checklist_is_worked_through_and_ticked_and_not_added_twice(
    tmp_path: Path, socket_name: str
) -> None:
    cfg = "slaves: 2\nheartbeat_secs: 0.5\nagent:\n  kind: fake\ngate:\n  - 'true'\nplanner:\n  agent: none\n" \
          "source:\n  type: markdown\n  path: TODO.md\n"  # fmt: skip
    todo = "# Todo\n- [ ] fake: write a.txt 1\n- [x] already done\n- [ ] fake: write b.txt 2\n"
    repo = make_repo(tmp_path / "r", cfg, {"TODO.md": todo})
    proc = clanker(repo, "run", "--until-done", "--timeout", "60", timeout=90)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (repo / "TODO.md").read_text() == todo.replace("[ ] fake", "[x] fake")
    assert git(repo, "show", "main:a.txt") == "1" and git(repo, "show", "main:b.txt") == "2"
    (repo / "TODO.md").write_text(todo)  # unticked by hand: the same items are not tasks again
    clanker(repo, "run", "--until-done", "--timeout", "30", timeout=60)
    assert len(status(repo)["tasks"]) == 2
