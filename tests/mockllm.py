"""A scripted mock LLM server for driving the real agent CLIs (claude, codex, gemini) in tests.

`MockLLM` serves three wire protocols on 127.0.0.1 (ephemeral port), each driven by one *tape*:
a list of steps consumed one per *main* request, i.e. a request that is an agent turn (it carries tools).
Side requests (Anthropic requests without `tools` such as title generation, `count_tokens`, Gemini
`countTokens` or tool-less `generateContent` calls, unknown GETs) get a harmless default answer and do not
consume a step. Once the tape is spent, main requests get a final text answer (`exhausted_text`).

    with MockLLM([ToolCall.write("hello.txt", "hi\\n"), Text("done")]) as llm:
        subprocess.run([claude, "-p", "go", ...], env=full_env(claude_env(llm.url, home)))
        assert llm.consumed == 2
        assert "go" in json.dumps(llm.main_requests()[0].body)

Protocols (chosen by the request path):
- Anthropic Messages: `POST /v1/messages[?beta=true]`, SSE when `stream:true` (message_start,
  content_block_start/delta/stop, message_delta with stop_reason and usage, message_stop), JSON otherwise.
- OpenAI Responses (codex): `POST /v1/responses`, SSE `event: T\\ndata: JSON\\n\\n`:
  `response.created`, one `response.output_item.done` per item, then `response.completed` with usage.
- Gemini: `POST /v1beta/models/{model}:streamGenerateContent?alt=sse` (SSE `data: JSON`),
  `:generateContent` (JSON) and `:countTokens`.

A refused connection is a URL nothing listens on: `free_port_url()`.

The `*_env` / `*_args` helpers return plain data to run each real CLI against the mock, with the settings
that make it fail fast instead of retrying for minutes:
- claude: `CLAUDE_CODE_MAX_RETRIES=0` (read by the CLI's retry loop; default 10 retries with backoff; it also
  disables the "persistent"/overloaded retry modes), `API_TIMEOUT_MS` bounds one request.
- codex: provider options `request_max_retries=0`, `stream_max_retries=0` (default 4/5 retries, 6-26 s).
- gemini: `~/.gemini/settings.json` `general.maxAttempts: 1` (default 10 attempts with 5-30 s backoff).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

JSON = dict[str, Any]

TEST_KEY = "sk-test-mockllm-0000000000000000"
CLAUDE_MODEL = "claude-sonnet-4-5"
CODEX_MODEL = "gpt-5.5"
GEMINI_MODEL = "gemini-2.5-flash"

# ---------------------------------------------------------------------------------------------------------------
# Tape steps


@dataclass(frozen=True)
class Text:
    """A final assistant text answer (ends the turn)."""

    text: str
    input_tokens: int = 100
    output_tokens: int = 20
    cache_read: int = 0
    cache_write: int = 0


@dataclass(frozen=True)
class ToolCall:
    """One tool call, rendered per protocol.

    kind "write": Anthropic `Write{file_path, content}`, codex `apply_patch` (custom_tool_call, Add File),
    Gemini `write_file{file_path, content}`.
    kind "shell": Anthropic `Bash{command}`, codex `function_call exec_command{cmd}`,
    Gemini `run_shell_command{command}`.
    kind "raw": `name`/`args` passed through verbatim (Anthropic tool_use input, codex function_call arguments,
    Gemini functionCall args).
    `text`, when given, is an assistant text block emitted before the call.
    """

    kind: Literal["write", "shell", "raw"]
    path: str = ""
    content: str = ""
    command: str = ""
    name: str = ""
    args: Mapping[str, Any] = field(default_factory=dict)
    text: str = ""
    input_tokens: int = 100
    output_tokens: int = 20
    cache_read: int = 0
    cache_write: int = 0

    @classmethod
    def write(cls, path: str, content: str, **kw: Any) -> ToolCall:
        return cls("write", path=path, content=content, **kw)

    @classmethod
    def shell(cls, command: str, **kw: Any) -> ToolCall:
        return cls("shell", command=command, **kw)

    @classmethod
    def raw(cls, name: str, args: Mapping[str, Any], **kw: Any) -> ToolCall:
        return cls("raw", name=name, args=dict(args), **kw)


@dataclass(frozen=True)
class HTTPError:
    """Answer the main request with this HTTP status and JSON body (see the `*_error` builders)."""

    status: int
    body: JSON = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Drop:
    """Close the connection without answering (after reading the request)."""


Step = Text | ToolCall | HTTPError | Drop

_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    529: "Overloaded",
}


def anthropic_error(status: int, message: str = "", etype: str = "") -> HTTPError:
    """An Anthropic API error: 429 rate_limit_error, 529 overloaded_error, 500 api_error, 401 authentication_error."""
    default_type = {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        429: "rate_limit_error",
        529: "overloaded_error",
    }.get(status, "api_error")
    default_msg = {
        401: "invalid x-api-key",
        429: "This request would exceed the rate limit for your organization. Please try again later.",
        529: "Overloaded",
    }.get(status, "Internal server error")
    body = {"type": "error", "error": {"type": etype or default_type, "message": message or default_msg}}
    headers = {"request-id": f"req_mock_{uuid.uuid4().hex[:12]}"}
    if status == 429:
        headers["retry-after"] = "30"
    return HTTPError(status, body, headers)


def anthropic_usage_limit(resets_at: int | None = None, claim: str = "five_hour") -> HTTPError:
    """A subscription usage limit: 429 with `anthropic-ratelimit-unified-status: rejected` and the reset epoch.

    Claude Code only reads these headers when logged in with a subscription (CLAUDE_CODE_OAUTH_TOKEN, see
    `claude_env(oauth_token=...)`): it then prints a `rate_limit_event` (status rejected, resetsAt, rateLimitType)
    and "You've hit your 5-hour limit · resets <time>". With an API key it is a plain 429.
    `claim`: five_hour | seven_day | seven_day_opus ...
    """
    reset = resets_at if resets_at is not None else int(time.time()) + 3600
    err = anthropic_error(429)
    headers = {
        **err.headers,
        "anthropic-ratelimit-unified-status": "rejected",
        "anthropic-ratelimit-unified-reset": str(reset),
        "anthropic-ratelimit-unified-representative-claim": claim,
    }
    if claim == "five_hour":
        headers["anthropic-ratelimit-unified-5h-reset"] = str(reset)
    elif claim.startswith("seven_day"):
        headers["anthropic-ratelimit-unified-7d-reset"] = str(reset)
    return HTTPError(429, err.body, headers)


def openai_error(status: int, message: str = "", etype: str = "", code: str | None = None) -> HTTPError:
    """An OpenAI-style error body `{"error": {message, type, code}}`."""
    default_type = {401: "invalid_request_error", 429: "rate_limit_exceeded"}.get(status, "server_error")
    msg = message or {429: "Rate limit reached. Please try again later.", 401: "Incorrect API key provided."}.get(
        status, "The server had an error while processing your request."
    )
    return HTTPError(status, {"error": {"message": msg, "type": etype or default_type, "code": code, "param": None}})


def codex_usage_limit(resets_in_seconds: int = 3600, plan_type: str = "plus") -> HTTPError:
    """The ChatGPT-plan usage limit: HTTP 429 with `error.type == "usage_limit_reached"` (codex does not retry)."""
    return HTTPError(
        429,
        {
            "error": {
                "type": "usage_limit_reached",
                "message": "The usage limit has been reached",
                "plan_type": plan_type,
                "resets_at": int(time.time()) + resets_in_seconds,
                "resets_in_seconds": resets_in_seconds,
            }
        },
    )


def codex_insufficient_quota() -> HTTPError:
    """The API-key billing quota: HTTP 429 with `error.type == "insufficient_quota"`."""
    return openai_error(
        429,
        "You exceeded your current quota, please check your plan and billing details.",
        etype="insufficient_quota",
        code="insufficient_quota",
    )


def gemini_error(status: int, message: str = "", details: Sequence[JSON] = ()) -> HTTPError:
    """A Google API error `{"error": {code, message, status, details}}`."""
    gstatus = {
        400: "INVALID_ARGUMENT",
        401: "UNAUTHENTICATED",
        403: "PERMISSION_DENIED",
        429: "RESOURCE_EXHAUSTED",
        500: "INTERNAL",
        503: "UNAVAILABLE",
    }.get(status, "UNKNOWN")
    msg = message or {
        401: "API key not valid. Please pass a valid API key.",
        429: "Resource has been exhausted (e.g. check quota).",
        503: "The model is overloaded.",
    }.get(status, "Internal error encountered.")
    return HTTPError(status, {"error": {"code": status, "message": msg, "status": gstatus, "details": list(details)}})


def gemini_daily_quota(model: str = GEMINI_MODEL) -> HTTPError:
    """Gemini's per-day quota: 429 RESOURCE_EXHAUSTED with a QuotaFailure whose quotaId contains `PerDay`."""
    return gemini_error(
        429,
        "You exceeded your current quota, please check your plan and billing details.",
        details=[
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                        "quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
                        "quotaDimensions": {"location": "global", "model": model},
                        "quotaValue": "250",
                    }
                ],
            },
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "43s"},
        ],
    )


# ---------------------------------------------------------------------------------------------------------------
# Recorded requests


@dataclass
class Request:
    """One request the mock received. `body` is the parsed JSON (or None); `step` is the tape index it consumed."""

    method: str
    path: str
    protocol: str
    main: bool
    body: Any
    headers: dict[str, str]
    step: int | None = None

    @property
    def text(self) -> str:
        """The body re-serialised: handy for `"prompt" in req.text`."""
        return json.dumps(self.body)


# ---------------------------------------------------------------------------------------------------------------
# Protocol renderers


def _sse(events: Sequence[tuple[str | None, JSON]]) -> bytes:
    out = []
    for name, data in events:
        head = f"event: {name}\n" if name else ""
        out.append(f"{head}data: {json.dumps(data)}\n\n")
    return "".join(out).encode()


def _uid(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:24]}"


def _anthropic_usage(step: Text | ToolCall) -> JSON:
    return {
        "input_tokens": step.input_tokens,
        "output_tokens": step.output_tokens,
        "cache_read_input_tokens": step.cache_read,
        "cache_creation_input_tokens": step.cache_write,
    }


def _anthropic_blocks(step: Text | ToolCall) -> list[JSON]:
    if isinstance(step, Text):
        return [{"type": "text", "text": step.text}]
    blocks: list[JSON] = []
    if step.text:
        blocks.append({"type": "text", "text": step.text})
    if step.kind == "write":
        name, args = "Write", {"file_path": step.path, "content": step.content}
    elif step.kind == "shell":
        name, args = "Bash", {"command": step.command, "description": "run a command"}
    else:
        name, args = step.name, dict(step.args)
    blocks.append({"type": "tool_use", "id": _uid("toolu_mock"), "name": name, "input": args})
    return blocks


def _anthropic_message(step: Text | ToolCall, model: str, stream: bool) -> tuple[str, bytes]:
    blocks = _anthropic_blocks(step)
    stop = "tool_use" if isinstance(step, ToolCall) else "end_turn"
    usage = _anthropic_usage(step)
    msg_id = _uid("msg_mock")
    if not stream:
        body = {
            "id": msg_id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": blocks,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": usage,
        }
        return "application/json", json.dumps(body).encode()
    start: JSON = {
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {**usage, "output_tokens": 1},
    }
    events: list[tuple[str | None, JSON]] = [("message_start", {"type": "message_start", "message": start})]
    for i, block in enumerate(blocks):
        if block["type"] == "text":
            first: JSON = {"type": "text", "text": ""}
            delta: JSON = {"type": "text_delta", "text": block["text"]}
        else:
            first = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
        events.append(("content_block_start", {"type": "content_block_start", "index": i, "content_block": first}))
        events.append(("content_block_delta", {"type": "content_block_delta", "index": i, "delta": delta}))
        events.append(("content_block_stop", {"type": "content_block_stop", "index": i}))
    events.append(
        (
            "message_delta",
            {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None}, "usage": usage},
        )
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return "text/event-stream", _sse(events)


def _codex_items(step: Text | ToolCall) -> list[JSON]:
    if isinstance(step, Text):
        return [_codex_message(step.text)]
    items: list[JSON] = []
    if step.text:
        items.append(_codex_message(step.text))
    call_id = _uid("call_mock")
    if step.kind == "write":
        lines = "".join(f"+{line}\n" for line in step.content.splitlines())
        patch = f"*** Begin Patch\n*** Add File: {step.path}\n{lines}*** End Patch\n"
        items.append(
            {"type": "custom_tool_call", "id": _uid("ctc_"), "call_id": call_id, "name": "apply_patch", "input": patch}
        )
    else:
        name, args = ("exec_command", {"cmd": step.command}) if step.kind == "shell" else (step.name, dict(step.args))
        items.append(
            {
                "type": "function_call",
                "id": _uid("fc_"),
                "call_id": call_id,
                "name": name,
                "arguments": json.dumps(args),
            }
        )
    return items


def _codex_message(text: str) -> JSON:
    return {
        "type": "message",
        "id": _uid("msg_"),
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def _codex_response(step: Text | ToolCall, model: str) -> bytes:
    resp_id = _uid("resp_mock")
    items = _codex_items(step)
    usage = {
        "input_tokens": step.input_tokens + step.cache_read,
        "input_tokens_details": {"cached_tokens": step.cache_read},
        "output_tokens": step.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": step.input_tokens + step.cache_read + step.output_tokens,
    }
    base = {"id": resp_id, "object": "response", "created_at": int(time.time()), "model": model}
    events: list[tuple[str | None, JSON]] = [
        ("response.created", {"type": "response.created", "response": {**base, "status": "in_progress", "output": []}})
    ]
    for i, item in enumerate(items):
        events.append(
            ("response.output_item.done", {"type": "response.output_item.done", "output_index": i, "item": item})
        )
    done = {**base, "status": "completed", "output": items, "usage": usage}
    events.append(("response.completed", {"type": "response.completed", "response": done}))
    return _sse(events)


def _gemini_parts(step: Text | ToolCall) -> list[JSON]:
    if isinstance(step, Text):
        return [{"text": step.text}]
    parts: list[JSON] = []
    if step.text:
        parts.append({"text": step.text})
    if step.kind == "write":
        name, args = "write_file", {"file_path": step.path, "content": step.content}
    elif step.kind == "shell":
        name, args = "run_shell_command", {"command": step.command}
    else:
        name, args = step.name, dict(step.args)
    parts.append({"functionCall": {"name": name, "args": args}})
    return parts


def _gemini_chunk(parts: list[JSON], model: str, usage: JSON) -> JSON:
    return {
        "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": usage,
        "modelVersion": model,
        "responseId": _uid("mock"),
    }


def _gemini_usage(step: Text | ToolCall) -> JSON:
    prompt = step.input_tokens + step.cache_read
    return {
        "promptTokenCount": prompt,
        "candidatesTokenCount": step.output_tokens,
        "totalTokenCount": prompt + step.output_tokens,
        "cachedContentTokenCount": step.cache_read,
    }


# ---------------------------------------------------------------------------------------------------------------
# The server


class MockLLM:
    """Scripted LLM server. Use as a context manager; `.url` is `http://127.0.0.1:PORT`.

    `requests` records every request (main and side); `consumed` counts tape steps used;
    `main_requests()` filters the agent turns; `errors` collects handler exceptions (should stay empty).
    `max_requests` bounds the request loop: past it every request is answered 503 and counted in `overflow`.
    `responder`, when given, chooses each main request's step from the request itself instead of the
    tape (a fleet of agents working on different tasks at once); it runs in the request's own thread,
    so it may sleep to play a stalled API.
    """

    def __init__(
        self,
        tape: Sequence[Step] = (),
        *,
        exhausted_text: str = "(mock tape exhausted)",
        side_text: str = "Mock title",
        max_requests: int = 500,
        port: int = 0,
        responder: Callable[[Request], Step | None] | None = None,
    ) -> None:
        self.tape: list[Step] = list(tape)
        self.responder = responder
        self.want_port = port  # 0: any free port; a fixed one lets a test bring a "down" API back up
        self.exhausted_text = exhausted_text
        self.side_text = side_text
        self.max_requests = max_requests
        self.requests: list[Request] = []
        self.errors: list[str] = []
        self.consumed = 0
        self.overflow = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --
    def __enter__(self) -> MockLLM:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        mock = self

        class Handler(_Handler):
            owner = mock

        server = _Server(("127.0.0.1", self.want_port), Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    @property
    def port(self) -> int:
        assert self._server is not None, "MockLLM not started"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- inspection --
    @property
    def remaining(self) -> int:
        return len(self.tape) - self.consumed

    def main_requests(self) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.main]

    def _record(self, req: Request) -> Step | None:
        """Record the request; for a main request, pop the next step (None when the tape is spent)."""
        with self._lock:
            self.requests.append(req)
            if not req.main:
                return None
            if self.responder is not None:
                self.consumed += 1
            elif self.consumed < len(self.tape):
                req.step = self.consumed
                self.consumed += 1
                return self.tape[req.step]
            if self.responder is None:
                return None
        return self.responder(req)

    def _over_limit(self) -> bool:
        with self._lock:
            if len(self.requests) >= self.max_requests:
                self.overflow += 1
                return True
            return False


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (an agent killed mid-request) is no error of the mock's."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    owner: MockLLM
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base class
        pass

    # -- plumbing --
    def _read_body(self) -> Any:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raw = self._read_chunked()
        else:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
        if self.headers.get("Content-Encoding", "") == "gzip" and raw:
            raw = gzip.decompress(raw)
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode("utf-8", "replace")

    def _read_chunked(self) -> bytes:
        out = bytearray()
        while True:
            size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return bytes(out)
            out += self.rfile.read(size)
            self.rfile.readline()

    def _send(self, status: int, body: bytes, ctype: str = "application/json", headers: Mapping[str, str] = {}) -> None:
        self.send_response(status, _REASONS.get(status))
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        if ctype == "text/event-stream":
            self.send_header("Cache-Control", "no-cache")
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def _json(self, status: int, body: Any) -> None:
        self._send(status, json.dumps(body).encode())

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def do_HEAD(self) -> None:  # noqa: N802
        self.owner._record(Request("HEAD", self.path, "other", False, None, dict(self.headers)))
        self._send(404, b"")

    def _handle(self, method: str) -> None:
        try:
            self._dispatch(method)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # a bug in the mock: record it, answer 500 so the CLI fails visibly
            self.owner.errors.append(f"{method} {self.path}: {exc!r}")
            self.close_connection = True
            with contextlib.suppress(OSError):
                self._json(500, {"error": {"message": f"mockllm bug: {exc!r}"}})

    def _dispatch(self, method: str) -> None:
        body = self._read_body() if method == "POST" else None
        path = urlsplit(self.path).path
        headers = {k.lower(): v for k, v in self.headers.items()}
        if self.owner._over_limit():
            self._json(503, {"error": {"message": "mockllm: request limit reached"}})
            return
        obj: JSON = body if isinstance(body, dict) else {}
        if method == "POST" and path.endswith("/messages/count_tokens"):
            self.owner._record(Request(method, self.path, "anthropic", False, body, headers))
            self._json(200, {"input_tokens": 1000})
        elif method == "POST" and path.endswith("/messages"):
            self._anthropic(Request(method, self.path, "anthropic", bool(obj.get("tools")), body, headers), obj)
        elif method == "POST" and path.endswith("/responses"):
            self._codex(Request(method, self.path, "openai", bool(obj.get("tools")), body, headers), obj)
        elif method == "POST" and ":" in path.rsplit("/", 1)[-1]:
            model, action = path.rsplit("/", 1)[-1].split(":", 1)
            main = action == "streamGenerateContent" and bool(obj.get("tools"))
            self._gemini(Request(method, self.path, "gemini", main, body, headers), obj, model, action)
        else:
            self.owner._record(Request(method, self.path, "other", False, body, headers))
            if path.endswith("/models"):
                self._json(200, {"data": [], "models": [], "object": "list"})
            else:
                self._json(404, {"error": {"message": f"mockllm: no route for {method} {path}"}})

    def _step_or_error(self, req: Request) -> Step | None:
        """The step to play for a main request; HTTPError and Drop are answered here (returns None then)."""
        step = self.owner._record(req)
        if isinstance(step, HTTPError):
            self._send(step.status, json.dumps(step.body).encode(), headers=step.headers)
            return None
        if isinstance(step, Drop):
            self._drop()
            return None
        return step if step is not None else Text(self.owner.exhausted_text)

    # -- Anthropic --
    def _anthropic(self, req: Request, body: JSON) -> None:
        model = str(body.get("model") or CLAUDE_MODEL)
        stream = bool(body.get("stream"))
        if not req.main:
            self.owner._record(req)
            ctype, data = _anthropic_message(Text(self.owner.side_text, 10, 5), model, stream)
            self._send(200, data, ctype, {"request-id": _uid("req_mock")})
            return
        step = self._step_or_error(req)
        if step is None:
            return
        assert isinstance(step, Text | ToolCall)
        ctype, data = _anthropic_message(step, model, stream)
        self._send(200, data, ctype, {"request-id": _uid("req_mock")})

    # -- OpenAI Responses --
    def _codex(self, req: Request, body: JSON) -> None:
        model = str(body.get("model") or CODEX_MODEL)
        if not req.main:
            self.owner._record(req)
            self._send(200, _codex_response(Text(self.owner.side_text, 10, 5), model), "text/event-stream")
            return
        step = self._step_or_error(req)
        if step is None:
            return
        assert isinstance(step, Text | ToolCall)
        self._send(200, _codex_response(step, model), "text/event-stream")

    # -- Gemini --
    def _gemini(self, req: Request, body: JSON, model: str, action: str) -> None:
        if action == "countTokens":
            self.owner._record(req)
            self._json(200, {"totalTokens": 1000})
            return
        if not req.main:
            self.owner._record(req)
            side = Text(self.owner.side_text, 10, 5)
            chunk = _gemini_chunk(_gemini_parts(side), model, _gemini_usage(side))
            if action == "streamGenerateContent":
                self._send(200, _sse([(None, chunk)]), "text/event-stream")
            else:
                self._json(200, chunk)
            return
        step = self._step_or_error(req)
        if step is None:
            return
        assert isinstance(step, Text | ToolCall)
        chunk = _gemini_chunk(_gemini_parts(step), model, _gemini_usage(step))
        if action == "streamGenerateContent":
            self._send(200, _sse([(None, chunk)]), "text/event-stream")
        else:
            self._json(200, chunk)


def free_port_url() -> str:
    """`http://127.0.0.1:PORT` where nothing listens (a refused connection). The port was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    return f"http://127.0.0.1:{port}"


# ---------------------------------------------------------------------------------------------------------------
# Running the real CLIs against the mock

_AGENT_ENV_PREFIXES = ("ANTHROPIC_", "CLAUDE_", "OPENAI_", "CODEX_", "GEMINI_", "GOOGLE_", "VERTEX")


def full_env(overrides: Mapping[str, str], base: Mapping[str, str] | None = None) -> dict[str, str]:
    """`base` (default os.environ) without any agent credentials/config variables, plus `overrides`."""
    src = os.environ if base is None else base
    env = {k: v for k, v in src.items() if not k.startswith(_AGENT_ENV_PREFIXES)}
    env.update(overrides)
    return env


def claude_env(
    url: str, home: Path | str, *, api_key: str | None = TEST_KEY, oauth_token: str | None = None
) -> dict[str, str]:
    """Env for `claude -p` against the mock at `url`. `api_key=None` (and no `oauth_token`) leaves it logged out;
    `oauth_token` logs in as a subscription user (it then reads the unified rate-limit headers, see
    `anthropic_usage_limit`).

    - `CLAUDE_CODE_MAX_RETRIES=0`: no internal retries (a 429/529/5xx/drop returns at once).
    - `API_TIMEOUT_MS`: bounds a single request (a mock that never answers).
    - `IS_SANDBOX=1`: lets `--dangerously-skip-permissions` run as root.
    - the DISABLE_* / NONESSENTIAL_TRAFFIC switches keep it off the network (telemetry, updates, feature flags).
    - `CLAUDE_CODE_TMPDIR` keeps its sockets/scratch files (`cc-socks/`, `claude-0/`) under `home/tmp`.
    """
    env = {
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": url,
        "IS_SANDBOX": "1",
        "CLAUDE_CODE_MAX_RETRIES": "0",
        "API_TIMEOUT_MS": "30000",
        "CLAUDE_CODE_DISABLE_TERMINAL_TITLE": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "CLAUDE_CODE_TMPDIR": str(Path(home) / "tmp"),
        "NO_COLOR": "1",
    }
    if api_key is not None:
        env["ANTHROPIC_API_KEY"] = api_key
    if oauth_token is not None:
        env["CLAUDE_CODE_OAUTH_TOKEN"] = oauth_token
    return env


def claude_args(prompt: str, *, max_turns: int = 10, extra: Sequence[str] = ()) -> list[str]:
    """Flags for a headless `claude -p` turn with stream-json output (as root: needs IS_SANDBOX=1)."""
    return [
        "-p",
        prompt,
        "--output-format",
        "stream-json",
        "--verbose",
        "--max-turns",
        str(max_turns),
        "--dangerously-skip-permissions",
        "--model",
        CLAUDE_MODEL,
        *extra,
    ]


def codex_provider(url: str, retries: int = 0) -> str:
    """The inline TOML for the mock model provider (`retries` for both request and stream retries)."""
    return (
        f'{{name="mock",base_url="{url}/v1",wire_api="responses",env_key="MOCK_KEY",'
        f"request_max_retries={retries},stream_max_retries={retries},stream_idle_timeout_ms=30000}}"
    )


def codex_args(url: str, retries: int = 0) -> list[str]:
    """`-c` options that point `codex` at the mock: a custom provider with `request_max_retries=0` and
    `stream_max_retries=0` (fail fast), a model codex knows (so it offers apply_patch)."""
    return [
        "-c",
        "model_provider=mock",
        "-c",
        f"model={CODEX_MODEL}",
        "-c",
        f"model_providers.mock={codex_provider(url, retries)}",
        "-c",
        "features.unbounded_connection_retries=false",
        "-c",
        "features.plugins=false",
    ]


def codex_exec_args(
    url: str, cwd: Path | str, prompt: str, *, resume: str | None = None, retries: int = 0
) -> list[str]:
    """Argv after the binary for `codex exec --json` in `cwd` with a writable workspace sandbox;
    `resume=THREAD_ID` continues a thread (`codex exec ... resume THREAD_ID PROMPT`)."""
    tail = ["resume", resume, prompt] if resume else [prompt]
    return ["exec", "--json", *codex_args(url, retries), "-C", str(cwd), "--sandbox", "workspace-write", *tail]


def codex_env(url: str, home: Path | str) -> dict[str, str]:
    """Env for codex: isolated `CODEX_HOME` (created by `codex_home_setup`) and the provider key `MOCK_KEY`."""
    return {"HOME": str(home), "CODEX_HOME": str(Path(home) / ".codex"), "MOCK_KEY": TEST_KEY, "NO_COLOR": "1"}


def codex_home_setup(home: Path | str) -> Path:
    """Create `$HOME/.codex` (CODEX_HOME must exist)."""
    d = Path(home) / ".codex"
    d.mkdir(parents=True, exist_ok=True)
    return d


def gemini_settings() -> JSON:
    """`~/.gemini/settings.json`: API-key auth, one attempt (`general.maxAttempts: 1`, default 10 with 5-30 s
    backoff), no telemetry/usage statistics/auto-update."""
    return {
        "general": {"maxAttempts": 1, "enableAutoUpdate": False, "enableAutoUpdateNotification": False},
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        "privacy": {"usageStatisticsEnabled": False},
        "telemetry": {"enabled": False},
    }


def gemini_home_setup(home: Path | str) -> Path:
    """Write `$HOME/.gemini/settings.json` (see `gemini_settings`) and return its path."""
    d = Path(home) / ".gemini"
    d.mkdir(parents=True, exist_ok=True)
    (Path(home) / "tmp").mkdir(exist_ok=True)
    p = d / "settings.json"
    p.write_text(json.dumps(gemini_settings(), indent=2))
    return p


def gemini_env(url: str, home: Path | str) -> dict[str, str]:
    """Env for gemini against the mock. `GEMINI_CLI_NO_RELAUNCH=true` skips the child re-spawn."""
    return {
        "HOME": str(home),
        "GOOGLE_GEMINI_BASE_URL": url,
        "GEMINI_API_KEY": TEST_KEY,
        "GEMINI_CLI_NO_RELAUNCH": "true",
        "TMPDIR": str(Path(home) / "tmp"),
        "NO_COLOR": "1",
    }


def gemini_args(prompt: str) -> list[str]:
    """Flags for headless gemini with stream-json output; `-m` skips the model-router call, `--yolo` allows
    write tools, `--skip-trust` the folder-trust prompt."""
    return ["-p", prompt, "--output-format", "stream-json", "--yolo", "--skip-trust", "-m", GEMINI_MODEL]
