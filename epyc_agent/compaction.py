"""The pre-compaction dump: what an agent must still know after Claude Code compacts its context.

Claude Code's PreCompact hook cannot add context, so the state is written to
`<log_dir>/compactions/<session>-<time>.md` (and `.json`) and a SessionStart hook
with `source == "compact"` re-injects the newest one (capped under 10,000
characters, Claude Code's limit for additionalContext).

Everything comes from the session's own events in the audit log, the hook's
state file (recent failures) and files on disk; the loop analyzers
(`epyc_agent.analyze`) contribute when they are installed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import time

from .events.schema import now_ts
from .fileio import write_json_atomic, write_text_atomic

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .config import Config

MAX_CHARS = 9_500  # re-injected text stays under Claude Code's 10,000-character limit
_GGUF_RE = re.compile(r"""[^\s'"=]+\.gguf\b""")


def compactions_dir(cfg: Config) -> str:
    return os.path.join(cfg.log_dir, "compactions")


def _safe(session: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in session)[:120]


def session_events(cfg: Config, session: str) -> list[dict[str, Any]]:
    """This session's events from every shard, in time order."""
    from .events.reader import ReadStats, read_records

    needle = json.dumps(session).encode()
    return [
        r.event
        for r in read_records(cfg.log_dir, ReadStats(), accept=lambda raw: needle in raw)
        if r.event.get("session") == session
    ]


def open_tasks(events: list[dict[str, Any]]) -> list[str]:
    """TASK_START descriptions without a later TASK_END of the same description, oldest first."""
    open_: list[str] = []
    for ev in events:
        msg = str(ev.get("msg", ""))
        if ev.get("cat") == "TASK_START":
            open_.append(msg)
        elif ev.get("cat") == "TASK_END" and msg in open_:
            open_.remove(msg)
    return open_


def _todos(events: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The agent's task list, from whichever task tool its Claude Code has: the latest TodoWrite
    list, else the tasks its TaskCreated / TaskCompleted hooks reported (2.1.x has no TodoWrite)."""
    tasks: dict[str, dict[str, str]] = {}
    for ev in events:
        d = ev.get("data") if isinstance(ev.get("data"), dict) else {}
        if d.get("hook") in ("TaskCreated", "TaskCompleted") and isinstance(d.get("task_id"), str):
            status = "completed" if d["hook"] == "TaskCompleted" else "pending"
            tasks[d["task_id"]] = {"content": str(d.get("task_subject", "")), "status": status}
    for ev in reversed(events):
        todos = (ev.get("data") or {}).get("todos") if isinstance(ev.get("data"), dict) else None
        if isinstance(todos, list):
            return [t for t in todos if isinstance(t, dict)]
    return list(tasks.values())


def _loops(cfg: Config, session: str) -> list[str] | None:
    """Loop findings of this session from the analyzers (issue #3), or None if not installed."""
    if importlib.util.find_spec("epyc_agent.analyze.loops") is None:
        return None
    try:
        from .analyze.filters import Query
        from .analyze.loops import find_loops, thresholds

        found = find_loops(cfg.log_dir, Query(session=session), thresholds(cfg.loops))["findings"]
        return [f"{f['pattern']} x{f['count']}: {f['subject']} - {f['suggestion']}" for f in found][-10:]
    except Exception as e:  # noqa: BLE001 - the dump must never fail because an analyzer did
        return [f"(loop analysis failed: {type(e).__name__}: {e})"]


def research_report(cfg: Config, events: list[dict[str, Any]]) -> dict[str, Any] | None:
    path = os.path.join(cfg.root, "research", "research_report.md")
    try:
        st = os.stat(path)
    except OSError:
        return None
    last = next(
        (
            ev
            for ev in reversed(events)
            if ev.get("cat") == "FILE_MODIFY" and str(ev.get("path", "")).endswith("research_report.md")
        ),
        None,
    )
    return {
        "path": path,
        "modified": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(st.st_mtime)),
        "bytes": st.st_size,
        "last_change_in_session": last.get("ts") if last else None,
    }


def _line(v: object, limit: int = 300) -> str:
    """One line of at most `limit` characters (multi-line errors would break the Markdown list)."""
    return " ".join(str(v or "").split())[:limit]


def summarize(cfg: Config, session: str, trigger: str = "manual") -> dict[str, Any]:
    """Every section of the dump as data."""
    from .hooks.state import load as load_state

    events = session_events(cfg, session)
    ended = [
        {"task": ev.get("msg"), "outcome": (ev.get("data") or {}).get("outcome", "")}
        for ev in events
        if ev.get("cat") == "TASK_END"
    ]
    opened = open_tasks(events)
    todos = _todos(events)
    errors = [
        {"ts": ev.get("ts"), "msg": _line(ev.get("msg")), "details": _line(ev.get("details"))}
        for ev in events
        if ev.get("level") == "ERROR"
    ][-10:]
    files: dict[str, dict[str, Any]] = {}
    for ev in events:
        if ev.get("cat") == "FILE_MODIFY" and ev.get("path"):
            f = files.setdefault(str(ev["path"]), {"path": ev["path"], "edits": 0})
            f["edits"] += 1
            f["last"] = ev.get("ts")
    models: dict[str, int] = {}
    for ev in events:
        for m in _GGUF_RE.findall(str(ev.get("cmd") or "")):
            models[m] = models.get(m, 0) + 1
    state = load_state(cfg.log_dir, session)
    limit = cfg.guards.get("retry_limit", 3)
    blocked = [k for k, n in (state.get("failures") or {}).items() if n >= limit]
    data: dict[str, Any] = {
        "session": session,
        "written": now_ts(),
        "trigger": trigger,
        "events": len(events),
        "completed_tasks": ended[-20:],
        "current_task": opened[-1] if opened else None,
        "pending_tasks": opened[:-1] + [t.get("content", "") for t in todos if t.get("status") != "completed"],
        "todos": todos,
        "recent_errors": errors,
        "recent_failures": state.get("recent_failures", []),
        "retry_blocked": blocked,
        "files_modified": sorted(files.values(), key=lambda f: str(f.get("last")))[-30:],
        "models_in_use": sorted(models, key=lambda m: -models[m])[:10],
        "research_report": research_report(cfg, events),
    }
    loops = _loops(cfg, session)
    if loops is not None:
        data["loop_findings"] = loops
    data["next_steps"] = next_steps(data)
    return data


def next_steps(d: dict[str, Any]) -> list[str]:
    steps = []
    if d["current_task"]:
        steps.append(f"Continue the current task: {d['current_task']}")
    for cmd in d["retry_blocked"]:
        steps.append(f"Diagnose why `{cmd[:120]}` keeps failing before running it again (retry limit reached)")
    if d.get("loop_findings"):
        steps.append("Break the loops listed under Loop findings: change the approach, do not repeat")
    rep = d["research_report"]
    ran_models = bool(d["models_in_use"])
    if ran_models and (rep is None or not rep.get("last_change_in_session")):
        steps.append("Update research/research_report.md with the results of this session's tests")
    for t in d["pending_tasks"][:5]:
        steps.append(f"Then: {t}")
    if not steps:
        steps.append("Check `epyc-agent session status` and the open tasks, then continue")
    return steps


def render(d: dict[str, Any], limit: int = MAX_CHARS) -> str:
    """Markdown, most important first, cut to `limit` characters."""
    out = [
        f"# epyc-agent state before compaction: session {d['session']}",
        f"Written {d['written']} ({d['trigger']}), from {d['events']} logged events.",
        "",
    ]

    def section(title: str, lines: list[str]) -> None:
        if lines:
            out.extend([f"## {title}", *lines, ""])

    section("Current task", [f"- {d['current_task']}"] if d["current_task"] else [])
    section("Next steps", [f"{i}. {s}" for i, s in enumerate(d["next_steps"], 1)])
    section("Pending tasks", [f"- {t}" for t in d["pending_tasks"]])
    section("Retry limit reached (diagnose first)", [f"- `{c[:200]}`" for c in d["retry_blocked"]])
    section("Loop findings", [f"- {x}" for x in d.get("loop_findings", [])])
    section("Recent errors", [f"- {e['ts']}: {e['msg']} {e['details']}".rstrip() for e in d["recent_errors"]])
    section("Files modified", [f"- {f['path']} ({f['edits']} edits)" for f in d["files_modified"]])
    section("Models in use", [f"- {m}" for m in d["models_in_use"]])
    rep = d["research_report"]
    section(
        "Research report",
        [
            f"- {rep['path']}: last modified {rep['modified']}"
            + (
                f", last edited this session {rep['last_change_in_session']}"
                if rep["last_change_in_session"]
                else ", not edited this session"
            )
        ]
        if rep
        else ["- no research/research_report.md under the root yet"],
    )
    section(
        "Completed tasks",
        [f"- {t['task']}" + (f" ({t['outcome']})" if t["outcome"] else "") for t in d["completed_tasks"]],
    )
    text = "\n".join(out).rstrip() + "\n"
    if len(text) > limit:
        text = text[: limit - 40].rsplit("\n", 1)[0] + "\n\n[dump cut to fit the context limit]\n"
    return text


def write_dump(cfg: Config, session: str, trigger: str = "manual") -> dict[str, str]:
    """Write the .md and .json dump; return their paths."""
    d = summarize(cfg, session, trigger)
    ns = time.time_ns()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(ns // 1_000_000_000)) + f".{ns // 1000 % 1_000_000:06d}Z"
    base = os.path.join(compactions_dir(cfg), f"{_safe(session)}-{stamp}")
    write_json_atomic(base + ".json", d)
    write_text_atomic(base + ".md", render(d))
    return {"md": base + ".md", "json": base + ".json"}


def _latest(cfg: Config, session: str, ext: str = ".md") -> str | None:
    """The path of this session's newest dump file ending in `ext`."""
    d = compactions_dir(cfg)
    prefix = _safe(session) + "-"
    try:
        names = sorted(n for n in os.listdir(d) if n.startswith(prefix) and n.endswith(ext))
    except OSError:
        return None
    return os.path.join(d, names[-1]) if names else None


def keep_summary(cfg: Config, session: str, summary: str) -> str:
    """Claude Code's own compaction summary (PostCompact), beside the dump PreCompact wrote:
    `<dump>.summary.md`, or a file of its own when no dump was written."""
    dump = _latest(cfg, session, ".json")
    if dump is None:
        base = os.path.join(compactions_dir(cfg), f"{_safe(session)}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
    else:
        base = dump[: -len(".json")]
    write_text_atomic(base + ".summary.md", summary if summary.endswith("\n") else summary + "\n")
    return base + ".summary.md"


def latest_dump(cfg: Config, session: str) -> str | None:
    """The newest dump's Markdown for this session, or None."""
    path = _latest(cfg, session, ".json")
    if path is None:
        return None
    with open(path[: -len(".json")] + ".md", encoding="utf-8", errors="replace") as f:
        return f.read(MAX_CHARS + 1)[:MAX_CHARS]
