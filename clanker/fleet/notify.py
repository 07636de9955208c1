"""Telling a person (`notify:`): a command (the notification's JSON on its stdin) or a webhook
(POSTed JSON whose `text` a Slack-compatible receiver shows).

The controller reads the events appended since it started and hands the ones worth a word to
a thread of its own, which delivers each to every receiver that wants its kind, retrying with
backoff; nothing here ever waits on a receiver in a slave's or the controller's loop. A receiver
that fails is a `RISK` line once per failing streak.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from ..config import Config, NotifyConfig
from ..state import events as ev
from ..state.codec import to_json
from ..state.events import Event
from ..state.model import State
from ..system import proc as procs
from ..system.clock import SYSTEM, Clock

TRIES = 6
TIMEOUT_SECS = 10.0


class Note(msgspec.Struct, frozen=True):
    kind: str  # one of config.NOTIFY_KINDS
    text: str
    task: str | None = None
    event: dict[str, Any] = msgspec.field(default_factory=dict)

    def payload(self, repo: Path) -> dict[str, Any]:
        return {"kind": self.kind, "text": f"clanker ({repo.name}): {self.text}", "repo": str(repo),
                "task": self.task, "event": self.event}  # fmt: skip


def note_for(e: Event) -> Note | None:
    """The notification an event makes, if any (pure)."""
    raw = to_json(e)
    if isinstance(e, ev.TaskBlocked):
        return Note("task.blocked", f"{e.task} is blocked: {e.reason}", e.task, raw)
    if isinstance(e, ev.MainRed):
        return Note("main.red", f"main is red at {e.sha[:8]}" + (f" ({e.where})" if e.where else ""), None, raw)
    if isinstance(e, ev.MainGreen):
        return Note("main.green", f"main is green again at {e.sha[:8]}", None, raw)
    if isinstance(e, ev.BudgetExceeded):
        return Note("budget.exceeded", f"budget {e.budget} spent: no new agent run starts", None, raw)
    if isinstance(e, ev.BudgetWarned):
        return Note("budget.warned", f"budget {e.budget} is 80% spent ({e.used:g} of {e.limit:g})", None, raw)
    if isinstance(e, ev.CredentialExhausted):
        return Note("usage.paused", f"credential {e.credential or '?'} hit its usage limit: its slaves pause", None,
                    raw)  # fmt: skip
    if isinstance(e, ev.Risk) and e.kind in ("stall", "auth"):
        return Note("agent.waiting", f"{e.kind}: {e.message}"[:300], e.task, raw)
    return None


def resumed(state: State, said: set[tuple[str, float]], now: float) -> list[Note]:
    """Usage limits that have reset since they were said (pure; `said` is updated)."""
    out = []
    for name, until in state.credentials.items():
        if until > now:
            said.add((name, until))
        elif (name, until) in said:
            said.discard((name, until))
            out.append(Note("usage.resumed", f"credential {name} is usable again: its slaves resume"))
    return out


def deliver(target: NotifyConfig, body: dict[str, Any], cwd: Path) -> str | None:
    """One delivery; None when it was taken, else why not."""
    data = json.dumps(body).encode("utf-8")
    if target.url:
        import urllib.error
        import urllib.request  # 13 ms at the controller's start, for a webhook most fleets don't have

        req = urllib.request.Request(target.url, data=data, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT_SECS) as resp:  # noqa: S310 - the user's URL
                return None if 200 <= resp.status < 300 else f"HTTP {resp.status}"
        except urllib.error.HTTPError as e:
            return f"HTTP {e.code}"
        except (urllib.error.URLError, OSError) as e:
            return str(getattr(e, "reason", e))[:200]
    code, out, err = procs.capture(list(target.command), TIMEOUT_SECS, cwd, stdin=data.decode("utf-8"))
    if code is None:
        return f"no answer in {TIMEOUT_SECS:.0f}s"
    return None if code == 0 else f"exit {code}: {(out + err).strip()[-200:]}"


class Notifier:
    """Delivers what the events the controller hands it (the new ones of each tick) are worth."""

    def __init__(self, cfg: Config, append: Callable[[Event], None], clock: Clock = SYSTEM) -> None:
        self.cfg = cfg
        self.append = append
        self.clock = clock
        self._q: queue.Queue[tuple[NotifyConfig, Note] | None] = queue.Queue()
        self._said: set[tuple[str, float]] = set()
        self._failing: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name="notify", daemon=True)
        self._thread.start()

    def poll(self, state: State, new: list[Event]) -> None:
        notes = [n for e in new if (n := note_for(e)) is not None]
        notes += resumed(state, self._said, self.clock.time())
        for n in notes:
            self.send(n)

    def send(self, note: Note) -> None:
        for target in self.cfg.notify:
            if note.kind in target.events:
                self._q.put((target, note))

    def close(self, drain_secs: float = 5.0) -> None:
        """Deliver what is queued (for up to `drain_secs`), then stop."""
        self._q.put(None)
        self._thread.join(drain_secs)
        self._stop.set()

    def _work(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                return
            target, note = item
            self._one(target, note)

    def _one(self, target: NotifyConfig, note: Note) -> None:
        body = note.payload(self.cfg.repo)
        for attempt in range(1, TRIES + 1):
            why = deliver(target, body, self.cfg.repo)
            if why is None:
                if target.target in self._failing:
                    self._failing.discard(target.target)
                return
            if target.target not in self._failing:
                self._failing.add(target.target)
                self.append(ev.Risk(actor="ctl", task=None, kind="notify",
                                    message=f"{target.target}: {why}; retrying ({note.kind})"[:300]))  # fmt: skip
            if attempt < TRIES:
                wait = min(self.cfg.retry_cap_secs, self.cfg.retry_base_secs * 2 ** (attempt - 1))
                if self._stop.wait(wait):
                    return
        self.append(ev.Risk(actor="ctl", task=None, kind="notify",
                            message=f"{target.target}: gave up on a {note.kind} after {TRIES} tries"))  # fmt: skip
