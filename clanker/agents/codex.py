"""Codex: `codex exec --json` (JSONL events; no cost reported, so tokens are priced from a table)."""

from __future__ import annotations

import re
import shlex
from typing import Any

from ..state.usage import Usage
from .base import AgentRequest, AgentResult, Launch, Outcome, Ran
from .classify import classify_text, reset_time
from .claude import _short
from .prices import PricedAdapter, cost
from .runner import json_line

DEFAULT_MODEL = "gpt-5"
_WRAPPED = re.compile(r"^(?:/\S*/)?(?:ba|z)?sh -lc (.+)$", re.S)  # how codex runs a command


def unwrap(command: str) -> str:
    """The command the model asked for, without the login shell codex wraps it in."""
    m = _WRAPPED.match(command)
    if m is None:
        return command
    try:
        words = shlex.split(m.group(1))
    except ValueError:
        return command
    return words[0] if len(words) == 1 else command


class CodexParser:
    def __init__(self, model: str | None, prices: dict[str, Any]) -> None:
        self.r = AgentResult(complete=False, model=model)
        self.prices = prices
        self.failed = False
        self.errors: list[str] = []
        self.failure: str | None = None  # turn.failed's message: the error, whatever else was printed
        self.stderr: list[str] = []  # warnings mostly: the error of last resort
        self.messages: list[str] = []
        self.usage = Usage()

    def feed(self, line: str) -> list[str]:
        ev = json_line(line)
        if ev is None:
            return [line] if line.strip() else []
        kind = ev.get("type")
        if kind == "thread.started":
            self.r.session_id = str(ev.get("thread_id") or "") or None
            return [f"▶ codex thread {self.r.session_id}"]
        if kind == "turn.completed":
            u = ev.get("usage") if isinstance(ev.get("usage"), dict) else {}
            assert isinstance(u, dict)
            cached = int(u.get("cached_input_tokens") or 0)
            self.usage = self.usage + Usage(
                input=max(0, int(u.get("input_tokens") or 0) - cached), output=int(u.get("output_tokens") or 0),
                cache_read=cached, turns=1,
            )  # fmt: skip
            self.r.complete = True
            return []
        if kind == "turn.failed":
            err = ev.get("error")
            msg = str(err.get("message") if isinstance(err, dict) else err or "turn failed")
            self.failed = True
            self.r.complete = True
            self.failure = msg
            return [f"✗ {_short(msg, 200)}"]
        if kind == "error":
            # Not terminal by itself: codex reports its own retries this way.
            msg = str(ev.get("message") or "")
            self.errors.append(msg)
            return [f"! {_short(msg, 200)}"]
        if kind in ("item.completed", "item.started"):
            item = ev.get("item")
            return self._item(item, kind) if isinstance(item, dict) else []
        return []

    def _item(self, item: dict[str, Any], kind: str) -> list[str]:
        t = item.get("type")
        if kind == "item.started":
            return [f"$ {_short(str(item.get('command')), 160)}"] if t == "command_execution" else []
        if t == "agent_message":
            text = str(item.get("text") or "")
            self.messages.append(text)
            return [f"· {_short(text)}"] if text.strip() else []
        if t == "command_execution":
            code = item.get("exit_code")
            self.r.commands.append(Ran(unwrap(str(item.get("command") or "")), code if isinstance(code, int) else None))
            return [f"  ↳ exit {code}"]
        if t == "file_change":
            out = []
            for ch in item.get("changes") or []:
                if isinstance(ch, dict) and ch.get("path"):
                    self.r.files.append(str(ch["path"]))
                    out.append(f"✎ {ch.get('kind', 'change')} {ch['path']}")
            return out
        if t == "mcp_tool_call":
            return [f"⚙ {item.get('server', '')}.{item.get('tool', '')}"]
        if t == "web_search":
            return [f"· search {_short(str(item.get('query')), 120)}"]
        if t == "error":
            msg = str(item.get("message") or "")
            self.errors.append(msg)
            return [f"! {_short(msg, 200)}"]
        return []

    def files_so_far(self) -> list[str]:
        return list(self.r.files)

    def usage_so_far(self) -> tuple[Usage, str | None]:
        return self.usage, self.r.model  # each finished turn's usage, as codex reports it

    def feed_stderr(self, line: str) -> list[str]:
        if line.strip():
            self.stderr.append(line)
        return []

    def result(self) -> AgentResult:
        r = self.r
        r.text = self.messages[-1] if self.messages else ""
        r.usage = Usage(
            self.usage.input, self.usage.output, self.usage.cache_read, 0, self.usage.turns,
            cost(r.model, self.usage, self.prices),
        )  # fmt: skip
        last_error = self.failure or (self.errors or self.stderr or [""])[-1]
        if self.failed:
            r.is_error = True
            r.error = _short(last_error or "turn failed", 500)
        elif not r.complete and last_error:
            r.error = _short(last_error, 500)
        return r


class CodexAdapter(PricedAdapter):
    name = "codex"
    default_model = DEFAULT_MODEL

    def launch(self, req: AgentRequest) -> Launch:
        cfg = req.config
        self.remember(cfg.model, req.prices)
        argv = [cfg.binary or "codex", "exec", "--json", "-C", str(req.worktree), "--skip-git-repo-check"]
        argv += ["--sandbox", "workspace-write"]
        if cfg.model:
            argv += ["-m", cfg.model]
        argv += list(cfg.args)
        if req.resume_session:
            argv += ["resume", req.resume_session]
        # stdin stays closed: an open pipe would be appended to the prompt.
        return Launch([*argv, req.prompt], req.worktree)

    def parser(self) -> CodexParser:
        return CodexParser(self.model, self.prices)

    def classify(self, result: AgentResult, exit_code: int | None) -> Outcome:
        if result.complete and not result.is_error and exit_code in (0, None):
            return Outcome.OK
        text = result.error or result.text
        by_text = classify_text(text)
        if by_text == Outcome.OUT_OF_BUDGET:
            result.reset_at = reset_time(text)
        if by_text is not None:
            return by_text
        return Outcome.PERMANENT

    def auth_fix(self) -> str:
        return "codex is not logged in: run `codex login` or set CODEX_API_KEY / OPENAI_API_KEY"
