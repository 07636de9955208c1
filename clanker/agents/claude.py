"""Claude Code: `claude -p … --output-format stream-json --verbose` (facts: AGENTS.md)."""

from __future__ import annotations

import json
import os
import re
from typing import Any

from ..state.usage import Usage
from .base import AgentRequest, AgentResult, Launch, Outcome, Ran
from .classify import classify_text, reset_time
from .runner import json_line

MAX_LINE = 200
_EXIT = re.compile(r"^(?:Error: )?Exit code (\d+)")  # how Bash's failing tool_result begins


def _short(text: str, limit: int = MAX_LINE) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def describe_tool(name: str, args: dict[str, Any]) -> str:
    """A tool call as one readable line: paths and commands, not JSON."""
    path = args.get("file_path") or args.get("path") or args.get("notebook_path")
    if name in ("Write", "Edit", "MultiEdit", "NotebookEdit") and path:
        return f"✎ {name.lower()} {path}"
    if name == "Bash" and "command" in args:
        return f"$ {_short(str(args['command']), 160)}"
    if name in ("Read", "Glob", "Grep", "LS") and (path or args.get("pattern")):
        return f"· {name.lower()} {path or args.get('pattern')}"
    return f"⚙ {name} {_short(json.dumps(args, ensure_ascii=False), 120)}"


class ClaudeParser:
    def __init__(self) -> None:
        self.r = AgentResult(complete=False)
        self.stderr: list[str] = []
        self._turns: dict[str, Usage] = {}  # API message id → its usage (the events of one repeat it)
        self._bash: dict[str, int] = {}  # a Bash tool_use id → its place in r.commands

    def feed(self, line: str) -> list[str]:
        ev = json_line(line)
        if ev is None:
            return [line] if line.strip() else []
        kind, sub = ev.get("type"), ev.get("subtype")
        if kind == "system" and sub == "init":
            self.r.session_id = str(ev.get("session_id") or "") or None
            self.r.model = str(ev.get("model") or "") or None
            version = ev.get("claude_code_version", "")
            return [f"▶ claude {version} {self.r.model or ''} (session {self.r.session_id})".replace("  ", " ")]
        if kind == "system" and sub == "api_retry":
            return [f"… API retry: {_short(str(ev.get('error') or ev.get('message') or ''), 120)}"]
        if kind == "rate_limit_event":
            info = ev.get("rate_limit_info")
            if isinstance(info, dict) and info.get("status") == "rejected":
                resets = info.get("resetsAt")
                self.r.rejected = True
                self.r.reset_at = float(resets) if isinstance(resets, int | float) else None
                return [f"! rate limit rejected ({info.get('rateLimitType', '')}), resets {resets}"]
            return []
        if kind == "assistant":
            return self._assistant(ev)
        if kind == "user":
            return self._tool_results(ev)
        if kind == "result":
            return self._result(ev)
        return []

    def _assistant(self, ev: dict[str, Any]) -> list[str]:
        out = []
        if ev.get("error"):
            self.r.agent_error = str(ev["error"])
        msg = ev.get("message")
        if isinstance(msg, dict) and isinstance(msg.get("usage"), dict) and msg.get("id"):
            u = msg["usage"]
            self._turns[str(msg["id"])] = Usage(
                input=int(u.get("input_tokens") or 0), output=int(u.get("output_tokens") or 0),
                cache_read=int(u.get("cache_read_input_tokens") or 0),
                cache_write=int(u.get("cache_creation_input_tokens") or 0), turns=1,
            )  # fmt: skip
        content = msg.get("content", []) if isinstance(msg, dict) else []
        for block in content if isinstance(content, list) else []:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "text" and str(block.get("text", "")).strip():
                out.append(f"· {_short(block['text'])}")
            elif block.get("type") == "tool_use":
                args = block.get("input") if isinstance(block.get("input"), dict) else {}
                out.append(describe_tool(str(block.get("name")), args or {}))
                if block.get("name") == "Bash" and args and "command" in args:
                    self._bash[str(block.get("id"))] = len(self.r.commands)
                    self.r.commands.append(Ran(str(args["command"]), None))
                if block.get("name") in ("Write", "Edit", "MultiEdit") and args and args.get("file_path"):
                    self.r.files.append(str(args["file_path"]))
        return out

    def _tool_results(self, ev: dict[str, Any]) -> list[str]:
        msg = ev.get("message")
        content = msg.get("content", []) if isinstance(msg, dict) else []
        out = []
        for block in content if isinstance(content, list) else []:
            if not isinstance(block, dict) or block.get("type") != "tool_result":
                continue
            text = block.get("content")
            at = self._bash.pop(str(block.get("tool_use_id")), None)
            if at is not None:
                # Bash says a failure's code first ("Exit code 3"); an error without one (a
                # timeout, a refusal) is a failure whose code it did not say.
                m = _EXIT.match(text) if isinstance(text, str) else None
                code = (int(m.group(1)) if m else None) if block.get("is_error") else 0
                self.r.commands[at] = Ran(self.r.commands[at].command, code)
            if block.get("is_error"):
                out.append(f"  ↳ tool error: {_short(str(text), 160)}")
        return out

    def _result(self, ev: dict[str, Any]) -> list[str]:
        r = self.r
        r.complete = True
        r.text = str(ev.get("result") or "")
        r.is_error = bool(ev.get("is_error")) or ev.get("subtype") not in (None, "success")
        status = ev.get("api_error_status")
        r.api_status = int(status) if isinstance(status, int) else None
        r.session_id = str(ev.get("session_id") or r.session_id or "") or None
        usage = ev.get("usage") if isinstance(ev.get("usage"), dict) else {}
        assert isinstance(usage, dict)
        cost = ev.get("total_cost_usd")
        r.usage = Usage(
            input=int(usage.get("input_tokens") or 0),
            output=int(usage.get("output_tokens") or 0),
            cache_read=int(usage.get("cache_read_input_tokens") or 0),
            cache_write=int(usage.get("cache_creation_input_tokens") or 0),
            turns=int(ev.get("num_turns") or 0),
            cost_usd=float(cost) if isinstance(cost, int | float) else 0.0,
        )
        r.subtype = str(ev.get("subtype") or "")
        if r.is_error:
            r.error = _short(r.text or r.subtype, 500)
            return [f"✗ {r.subtype}: {_short(r.text, 160)}"]
        return [f"✓ done in {r.usage.turns} turns, ${r.usage.cost_usd:.4f}: {_short(r.text, 140)}"]

    def files_so_far(self) -> list[str]:
        return list(self.r.files)

    def usage_so_far(self) -> tuple[Usage, str | None]:
        if self.r.complete:
            return self.r.usage, self.r.model
        return Usage.total(self._turns.values()), self.r.model

    def feed_stderr(self, line: str) -> list[str]:
        if line.strip():
            self.stderr.append(line)
            return [f"stderr: {_short(line)}"]
        return []

    def result(self) -> AgentResult:
        if not self.r.complete and self.stderr and not self.r.error:
            self.r.error = _short(" ".join(self.stderr[-3:]), 500)
        return self.r


class ClaudeAdapter:
    name = "claude"

    def launch(self, req: AgentRequest) -> Launch:
        cfg = req.config
        argv = [cfg.binary or "claude", "-p", req.prompt, "--output-format", "stream-json", "--verbose"]
        if cfg.max_turns:
            argv += ["--max-turns", str(cfg.max_turns)]
        if cfg.model:
            argv += ["--model", cfg.model]
        env: dict[str, str] = {}
        if cfg.permission_mode == "bypassPermissions":
            argv += ["--dangerously-skip-permissions"]
            if os.geteuid() == 0:
                env["IS_SANDBOX"] = "1"  # claude refuses to skip permissions as root without it
        else:
            argv += ["--permission-mode", cfg.permission_mode]
        if cfg.append_system_prompt:
            argv += ["--append-system-prompt", cfg.append_system_prompt]
        if req.resume_session:
            argv += ["--resume", req.resume_session]
        return Launch([*argv, *cfg.args], req.worktree, env)

    def parser(self) -> ClaudeParser:
        return ClaudeParser()

    def classify(self, result: AgentResult, exit_code: int | None) -> Outcome:
        return classify_claude(result, exit_code)

    def auth_fix(self) -> str:
        return "claude is not logged in: run `claude /login` or set ANTHROPIC_API_KEY (or a credential in clanker.yaml)"


def classify_claude(result: AgentResult, exit_code: int | None) -> Outcome:
    """Fields first (rate-limit event, subtype, api_error_status, assistant error), then text, then
    the exit code: claude has exited 0 with an API error."""
    if result.complete and not result.is_error and exit_code in (0, None):
        return Outcome.OK  # finished work counts even if a rate-limit event was seen on the way
    if result.rejected:
        return Outcome.OUT_OF_BUDGET
    if result.subtype in ("error_max_turns", "error_max_budget_usd"):
        result.error = result.error or result.subtype
        return Outcome.OUT_OF_BUDGET
    if result.agent_error == "authentication_failed" or result.api_status in (401, 403):
        return Outcome.AUTH
    if result.agent_error == "billing_error":
        return Outcome.OUT_OF_BUDGET
    text = f"{result.text} {result.error}"
    by_text = classify_text(text)
    if by_text == Outcome.OUT_OF_BUDGET:
        result.reset_at = reset_time(text)
        return by_text
    if by_text == Outcome.AUTH:
        return by_text
    if result.api_status in TRANSIENT_STATUS or result.agent_error in ("rate_limit", "server_error"):
        return Outcome.TRANSIENT
    if by_text is not None:
        return by_text
    if not result.complete:
        # The CLI died without its final line (killed, crashed): worth another try.
        return Outcome.TRANSIENT if exit_code not in (0, None) else Outcome.PERMANENT
    return Outcome.PERMANENT


TRANSIENT_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
