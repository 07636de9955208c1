"""`clanker status`: tasks and slaves at a glance, as text or as JSON for scripts."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from . import heartbeat
from .config import Config
from .model import S, State, Task
from .paths import Paths
from .text import sanitize
from .tmux import Pane

ORDER = [S.CLAIMED, S.JUDGING, S.NEEDS_JUDGE, S.REWORK, S.READY, S.BLOCKED, S.DONE, S.CANCELLED, S.SPLIT]


@dataclass(frozen=True)
class SlaveRow:
    id: str
    state: str  # working | judging | idle | dead | stopped | paused | starting
    task: str | None
    heartbeat_age_s: float | None
    pane: str
    phase: str


def slave_rows(cfg: Config, paths: Paths, state: State, panes: dict[str, Pane] | None = None) -> list[SlaveRow]:
    beats = heartbeat.read_all(paths)
    panes = panes or {}
    ids = (
        {f"c{n}" for n in range(1, cfg.slaves + 1)}
        | {b for b in beats if b != "ctl"}
        | {p for p in panes if p != "ctl"}
    )
    rows = []
    now = time.time()
    for sid in sorted(ids, key=lambda s: (len(s), s)):
        beat = beats.get(sid)
        pane = panes.get(sid)
        holding = next((t for t in state.tasks.values() if t.slave == sid and t.state in (S.CLAIMED, S.JUDGING)), None)
        if beat is None:
            st = "absent"
        elif beat.stopped:
            st = "stopped"
        elif heartbeat.is_dead(beat, cfg.heartbeat_secs, now, pane_dead=bool(pane and pane.dead)):
            st = "dead"
        elif sid in state.paused or "*" in state.paused:
            st = "paused"
        elif holding is not None:
            st = "working" if holding.state == S.CLAIMED else "judging"
        else:
            st = "idle"
        rows.append(
            SlaveRow(
                id=sid,
                state=st,
                task=holding.id if holding else None,
                heartbeat_age_s=round(beat.age(now), 1) if beat else None,
                pane=pane.id if pane else (beat.pane if beat else ""),
                phase=beat.phase if beat else "",
            )
        )
    return rows


def to_json(state: State, rows: list[SlaveRow]) -> dict[str, Any]:
    return {
        "tasks": [
            {
                "id": t.id,
                "title": t.title,
                "state": str(t.state),
                "slave": t.slave or t.author,
                "attempts": t.attempts,
                "tokens": t.usage.tokens,
                "cost_usd": round(t.usage.cost_usd, 6),
                "work": t.work.to_json(),
                "judge": t.judge.to_json(),
                "reason": t.reason,
                "sha": t.sha,
            }
            for t in state.tasks.values()
        ],
        "slaves": [
            {
                "id": r.id,
                "state": r.state,
                "task": r.task,
                "heartbeat_age_s": r.heartbeat_age_s,
                "pane": r.pane,
            }
            for r in rows
        ],
    }


def fmt_tokens(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1e6:.1f}M"
    if n >= 1000:
        return f"{n / 1000:.1f}k"
    return str(n)


def fmt_age(seconds: float) -> str:
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h"
    return f"{s // 86400}d"


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def render(state: State, rows: list[SlaveRow], width: int = 100) -> str:
    now = time.time()
    lines = []
    counts = {s: 0 for s in ORDER}
    for t in state.tasks.values():
        counts[t.state] += 1
    summary = "  ".join(f"{s}:{n}" for s, n in counts.items() if n)
    total = sum((t.usage for t in state.tasks.values()), start=Task("x", "x").usage)
    work_cost = sum(t.work.cost_usd for t in state.tasks.values())
    judge_cost = sum(t.judge.cost_usd for t in state.tasks.values())
    lines.append(f"tasks {len(state.tasks)}  {summary or 'none yet: `clanker task add TITLE`'}")
    lines.append(
        f"tokens {fmt_tokens(total.tokens)}  cost ${total.cost_usd:.2f} "
        f"(work ${work_cost:.2f}, judge ${judge_cost:.2f})"
    )
    lines.append("")
    lines.append("SLAVE  STATE     TASK        PHASE          BEAT  PANE")
    for r in rows:
        beat = "-" if r.heartbeat_age_s is None else fmt_age(r.heartbeat_age_s)
        lines.append(
            f"{r.id:<6} {r.state:<9} {(r.task or '-'):<11} {_clip(r.phase or '-', 14):<14} {beat:>4}  {r.pane}"
        )
    lines.append("")
    lines.append("TASK        STATE        SLAVE  TRY  TOKENS    COST   AGE  TITLE")
    for t in sorted(state.tasks.values(), key=lambda t: (ORDER.index(t.state), t.created)):
        age = fmt_age(now - (t.started or t.updated or now))
        title = _clip(sanitize(t.title), max(10, width - 62))
        lines.append(
            f"{t.id:<11} {t.state:<12} {(t.slave or t.author or '-'):<6} {t.attempts:>3}  "
            f"{fmt_tokens(t.usage.tokens):>6} {t.usage.cost_usd:>7.3f} {age:>5}  {title}"
        )
        if t.state in (S.BLOCKED, S.REWORK) and t.reason:
            lines.append(f"{'':<12}↳ {_clip(sanitize(t.reason), width - 14)}")
        waits = [d for d in t.depends_on if d in state.tasks and state.tasks[d].state != S.DONE]
        if t.state == S.READY and waits:
            on = ", ".join(f"{d} ({state.tasks[d].state})" for d in waits)
            lines.append(f"{'':<12}↳ waits on {on}")
    return "\n".join(lines)
