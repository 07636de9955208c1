"""Task sources (`source:`): where tasks come from besides `clanker task add`.

The controller pulls the source on start and every `poll_secs` (in a thread of its own: a slow
GitHub never holds up the fleet) and adds each task once, by the source's own id (`origin`):
one a person cancelled is not added again. When a sourced task lands or is blocked, the source
is told: a markdown checklist line is ticked, a GitHub issue gets a comment (and is closed on
landing with `close_on_land`).

A new source is one class with `pull`, `landed` and `blocked` (Linear or JIRA would be one module
each, like GitHub's here).
"""

from __future__ import annotations

import json
import os
import queue
import re
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import msgspec

from ..config import Config, SourceConfig
from ..errors import UsageError
from ..state import atomic
from ..state import events as ev
from ..state.events import Event
from ..state.fold import fold
from ..state.intake import Branches, added_event, parse_jsonl, parse_jsonl_text
from ..state.model import State
from ..system import proc as procs

CHECKBOX = re.compile(r"^(\s*[-*] )\[ \] (.+?)\s*$")
TIMEOUT_SECS = 20.0


@dataclass(frozen=True)
class Spec:
    origin: str
    fields: dict[str, Any] = field(default_factory=dict)


class Source(Protocol):
    def pull(self) -> list[Spec]: ...
    def landed(self, origin: str, task: str, sha: str) -> None: ...
    def blocked(self, origin: str, task: str, reason: str) -> None: ...


def _spec(kind: str, row: dict[str, Any]) -> Spec:
    """A row `task import` would take (intake checked it), keyed by the source's own id for it."""
    fields: dict[str, Any] = {
        k: row[k] for k in ("title", "prompt", "description", "paths", "priority", "tags") if k in row
    }
    return Spec(f"{kind}:{row.get('id') or row['title']}", fields)


class Silent:
    """A source that hears nothing back: nowhere to say a task landed or was blocked."""

    def landed(self, origin: str, task: str, sha: str) -> None: ...
    def blocked(self, origin: str, task: str, reason: str) -> None: ...


@dataclass
class Jsonl(Silent):
    """A JSONL file of tasks (what `task import` reads), followed as it grows."""

    path: Path

    def pull(self) -> list[Spec]:
        if not self.path.exists():
            return []
        return [_spec("jsonl", r) for r in parse_jsonl(self.path)]


@dataclass
class Script(Silent):
    """A command that prints JSONL tasks (flocks' script discovery)."""

    command: tuple[str, ...]
    cwd: Path

    def pull(self) -> list[Spec]:
        code, out, err = procs.capture(list(self.command), TIMEOUT_SECS, self.cwd)
        if code != 0:
            raise UsageError(f"source script `{' '.join(self.command)}` failed ({code}): {err.strip()[-200:]}")
        return [_spec("script", r) for r in parse_jsonl_text(out, " ".join(self.command))]


@dataclass
class Markdown:
    """A checklist file: each `- [ ] title` is a task, ticked (`- [x]`) when it lands."""

    path: Path

    def pull(self) -> list[Spec]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            m = CHECKBOX.match(line)
            if m:
                out.append(Spec(f"markdown:{self.path.name}:{m.group(2)}", {"title": m.group(2)}))
        return out

    def landed(self, origin: str, task: str, sha: str) -> None:
        title = origin.split(":", 2)[2]
        lines = self.path.read_text(encoding="utf-8").splitlines(keepends=True)
        for i, line in enumerate(lines):
            m = CHECKBOX.match(line.rstrip("\n"))
            if m and m.group(2) == title:
                lines[i] = line.replace("[ ]", "[x]", 1)
                atomic.write_text(self.path, "".join(lines))
                return

    def blocked(self, origin: str, task: str, reason: str) -> None: ...


@dataclass
class GitHub:
    """Issues with a label, through the REST API (any base URL: GitHub Enterprise too)."""

    cfg: SourceConfig

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        import urllib.error
        import urllib.request  # 13 ms at the controller's start, for a source most fleets don't have

        token = os.environ.get(self.cfg.token_env, "")
        headers = {"Accept": "application/vnd.github+json", "User-Agent": "clanker"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = json.dumps(body).encode() if body is not None else None
        if data is not None:
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.cfg.base_url.rstrip("/") + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT_SECS) as resp:  # noqa: S310 - the user's API
                raw = resp.read()
        except urllib.error.HTTPError as e:
            raise UsageError(f"GitHub {method} {path}: HTTP {e.code}") from None
        except (urllib.error.URLError, OSError) as e:
            raise UsageError(f"GitHub {method} {path}: {getattr(e, 'reason', e)}") from None
        return json.loads(raw) if raw else None

    def pull(self) -> list[Spec]:
        repo, label = self.cfg.repo, urllib.parse.quote(self.cfg.label)
        issues = self._call("GET", f"/repos/{repo}/issues?labels={label}&state=open&per_page=100") or []
        out = []
        for issue in issues:
            if "pull_request" in issue:
                continue
            n, title = issue["number"], str(issue["title"])
            prompt = f"{title}\n\n{issue.get('body') or ''}\n\n(GitHub issue {repo}#{n})".strip()
            out.append(Spec(f"github:{repo}#{n}", {"title": title, "prompt": prompt}))
        return out

    def _number(self, origin: str) -> int:
        return int(origin.rsplit("#", 1)[1])

    def landed(self, origin: str, task: str, sha: str) -> None:
        n = self._number(origin)
        self._call("POST", f"/repos/{self.cfg.repo}/issues/{n}/comments",
                   {"body": f"Landed on main as {sha} by clanker (task {task})."})  # fmt: skip
        if self.cfg.close_on_land:
            self._call("PATCH", f"/repos/{self.cfg.repo}/issues/{n}", {"state": "closed"})

    def blocked(self, origin: str, task: str, reason: str) -> None:
        self._call("POST", f"/repos/{self.cfg.repo}/issues/{self._number(origin)}/comments",
                   {"body": f"clanker could not finish task {task}: {reason}"})  # fmt: skip


def source_of(cfg: Config) -> Source | None:
    s = cfg.source
    if s is None:
        return None

    def place(p: str) -> Path:
        return Path(p) if Path(p).is_absolute() else cfg.repo / p

    if s.type == "jsonl":
        return Jsonl(place(s.path))
    if s.type == "markdown":
        return Markdown(place(s.path))
    if s.type == "script":
        return Script(s.command, cfg.repo)
    return GitHub(s)


def add_events(state: State, specs: list[Spec], branches: Branches, actor: str = "ctl") -> list[Event]:
    """task.added for each spec not added before (pure: by origin, whatever became of it)."""
    out: list[Event] = []
    st = state
    for spec in specs:
        if spec.origin in st.origins:
            continue
        try:
            e = added_event(st, {**spec.fields, "origin": spec.origin, "tags": ["sourced"]}, branches=branches)
        except UsageError:
            continue  # a row clanker can't make a task of: the source's problem, not the fleet's
        e = msgspec.structs.replace(e, actor=actor)
        out.append(e)
        st = fold(st, [(e, st.offset)])
    return out


class Puller:
    """Runs the source in a thread: pulls every `poll_secs`, tells it what landed or was
    blocked. The controller drains `pulled` into the log and calls `poll` with the state."""

    def __init__(self, cfg: Config, append: Callable[..., Any]) -> None:
        src = source_of(cfg)
        assert src is not None and cfg.source is not None
        self.src, self.cfg, self.append = src, cfg, append
        self.pulled: queue.Queue[list[Spec]] = queue.Queue()
        self._tell: queue.Queue[tuple[str, str, str, str]] = queue.Queue()
        self._stop = threading.Event()
        self._failing = False
        self._pull()  # on start, before anyone asks whether there is work
        self._thread = threading.Thread(target=self._work, name="source", daemon=True)
        self._thread.start()

    def _pull(self) -> None:
        try:
            self.pulled.put(self.src.pull())
            self._failing = False
        except UsageError as e:
            self._fail(f"pulling tasks: {e}")

    def poll(self, state: State, new: list[Event]) -> list[Spec]:
        """The tasks pulled since the last look (for `add_events` under the queue lock); and
        what to tell the source about the sourced tasks among the `new` events that landed or
        were blocked."""
        specs: list[Spec] = []
        while not self.pulled.empty():
            specs += self.pulled.get_nowait()
        ends = [e for e in new if isinstance(e, ev.Mainlined | ev.TaskBlocked)]
        if ends:  # looked up only then: the origins grow with the history
            mine = {task: origin for origin, task in state.origins.items()}
            for e in ends:
                origin = mine.get(e.task_id or "")
                if origin and isinstance(e, ev.Mainlined):
                    self._tell.put(("landed", origin, e.task, e.sha))
                elif origin and isinstance(e, ev.TaskBlocked):
                    self._tell.put(("blocked", origin, e.task, e.reason))
        return specs

    def close(self) -> None:
        self._stop.set()
        self._tell.put(("", "", "", ""))  # wake the thread
        self._thread.join(5)

    def _work(self) -> None:
        every = self.cfg.source.poll_secs if self.cfg.source else 60.0
        due = time.monotonic() + every
        while not self._stop.is_set():
            if time.monotonic() >= due:
                self._pull()
                due = time.monotonic() + every
            try:
                item = self._tell.get(timeout=max(0.05, due - time.monotonic()))
            except queue.Empty:
                continue
            self._deliver(item)
        while not self._tell.empty():  # what landed just before the end is told too
            self._deliver(self._tell.get_nowait())

    def _deliver(self, item: tuple[str, str, str, str]) -> None:
        what, origin, task, detail = item
        if not what:
            return
        try:
            (self.src.landed if what == "landed" else self.src.blocked)(origin, task, detail)
        except (UsageError, OSError) as e:
            self._fail(f"telling it {task} {what}: {e}")

    def _fail(self, why: str) -> None:
        if not self._failing:
            self._failing = True
            kind = self.cfg.source.type if self.cfg.source else "?"
            self.append(ev.Risk(actor="ctl", kind="source", message=f"source {kind}: {why}"[:300]))
