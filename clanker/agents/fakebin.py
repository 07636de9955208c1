"""The fake agent program: a real process, scripted by `fake:` lines in its prompt.

It stands in for the LLM in the demo and the tests, and goes through exactly the same launch,
stream, log and classify path as a real agent. Worker directives (`fake: …`, one per line):

  write PATH TEXT…        write a file (TEXT: `\\n` for newlines)
  append PATH TEXT…       append a line to a file
  delete PATH             remove a file
  sleep SECONDS           take this long
  say TEXT…               print a progress message
  run COMMAND…            run a shell command in the worktree (reported with its exit code)
  fail-gate-once [PATH]   attempt 1 leaves PATH (default GATE_FAIL) behind, later attempts remove it
  on-attempt N DIRECTIVE  run DIRECTIVE only on attempt N
  times N DIRECTIVE       run DIRECTIVE only in the first N runs of an attempt (retries are runs too)
  exit CODE [MESSAGE…]    fail with this exit code
  error KIND [MESSAGE…]   report an error of KIND (transient|out_of_budget|auth|permanent); a
                          MESSAGE containing `resets-in SECONDS` names a reset time
  print-env NAME          print the value of an environment variable (an agent leaking a secret)
  digest-env NAME PATH    write the sha256 of an environment variable to PATH (it had it, not leaked)
  follow-up TITLE…        propose a follow-up task (a `FOLLOW-UP:` line in the final answer)
  title TEXT…             print an OSC terminal-title escape (clanker must not let it through)
  hang                    print nothing, forever (stall detection)
  leave-conflicts         leave merge conflict markers as they are (by default they are resolved,
                          keeping both sides)
  tokens IN OUT           the token counts to report
  spend IN OUT            report a turn's usage now, mid-run (added to the final counts)

Judge directives (`fake-judge: …`): `rework-once REASON…`, `rework REASON…`, `block REASON…`,
`sleep SECONDS`; the default verdict is done.

Planner directives (`fake-plan: TITLE :: PROMPT`, PROMPT with `\\n` for new lines): each becomes a
`TASK:` line. When the prompt asks to split a task, only the lines of that task count.
`fake-concurrency: N WHY` becomes the planner's advice line, `CONCURRENCY: N — WHY`;
`fake-rescope: PROMPT` its rewrite of the task being planned, `RESCOPE: {"prompt": PROMPT}`;
`fake-merge: T1,T2 :: TITLE :: PROMPT` a merge of queued tasks, `MERGE: {…}`. Asked to roll up
a week, it answers the facts' landed tasks and a decision, or, when a note has a `fake-rollup:
TEXT` line, TEXT.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import sys
import time
from pathlib import Path

PRICE_IN, PRICE_OUT = 3.0 / 1e6, 15.0 / 1e6  # $ per token, for a realistic-looking demo bill


def emit(obj: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def directives(prompt: str, prefix: str) -> list[list[str]]:
    out = []
    for line in prompt.splitlines():
        stripped = line.strip()
        if stripped.startswith(prefix + ":"):
            try:
                out.append(shlex.split(stripped[len(prefix) + 1 :]))
            except ValueError:
                out.append(stripped[len(prefix) + 1 :].split())
    return [d for d in out if d]


def resolve_conflicts(root: Path) -> list[str]:
    """Keep both sides of every conflict block: what a cooperative agent would do by default."""
    fixed = []
    block = re.compile(r"<<<<<<< [^\n]*\n(.*?)=======\n(.*?)>>>>>>> [^\n]*\n", re.S)
    for path in root.rglob("*"):
        if ".git" in path.parts or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if "<<<<<<< " in text:
            path.write_text(block.sub(lambda m: m.group(1) + m.group(2), text), encoding="utf-8")
            fixed.append(str(path.relative_to(root)))
    return fixed


def count_run(prompt_file: str | None) -> int:
    """How many times this attempt's agent has run (1 for the first run), kept beside the prompt."""
    if not prompt_file:
        return 1
    counter = Path(prompt_file + ".runs")
    n = int(counter.read_text() or 0) + 1 if counter.exists() else 1
    counter.write_text(str(n))
    return n


def main() -> int:
    prompt = sys.stdin.read()
    role = os.environ.get("CLANKER_ROLE", "worker")
    attempt = int(os.environ.get("CLANKER_ATTEMPT", "1"))
    task = os.environ.get("CLANKER_TASK_ID", "task")
    session = os.environ.get("CLANKER_RESUME_SESSION") or f"fake-{task}-{role}-{attempt}-{os.getpid()}"
    root = Path.cwd()
    run = count_run(os.environ.get("CLANKER_PROMPT_FILE"))
    emit({"type": "start", "session_id": session, "role": role, "attempt": attempt})
    tokens_in, tokens_out = len(prompt) // 4 + 200, 0
    files: list[str] = []
    follow: list[str] = []
    error: tuple[str, str] | None = None
    text = ""

    if role == "planner" and "## Week to roll up" in prompt:
        facts = prompt.split("## Facts clanker gathered", 1)[1].split("## The week's notes", 1)[0]
        landed = facts.split("## Landed\n", 1)[1].split("\n\n", 1)[0] if "## Landed\n" in facts else ""
        odd = [ln.strip()[len("fake-rollup:") :].strip() for ln in prompt.splitlines()
               if ln.strip().startswith("fake-rollup:")]  # fmt: skip
        made = (
            "## Landed\n" + (landed or "- nothing") + "\n\n## Decisions still in force\n- the fake planner's: keep it"
        )
        text = odd[-1] if odd else made
        emit({"type": "say", "text": "rolled up the week"})
    elif role == "planner":
        part = prompt.split("## Task to split", 1)[1] if "## Task to split" in prompt else prompt
        specs = []
        for line in part.splitlines():
            if line.strip().startswith("fake-plan:"):
                title, _, body = line.strip()[len("fake-plan:") :].partition("::")
                spec = {"title": title.strip(), "prompt": body.strip().replace("\\n", "\n") or title.strip()}
                specs.append("TASK: " + json.dumps(spec))
            elif line.strip().startswith("fake-merge:"):
                ids, _, rest = line.strip()[len("fake-merge:") :].partition("::")
                title, _, body = rest.partition("::")
                merged = {"tasks": [t.strip() for t in ids.split(",")], "title": title.strip(),
                          "prompt": body.strip().replace("\\n", "\n") or title.strip()}  # fmt: skip
                specs.append("MERGE: " + json.dumps(merged))
            elif line.strip().startswith("fake-rescope:"):
                rewritten = line.strip()[len("fake-rescope:") :].strip().replace("\\n", "\n")
                specs.append("RESCOPE: " + json.dumps({"prompt": rewritten, "reason": "said more simply"}))
            elif line.strip().startswith("fake-concurrency:"):
                n, _, why = line.strip()[len("fake-concurrency:") :].strip().partition(" ")
                specs.append(f"CONCURRENCY: {n} — {why}")
        emit({"type": "say", "text": f"planned {len(specs)} task(s)"})
        text = "\n".join(specs) or "NO TASKS"
        tokens_out += 20 * len(specs)
    elif role == "judge":
        verdict = "VERDICT: done — the change does what the task asks and the gate passed"
        for d in directives(prompt, "fake-judge"):
            verb, args = d[0], d[1:]
            if verb == "sleep":
                time.sleep(float(args[0]))
            elif verb == "rework-once" and attempt == 1 or verb == "rework":
                verdict = "VERDICT: rework " + (" ".join(args) or "needs another pass")
            elif verb == "block":
                verdict = "VERDICT: blocked " + (" ".join(args) or "cannot be done as specified")
        emit({"type": "say", "text": "reviewing the diff and the gate output"})
        text = verdict
        tokens_out += 40
    else:
        now: list[list[str]] = []
        for d in directives(prompt, "fake"):
            if d[0] == "on-attempt":
                if len(d) < 3 or int(d[1]) != attempt:
                    continue
                d = d[2:]
            if d[0] == "times":
                if len(d) < 3 or run > int(d[1]):
                    continue
                d = d[2:]
            now.append(d)
        if not any(d[0] == "leave-conflicts" for d in now):
            for fixed in resolve_conflicts(root):
                emit({"type": "tool", "tool": "edit", "path": fixed, "note": "resolved conflict"})
                files.append(fixed)
        for d in now:
            verb, args = d[0], d[1:]
            tokens_out += 30
            if verb in ("write", "append"):
                path = root / args[0]
                path.parent.mkdir(parents=True, exist_ok=True)
                body = " ".join(args[1:]).replace("\\n", "\n")
                if verb == "write":
                    path.write_text(body if body.endswith("\n") else body + "\n", encoding="utf-8")
                else:
                    with open(path, "a", encoding="utf-8") as f:
                        f.write(body + "\n")
                files.append(args[0])
                emit({"type": "tool", "tool": verb, "path": args[0]})
            elif verb == "delete":
                (root / args[0]).unlink(missing_ok=True)
                emit({"type": "tool", "tool": "delete", "path": args[0]})
            elif verb == "fail-gate-once":
                marker = root / (args[0] if args else "GATE_FAIL")
                if attempt == 1:
                    marker.write_text("GATE-FAIL\n", encoding="utf-8")
                    emit({"type": "tool", "tool": "write", "path": marker.name})
                elif marker.exists():
                    marker.unlink()
                    emit({"type": "tool", "tool": "delete", "path": marker.name})
            elif verb == "sleep":
                time.sleep(float(args[0]))
            elif verb == "run":  # a shell command, as the real agents' shell tools run one
                command = " ".join(args)
                from ..system import proc as procs  # here: the fake agent starts fast without it

                code, _, _ = procs.capture(["sh", "-c", command], 600.0, cwd=root)
                emit({"type": "shell", "command": command, "exit_code": code})
            elif verb == "say":
                emit({"type": "say", "text": " ".join(args)})
            elif verb == "title":
                osc = f"\x1b]2;{' '.join(args)}\x07"
                sys.stdout.write(json.dumps({"type": "say", "text": osc + "retitled"}) + "\n" + osc + "\n")
                sys.stdout.flush()
                sys.stderr.write(osc + "\n")
                sys.stderr.flush()
            elif verb == "hang":
                while True:
                    time.sleep(3600)
            elif verb == "tokens":
                tokens_in, tokens_out = int(args[0]), int(args[1])
            elif verb == "spend":  # a turn's usage, reported mid-run (as claude and codex do)
                t_in, t_out = int(args[0]), int(args[1])
                cost_ = round(t_in * PRICE_IN + t_out * PRICE_OUT, 6)
                emit({"type": "usage", "usage": {"input": t_in, "output": t_out}, "cost_usd": cost_})
                tokens_in, tokens_out = tokens_in + t_in, tokens_out + t_out
            elif verb == "error":
                error = (args[0], " ".join(args[1:]) or f"fake {args[0]} error")
                break
            elif verb == "follow-up":
                follow.append(" ".join(args))
            elif verb == "digest-env":
                digest = hashlib.sha256(os.environ.get(args[0], "").encode()).hexdigest()[:16]
                (root / args[1]).write_text(digest + "\n", encoding="utf-8")
                files.append(args[1])
                emit({"type": "tool", "tool": "write", "path": args[1]})
            elif verb == "print-env":
                emit({"type": "say", "text": f"{args[0]}={os.environ.get(args[0], '')}"})
                sys.stderr.write(f"debug: {args[0]}={os.environ.get(args[0], '')}\n")
            elif verb == "exit":
                msg = " ".join(args[1:]) or "fake agent exited with an error"
                emit({"type": "result", "is_error": True, "text": msg, "session_id": session})
                return int(args[0])
        text = "changed " + ", ".join(dict.fromkeys(files)) if files else "nothing to change"
        text += "".join(f"\nFOLLOW-UP: {title}" for title in follow)
    usage = {"input": tokens_in, "output": tokens_out, "turns": 1}
    cost = round(tokens_in * PRICE_IN + tokens_out * PRICE_OUT, 6)
    if error:
        reset = re.search(r"resets-in (\d+(?:\.\d+)?)", error[1])
        emit(
            {
                "type": "result",
                "is_error": True,
                "error_kind": error[0],
                "text": error[1],
                "usage": usage,
                "cost_usd": cost,
                "session_id": session,
                "reset_at": time.time() + float(reset.group(1)) if reset else None,
            }
        )
        return 1
    emit(
        {
            "type": "result",
            "is_error": False,
            "text": text,
            "usage": usage,
            "cost_usd": cost,
            "session_id": session,
            "files": files,
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
