"""Run one agent process: stream its output, log it, enforce timeout and stall limits."""

from __future__ import annotations

import dataclasses
import json
import queue
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import IO, Literal

import msgspec

from ..state.secrets import redact
from ..state.usage import Usage
from ..system import machine
from ..system import proc as procs
from ..system.clock import SYSTEM, Clock
from . import prices
from .base import Adapter, AgentRequest, AgentResult, Outcome, StreamParser, sanitize
from .launch import Process, prepare

Stream = Literal["out", "err"]
RSS_EVERY_SECS = 2.0  # how often the agent's memory is sampled while it runs
# A chatty agent prints hundreds of lines a second: the slave's tick (its loop is alive, a takeover
# or a spent budget stops the run) reads the log each time, so it runs at most this often.
TICK_EVERY_SECS = 0.25


# What the run loop reads from its one queue: a line from a stream, a stream's end, or cancel().
class Line(msgspec.Struct, frozen=True):
    stream: Stream
    text: str


class Closed(msgspec.Struct, frozen=True):
    stream: Stream


class Cancel(msgspec.Struct, frozen=True):
    pass


Message = Line | Closed | Cancel


class RunResult(msgspec.Struct):
    result: AgentResult
    outcome: Outcome
    exit_code: int | None
    seconds: float
    timed_out: bool = False
    stalled: bool = False
    cancelled: bool = False
    credential: str = ""
    peak_rss_mb: int = 0  # the most memory the agent's process group held at once (sampled)


class AgentRun:
    """One agent process. `cancel()` may be called from a signal handler or another thread."""

    def __init__(
        self,
        adapter: Adapter,
        req: AgentRequest,
        log_path: Path,
        progress: Callable[[str], None],
        launch_guard: Callable[[], AbstractContextManager[object]] = nullcontext,
        on_start: Callable[[int], None] = lambda _pgid: None,
        on_files: Callable[[list[str]], None] | None = None,
        clock: Clock = SYSTEM,
        on_tick: Callable[[], None] = lambda: None,
        tick_secs: float | None = None,
        on_usage: Callable[[Usage], bool] | None = None,
        wrap: Callable[[Process], Process] | None = None,
    ) -> None:
        self.clock = clock
        self.wrap = wrap
        self.on_tick = on_tick  # at least every `tick_secs` while it runs: the slave's loop is alive
        self.tick_secs = tick_secs
        self.on_files = on_files
        # Told what the run has used each time its stream reports more; True stops the agent (a
        # budget would be overshot): one stream event is the most any run can go past it.
        self.on_usage = on_usage
        self.stopped_for_spend = False
        self.peak_rss_mb = 0
        self._sampled = float("-inf")
        self.adapter = adapter
        self.launch_guard = launch_guard
        self.on_start = on_start
        self.req = req
        self.log_path = log_path
        self.progress = progress
        self.proc: procs.Popen | None = None
        self._q: queue.Queue[Message] = queue.Queue()
        self._cancelled = False

    @property
    def pgid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def cancel_asked(self) -> bool:
        return self._cancelled

    def cancel(self) -> None:
        self._cancelled = True
        self._q.put(Cancel())

    def run(self) -> RunResult:
        res = self._run()
        res.peak_rss_mb = self.peak_rss_mb
        return res

    def _run(self) -> RunResult:
        proc_spec = prepare(self.req, self.adapter.launch(self.req))
        if self.wrap is not None:
            proc_spec = self.wrap(proc_spec)  # run by an executor elsewhere (ssh, a container)
        parser = self.adapter.parser()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        started = self.clock.monotonic()
        cfg = self.req.config
        timed_out = stalled = False
        with (
            open(self.log_path, "ab") as raw,
            open(self.log_path.with_suffix(".txt"), "a", encoding="utf-8") as txt,
        ):
            txt.write(f"# {self.req.role} {self.req.task_id} attempt {self.req.attempt} by {self.req.slave}\n")
            txt.flush()

            def show(lines: list[str]) -> None:
                for line in lines:
                    clean = redact(sanitize(line))
                    txt.write(clean + "\n")
                    self.progress(clean)
                txt.flush()

            try:
                with self.launch_guard():
                    self.proc = self._spawn(proc_spec)
            except OSError as e:
                msg = f"can't start {proc_spec.argv[0]}: {e.strerror}"
                show([msg])
                res = AgentResult(is_error=True, error=msg, error_kind="permanent")
                return RunResult(res, Outcome.PERMANENT, None, 0.0)
            proc = self.proc
            self.on_start(proc.pid)
            threads = [
                threading.Thread(target=self._pump, args=("out", proc.stdout), daemon=True),
                threading.Thread(target=self._pump, args=("err", proc.stderr), daemon=True),
            ]
            if proc_spec.stdin is not None:
                feed = (proc.stdin, proc_spec.stdin, not proc_spec.hold_stdin)
                threads.append(threading.Thread(target=self._feed, args=feed, daemon=True))
            for t in threads:
                t.start()
            try:
                timed_out, stalled = self._stream(proc, parser, raw, show, started)
            except BaseException:
                # Whatever went wrong here (a pane that can't be written to, an interrupt), the agent
                # must not outlive its run: an orphan would write into the next job's worktree.
                procs.stop(proc)
                raise
            # Both streams closed: the agent is exiting, or left children holding nothing open.
            code = procs.wait(proc, 10)
            if code is None:
                code = procs.stop(proc)
        seconds = self.clock.monotonic() - started
        result = parser.result()
        so_far, model = parser.usage_so_far()
        if so_far.tokens > result.usage.tokens:
            # Stopped (or dead) before its final report: what it used is still spent.
            result.usage = self._priced(so_far, model or result.model)
        if self._cancelled:
            return RunResult(result, Outcome.TRANSIENT, code, seconds, cancelled=True)
        if timed_out:
            # An agent that ran past its time limit failed this attempt; the next one is told so.
            result.is_error = True
            result.error = f"agent timed out after {cfg.timeout_secs:.0f}s (agent.timeout_secs)"
            return RunResult(result, Outcome.PERMANENT, code, seconds, timed_out=True)
        if stalled:
            result.is_error = True
            result.error = f"agent stalled: no output for {cfg.stall_secs:.0f}s"
            return RunResult(result, Outcome.TRANSIENT, code, seconds, stalled=True)
        return RunResult(result, self.adapter.classify(result, code), code, seconds)

    def _stream(
        self,
        proc: procs.Popen,
        parser: StreamParser,
        raw: IO[bytes],
        show: Callable[[list[str]], None],
        started: float,
    ) -> tuple[bool, bool]:
        """Read the agent's streams until both close, or until it times out, stalls or is
        cancelled (then it is stopped). Returns (timed out, stalled)."""
        cfg = self.req.config
        timed_out = stalled = False
        open_streams = 2
        reported = 0  # files of the stream already passed to on_files
        used = Usage()  # what the stream reported so far, last time on_usage was told
        last_output = self.clock.monotonic()
        ticked = float("-inf")
        while open_streams:
            now = self.clock.monotonic()
            if now - ticked >= TICK_EVERY_SECS:
                ticked = now
                self.on_tick()
            if now - self._sampled >= RSS_EVERY_SECS:
                self._sampled = now
                self.peak_rss_mb = max(self.peak_rss_mb, machine.group_rss_mb(proc.pid))
            deadlines = [self.tick_secs] if self.tick_secs else []
            if cfg.timeout_secs:
                deadlines.append(started + cfg.timeout_secs - now)
            if cfg.stall_secs:
                deadlines.append(last_output + cfg.stall_secs - now)
            try:
                item = self.clock.get(self._q, max(0.0, min(deadlines)) if deadlines else None)
            except queue.Empty:
                now = self.clock.monotonic()
                if cfg.timeout_secs and now - started >= cfg.timeout_secs:
                    timed_out = True
                    show([f"agent timed out after {cfg.timeout_secs:.0f}s: stopping it"])
                elif cfg.stall_secs and now - last_output >= cfg.stall_secs:
                    stalled = True
                    show([f"agent printed nothing for {cfg.stall_secs:.0f}s: stopping it"])
                else:
                    continue  # a tick: nothing to do but say the loop is alive
                procs.stop(proc)
                break
            if isinstance(item, Cancel):
                procs.stop(proc)
                break
            if isinstance(item, Closed):
                open_streams -= 1
                continue
            line = item.text
            last_output = self.clock.monotonic()
            if item.stream == "out":
                raw.write(redact(line).encode("utf-8") + b"\n")
                raw.flush()
                show(parser.feed(line))
                if self.on_usage is not None:
                    now_used, model = parser.usage_so_far()
                    if now_used != used:
                        used = now_used
                        if self.on_usage(self._priced(used, model)):
                            self.stopped_for_spend = self._cancelled = True
                            procs.stop(proc)
                            break
                if self.on_files is not None:
                    files = parser.files_so_far()
                    if len(files) > reported:
                        self.on_files(list(files[reported:]))
                        reported = len(files)
            else:
                show(parser.feed_stderr(line))
        return timed_out, stalled

    def _priced(self, usage: Usage, model: str | None) -> Usage:
        """`usage` with a cost: the agent's own, or its tokens at the configured prices."""
        if usage.cost_usd or not usage.tokens:
            return usage
        return dataclasses.replace(usage, cost_usd=prices.cost(model or self.req.config.model, usage, self.req.prices))

    @staticmethod
    def _spawn(spec: Process) -> procs.Popen:
        stdin = procs.PIPE if spec.stdin is not None else procs.DEVNULL
        return procs.spawn(spec.argv, spec.cwd, spec.env, stdin=stdin)

    def _pump(self, name: Stream, stream: IO[bytes] | None) -> None:
        assert stream is not None
        for raw in iter(stream.readline, b""):
            self._q.put(Line(name, raw.decode("utf-8", "replace").rstrip("\r\n")))
        self._q.put(Closed(name))

    @staticmethod
    def _feed(stdin: IO[bytes] | None, text: str, close: bool = True) -> None:
        assert stdin is not None
        try:
            stdin.write(text.encode("utf-8"))
            stdin.flush()
            if close:
                stdin.close()
        except (BrokenPipeError, OSError):
            pass


def json_line(line: str) -> dict[str, object] | None:
    try:
        obj = json.loads(line)
    except (json.JSONDecodeError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None
