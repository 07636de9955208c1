"""Adapter for the built-in fake agent (`clanker.agents.fakebin`)."""

from __future__ import annotations

import sys

from ..state.usage import Usage
from .base import AgentRequest, AgentResult, Launch, Outcome, Ran
from .runner import json_line


class FakeParser:
    def __init__(self) -> None:
        self._result = AgentResult()
        self._written: list[str] = []
        self._so_far = Usage()

    def feed(self, line: str) -> list[str]:
        ev = json_line(line)
        if ev is None:
            return [line] if line.strip() else []
        kind = ev.get("type")
        if kind == "start":
            self._result.session_id = str(ev.get("session_id") or "") or None
            return [f"▶ fake agent started (session {self._result.session_id})"]
        if kind == "say":
            return [f"· {ev.get('text', '')}"]
        if kind == "tool":
            if ev.get("tool") in ("write", "append", "edit", "delete") and ev.get("path"):
                self._written.append(str(ev.get("path")))
            return [f"✎ {ev.get('tool')} {ev.get('path', '')}".rstrip()]
        if kind == "shell":
            code = ev.get("exit_code")
            self._result.commands.append(Ran(str(ev.get("command")), code if isinstance(code, int) else None))
            return [f"$ {ev.get('command')}", *([f"  ↳ exit {code}"] if code else [])]
        if kind == "usage":  # a turn's usage, mid-run
            raw = ev.get("usage")
            turn = Usage.from_json(raw if isinstance(raw, dict) else None)
            self._so_far = self._so_far + Usage(turn.input, turn.output, 0, 0, 1, float(str(ev.get("cost_usd", 0.0))))
            return [f"· used {turn.input + turn.output:,} tokens"]
        if kind == "result":
            r = self._result
            r.text = str(ev.get("text", ""))
            r.is_error = bool(ev.get("is_error"))
            r.error = r.text if r.is_error else ""
            kind_ = ev.get("error_kind")
            r.error_kind = str(kind_) if kind_ else None
            raw_usage = ev.get("usage")
            usage = Usage.from_json(raw_usage if isinstance(raw_usage, dict) else None)
            r.usage = Usage(usage.input, usage.output, 0, 0, usage.turns, float(str(ev.get("cost_usd", 0.0))))
            r.session_id = str(ev.get("session_id") or r.session_id or "") or None
            reset = ev.get("reset_at")
            r.reset_at = float(reset) if isinstance(reset, int | float) else None
            files = ev.get("files")
            r.files = [str(f) for f in files] if isinstance(files, list) else []
            mark = "✗" if r.is_error else "✓"
            return [f"{mark} {r.text}"]
        return []

    def files_so_far(self) -> list[str]:
        return list(self._written)

    def feed_stderr(self, line: str) -> list[str]:
        return [f"stderr: {line}"] if line.strip() else []

    def usage_so_far(self) -> tuple[Usage, str | None]:
        return (self._result.usage if self._result.usage.tokens else self._so_far), None

    def result(self) -> AgentResult:
        return self._result


class FakeAdapter:
    name = "fake"

    def launch(self, req: AgentRequest) -> Launch:
        env = {"CLANKER_RESUME_SESSION": req.resume_session} if req.resume_session else {}
        if req.config.model:
            env["CLANKER_FAKE_MODEL"] = req.config.model
        return Launch([sys.executable, "-m", "clanker.agents.fakebin"], req.worktree, env, stdin=req.prompt)

    def parser(self) -> FakeParser:
        return FakeParser()

    def auth_fix(self) -> str:
        return "the fake agent reported an auth error (scripted): remove the `fake: error auth` line"

    def classify(self, result: AgentResult, exit_code: int | None) -> Outcome:
        if result.error_kind:
            try:
                return Outcome(result.error_kind)
            except ValueError:
                return Outcome.PERMANENT
        if result.is_error or exit_code not in (0, None):
            return Outcome.PERMANENT
        return Outcome.OK
