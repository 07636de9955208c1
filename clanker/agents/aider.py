"""Aider: plain text output. Tokens and cost come from its `Tokens: … Cost: …` lines; it exits 0
even when the API failed, so the outcome is read from its text."""

from __future__ import annotations

import re

from ..state.usage import Usage
from .base import AgentRequest, AgentResult, Launch, Outcome
from .classify import classify_text, reset_time

_TOKENS = re.compile(
    r"^Tokens:\s*(?P<body>.*?)(?:\.\s*Cost:\s*\$(?P<msg>[\d.]+) message, \$(?P<session>[\d.]+) session)?\.?\s*$"
)
_AMOUNT = re.compile(r"([\d.]+)\s*([kKmM]?)\s+(sent|received|cache write|cache hit)")
_EDIT = re.compile(r"^Applied edit to (.+)$")
# aider's own error reports (litellm exceptions and their descriptions), not any line with `error` in
# it: stdout also carries the model's reply and edit blocks (`except TimeoutError:`).
ERROR_HINTS = re.compile(
    r"^\s*(?:litellm\.\w+|The API provider|OpenRouter or the upstream API provider)|insufficient[_ ]credits|"
    r"insufficient_quota|exceeded your current quota|not able to authenticate|permission was denied|"
    r"has hit a token limit|exhausted context window",
    re.I,
)


def _num(value: str, suffix: str) -> int:
    scale = {"": 1, "k": 1000, "m": 1_000_000}[suffix.lower()]
    return round(float(value) * scale)  # int() would make 4.1k 4099


def parse_tokens(line: str) -> tuple[Usage, float | None] | None:
    """`Tokens: 12k sent, 1.1k cache write, 8.5k cache hit, 2.1k received. Cost: $0.03 message, $0.12 session.`"""
    m = _TOKENS.match(line.strip())
    if not m:
        return None
    parts = {kind: _num(v, sfx) for v, sfx, kind in _AMOUNT.findall(m.group("body"))}
    usage = Usage(
        input=parts.get("sent", 0), output=parts.get("received", 0),
        cache_read=parts.get("cache hit", 0), cache_write=parts.get("cache write", 0), turns=1,
    )  # fmt: skip
    session = float(m.group("session")) if m.group("session") else None
    return usage, session


class AiderParser:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.usage = Usage()
        self.session_cost: float | None = None
        self.files: list[str] = []
        self.problems: list[str] = []

    def feed(self, line: str) -> list[str]:
        self.lines.append(line)
        parsed = parse_tokens(line)
        if parsed:
            usage, session = parsed
            self.usage = self.usage + usage
            self.session_cost = session if session is not None else self.session_cost
            self.problems.clear()  # a call succeeded after them: aider retried past those errors
            return [line.strip()]
        m = _EDIT.match(line.strip())
        if m:
            self.files.append(m.group(1).strip())
            return [f"✎ edit {m.group(1).strip()}"]
        if ERROR_HINTS.search(line):
            self.problems.append(line.strip())
        return [line] if line.strip() else []

    def files_so_far(self) -> list[str]:
        return list(self.files)

    def usage_so_far(self) -> tuple[Usage, str | None]:
        # A `Tokens: … Cost: $… session` line after each model call.
        cost = self.session_cost if self.session_cost is not None else 0.0
        return Usage(self.usage.input, self.usage.output, self.usage.cache_read, self.usage.cache_write,
                     self.usage.turns, cost), None  # fmt: skip

    def feed_stderr(self, line: str) -> list[str]:
        if line.strip():
            self.problems.append(line.strip())
            return [f"stderr: {line.strip()}"]
        return []

    def result(self) -> AgentResult:
        text = "\n".join(self.lines[-60:]).strip()
        usage = Usage(self.usage.input, self.usage.output, self.usage.cache_read, self.usage.cache_write,
                      self.usage.turns, self.session_cost or 0.0)  # fmt: skip
        r = AgentResult(text=text, usage=usage, files=self.files)
        outcome = classify_text(" ".join(self.problems)) if self.problems else None
        if outcome is not None:
            r.is_error = True
            r.error = " ".join(self.problems[-3:])[:500]  # the description and the error it describes
        return r


class AiderAdapter:
    name = "aider"

    def launch(self, req: AgentRequest) -> Launch:
        cfg = req.config
        argv = [cfg.binary or "aider", "--message", req.prompt, "--yes-always", "--no-auto-commits", "--no-stream",
                "--no-pretty", "--no-fancy-input", "--no-check-update", "--analytics-disable"]  # fmt: skip
        if cfg.model:
            argv += ["--model", cfg.model]
        return Launch([*argv, *cfg.args], req.worktree)

    def parser(self) -> AiderParser:
        return AiderParser()

    def classify(self, result: AgentResult, exit_code: int | None) -> Outcome:
        # Aider exits 0 even when the API failed: its words decide, the exit code only breaks ties.
        if result.is_error:
            outcome = classify_text(result.error) or Outcome.PERMANENT
            if outcome == Outcome.OUT_OF_BUDGET:
                result.reset_at = reset_time(result.error)
            return outcome
        return Outcome.OK if exit_code in (0, None) else Outcome.PERMANENT

    def auth_fix(self) -> str:
        return "aider could not authenticate: set your model provider's key (e.g. ANTHROPIC_API_KEY or OPENAI_API_KEY)"
