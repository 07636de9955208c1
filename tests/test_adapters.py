"""Agent adapters on the shapes the real CLIs print (facts: AGENTS.md): parsing streams into readable
progress and a result, classifying outcomes (exit codes lie), launch argv, prices, credentials,
secrets and prompt templates.

Recorded streams in tests/data/streams/ (real CLIs against a mock) and hand-written ones in
tests/data/adapters/ go through the same scenario test: the scenario's name says the outcome.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from clanker.agents import adapter_for, prices
from clanker.agents.aider import AiderAdapter, AiderParser, parse_tokens
from clanker.agents.base import AgentRequest, AgentResult, Outcome, Ran, StreamParser
from clanker.agents.classify import classify_text, reset_time
from clanker.agents.claude import ClaudeAdapter, ClaudeParser, classify_claude, describe_tool
from clanker.agents.codex import CodexAdapter
from clanker.agents.gemini import GeminiAdapter, usage_from_stats
from clanker.agents.runner import json_line
from clanker.config import AgentConfig, Credential, Price
from clanker.errors import UsageError
from clanker.jobs.prompts import WORKER, history_of, load_template, worker_prompt
from clanker.state import log as events
from clanker.state import secrets
from clanker.state.credentials import DEFAULT, Choice, choose, missing
from clanker.state.model import State, Task
from clanker.state.paths import Paths
from clanker.state.usage import Usage

from .helpers import event

DATA = Path(__file__).parent / "data"
OK, TRANSIENT, OUT_OF_BUDGET, AUTH, PERMANENT = (
    Outcome.OK,
    Outcome.TRANSIENT,
    Outcome.OUT_OF_BUDGET,
    Outcome.AUTH,
    Outcome.PERMANENT,
)


@pytest.fixture(autouse=True)
def no_leaked_secrets() -> Iterator[None]:
    secrets.clear()
    yield
    secrets.clear()


# --- helpers ---------------------------------------------------------------------------------------


def jl(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False)


def request(
    tmp_path: Path,
    cfg: AgentConfig,
    prompt: str = "add hello.txt",
    resume: str | None = None,
    price_table: dict[str, Price] | None = None,
) -> AgentRequest:
    return AgentRequest(
        role="worker",
        prompt=prompt,
        task_id="T1",
        slave="c1",
        worktree=tmp_path / "wt",
        attempt=1,
        prompt_file=tmp_path / "prompt.md",
        config=cfg,
        resume_session=resume,
        prices=price_table or {},
    )


def feed(parser: StreamParser, stdout: Sequence[str], stderr: Sequence[str] = ()) -> tuple[list[str], AgentResult]:
    progress: list[str] = []
    for line in stdout:
        progress += parser.feed(line)
    for line in stderr:
        progress += parser.feed_stderr(line)
    return progress, parser.result()


def local(y: int, mo: int, d: int, h: int, mi: int = 0) -> float:
    return datetime(y, mo, d, h, mi).timestamp()


# --- claude: events ----------------------------------------------------------------------------

SID = "3f0b7a52-9c4e-4d1a-8f53-0c2d4e6b7a11"


def c_init(model: str = "claude-sonnet-4-5") -> str:
    return jl(
        {
            "type": "system",
            "subtype": "init",
            "cwd": "/wt",
            "session_id": SID,
            "tools": ["Bash", "Edit", "Write"],
            "model": model,
            "claude_code_version": "2.1.197",
        }
    )


def c_assistant(*blocks: dict[str, Any], error: str | None = None) -> str:
    ev: dict[str, Any] = {"type": "assistant", "message": {"role": "assistant", "content": list(blocks)}}
    if error:
        ev["error"] = error
    return jl(ev)


def c_text(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def c_tool(name: str, **args: Any) -> dict[str, Any]:
    return {"type": "tool_use", "id": f"toolu_{name}", "name": name, "input": args}


def c_tool_result(content: str, is_error: bool = False) -> str:
    block = {"type": "tool_result", "tool_use_id": "toolu_x", "content": content, "is_error": is_error}
    return jl({"type": "user", "message": {"role": "user", "content": [block]}})


def c_rate(status: str, resets: int | None = None, kind: str = "five_hour") -> str:
    info: dict[str, Any] = {"status": status, "rateLimitType": kind}
    if resets is not None:
        info["resetsAt"] = resets
    return jl({"type": "rate_limit_event", "rate_limit_info": info})


def c_result(
    text: str | None = None,
    *,
    is_error: bool = True,
    subtype: str = "success",
    status: int | None = None,
    turns: int = 1,
    cost: float = 0.0,
    usage: tuple[int, int, int, int] = (0, 0, 0, 0),
    session: str | None = SID,
) -> str:
    ev: dict[str, Any] = {
        "type": "result",
        "subtype": subtype,
        "is_error": is_error,
        "api_error_status": status,
        "num_turns": turns,
        "total_cost_usd": cost,
        "usage": {
            "input_tokens": usage[0],
            "output_tokens": usage[1],
            "cache_read_input_tokens": usage[2],
            "cache_creation_input_tokens": usage[3],
        },
    }
    if text is not None:
        ev["result"] = text
    if session is not None:
        ev["session_id"] = session
    return jl(ev)


CLAUDE_STREAM: list[tuple[str, list[str]]] = [  # one stdout line → the progress lines it makes
    (c_init(), [f"▶ claude 2.1.197 claude-sonnet-4-5 (session {SID})"]),
    (c_assistant(c_text("I'll add the file and run the tests.")), ["· I'll add the file and run the tests."]),
    (c_assistant(c_tool("Write", file_path="/wt/hello.py", content="print('hi')\n")), ["✎ write /wt/hello.py"]),
    (c_assistant(c_tool("Bash", command="pytest -q tests/", description="run tests")), ["$ pytest -q tests/"]),
    (
        c_tool_result("Exit code 1\nFAILED tests/test_x.py::test_y", is_error=True),
        ["  ↳ tool error: Exit code 1 FAILED tests/test_x.py::test_y"],
    ),
    (c_tool_result("ok"), []),
    (c_assistant(c_tool("Edit", file_path="/wt/b.py", old_string="a", new_string="b")), ["✎ edit /wt/b.py"]),
    (
        jl({"type": "system", "subtype": "api_retry", "attempt": 1, "retry_delay_ms": 500, "error": "overloaded"}),
        ["… API retry: overloaded"],
    ),
    (c_rate("allowed", 1893456000), []),
    (c_rate("allowed_warning", 1893456000), []),
    (c_assistant({"type": "thinking", "thinking": "hmm"}, c_text("   ")), []),
    (jl({"type": "stream_event", "event": {}}), []),
    ("", []),
    ("not json: a warning from node", ["not json: a warning from node"]),
    (
        c_result("Added hello.py; tests pass.", is_error=False, turns=4, cost=0.0123, usage=(10, 200, 3000, 400)),
        ["✓ done in 4 turns, $0.0123: Added hello.py; tests pass."],
    ),
]


def test_claude_parser_turns_a_stream_into_readable_lines_and_an_exact_result() -> None:
    parser = ClaudeParser()
    for line, expected in CLAUDE_STREAM:
        assert parser.feed(line) == expected, line
    r = parser.result()
    assert r.complete and not r.is_error and r.error == ""
    assert r.session_id == SID and r.model == "claude-sonnet-4-5" and r.subtype == "success"
    assert r.usage == Usage(input=10, output=200, cache_read=3000, cache_write=400, turns=4, cost_usd=0.0123)
    assert r.usage.tokens == 3610
    assert r.files == ["/wt/hello.py", "/wt/b.py"]
    assert r.text == "Added hello.py; tests pass."
    assert not r.rejected and r.reset_at is None
    assert classify_claude(r, 0) == OK


@pytest.mark.parametrize(
    ("name", "args", "line"),
    [
        ("Write", {"file_path": "/wt/a.py", "content": "x" * 5000}, "✎ write /wt/a.py"),
        ("Edit", {"file_path": "src/b.py", "old_string": "{", "new_string": "}"}, "✎ edit src/b.py"),
        ("MultiEdit", {"file_path": "c.py", "edits": []}, "✎ multiedit c.py"),
        ("NotebookEdit", {"notebook_path": "n.ipynb", "new_source": ""}, "✎ notebookedit n.ipynb"),
        ("Bash", {"command": "git status\n  --short"}, "$ git status --short"),
        ("Read", {"file_path": "README.md"}, "· read README.md"),
        ("Glob", {"pattern": "**/*.py"}, "· glob **/*.py"),
        ("Grep", {"pattern": "TODO", "path": "src"}, "· grep src"),
        ("TodoWrite", {"todos": []}, '⚙ TodoWrite {"todos": []}'),
    ],
)
def test_claude_tool_calls_are_one_readable_line(name: str, args: dict[str, Any], line: str) -> None:
    assert describe_tool(name, args) == line


def test_claude_long_commands_are_cut_to_one_line() -> None:
    line = describe_tool("Bash", {"command": "echo " + "x" * 400})
    assert line.startswith("$ echo xxx") and line.endswith("…") and len(line) == 2 + 160
    text = ClaudeParser().feed(c_assistant(c_text("word " * 200)))
    assert len(text) == 1 and len(text[0]) == 2 + 200 and "\n" not in text[0]


def test_claude_result_keeps_the_init_session_when_it_has_none() -> None:
    _, r = feed(ClaudeParser(), [c_init(), c_result("done", is_error=False, session=None)])
    assert r.session_id == SID


def test_claude_files_only_from_writing_tools() -> None:
    lines = [
        c_assistant(c_tool("Read", file_path="/wt/r.py"), c_tool("Write", file_path="/wt/w.py", content="")),
        c_assistant(c_tool("MultiEdit", file_path="/wt/m.py", edits=[]), c_tool("Bash", command="touch z")),
    ]
    _, r = feed(ClaudeParser(), lines)
    assert r.files == ["/wt/w.py", "/wt/m.py"]


@pytest.mark.parametrize(
    ("status", "resets", "rejected", "reset_at", "progress"),
    [
        ("allowed", 1893456000, False, None, []),
        ("allowed_warning", 1893456000, False, None, []),
        ("rejected", 1893456000, True, 1893456000.0, ["! rate limit rejected (five_hour), resets 1893456000"]),
        ("rejected", None, True, None, ["! rate limit rejected (five_hour), resets None"]),
    ],
)
def test_claude_rate_limit_events(
    status: str, resets: int | None, rejected: bool, reset_at: float | None, progress: list[str]
) -> None:
    parser = ClaudeParser()
    assert parser.feed(c_rate(status, resets)) == progress
    r = parser.result()
    assert r.rejected is rejected and r.reset_at == reset_at


NOT_LOGGED_IN = "Not logged in · Please run /login"
LIMIT_EPOCH = 1893456000


# (id, stdout lines, stderr lines, exit code, outcome)
CLAUDE_CASES: list[tuple[str, list[str], list[str], int | None, Outcome]] = [
    ("success", [c_init(), c_result("Done", is_error=False)], [], 0, OK),
    ("success-exit-none", [c_init(), c_result("Done", is_error=False)], [], None, OK),
    ("success-text-but-exit-1", [c_init(), c_result("Done", is_error=False)], [], 1, PERMANENT),
    (
        "429",
        [
            c_assistant(c_text("API Error: Request rejected (429) · rate limit"), error="rate_limit"),
            c_result("API Error: Request rejected (429) · This request would exceed the rate limit", status=429),
        ],
        [],
        1,
        TRANSIENT,
    ),
    ("429-exit-0", [c_result("API Error: Request rejected (429) · slow down", status=429)], [], 0, TRANSIENT),
    ("529", [c_result("API Error: 529 Overloaded", status=529)], [], 1, TRANSIENT),
    ("529-exit-0-subtype-success", [c_result("API Error: 529 Overloaded", status=529)], [], 0, TRANSIENT),
    ("status-null-refused", [c_result("API Error: Unable to connect to API (ConnectionRefused)")], [], 1, TRANSIENT),
    ("refused-exit-0", [c_result("API Error: Unable to connect to API (ConnectionRefused)")], [], 0, TRANSIENT),
    ("rate-limit-error-no-text", [c_assistant(error="rate_limit"), c_result("")], [], 1, TRANSIENT),
    (
        "server-error",
        [c_assistant(error="server_error"), c_result("API Error: Internal server error")],
        [],
        1,
        TRANSIENT,
    ),
    (
        "not-logged-in",
        [c_init(), c_assistant(c_text(NOT_LOGGED_IN), error="authentication_failed"), c_result(NOT_LOGGED_IN)],
        [],
        1,
        AUTH,
    ),
    ("not-logged-in-text-only", [c_result(NOT_LOGGED_IN)], [], 1, AUTH),
    ("not-logged-in-exit-0", [c_result(NOT_LOGGED_IN)], [], 0, AUTH),
    (
        "401",
        [c_result('API Error: 401 {"type":"error","error":{"type":"authentication_error"}}', status=401)],
        [],
        1,
        AUTH,
    ),
    ("403", [c_result("API Error: 403 forbidden", status=403)], [], 1, AUTH),
    ("max-turns", [c_init(), c_result(subtype="error_max_turns", is_error=False, turns=30)], [], 1, OUT_OF_BUDGET),
    ("max-budget", [c_result(subtype="error_max_budget_usd")], [], 1, OUT_OF_BUDGET),
    (
        "billing-error",
        [
            c_assistant(c_text("Credit balance is too low"), error="billing_error"),
            c_result("Credit balance is too low"),
        ],
        [],
        1,
        OUT_OF_BUDGET,
    ),
    ("credit-balance-text", [c_result("Credit balance is too low")], [], 1, OUT_OF_BUDGET),
    ("usage-limit-epoch", [c_result(f"Claude AI usage limit reached|{LIMIT_EPOCH}")], [], 1, OUT_OF_BUDGET),
    ("hit-your-limit", [c_result("You've hit your limit · resets 3pm", status=429)], [], 1, OUT_OF_BUDGET),
    (
        "hit-your-5-hour-limit",
        [c_result("You've hit your 5-hour limit · resets 3pm", status=429)],
        [],
        1,
        OUT_OF_BUDGET,
    ),
    ("weekly-limit", [c_result("You've hit your weekly limit · resets 3pm")], [], 0, OUT_OF_BUDGET),
    (
        "prompt-too-long",
        [c_assistant(error="invalid_request"), c_result("Prompt is too long", status=400)],
        [],
        1,
        OUT_OF_BUDGET,
    ),
    (
        "rejected-event-then-error",
        [c_init(), c_rate("rejected", LIMIT_EPOCH), c_result("You've hit your limit · resets 3pm", status=429)],
        [],
        1,
        OUT_OF_BUDGET,
    ),
    ("rejected-event-no-result", [c_init(), c_rate("rejected", LIMIT_EPOCH)], [], 1, OUT_OF_BUDGET),
    ("no-result-exit-1", [c_init(), c_assistant(c_text("working"))], [], 1, TRANSIENT),
    ("no-result-killed", [c_init()], [], -9, TRANSIENT),
    ("no-result-exit-0", [c_init(), c_assistant(c_text("working"))], [], 0, PERMANENT),
    ("no-output-at-all-exit-1", [], ["Error: something broke"], 1, TRANSIENT),
    ("error-during-execution", [c_result(subtype="error_during_execution")], [], 1, PERMANENT),
    (
        "invalid-request",
        [c_assistant(error="invalid_request"), c_result("API Error: 400 bad tool schema", status=400)],
        [],
        1,
        PERMANENT,
    ),  # noqa: E501
]


@pytest.mark.parametrize(
    ("stdout", "stderr", "exit_code", "outcome"),
    [pytest.param(*case[1:], id=case[0]) for case in CLAUDE_CASES],
)
def test_classify_claude(stdout: list[str], stderr: list[str], exit_code: int | None, outcome: Outcome) -> None:
    adapter = ClaudeAdapter()
    _, r = feed(adapter.parser(), stdout, stderr)
    assert adapter.classify(r, exit_code) == outcome
    if outcome != OK:
        assert r.error or r.text or r.agent_error or not r.complete, "a failure says what failed"


@pytest.mark.parametrize(
    ("stdout", "exit_code", "reset_at"),
    [
        pytest.param([c_result(f"Claude AI usage limit reached|{LIMIT_EPOCH}")], 1, float(LIMIT_EPOCH), id="epoch"),
        pytest.param(
            [c_rate("rejected", LIMIT_EPOCH + 60), c_result("You've hit your limit · resets 3pm", status=429)],
            1,
            float(LIMIT_EPOCH + 60),
            id="event-wins-over-text",
        ),
        pytest.param([c_rate("rejected", LIMIT_EPOCH)], 1, float(LIMIT_EPOCH), id="event-without-result"),
        pytest.param([c_result("Credit balance is too low")], 1, None, id="credit-no-reset"),
        pytest.param([c_result(subtype="error_max_turns", is_error=False)], 1, None, id="max-turns-no-reset"),
    ],
)
def test_classify_claude_reset_at(stdout: list[str], exit_code: int, reset_at: float | None) -> None:
    _, r = feed(ClaudeParser(), stdout)
    assert classify_claude(r, exit_code) == OUT_OF_BUDGET
    assert r.reset_at == reset_at


def test_classify_claude_resets_3pm_is_the_next_15_00_local() -> None:
    _, r = feed(ClaudeParser(), [c_result("You've hit your limit · resets 3pm", status=429)])
    before = datetime.now().timestamp()
    assert classify_claude(r, 1) == OUT_OF_BUDGET
    assert r.reset_at is not None and before < r.reset_at <= datetime.now().timestamp() + 25 * 3600
    at = datetime.fromtimestamp(r.reset_at)
    assert (at.hour, at.minute, at.second) == (15, 0, 0)


def test_claude_failure_fields() -> None:
    lines = [
        c_init(),
        c_assistant(c_text(NOT_LOGGED_IN), error="authentication_failed"),
        c_result(NOT_LOGGED_IN, status=None),
    ]
    progress, r = feed(ClaudeParser(), lines)
    assert progress[-1] == f"✗ success: {NOT_LOGGED_IN}"
    assert r.is_error and r.complete and r.agent_error == "authentication_failed" and r.api_status is None
    assert r.error == NOT_LOGGED_IN
    _, r = feed(ClaudeParser(), [c_result("API Error: 529 Overloaded", status=529)])
    assert r.api_status == 529 and r.is_error and r.subtype == "success"
    _, r = feed(ClaudeParser(), [c_result(subtype="error_max_turns", is_error=False, turns=7, cost=0.5)])
    assert r.is_error and r.error == "error_max_turns" and r.usage.turns == 7 and r.usage.cost_usd == 0.5


def test_claude_stream_without_result_keeps_stderr_as_the_error() -> None:
    progress, r = feed(ClaudeParser(), [c_init()], ["", "Error: connect ECONNREFUSED 127.0.0.1:9", "  at x"])
    assert progress[1:] == ["stderr: Error: connect ECONNREFUSED 127.0.0.1:9", "stderr: at x"]
    assert not r.complete and r.error == "Error: connect ECONNREFUSED 127.0.0.1:9 at x"
    assert classify_claude(r, 1) == TRANSIENT


def test_claude_auth_fix_names_the_login_command() -> None:
    fix = ClaudeAdapter().auth_fix()
    assert "claude /login" in fix and "ANTHROPIC_API_KEY" in fix and "\n" not in fix


# --- claude: launch ----------------------------------------------------------------------------


@pytest.mark.parametrize("euid", [0, 1000])
def test_claude_launch_full_argv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, euid: int) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: euid)
    cfg = AgentConfig(
        kind="claude",
        model="claude-opus-4-1",
        max_turns=30,
        append_system_prompt="Be brief.",
        args=("--allowedTools", "Bash"),
    )
    launch = ClaudeAdapter().launch(request(tmp_path, cfg, prompt="do it", resume="sess-1"))
    assert launch.argv == [
        "claude",
        "-p",
        "do it",
        "--output-format",
        "stream-json",
        "--verbose",
        "--max-turns",
        "30",
        "--model",
        "claude-opus-4-1",
        "--dangerously-skip-permissions",
        "--append-system-prompt",
        "Be brief.",
        "--resume",
        "sess-1",
        "--allowedTools",
        "Bash",
    ]
    assert launch.cwd == tmp_path / "wt" and launch.stdin is None
    assert launch.env == ({"IS_SANDBOX": "1"} if euid == 0 else {})


@pytest.mark.parametrize("mode", ["acceptEdits", "default", "plan"])
def test_claude_launch_permission_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    cfg = AgentConfig(kind="claude", permission_mode=mode, binary="/opt/claude/bin/claude")
    launch = ClaudeAdapter().launch(request(tmp_path, cfg))
    assert launch.argv == [
        "/opt/claude/bin/claude",
        "-p",
        "add hello.txt",
        "--output-format",
        "stream-json",
        "--verbose",
        "--permission-mode",
        mode,
    ]
    assert launch.env == {}, "IS_SANDBOX only goes with --dangerously-skip-permissions"


# --- codex ---------------------------------------------------------------------------------------

THREAD = "0199a213-81c0-7800-8aa1-bbab2a035a53"


def x_item(kind: str, item_type: str, **fields: Any) -> str:
    return jl({"type": f"item.{kind}", "item": {"id": f"item_{item_type}", "type": item_type, **fields}})


def x_failed(msg: str) -> list[str]:
    """How codex ends a failed turn: a top-level `error`, then `turn.failed` with the same message."""
    return [
        jl({"type": "thread.started", "thread_id": THREAD}),
        jl({"type": "turn.started"}),
        jl({"type": "error", "message": msg}),
        jl({"type": "turn.failed", "error": {"message": msg}}),
    ]


def x_usage(inp: int, cached: int, out: int) -> str:
    usage = {"input_tokens": inp, "cached_input_tokens": cached, "output_tokens": out}
    return jl({"type": "turn.completed", "usage": usage})


CODEX_STREAM: list[tuple[str, list[str]]] = [
    (jl({"type": "thread.started", "thread_id": THREAD}), [f"▶ codex thread {THREAD}"]),
    (jl({"type": "turn.started"}), []),
    (x_item("started", "reasoning", text="**Planning**"), []),
    (x_item("completed", "reasoning", text="**Planning**"), []),
    (x_item("started", "command_execution", command="bash -lc 'ls src'", exit_code=None), ["$ bash -lc 'ls src'"]),
    (x_item("completed", "command_execution", command="bash -lc 'ls src'", exit_code=0), ["  ↳ exit 0"]),
    (
        x_item(
            "completed",
            "file_change",
            changes=[{"path": "hello.py", "kind": "add"}, {"path": "src/b.py", "kind": "update"}],
        ),  # noqa: E501
        ["✎ add hello.py", "✎ update src/b.py"],
    ),
    (x_item("completed", "mcp_tool_call", server="docs", tool="search", status="completed"), ["⚙ docs.search"]),
    (x_item("completed", "web_search", query="python pathlib glob"), ["· search python pathlib glob"]),
    (x_item("started", "todo_list", items=[{"text": "write", "completed": False}]), []),
    (x_item("completed", "todo_list", items=[{"text": "write", "completed": True}]), []),
    (x_item("completed", "error", message="model metadata for `x` not found"), ["! model metadata for `x` not found"]),
    (jl({"type": "error", "message": "Reconnecting... 1/5"}), ["! Reconnecting... 1/5"]),
    (
        x_item("completed", "agent_message", text="Created hello.py and updated b.py."),
        ["· Created hello.py and updated b.py."],
    ),  # noqa: E501
    (x_usage(24763, 24448, 122), []),
    ("", []),
]


def test_codex_parser_stream(tmp_path: Path) -> None:
    adapter = CodexAdapter()
    adapter.launch(request(tmp_path, AgentConfig(kind="codex")))
    parser = adapter.parser()
    for line, expected in CODEX_STREAM:
        assert parser.feed(line) == expected, line
    r = parser.result()
    assert r.session_id == THREAD and r.model == "gpt-5"
    assert r.files == ["hello.py", "src/b.py"]
    assert r.text == "Created hello.py and updated b.py."
    assert (r.usage.input, r.usage.cache_read, r.usage.output, r.usage.cache_write) == (315, 24448, 122, 0)
    assert r.usage.turns == 1
    expected_cost = (315 * 1.25 + 24448 * 0.125 + 122 * 10.0) / 1e6  # gpt-5 in the default table
    assert r.usage.cost_usd == pytest.approx(expected_cost, abs=1e-6) and r.usage.cost_usd > 0
    assert r.complete and not r.is_error
    assert adapter.classify(r, 0) == OK, "the non-terminal `error` lines do not fail a completed turn"


def test_codex_usage_adds_up_over_turns(tmp_path: Path) -> None:
    adapter = CodexAdapter()
    adapter.launch(request(tmp_path, AgentConfig(kind="codex", model="gpt-5-mini")))
    _, r = feed(adapter.parser(), [x_usage(1000, 400, 50), x_usage(2000, 0, 70)])
    assert (r.usage.input, r.usage.cache_read, r.usage.output, r.usage.turns) == (2600, 400, 120, 2)
    assert r.usage.cost_usd == pytest.approx((2600 * 0.25 + 400 * 0.025 + 120 * 2.0) / 1e6, abs=1e-6)


@pytest.mark.parametrize(
    ("model", "table", "per_mtok"),
    [
        pytest.param(None, {}, (1.25, 10.0, 0.125), id="default-model-gpt-5"),
        pytest.param("gpt-5.5-codex", {}, (1.25, 10.0, 0.125), id="prefix-gpt-5"),
        pytest.param("gpt-5", {"gpt-5": Price(2.0, 20.0, 0.5)}, (2.0, 20.0, 0.5), id="override-replaces"),
        pytest.param("gpt-5.5-codex", {"gpt-5.5": Price(5.0, 40.0, 0.5)}, (5.0, 40.0, 0.5), id="override-longer"),
        pytest.param("my-local-model", {}, (0.0, 0.0, 0.0), id="unknown-is-free"),
    ],
)
def test_codex_cost_from_price_table(
    tmp_path: Path, model: str | None, table: dict[str, Price], per_mtok: tuple[float, float, float]
) -> None:
    adapter = CodexAdapter()
    adapter.launch(request(tmp_path, AgentConfig(kind="codex", model=model), price_table=table))
    _, r = feed(adapter.parser(), [x_usage(1_000_000, 200_000, 100_000)])
    p_in, p_out, p_cached = per_mtok
    assert r.usage.cost_usd == pytest.approx(0.8 * p_in + 0.1 * p_out + 0.2 * p_cached, abs=1e-6)


CODEX_USAGE_LIMIT = (
    "You've hit your usage limit. Upgrade to Pro (https://chatgpt.com/explore/pro), visit "
    "https://chatgpt.com/codex/settings/usage to purchase more credits or try again at {}."
)


@pytest.mark.parametrize(
    ("stdout", "stderr", "exit_code", "outcome"),
    [
        pytest.param(x_failed("exceeded retry limit, last status: 429 Too Many Requests"), [], 1, TRANSIENT, id="429"),
        pytest.param(
            x_failed("stream disconnected before completion: response.failed event received"),
            [],
            1,
            TRANSIENT,
            id="disconnected",
        ),
        pytest.param(
            x_failed("We're currently experiencing high demand, which may cause temporary errors."),
            [],
            1,
            TRANSIENT,
            id="500-high-demand",
        ),
        pytest.param(x_failed(CODEX_USAGE_LIMIT.format("3:05 PM")), [], 1, OUT_OF_BUDGET, id="usage-limit"),
        pytest.param(
            x_failed("Quota exceeded. Check your plan and billing details."), [], 1, OUT_OF_BUDGET, id="quota"
        ),
        pytest.param(
            x_failed("unexpected status 401 Unauthorized: Missing bearer or basic authentication in header"),
            [],
            1,
            AUTH,
            id="401",
        ),
        pytest.param(
            x_failed(
                'unexpected status 400 Bad Request: {"error":{"message":"Unsupported parameter: '
                'reasoning.effort","type":"invalid_request_error","param":null}}'
            ),
            [],
            1,
            PERMANENT,
            id="invalid-request",
        ),
        pytest.param(x_failed("exceeded retry limit, last status: 429"), [], 0, TRANSIENT, id="failed-exit-0"),
        pytest.param(
            [
                jl({"type": "thread.started", "thread_id": THREAD}),
                jl({"type": "error", "message": "Reconnecting... 1/5 (stream disconnected before completion)"}),
                jl({"type": "error", "message": "Reconnecting... 2/5 (stream disconnected before completion)"}),
                x_item("completed", "agent_message", text="done"),
                x_usage(100, 0, 10),
            ],
            [],
            0,
            OK,
            id="error-then-completed-is-ok",
        ),
        pytest.param(
            [jl({"type": "thread.started", "thread_id": THREAD})],
            ["Error: stream disconnected before completion: connection reset"],
            1,
            TRANSIENT,
            id="no-turn-end-stderr",
        ),
    ],
)
def test_classify_codex(tmp_path: Path, stdout: list[str], stderr: list[str], exit_code: int, outcome: Outcome) -> None:
    adapter = CodexAdapter()
    adapter.launch(request(tmp_path, AgentConfig(kind="codex")))
    progress, r = feed(adapter.parser(), stdout, stderr)
    assert adapter.classify(r, exit_code) == outcome
    if outcome != OK:
        assert r.error, "a failure carries its message"
        assert any(line.startswith(("✗", "!")) for line in progress) or stderr


def test_codex_failed_turn_fields(tmp_path: Path) -> None:
    adapter = CodexAdapter()
    adapter.launch(request(tmp_path, AgentConfig(kind="codex")))
    progress, r = feed(adapter.parser(), x_failed("exceeded retry limit, last status: 429 Too Many Requests"))
    assert progress[-1] == "✗ exceeded retry limit, last status: 429 Too Many Requests"
    assert r.is_error and r.complete and r.session_id == THREAD
    assert r.error == "exceeded retry limit, last status: 429 Too Many Requests"


def test_codex_usage_limit_sets_the_reset_time(tmp_path: Path) -> None:
    adapter = CodexAdapter()
    adapter.launch(request(tmp_path, AgentConfig(kind="codex")))
    _, r = feed(adapter.parser(), x_failed(CODEX_USAGE_LIMIT.format("3:05 PM")))
    before = datetime.now().timestamp()
    assert adapter.classify(r, 1) == OUT_OF_BUDGET
    assert r.reset_at is not None and before < r.reset_at <= datetime.now().timestamp() + 25 * 3600
    at = datetime.fromtimestamp(r.reset_at)
    assert (at.hour, at.minute) == (15, 5)


def test_codex_usage_limit_on_another_day(tmp_path: Path) -> None:
    adapter = CodexAdapter()
    adapter.launch(request(tmp_path, AgentConfig(kind="codex")))
    _, r = feed(adapter.parser(), x_failed(CODEX_USAGE_LIMIT.format("Mar 10th, 2031 3:39 AM")))
    assert adapter.classify(r, 1) == OUT_OF_BUDGET
    assert r.reset_at == local(2031, 3, 10, 3, 39)


@pytest.mark.parametrize(
    ("model", "args", "resume", "tail"),
    [
        (None, (), None, []),
        ("gpt-5.5", (), None, ["-m", "gpt-5.5"]),
        (
            "gpt-5.5",
            ("-c", "model_reasoning_effort=low"),
            "thread-9",
            ["-m", "gpt-5.5", "-c", "model_reasoning_effort=low", "resume", "thread-9"],
        ),  # noqa: E501
        (None, (), THREAD, ["resume", THREAD]),
    ],
)
def test_codex_launch(
    tmp_path: Path, model: str | None, args: tuple[str, ...], resume: str | None, tail: list[str]
) -> None:
    cfg = AgentConfig(kind="codex", model=model, args=args)
    launch = CodexAdapter().launch(request(tmp_path, cfg, prompt="fix the bug", resume=resume))
    argv = launch.argv
    wt = str(tmp_path / "wt")
    assert argv[:3] == ["codex", "exec", "--json"]
    assert argv[argv.index("-C") + 1] == wt
    assert argv[argv.index("--sandbox") + 1] == "workspace-write"
    assert "--skip-git-repo-check" in argv
    assert argv[-1] == "fix the bug", "the prompt is last"
    head = ["codex", "exec", "--json", "-C", wt, "--skip-git-repo-check", "--sandbox", "workspace-write"]
    assert sorted(argv[: len(head)]) == sorted(head)
    assert argv[len(head) : -1] == tail
    assert launch.stdin is None, "an open stdin would be appended to the prompt"
    assert launch.cwd == tmp_path / "wt" and launch.env == {}
    assert "--full-auto" not in argv


def test_codex_binary_override_and_auth_fix(tmp_path: Path) -> None:
    adapter = CodexAdapter()
    launch = adapter.launch(request(tmp_path, AgentConfig(kind="codex", binary="/usr/local/bin/codex-0.169")))
    assert launch.argv[0] == "/usr/local/bin/codex-0.169"
    assert "codex login" in adapter.auth_fix()


# --- gemini --------------------------------------------------------------------------------------

GSID = "c0ffee00-1234-4abc-9def-00000000beef"


def g_init(model: str = "gemini-2.5-flash") -> str:
    return jl({"type": "init", "timestamp": "2026-11-21T10:00:00Z", "session_id": GSID, "model": model})


def g_result_error(message: str) -> str:
    err = {"type": "Error", "message": message}
    return jl({"type": "result", "status": "error", "error": err, "stats": {"input_tokens": 0, "output_tokens": 0}})


def g_stderr(message: str, code: int) -> str:
    return jl({"error": {"type": "Error", "message": message, "code": code}})


GEMINI_STREAM: list[tuple[str, list[str]]] = [
    (g_init(), [f"▶ gemini gemini-2.5-flash (session {GSID})"]),
    (jl({"type": "message", "role": "user", "content": "write hello.py"}), []),
    (jl({"type": "message", "role": "assistant", "content": "Writing ", "delta": True}), []),
    (
        jl(
            {
                "type": "tool_use",
                "tool_name": "write_file",
                "tool_id": "w1",
                "parameters": {"file_path": "hello.py", "content": "x"},
            }
        ),  # noqa: E501
        ["✎ write_file hello.py"],
    ),
    (jl({"type": "tool_result", "tool_id": "w1", "status": "success", "output": ""}), []),
    (
        jl(
            {
                "type": "tool_use",
                "tool_name": "run_shell_command",
                "tool_id": "s1",
                "parameters": {"command": "pytest -q"},
            }
        ),  # noqa: E501
        ["$ pytest -q"],
    ),
    (
        jl({"type": "tool_result", "tool_id": "s1", "status": "error", "output": "exit 1: 2 failed"}),
        ["  ↳ tool error: exit 1: 2 failed"],
    ),
    (
        jl({"type": "tool_use", "tool_name": "read_file", "tool_id": "r1", "parameters": {"absolute_path": "/wt/a"}}),
        ['⚙ read_file {"absolute_path": "/wt/a"}'],
    ),
    (jl({"type": "message", "role": "assistant", "content": "done.", "delta": True}), []),
    (
        jl(
            {
                "type": "result",
                "status": "success",
                "stats": {
                    "total_tokens": 1600,
                    "input_tokens": 1200,
                    "output_tokens": 400,
                    "cached": 200,
                    "input": 1000,
                },
            }
        ),
        ["✓ Writing done."],
    ),
]


def test_gemini_stream_json() -> None:
    adapter = GeminiAdapter()
    parser = adapter.parser()
    for line, expected in GEMINI_STREAM:
        assert parser.feed(line) == expected, line
    r = parser.result()
    assert r.session_id == GSID and r.model == "gemini-2.5-flash" and r.text == "Writing done."
    assert r.files == ["hello.py"]
    assert (r.usage.input, r.usage.output, r.usage.cache_read, r.usage.turns) == (1000, 400, 200, 3)
    assert r.usage.cost_usd == pytest.approx((1000 * 0.3 + 400 * 2.5 + 200 * 0.075) / 1e6, abs=1e-6)
    assert r.complete and not r.is_error
    assert adapter.classify(r, 0) == OK


def test_gemini_stream_json_error_result() -> None:
    lines = [
        g_init(),
        jl({"type": "error", "severity": "error", "message": "Retrying after 429"}),
        g_result_error("[API Error: 429 Too Many Requests]"),
    ]
    progress, r = feed(GeminiAdapter().parser(), lines)
    assert progress[1:] == ["! Retrying after 429", "✗ [API Error: 429 Too Many Requests]"]
    assert r.is_error and r.complete and r.error == "[API Error: 429 Too Many Requests]"


@pytest.mark.parametrize(
    ("obj", "text", "usage", "is_error"),
    [
        pytest.param(
            {
                "response": "Done.",
                "stats": {
                    "models": {
                        "gemini-2.5-flash": {
                            "tokens": {"prompt": 1500, "candidates": 300, "total": 1800, "cached": 500}
                        }
                    }
                },  # noqa: E501
            },
            "Done.",
            (1000, 300, 500),
            False,
            id="one-model",
        ),
        pytest.param(
            {
                "response": "Both.",
                "stats": {
                    "models": {
                        "gemini-2.5-pro": {"tokens": {"prompt": 100, "candidates": 10, "total": 110, "cached": 0}},
                        "gemini-2.5-flash": {"tokens": {"prompt": 50, "candidates": 5, "total": 55, "cached": 20}},
                    }
                },
            },
            "Both.",
            (130, 15, 20),
            False,
            id="two-models",
        ),
        pytest.param(
            {"response": "", "stats": {"models": {}}, "error": {"type": "ApiError", "message": "quota", "code": 429}},
            "",
            (0, 0, 0),
            True,
            id="with-error",
        ),
    ],
)
def test_gemini_json_output(obj: dict[str, Any], text: str, usage: tuple[int, int, int], is_error: bool) -> None:
    adapter = GeminiAdapter()
    parser = adapter.parser()
    parser.feed(jl(obj))
    r = parser.result()
    assert r.complete and r.text == text and r.is_error is is_error
    assert (r.usage.input, r.usage.output, r.usage.cache_read) == usage
    if is_error:
        assert r.error == "quota"


def test_gemini_stats_shapes() -> None:
    flat = {"input_tokens": 900, "output_tokens": 90, "cached": 300}
    assert usage_from_stats(flat) == Usage(input=600, output=90, cache_read=300)
    per_model = {"models": {"m": {"tokens": {"input": 10, "output": 2}}}}
    assert usage_from_stats(per_model) == Usage(input=10, output=2)
    assert usage_from_stats({}) == Usage()


def test_gemini_stream_json_stats_with_per_model_totals() -> None:
    """gemini 0.61's stream-json `result.stats`: flat totals plus flat per-model entries (no `tokens`)."""
    per_model = {"total_tokens": 2260, "input_tokens": 2200, "output_tokens": 60, "cached": 1000, "input": 1200}
    stats = {**per_model, "duration_ms": 103, "tool_calls": 1, "models": {"gemini-2.5-flash": per_model}}
    assert usage_from_stats(stats) == Usage(input=1200, output=60, cache_read=1000)


def test_gemini_stderr_json_error() -> None:
    progress, r = feed(
        GeminiAdapter().parser(), [], [g_stderr("You have exhausted your daily quota on this model.", 429)]
    )
    assert progress[0].startswith("stderr: ")
    assert r.api_status == 429 and r.is_error and not r.complete
    assert r.error == "You have exhausted your daily quota on this model."


PER_DAY_QUOTA = (
    "[API Error: 429 RESOURCE_EXHAUSTED: quota violation on generativelanguage.googleapis.com, "
    "quotaId GenerateRequestsPerDayPerProjectPerModel-FreeTier]"
)


@pytest.mark.parametrize(
    ("stdout", "stderr", "exit_code", "outcome"),
    [
        pytest.param(
            [],
            [g_stderr("You have exhausted your daily quota on this model.", 429)],
            173,
            OUT_OF_BUDGET,
            id="daily-quota",
        ),  # noqa: E501
        pytest.param(
            [g_init(), g_result_error("You have exhausted your daily quota on this model.")],
            [],
            1,
            OUT_OF_BUDGET,
            id="daily-quota-stream",
        ),  # noqa: E501
        pytest.param([], [g_stderr(PER_DAY_QUOTA, 429)], 173, OUT_OF_BUDGET, id="perday-quota-id"),
        pytest.param(
            [], [g_stderr("Quota exceeded for quota metric 'requests per day'", 429)], 173, OUT_OF_BUDGET, id="per-day"
        ),  # noqa: E501
        pytest.param(
            [],
            [g_stderr("[API Error: Resource has been exhausted (e.g. check quota).]", 429)],
            173,
            TRANSIENT,
            id="plain-429",
        ),  # noqa: E501
        pytest.param([g_init(), g_result_error("[API Error: 429 Too Many Requests]")], [], 1, TRANSIENT, id="429-text"),
        pytest.param([], [], 173, TRANSIENT, id="exit-173-is-429"),
        pytest.param(
            [], [g_stderr("[API Error: Internal error encountered.]", 500)], 244, TRANSIENT, id="exit-244-is-500"
        ),  # noqa: E501
        pytest.param([], [g_stderr("The model is overloaded.", 503)], 247, TRANSIENT, id="503"),
        pytest.param([], [g_stderr("Something odd happened", 429)], 1, TRANSIENT, id="stderr-429-exit-1"),
        pytest.param([], [g_stderr("Something odd happened", 502)], 1, TRANSIENT, id="stderr-502-exit-1"),
        pytest.param(
            [g_init(), g_result_error("Reached the session turn cap.")], [], 53, OUT_OF_BUDGET, id="exit-53-turns"
        ),  # noqa: E501
        pytest.param([], [g_stderr("API key not valid. Please pass a valid API key.", 400)], 144, AUTH, id="bad-key"),
        pytest.param([], [g_stderr("Request had invalid credentials.", 401)], 145, AUTH, id="401"),
        pytest.param([], [g_stderr("The caller does not have permission", 403)], 147, AUTH, id="403"),
        pytest.param([], ["Unknown argument: --bogus"], 42, PERMANENT, id="exit-42-bad-input"),
        pytest.param([g_init(), g_result_error("The file does not exist")], [], 1, PERMANENT, id="plain-error"),
        pytest.param([g_init(), jl({"type": "result", "status": "success", "stats": {}})], [], 0, OK, id="ok"),
    ],
)
def test_classify_gemini(stdout: list[str], stderr: list[str], exit_code: int, outcome: Outcome) -> None:
    adapter = GeminiAdapter()
    _, r = feed(adapter.parser(), stdout, stderr)
    assert adapter.classify(r, exit_code) == outcome


@pytest.mark.parametrize(
    ("cfg", "resume", "model", "tail"),
    [
        (AgentConfig(kind="gemini"), None, "gemini-2.5-flash", []),
        (
            AgentConfig(kind="gemini", model="gemini-2.5-pro", permission_mode="default", args=("--debug",)),
            GSID,
            "gemini-2.5-pro",
            ["--resume", GSID, "--debug"],
        ),
    ],
)
def test_gemini_launch(tmp_path: Path, cfg: AgentConfig, resume: str | None, model: str, tail: list[str]) -> None:
    adapter = GeminiAdapter()
    launch = adapter.launch(request(tmp_path, cfg, prompt="go", resume=resume))
    argv = launch.argv
    assert argv[:7] == ["gemini", "-p", "go", "--output-format", "stream-json", "-m", model]
    assert ("--yolo" in argv) is (cfg.permission_mode == "bypassPermissions"), "write tools need --yolo"
    assert argv[len(argv) - len(tail) :] == tail
    assert launch.stdin is None and launch.cwd == tmp_path / "wt"
    assert adapter.parser().r.model == model, "prices follow the launched model"


# --- aider ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "usage", "session"),
    [
        (
            "Tokens: 12k sent, 1.1k cache write, 8.5k cache hit, 2.1k received. Cost: $0.03 message, $0.12 session.",
            Usage(input=12000, output=2100, cache_read=8500, cache_write=1100, turns=1),
            0.12,
        ),
        ("Tokens: 2.5k sent, 197 received.", Usage(input=2500, output=197, turns=1), None),
        ("Tokens: 950 sent, 12 received", Usage(input=950, output=12, turns=1), None),
        (
            "Tokens: 1.2M sent, 4.1M received. Cost: $12.50 message, $31.25 session.",
            Usage(input=1_200_000, output=4_100_000, turns=1),
            31.25,
        ),
        ("Tokens: 8.2k sent, 64.1k received.", Usage(input=8200, output=64100, turns=1), None),
        (
            "  Tokens: 3k sent, 2k cache hit, 100 received. Cost: $0.0012 message, $0.0034 session.  ",
            Usage(input=3000, output=100, cache_read=2000, turns=1),
            0.0034,
        ),
    ],
)
def test_aider_parse_tokens(line: str, usage: Usage, session: float | None) -> None:
    assert parse_tokens(line) == (usage, session)


@pytest.mark.parametrize("line", ["Applied edit to x.py", "Tokens are counted per call", "", "tokens: 5 sent"])
def test_aider_parse_tokens_ignores_other_lines(line: str) -> None:
    assert parse_tokens(line) is None


def test_aider_run_accumulates_tokens_and_lists_files() -> None:
    adapter = AiderAdapter()
    lines = [
        "Aider v0.86.1",
        "Main model: anthropic/claude-sonnet-4-5 with diff edit format",
        "I'll add the function.",
        "Tokens: 12k sent, 1.1k cache write, 8.5k cache hit, 2.1k received. Cost: $0.03 message, $0.12 session.",
        "Applied edit to x.py",
        "Applied edit to src/y.py",
        "Tokens: 3k sent, 500 received. Cost: $0.02 message, $0.14 session.",
    ]
    progress, r = feed(adapter.parser(), lines)
    assert "✎ edit x.py" in progress and "✎ edit src/y.py" in progress
    assert r.usage == Usage(input=15000, output=2600, cache_read=8500, cache_write=1100, turns=2, cost_usd=0.14)
    assert r.files == ["x.py", "src/y.py"] and not r.is_error
    assert adapter.classify(r, 0) == OK
    assert adapter.classify(r, 1) == PERMANENT


def test_aider_run_without_cost_lines_costs_nothing() -> None:
    _, r = feed(AiderParser(), ["Tokens: 1k sent, 100 received."])
    assert r.usage == Usage(input=1000, output=100, turns=1, cost_usd=0.0)


@pytest.mark.parametrize(
    ("lines", "outcome"),
    [
        pytest.param(
            [
                'litellm.RateLimitError: AnthropicException - {"type":"error","error":{"type":"rate_limit_error"}}',
                "The API provider has rate limited you. Try again later or check your quotas.",
                "Retrying in 0.2 seconds...",
            ],
            TRANSIENT,
            id="rate-limited",
        ),
        pytest.param(["The API provider's servers are down or overloaded."], TRANSIENT, id="overloaded"),
        pytest.param(
            ["The API provider timed out without returning a response. They may be down or overloaded."],
            TRANSIENT,
            id="timed-out",
        ),
        pytest.param(
            [
                'litellm.APIError: APIError: OpenrouterException - {"error":{"message":"Insufficient credits. '
                'Add more using https://openrouter.ai/settings/credits","code":402}}'
            ],
            OUT_OF_BUDGET,
            id="insufficient-credits",
        ),
        pytest.param(
            [
                "litellm.RateLimitError: RateLimitError: OpenAIException - You exceeded your current quota, "
                "please check your plan and billing details.",
                "The API provider has rate limited you. Try again later or check your quotas.",
            ],
            OUT_OF_BUDGET,
            id="exceeded-quota",
        ),
        pytest.param(
            [
                'litellm.AuthenticationError: AnthropicException - {"type":"error","error":{"type":'
                '"authentication_error","message":"invalid x-api-key"}}',
                "The API provider is not able to authenticate you. Check your API key.",
            ],
            AUTH,
            id="auth",
        ),
        pytest.param(
            ["The API provider refused the request as permission was denied."],
            AUTH,
            id="permission-denied",
        ),
    ],
)
def test_aider_errors_exit_0_are_not_ok(lines: list[str], outcome: Outcome) -> None:
    adapter = AiderAdapter()
    _, r = feed(adapter.parser(), ["Aider v0.86.1", *lines])
    assert r.is_error and any(line in r.error for line in lines)
    assert adapter.classify(r, 0) == outcome


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(["    except TimeoutError:", "        retry()"], id="code-with-timeout-error"),
        pytest.param(["I fixed the 401 error handling in login()."], id="summary-mentions-401-error"),
        pytest.param(["Handle ConnectionError and rate limit errors in fetch()."], id="summary-mentions-rate-limit"),
        pytest.param(["raise QuotaExceededError('billing')"], id="code-with-quota-billing"),
    ],
)
def test_aider_clean_run_whose_text_mentions_errors_is_ok(reply: list[str]) -> None:
    """aider prints the model's reply and its edit blocks: words in them are not API errors."""
    adapter = AiderAdapter()
    lines = [*reply, "Applied edit to net.py", "Tokens: 2k sent, 300 received. Cost: $0.01 message, $0.01 session."]
    _, r = feed(adapter.parser(), lines)
    assert not r.is_error and r.error == ""
    assert adapter.classify(r, 0) == OK


RATE_LIMITED = [
    'litellm.RateLimitError: AnthropicException - {"type":"error","error":{"type":"rate_limit_error"}}',
    "The API provider has rate limited you. Try again later or check your quotas.",
    "Retrying in 0.5 seconds...",
]
TOKENS = "Tokens: 2k sent, 300 received. Cost: $0.01 message, $0.01 session."


@pytest.mark.parametrize(
    ("lines", "outcome"),
    [
        pytest.param([*RATE_LIMITED, TOKENS, "Applied edit to a.py"], OK, id="retried-then-succeeded"),
        pytest.param([TOKENS, "Applied edit to a.py", *RATE_LIMITED], TRANSIENT, id="failed-after-a-success"),
    ],
)
def test_aider_errors_before_a_successful_call_are_forgotten(lines: list[str], outcome: Outcome) -> None:
    adapter = AiderAdapter()
    _, r = feed(adapter.parser(), lines)
    assert adapter.classify(r, 0) == outcome
    assert r.files == ["a.py"] and r.usage.turns == 1


def test_aider_stderr_is_a_problem_and_launch_argv(tmp_path: Path) -> None:
    adapter = AiderAdapter()
    progress, r = feed(adapter.parser(), [], ["litellm.APIConnectionError: Connection refused"])
    assert progress == ["stderr: litellm.APIConnectionError: Connection refused"]
    assert adapter.classify(r, 0) == TRANSIENT
    launch = adapter.launch(request(tmp_path, AgentConfig(kind="aider", model="sonnet", args=("x.py",)), prompt="go"))
    assert launch.argv[:3] == ["aider", "--message", "go"]
    assert {"--yes-always", "--no-auto-commits", "--no-stream", "--no-pretty"} <= set(launch.argv)
    assert launch.argv[-3:] == ["--model", "sonnet", "x.py"] and launch.stdin is None


# --- classify_text and reset_time ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "outcome"),
    [
        ("Not logged in · Please run /login", AUTH),
        ("Invalid API key · Fix external API key", AUTH),
        ("unexpected status 401 Unauthorized", AUTH),
        ("403 Forbidden", AUTH),
        ("The API provider is not able to authenticate you.", AUTH),
        ("API key not valid. Please pass a valid API key.", AUTH),
        ("Claude AI usage limit reached|1893456000", OUT_OF_BUDGET),
        ("You've hit your limit · resets 3pm", OUT_OF_BUDGET),
        ("You've hit your session limit · resets 3pm", OUT_OF_BUDGET),
        ("You've hit your weekly limit · resets Mon 9am", OUT_OF_BUDGET),
        ("You've hit your 5-hour limit · resets 3pm", OUT_OF_BUDGET),
        ("You've hit your Opus limit", OUT_OF_BUDGET),
        ("Credit balance is too low", OUT_OF_BUDGET),
        ("Insufficient credits", OUT_OF_BUDGET),
        ("insufficient_quota", OUT_OF_BUDGET),
        ("Quota exceeded. Check your plan and billing details.", OUT_OF_BUDGET),
        ("You exceeded your current quota", OUT_OF_BUDGET),
        ("Workspace out of credits", OUT_OF_BUDGET),
        ("You have exhausted your daily quota on this model.", OUT_OF_BUDGET),
        ("Prompt is too long", OUT_OF_BUDGET),
        ("context window exceeded", OUT_OF_BUDGET),
        ("error_max_turns", OUT_OF_BUDGET),
        ("exceeded retry limit, last status: 429 Too Many Requests", TRANSIENT),
        ("API Error: 529 Overloaded", TRANSIENT),
        ("API Error: 500 Internal server error", TRANSIENT),
        ("stream disconnected before completion", TRANSIENT),
        ("API Error: Unable to connect to API (ConnectionRefused)", TRANSIENT),
        ("Connection failed: error sending request", TRANSIENT),
        ("connect ECONNRESET 1.2.3.4:443", TRANSIENT),
        ("Request timed out.", TRANSIENT),
        ("The API provider has rate limited you.", TRANSIENT),
        ("RESOURCE_EXHAUSTED", TRANSIENT),
        ("We're currently experiencing high demand", TRANSIENT),
        ("all 42 tests passed", None),
        ("max_tokens: 512 is fine", None),
        ("unexpected status 503 Service Unavailable", TRANSIENT),
        ("Request rejected (429)", TRANSIENT),
        ("invalid_request_error: tools.0.name too long", None),
        ("", None),
    ],
)
def test_classify_text(text: str, outcome: Outcome | None) -> None:
    assert classify_text(text) == outcome


NOW = local(2026, 11, 21, 10, 0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Claude AI usage limit reached|1893456000", 1893456000.0),
        ("rate limited, resetsAt: 1893456000", 1893456000.0),
        ("limit resets at 1893456000", 1893456000.0),
        ("You've hit your limit · resets 3pm", local(2026, 11, 21, 15)),
        # A zone named after the time is honoured: 3pm in Berlin (UTC+1 in November) is 14:00 UTC.
        ("You've hit your limit · resets 3pm (Europe/Berlin)", 1795269600.0),
        ("You've hit your 5-hour limit · resets 6:39pm (UTC)", 1795286340.0),
        ("You've hit your limit · resets 9am", local(2026, 11, 22, 9)),
        ("Your limit resets at 10am", local(2026, 11, 22, 10)),
        ("resets 12pm", local(2026, 11, 21, 12)),
        ("resets 12am", local(2026, 11, 22, 0)),
        ("You've hit your usage limit. Try again at 3:05 PM.", local(2026, 11, 21, 15, 5)),
        ("try again at 10:30", local(2026, 11, 21, 10, 30)),
        ("try again at 9:59 AM", local(2026, 11, 22, 9, 59)),
        ("try again at Mar 10th, 2027 3:39 AM.", local(2027, 3, 10, 3, 39)),
        ("try again at October 2nd, 2027 1:07 PM.", local(2027, 10, 2, 13, 7)),
        ("try again in 20 minutes", NOW + 1200),
        ("try again in 2 days 3 hours", NOW + 2 * 86400 + 3 * 3600),
        ("Try again in 1 hour and 5 minutes.", NOW + 3900),
        ("Please try again in 30 seconds.", NOW + 30),
        ("resets in 2 hours", NOW + 7200),
        ("try again in 1 day", NOW + 86400),
        ("resets 25:00", None),
        ("try again at Feb 30th, 2027 1:00 PM", None),
        ("resets soon", None),
        ("Credit balance is too low", None),
        ("", None),
    ],
)
def test_reset_time(text: str, expected: float | None) -> None:
    assert reset_time(text, now=NOW) == expected


def test_reset_time_defaults_to_the_clock() -> None:
    before = datetime.now().timestamp()
    got = reset_time("try again in 5 minutes")
    assert got is not None and before + 300 <= got <= datetime.now().timestamp() + 300


# --- prices --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "table", "expected"),
    [
        ("gpt-5", None, prices.DEFAULT["gpt-5"]),
        ("gpt-5-mini", None, prices.DEFAULT["gpt-5-mini"]),
        ("gpt-5-mini-2025-08-07", None, prices.DEFAULT["gpt-5-mini"]),
        ("gpt-5.5-codex", None, prices.DEFAULT["gpt-5"]),
        ("claude-sonnet-4-5-20250929", None, prices.DEFAULT["claude-sonnet-4"]),
        ("claude-opus-4-1", None, prices.DEFAULT["claude-opus-4"]),
        ("gemini-2.5-flash-lite", None, prices.DEFAULT["gemini-2.5-flash"]),
        ("gpt-5.5-codex", {"gpt-5.5": Price(5.0, 40.0)}, Price(5.0, 40.0)),
        ("gpt-5", {"gpt-5": Price(9.0, 9.0)}, Price(9.0, 9.0)),
        ("my-model-v2", {"my-model": Price(1.0, 2.0)}, Price(1.0, 2.0)),
        ("llama-3", None, None),
        ("", None, None),
        (None, None, None),
    ],
)
def test_price_lookup(model: str | None, table: dict[str, Price] | None, expected: Price | None) -> None:
    assert prices.lookup(model, table) == expected


def test_price_overrides_do_not_change_the_default_table() -> None:
    before = dict(prices.DEFAULT)
    prices.lookup("gpt-5", {"gpt-5": Price(9.0, 9.0)})
    assert before == prices.DEFAULT


@pytest.mark.parametrize(
    ("model", "usage", "table", "expected"),
    [
        ("claude-sonnet-4-5", Usage(1_000_000, 1_000_000, 1_000_000, 1_000_000), None, 3.0 + 15.0 + 0.3 + 3.75),
        ("gpt-5", Usage(input=2_000_000, output=500_000), None, 2.5 + 5.0),
        ("gpt-5", Usage(input=1), None, 0.000001),
        ("gpt-5", Usage(input=1000, turns=3, cost_usd=99.0), None, 0.00125),
        ("x", Usage(1000, 1000), {"x": Price(1.0, 2.0, 0.5, 4.0)}, 0.003),
        ("x", Usage(0, 0, 1000, 1000), {"x": Price(1.0, 2.0, 0.5, 4.0)}, 0.0045),
        ("unknown", Usage(10**9, 10**9), None, 0.0),
        (None, Usage(10**9, 10**9), None, 0.0),
    ],
)
def test_price_cost(model: str | None, usage: Usage, table: dict[str, Price] | None, expected: float) -> None:
    assert prices.cost(model, usage, table) == pytest.approx(expected, abs=1e-9)


# --- credentials ---------------------------------------------------------------------------------

CLAUDE = AgentConfig(kind="claude")
THREE = (Credential("alice", "CLK_A_KEY"), Credential("bob", "CLK_B_KEY"), Credential("carol", "CLK_C_KEY"))
VALUES = {"CLK_A_KEY": "sk-ant-api03-aaaaaaaa", "CLK_B_KEY": "sk-ant-api03-bbbbbbbb", "CLK_C_KEY": "sk-ant-api03-cccc"}
T0 = 1_900_000_000.0


@pytest.fixture
def three_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in VALUES.items():
        monkeypatch.setenv(name, value)


@pytest.mark.parametrize(
    ("slave_index", "spent", "name", "wait_until"),
    [
        (0, {}, "alice", None),
        (1, {}, "bob", None),
        (2, {}, "carol", None),
        (3, {}, "alice", None),
        (1, {"bob": T0 + 100}, "carol", None),
        (2, {"carol": T0 + 100}, "alice", None),
        (0, {"alice": T0 + 100, "bob": T0 + 50}, "carol", None),
        (1, {"bob": T0 - 1}, "bob", None),
        (1, {"bob": T0}, "bob", None),
        (1, {"alice": T0 + 300, "bob": T0 + 100, "carol": T0 + 200}, "bob", T0 + 100),
        (0, {"alice": T0 + 300, "bob": T0 + 100, "carol": T0 + 200, "gone": T0 + 5}, "alice", T0 + 100),
    ],
)
def test_choose_spreads_and_skips_spent(
    three_keys: None, slave_index: int, spent: dict[str, float], name: str, wait_until: float | None
) -> None:
    choice = choose(THREE, CLAUDE, slave_index, State(credentials=spent), T0)
    assert choice.name == name and choice.wait_until == wait_until
    if wait_until is None:
        env_var = next(c.env for c in THREE if c.name == name)
        assert choice.env == {"ANTHROPIC_API_KEY": VALUES[env_var]}
    else:
        assert choice.env == {}, "nothing to run with while waiting"


def test_choose_without_credentials_uses_the_environment() -> None:
    assert choose((), CLAUDE, 2, State(), T0) == choose((), CLAUDE, 0, State(), T0)
    free = choose((), CLAUDE, 0, State(credentials={DEFAULT: T0 - 10}), T0)
    assert (free.name, free.env, free.wait_until) == (DEFAULT, {}, None)
    spent = choose((), CLAUDE, 0, State(credentials={DEFAULT: T0 + 60}), T0)
    assert (spent.name, spent.env, spent.wait_until) == (DEFAULT, {}, T0 + 60)


@pytest.mark.parametrize(
    ("kind", "value", "inject", "var"),
    [
        ("claude", "sk-ant-api03-abcdefgh", None, "ANTHROPIC_API_KEY"),
        ("claude", "sk-ant-oat01-abcdefgh", None, "CLAUDE_CODE_OAUTH_TOKEN"),
        ("claude", "sk-ant-oat01-abcdefgh", "ANTHROPIC_API_KEY", "ANTHROPIC_API_KEY"),
        ("codex", "sk-proj-abcdefgh", None, "CODEX_API_KEY"),
        ("codex", "sk-proj-abcdefgh", "OPENAI_API_KEY", "OPENAI_API_KEY"),
        ("gemini", "AIzaSyabcdefgh", None, "GEMINI_API_KEY"),
        ("aider", "sk-or-v1-abcdefgh", None, "MY_SECRET_VALUE"),
        ("command", "whatever-long-secret", None, "MY_SECRET_VALUE"),
    ],
)
def test_choose_injects_the_variable_the_agent_expects(
    monkeypatch: pytest.MonkeyPatch, kind: str, value: str, inject: str | None, var: str
) -> None:
    monkeypatch.setenv("MY_SECRET_VALUE", value)
    creds = (Credential("main", "MY_SECRET_VALUE", inject),)
    choice = choose(creds, AgentConfig(kind=kind), 0, State(), T0)
    assert choice == Choice("main", {var: value}, None)
    assert secrets.redact(f"export {var}={value}") == f"export {var}=[redacted]", "the value is a secret now"


def test_choose_with_an_unset_variable_injects_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLK_UNSET_KEY", raising=False)
    monkeypatch.setenv("CLK_SET_KEY", "a-long-enough-value")
    creds = (Credential("unset", "CLK_UNSET_KEY"), Credential("set", "CLK_SET_KEY"))
    choice = choose(creds, CLAUDE, 0, State(), T0)
    assert choice.name == "unset" and choice.env == {} and choice.wait_until is None
    assert missing(creds) == [creds[0]]
    monkeypatch.setenv("CLK_UNSET_KEY", "")
    assert missing(creds) == [creds[0]], "an empty variable is as good as none"
    monkeypatch.setenv("CLK_UNSET_KEY", "x-long-enough-value")
    assert missing(creds) == []


# --- secrets -------------------------------------------------------------------------------------


def test_register_env_takes_secret_looking_names_only() -> None:
    secrets.register_env(
        {
            "MY_API_KEY": "abcdefgh123",
            "GH_TOKEN": "ghp_0123456789",
            "DB_PASSWORD": "hunter2hunter2",
            "client_secret": "lowercase-name-too",
            "SHORT_KEY": "abc1234",  # 7 characters: would redact ordinary words
            "PATH": "/usr/local/bin:/usr/bin",
            "USER_NAME": "someone-long-name",
        }
    )
    text = (
        "abcdefgh123 ghp_0123456789 hunter2hunter2 lowercase-name-too abc1234 /usr/local/bin:/usr/bin someone-long-name"
    )
    assert secrets.redact(text) == (
        "[redacted] [redacted] [redacted] [redacted] abc1234 /usr/local/bin:/usr/bin someone-long-name"
    )


def test_register_env_defaults_to_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLK_TEST_API_KEY", "from-the-environment")
    secrets.register_env()
    assert secrets.redact("key=from-the-environment;") == "key=[redacted];"


@pytest.mark.parametrize(
    ("registered", "text", "redacted"),
    [
        (["abcdefgh"], "x abcdefgh y abcdefgh", "x [redacted] y [redacted]"),
        (["abcdefgh", "abcdefgh1234"], "k=abcdefgh1234", "k=[redacted]"),  # the longer value first
        (["abcdefg"], "abcdefg", "abcdefg"),  # too short to be registered
        ([None, ""], "nothing", "nothing"),
        (["abcdefgh"], "", ""),
    ],
)
def test_redact(registered: list[str | None], text: str, redacted: str) -> None:
    for value in registered:
        secrets.register(value)
    assert secrets.redact(text) == redacted


def test_clear_forgets_secrets() -> None:
    secrets.register("abcdefghij")
    secrets.clear()
    assert secrets.redact("abcdefghij") == "abcdefghij"


def test_event_log_never_holds_a_registered_secret(tmp_path: Path) -> None:
    secret = "sk-ant-api03-SECRETSECRET"
    secrets.register(secret)
    log = tmp_path / "events.log"
    size = events.append(
        log,
        [
            event("task.note", "c1", "T1", {"note": f"agent printed ANTHROPIC_API_KEY={secret}"}, ts=T0),
            event("task.failed", "c1", "T1", {"error": f"401 for key {secret}"}, ts=T0),
            event("risk", "c1", "T1", {"kind": "auth", "message": "m", "files": [f"keys/{secret}.txt"]}, ts=T0),
        ],
    )
    raw = log.read_text(encoding="utf-8")
    assert secret not in raw and raw.count("[redacted]") == 3 and size == len(raw.encode("utf-8"))
    got = [ev for ev, _ in events.read_from(log, 0)]
    assert [ev.type for ev in got] == ["task.note", "task.failed", "risk"]
    assert got[0].payload()["note"] == "agent printed ANTHROPIC_API_KEY=[redacted]"
    assert got[1].payload() == {"slave": "", "error": "401 for key [redacted]"}
    assert got[2].payload()["files"] == ["keys/[redacted].txt"]


# --- prompts -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "role", "expected"),
    [
        ("Do {{task.title}}\n", "worker", "CLANKER-ROLE: worker\nDo {{task.title}}\n"),
        ("CLANKER-ROLE: worker\nDo it\n", "worker", "CLANKER-ROLE: worker\nDo it\n"),
        ("CLANKER-ROLE: judge  \nJudge it\n", "judge", "CLANKER-ROLE: judge  \nJudge it\n"),
        ("Intro\nCLANKER-ROLE: judge\n", "judge", "CLANKER-ROLE: judge\nIntro\nCLANKER-ROLE: judge\n"),
        ("CLANKER-ROLE: wizard\nx", "planner", "CLANKER-ROLE: planner\nCLANKER-ROLE: wizard\nx"),
        ("", "worker", "CLANKER-ROLE: worker\n"),
        ("\n\n", "worker", "CLANKER-ROLE: worker\n\n\n"),
    ],
)
def test_load_template_marker(tmp_path: Path, content: str, role: str, expected: str) -> None:
    path = tmp_path / "t.md"
    path.write_text(content, encoding="utf-8")
    assert load_template(path, role, "DEFAULT") == expected


def test_load_template_default_and_missing_file(tmp_path: Path) -> None:
    assert load_template(None, "worker", WORKER) == WORKER
    missing_file = tmp_path / "prompts" / "nope.md"
    with pytest.raises(UsageError) as err:
        load_template(missing_file, "judge", "DEFAULT")
    msg = str(err.value)
    assert "\n" not in msg and str(missing_file) in msg and "prompts.judge" in msg and "clanker.yaml" in msg
    assert err.value.exit_code == 2


def write_history(paths: Paths, task_id: str, notes: list[tuple[str, str]]) -> None:
    folder = paths.history / task_id
    folder.mkdir(parents=True, exist_ok=True)
    for i, (name, text) in enumerate(notes):
        note = folder / name
        note.write_text(text, encoding="utf-8")
        os.utime(note, (T0 + i, T0 + i))  # oldest first


TEMPLATE = (
    "id={{task.id}} title={{ task.title }} branch={{task.branch}}\n"
    "prompt={{task.prompt}}\ndesc={{task.description}}\nsummary={{task.summary}}\n"
    "{{prior_attempts}}{{judge_notes}}{{conflicts}}{{history}}flocks=[{{prompt}}]\n"
)


def test_worker_prompt_renders_a_template_with_history(tmp_path: Path) -> None:
    paths = Paths(tmp_path / "repo")
    write_history(
        paths,
        "T7",
        [("work-1.md", "## work-1\nfirst try failed the gate"), ("judge-1.md", "## judge-1\nrework: add tests")],
    )
    (paths.history / "T7" / "notes.txt").write_text("not a note", encoding="utf-8")
    template = tmp_path / "worker.md"
    template.write_text(TEMPLATE, encoding="utf-8")
    task = Task(
        id="T7",
        title="Add hello",
        prompt="Create hello.py",
        description="It prints hi.",
        branch="clanker/T7",
        errors=("gate failed: `pytest`",),
        judge_rounds=1,
        reason="add tests",
    )
    text = worker_prompt(task, conflicts=["a.py"], template=template, paths=paths)
    lines = text.splitlines()
    assert lines[0] == "CLANKER-ROLE: worker"
    assert lines[1] == "id=T7 title=Add hello branch=clanker/T7"
    assert "prompt=Create hello.py\ndesc=It prints hi.\nsummary=(none)\n" in text
    assert "- attempt 1: gate failed: `pytest`" in text
    assert "## The judge asked for rework\nadd tests" in text
    assert "these files have conflict markers: a.py" in text
    history = text.index("## History of this task")
    assert history < text.index("first try failed the gate") < text.index("rework: add tests"), "oldest first"
    assert "not a note" not in text
    assert text.rstrip().endswith(f"flocks=[{task.prompt}]") and "{{" not in text
    template.write_text("{{task.id}} {{nope}}\n", encoding="utf-8")  # never an empty string for it
    with pytest.raises(UsageError, match=r"unknown field \{\{nope\}\}"):
        worker_prompt(task, template=template, paths=paths)


def test_history_keeps_the_newest_notes_within_the_limit(tmp_path: Path) -> None:
    paths = Paths(tmp_path / "repo")
    task = Task(id="T2", title="t")
    assert history_of(paths, task) == "" and history_of(None, task) == ""
    write_history(paths, "T2", [("a.md", "OLD " * 50), ("b.md", "MID " * 5), ("c.md", "NEW " * 5)])
    text = history_of(paths, task, limit=100)
    assert "NEW" in text and "MID" in text and "OLD" not in text
    assert text.index("MID") < text.index("NEW")
    assert text.startswith("\n## History of this task\n")


def test_builtin_worker_prompt_has_no_placeholders_left(tmp_path: Path) -> None:
    paths = Paths(tmp_path / "repo")
    write_history(paths, "T3", [("work-1.md", "earlier: tests failed")])
    text = worker_prompt(Task(id="T3", title="x", prompt="p", branch="b"), paths=paths)
    assert text.startswith("CLANKER-ROLE: worker\n") and "{{" not in text and "earlier: tests failed" in text


# --- scenarios: recorded real streams and hand-written samples -----------------------------------

SCENARIO_DIRS = (DATA / "streams", DATA / "adapters")
# Name words (after the agent's name) → the outcome the scenario must classify as. The first match
# wins, so the specific ones come first: `retry-529` is a run that retried by itself and succeeded,
# `429-per-day` is out of budget.
SCENARIO_OUTCOMES: list[tuple[str, Outcome]] = [
    ("retry", OK),
    ("no-key", AUTH),
    ("not-logged-in", AUTH),
    ("bad-key", AUTH),
    ("invalid-key", AUTH),
    ("auth", AUTH),
    ("401", AUTH),
    ("403", AUTH),
    ("max-turns", OUT_OF_BUDGET),
    ("usage-limit", OUT_OF_BUDGET),
    ("perday", OUT_OF_BUDGET),
    ("per-day", OUT_OF_BUDGET),
    ("daily", OUT_OF_BUDGET),
    ("quota", OUT_OF_BUDGET),
    ("credit", OUT_OF_BUDGET),
    ("credits", OUT_OF_BUDGET),
    ("billing", OUT_OF_BUDGET),
    ("429", TRANSIENT),
    ("500", TRANSIENT),
    ("503", TRANSIENT),
    ("529", TRANSIENT),
    ("overloaded", TRANSIENT),
    ("refused", TRANSIENT),
    ("drop", TRANSIENT),
    ("disconnect", TRANSIENT),
    ("success", OK),
    ("ok", OK),
    ("resume", OK),
    ("write", OK),
    ("apply-patch", OK),
    ("exec-command", OK),
    ("shell", OK),
    ("bash", OK),
]


def scenario_files() -> list[Any]:
    found = []
    for folder in SCENARIO_DIRS:
        for path in sorted(folder.glob("*.jsonl")) if folder.is_dir() else []:
            found.append(pytest.param(path, id=f"{folder.name}/{path.stem}"))
    return found


def expected_outcome(stem: str) -> Outcome | None:
    words = stem.lower().split("-")
    for fragment, outcome in SCENARIO_OUTCOMES:
        want = fragment.split("-")
        if any(words[i : i + len(want)] == want for i in range(1, len(words) - len(want) + 1)):
            return outcome
    return None


def read_meta(path: Path) -> tuple[int | None, list[str], str | None]:
    """Exit code, stderr lines and model of a scenario, from `<name>.meta.json`: `exit_code`, `stderr`
    or the recorder's `stderr_first_line` / `stderr_error_line`, and `model` or the model in `argv`."""
    meta_path = path.with_suffix(".meta.json")
    meta: dict[str, Any] = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.exists() else {}
    code = meta.get("exit_code")
    raw_err = meta.get("stderr")
    stderr = raw_err.splitlines() if isinstance(raw_err, str) else []
    stderr += [str(meta[k]) for k in ("stderr_first_line", "stderr_error_line") if meta.get(k)]
    model = meta.get("model")
    argv = [str(a) for a in meta.get("argv") or []]
    for i, arg in enumerate(argv[:-1]):
        if arg in ("-m", "--model"):
            model = argv[i + 1]
        elif arg == "-c" and argv[i + 1].startswith("model="):
            model = argv[i + 1].removeprefix("model=")
    return code if isinstance(code, int) else None, stderr, model if isinstance(model, str) else None


def wrote_files(kind: str, stdout: list[str]) -> bool:
    """Whether the stream shows the agent writing a file with its own file tool."""
    for ev in filter(None, map(json_line, stdout)):
        if kind == "claude" and ev.get("type") == "assistant":
            message = ev.get("message")
            blocks = message.get("content") if isinstance(message, dict) else None
            for block in blocks if isinstance(blocks, list) else []:
                if isinstance(block, dict) and block.get("name") in ("Write", "Edit", "MultiEdit"):
                    return True
        item = ev.get("item")
        if kind == "codex" and isinstance(item, dict) and item.get("type") == "file_change":
            return True
        if kind == "gemini" and ev.get("type") == "tool_use" and ev.get("tool_name") in ("write_file", "replace"):
            return True
    return False


def test_scenario_names_map_to_outcomes() -> None:
    table = {
        "claude-429": TRANSIENT,
        "claude-retry-529": OK,
        "claude-no-key": AUTH,
        "claude-not-logged-in": AUTH,
        "claude-max-turns": OUT_OF_BUDGET,
        "codex-usage-limit": OUT_OF_BUDGET,
        "codex-drop": TRANSIENT,
        "gemini-429-perday": OUT_OF_BUDGET,
        "gemini-429-per-day": OUT_OF_BUDGET,
        "gemini-write-file": OK,
        "claude-oauth-success": OK,
        "codex-reconnect-then-success": OK,
        "gemini-something-new": None,
    }
    assert {stem: expected_outcome(stem) for stem in table} == table


def test_read_meta_of_a_recording(tmp_path: Path) -> None:
    stream = tmp_path / "codex-x.jsonl"
    stream.write_text("", encoding="utf-8")
    meta = {
        "exit_code": 1,
        "stderr_first_line": "WARNING: proceeding",
        "stderr_error_line": "",
        "argv": ["codex", "exec", "-c", "model_provider=mock", "-c", "model=gpt-5.5", "do it"],
    }
    stream.with_suffix(".meta.json").write_text(json.dumps(meta), encoding="utf-8")
    assert read_meta(stream) == (1, ["WARNING: proceeding"], "gpt-5.5")


@pytest.mark.parametrize("path", scenario_files())
def test_scenario(tmp_path: Path, path: Path) -> None:
    kind = path.stem.split("-")[0]
    if kind not in ("claude", "codex", "gemini"):
        pytest.skip(f"no stream adapter for {kind}")
    expected = expected_outcome(path.stem)
    if expected is None:
        pytest.skip(f"the name {path.stem} says no outcome")
    exit_code, stderr, model = read_meta(path)
    stdout = path.read_text(encoding="utf-8").splitlines()
    cfg = AgentConfig(kind=kind, model=model)
    adapter = adapter_for(cfg)
    adapter.launch(request(tmp_path, cfg))
    progress, r = feed(adapter.parser(), stdout, stderr)
    outcome = adapter.classify(r, exit_code)
    assert outcome == expected, f"{path.name}: {r.error or r.text!r} (exit {exit_code})"
    for line in progress:
        assert "\x1b" not in line and not line.startswith('{"'), f"raw output in progress: {line[:80]}"
    if expected == OK:
        assert r.complete and not r.is_error and r.error == ""
        assert r.usage.tokens > 0 and r.usage.turns > 0 and r.session_id
        if wrote_files(kind, stdout):
            assert r.files, "the files the agent wrote are listed"
        if kind == "claude":
            reported = [ev for ev in map(json_line, stdout) if ev and ev.get("type") == "result"]
            assert reported and r.usage.cost_usd == reported[-1]["total_cost_usd"]
            assert r.usage.cost_usd > 0
        else:
            tokens = Usage(r.usage.input, r.usage.output, r.usage.cache_read, r.usage.cache_write)
            assert r.usage.cost_usd == prices.cost(r.model, tokens) > 0
    else:
        assert r.error or r.agent_error, "a failure says what failed"
    if expected == AUTH and kind == "claude":
        assert "claude /login" in adapter.auth_fix()
    if "usage-limit" in path.stem:
        assert r.reset_at is not None and r.reset_at > 1.7e9, "a usage limit says when it resets"
    rejected = [ev for ev in map(json_line, stdout) if ev and ev.get("type") == "rate_limit_event"]
    info = rejected[-1].get("rate_limit_info") if rejected else None
    if isinstance(info, dict) and info.get("status") == "rejected" and "resetsAt" in info:
        assert r.reset_at == float(info["resetsAt"]), "the rate-limit event's reset time wins"


@pytest.mark.parametrize(
    ("recording", "ran"),
    [
        ("claude-success", [Ran("echo ran > ran.txt", 0)]),
        ("claude-bash-exit-3", [Ran("echo broken >&2; exit 3", 3)]),
        ("codex-exec-command", [Ran("echo ran > ran.txt", 0)]),
        ("codex-exec-command-exit-3", [Ran("echo broken >&2; exit 3", 3)]),
        ("gemini-shell", [Ran("echo ran > ran.txt", None)]),
        ("gemini-shell-exit-3", [Ran("echo broken >&2; exit 3", None)]),  # the stream does not say
        ("claude-max-turns", [Ran("true", 0), Ran("true", 0)]),  # the same command twice: two runs
    ],
)
def test_the_commands_an_agent_ran_and_their_exit_codes_come_from_its_stream(recording: str, ran: list[Ran]) -> None:
    agent = recording.split("-")[0]
    adapter = adapter_for(AgentConfig(kind=agent))
    lines = (DATA / "streams" / f"{recording}.jsonl").read_text().splitlines()
    _, result = feed(adapter.parser(), lines)
    assert result.commands == ran


def test_a_bash_error_without_a_code_is_a_failure_whose_code_is_unsaid() -> None:
    parser = ClaudeParser()
    parser.feed(c_assistant({"type": "tool_use", "id": "toolu_x", "name": "Bash", "input": {"command": "sleep 999"}}))
    parser.feed(c_tool_result("Command timed out after 2m", is_error=True))
    parser.feed(c_assistant({"type": "tool_use", "id": "toolu_y", "name": "Bash", "input": {"command": "make"}}))
    assert parser.result().commands == [Ran("sleep 999", None), Ran("make", None)]  # make: no result yet


def test_claude_usage_so_far_is_each_api_response_once_then_the_final_report() -> None:
    lines = (Path(__file__).parent / "data" / "streams" / "claude-resume.jsonl").read_text().splitlines()
    parser = ClaudeParser()
    before_result = None
    for line in lines:
        kind = (json_line(line) or {}).get("type")
        if kind == "result":
            before_result = parser.usage_so_far()[0]
        parser.feed(line)
        if kind == "assistant":
            parser.feed(line)  # claude repeats a response's usage on each of its events: counted once
    # A response's input is reported at its start, its output so far (1 token) with it.
    assert before_result is not None and (before_result.input, before_result.output) == (100, 1)
    final, model = parser.usage_so_far()
    assert (final.input, final.output) == (100, 20) and model == parser.result().model
