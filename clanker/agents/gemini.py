"""Gemini CLI: `gemini -p … --output-format stream-json` (no cost reported: priced from a table)."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ..state.usage import Usage
from .base import AgentRequest, AgentResult, Launch, Outcome, Ran
from .classify import classify_text, reset_time
from .claude import _short
from .prices import PricedAdapter, cost
from .runner import json_line

DEFAULT_MODEL = "gemini-2.5-flash"


def _usage(tok: dict[str, Any]) -> Usage:
    """One token record: stream-json's flat {input_tokens, output_tokens, cached, input} (input =
    the uncached part) or json's {prompt, candidates, cached}."""
    cached = int(tok.get("cached") or tok.get("cached_tokens") or 0)
    if "input" in tok:
        uncached = int(tok.get("input") or 0)
    else:
        uncached = max(0, int(tok.get("input_tokens") or tok.get("prompt") or 0) - cached)
    output = int(tok.get("output_tokens") or tok.get("candidates") or tok.get("output") or 0)
    return Usage(input=uncached, output=output, cache_read=cached)


def usage_from_stats(stats: dict[str, Any]) -> Usage:
    """`result.stats`: per model under `models` (stream-json: flat records; json: under `tokens`)."""
    models = stats.get("models")
    if isinstance(models, dict) and models:
        total = Usage()
        for m in models.values():
            if isinstance(m, dict):
                nested = m.get("tokens")
                total = total + _usage(nested if isinstance(nested, dict) else m)
        return total
    return _usage(stats)


class GeminiParser:
    def __init__(self, model: str | None, prices: dict[str, Any]) -> None:
        self.r = AgentResult(complete=False, model=model)
        self.prices = prices
        self.text: list[str] = []
        self.errors: list[str] = []
        self.turns = 0

    def feed(self, line: str) -> list[str]:
        ev = json_line(line)
        if ev is None:
            return [line] if line.strip() else []
        kind = ev.get("type")
        if kind == "init":
            self.r.session_id = str(ev.get("session_id") or "") or None
            self.r.model = str(ev.get("model") or self.r.model or "") or None
            return [f"▶ gemini {self.r.model or ''} (session {self.r.session_id})"]
        if kind == "message" and ev.get("role") == "assistant":
            chunk = str(ev.get("content") or "")
            self.text.append(chunk)
            return []
        if kind == "tool_use":
            self.turns += 1
            name = str(ev.get("tool_name") or ev.get("name") or "")
            params = ev.get("parameters") if isinstance(ev.get("parameters"), dict) else {}
            assert isinstance(params, dict)
            path = params.get("file_path") or params.get("absolute_path") or params.get("path")
            if path and name in ("write_file", "replace", "edit"):
                self.r.files.append(str(path))
                return [f"✎ {name} {path}"]
            if name in ("run_shell_command", "shell") and params.get("command"):
                # stream-json reports a command's output, not its exit code (a failing command's
                # result is status "success" too), so the code stays unsaid.
                self.r.commands.append(Ran(str(params["command"]), None))
                return [f"$ {_short(str(params['command']), 160)}"]
            return [f"⚙ {name} {_short(json.dumps(params, ensure_ascii=False), 120)}"]
        if kind == "tool_result" and ev.get("status") == "error":
            return [f"  ↳ tool error: {_short(str(ev.get('output') or ev.get('error')), 160)}"]
        if kind == "error":
            msg = str(ev.get("message") or ev.get("error") or "")
            self.errors.append(msg)
            return [f"! {_short(msg, 200)}"]
        if kind == "result":
            return self._result(ev)
        if "response" in ev or "stats" in ev:  # --output-format json: one object
            self.text.append(str(ev.get("response") or ""))
            return self._result({"status": "error" if ev.get("error") else "success", **ev})
        return []

    def _result(self, ev: dict[str, Any]) -> list[str]:
        r = self.r
        r.complete = True
        stats = ev.get("stats") if isinstance(ev.get("stats"), dict) else {}
        assert isinstance(stats, dict)
        usage = usage_from_stats(stats)
        r.usage = Usage(usage.input, usage.output, usage.cache_read, 0, max(1, self.turns), 0.0)
        err = ev.get("error")
        if ev.get("status") not in (None, "success") or err:
            r.is_error = True
            msg = err.get("message") if isinstance(err, dict) else err
            r.error = _short(str(msg or (self.errors[-1] if self.errors else "gemini reported an error")), 500)
            return [f"✗ {_short(r.error, 200)}"]
        return [f"✓ {_short(''.join(self.text), 160)}"]

    def files_so_far(self) -> list[str]:
        return list(self.r.files)

    def usage_so_far(self) -> tuple[Usage, str | None]:
        return self.r.usage, self.r.model  # gemini reports its stats once, at the end

    def feed_stderr(self, line: str) -> list[str]:
        if not line.strip():
            return []
        obj = json_line(line)
        err = obj.get("error") if obj else None
        if isinstance(err, dict):
            self.errors.append(str(err.get("message") or ""))
            code = err.get("code")
            self.r.api_status = int(code) if isinstance(code, int) else self.r.api_status
        else:
            self.errors.append(line)
        return [f"stderr: {_short(line)}"]

    def result(self) -> AgentResult:
        r = self.r
        r.text = "".join(self.text).strip()
        r.usage = Usage(r.usage.input, r.usage.output, r.usage.cache_read, 0, r.usage.turns,
                        cost(r.model, r.usage, self.prices))  # fmt: skip
        if not r.complete and self.errors:
            r.is_error = True
            r.error = _short(self.errors[-1], 500)
        return r


def next_pacific_midnight(now: float | None = None) -> float:
    la = ZoneInfo("America/Los_Angeles")
    today = datetime.fromtimestamp(time.time() if now is None else now, la)
    return (today.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)).timestamp()


class GeminiAdapter(PricedAdapter):
    name = "gemini"
    default_model = DEFAULT_MODEL

    def launch(self, req: AgentRequest) -> Launch:
        cfg = req.config
        model = self.remember(cfg.model, req.prices)
        argv = [cfg.binary or "gemini", "-p", req.prompt, "--output-format", "stream-json", "-m", model]
        if cfg.permission_mode == "bypassPermissions":
            argv += ["--yolo", "--skip-trust"]  # unattended: no tool prompts, no folder-trust prompt
        if req.resume_session:
            argv += ["--resume", req.resume_session]
        return Launch([*argv, *cfg.args], req.worktree)

    def parser(self) -> GeminiParser:
        return GeminiParser(self.model, self.prices)

    def classify(self, result: AgentResult, exit_code: int | None) -> Outcome:
        if result.complete and not result.is_error and exit_code in (0, None):
            return Outcome.OK
        text = f"{result.error} {result.text}"
        if result.api_status in (401, 403):
            return Outcome.AUTH
        by_text = classify_text(text)
        # A quotaId like GenerateRequestsPerDayPerProject…, or "You have exhausted your daily quota".
        daily = re.search(r"per ?day|daily quota", text, re.I)
        if by_text == Outcome.OUT_OF_BUDGET or daily:
            # Gemini names no reset time; its per-day quotas reset at midnight Pacific time.
            result.reset_at = reset_time(text) or (next_pacific_midnight() if daily else None)
            return Outcome.OUT_OF_BUDGET
        if result.api_status == 429 or (result.api_status or 0) >= 500:
            return Outcome.TRANSIENT  # the HTTP status it printed on stderr, whatever its exit code
        if by_text is not None:
            return by_text
        if exit_code is not None and exit_code not in (0, 1, 42, 53):
            # The CLI exits with the HTTP status mod 256: 429 → 173, 5xx → 244…
            status = exit_code + 256
            if status == 429 or 500 <= status < 600:
                return Outcome.TRANSIENT
        if exit_code == 53:
            return Outcome.OUT_OF_BUDGET  # turn limit
        return Outcome.PERMANENT

    def auth_fix(self) -> str:
        return "gemini has no credentials: set GEMINI_API_KEY (or run `gemini` once to log in)"
