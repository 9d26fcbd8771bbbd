"""Human text for the analyze modes: aligned tables, color only on a terminal without NO_COLOR."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..output import echo, kv, paint, status, table, use_color

__all__ = ["RENDERERS", "event_line", "use_color"]

LEVEL_COLORS = {"ERROR": "red", "WARN": "yellow", "INFO": None}


def _short(s: Any, n: int = 80) -> str:
    s = " ".join(str(s or "").split())
    return s if len(s) <= n else s[: n - 1] + "…"


def _t(ts: str | None) -> str:
    """`2026-01-01T00:00:03.590662Z` -> `2026-01-01 00:00:03`."""
    return ts[:19].replace("T", " ") if ts else "-"


def _level(word: str) -> str:
    return paint(word, LEVEL_COLORS.get(word.strip()), bold=word.strip() != "INFO")


def event_line(ev: dict[str, Any]) -> str:
    """One event on one line: time, agent, session, level, category, message, details."""
    msg = _short(ev.get("msg"), 100)
    details = _short(ev.get("details"), 60)
    return "  ".join(
        [
            _t(ev.get("ts")),
            str(ev.get("agent", ""))[:12].ljust(12),
            str(ev.get("session", ""))[:28].ljust(28),
            _level(str(ev.get("level", "")).ljust(5)),
            str(ev.get("cat", "")).ljust(12),
            msg + (f"  ({details})" if details else ""),
        ]
    )


def _events(events: list[dict[str, Any]]) -> None:
    for ev in events:
        echo(event_line(ev))


def _counts(d: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in d.items()) or "-"


def summary(d: dict[str, Any]) -> None:
    corrupt = str(d["corrupt"]) if not d["corrupt"] else paint(str(d["corrupt"]), "yellow", bold=True)
    echo(
        kv(
            [
                ("log dir", d["log_dir"]),
                ("files", d["files"]),
                ("lines", d["lines"]),
                ("events", d["events"]),
                ("legacy lines", d["legacy_lines"]),
                ("corrupt lines", corrupt),
                ("time range", f"{_t(d['first'])} .. {_t(d['last'])}"),
                ("sessions", d["sessions"]),
                ("commands", f"{d['commands']} ({d['failed_commands']} failed)"),
                ("files modified", d["files_modified"]),
                ("rollbacks", d["rollbacks"]),
                ("errors", paint(str(d["errors"]), "red") if d["errors"] else "0"),
                ("warnings", paint(str(d["warnings"]), "yellow") if d["warnings"] else "0"),
                ("by agent", _counts(d["agents"])),
                ("by category", _counts(d["categories"])),
            ]
        )
    )
    for line in d["corrupt_lines"]:
        echo(f"  corrupt: {line}")


def sessions(d: dict[str, Any]) -> None:
    rows = [
        [
            s["session"],
            ",".join(s["agents"]),
            _t(s["first"]),
            _t(s["last"]),
            s["events"],
            s["commands"],
            s["failed"],
            s["errors"],
            "yes" if s["ended"] else "no",
            _short(s["purpose"], 40),
        ]
        for s in d["sessions"]
    ]
    echo(table(rows, ["SESSION", "AGENTS", "FIRST", "LAST", "EVENTS", "CMDS", "FAILED", "ERRORS", "ENDED", "PURPOSE"]))
    echo(f"{d['count']} session(s)")


def session(d: dict[str, Any]) -> None:
    echo(
        kv(
            [
                ("session", d["session"]),
                ("agents", ", ".join(d["agents"])),
                ("purpose", d["purpose"] or "-"),
                ("time", f"{_t(d['first'])} .. {_t(d['last'])}"),
                ("events", d["events"]),
                ("commands", f"{d['commands']} ({d['failed']} failed)"),
                ("errors", d["errors"]),
                ("ended", "yes: " + (d["end_summary"] or "") if d["ended"] else "no"),
            ]
        )
    )
    echo()
    _events(d["events"])


def errors(d: dict[str, Any]) -> None:
    echo(
        kv(
            [
                ("total", d["total"]),
                ("by category", _counts(d["by_category"])),
                ("by agent", _counts(d["by_agent"])),
                ("corrupt lines", d["corrupt"]),
            ]
        )
    )
    if d["top_messages"]:
        echo()
        echo(table([[m["count"], _short(m["msg"], 90)] for m in d["top_messages"]], ["COUNT", "MESSAGE"]))
    if d["events"]:
        echo()
        echo(paint(f"latest {len(d['events'])}:", bold=True))
        _events(d["events"])


def commands(d: dict[str, Any]) -> None:
    rows = [
        [
            c["count"],
            c["failed"],
            c["sessions"],
            _t(c["last"]),
            "" if c["last_exit"] is None else c["last_exit"],
            _short(c["cmd"], 70),
        ]
        for c in d["commands"]
    ]
    echo(
        table(
            rows,
            ["COUNT", "FAILED", "SESSIONS", "LAST", "EXIT", "COMMAND"],
            colorize={1: lambda s: paint(s, "red") if s.strip() != "0" else s},
        )
    )
    echo(f"{d['total']} command(s), {d['distinct']} distinct, {d['failed']} failed")


def files(d: dict[str, Any]) -> None:
    rows = [[f["count"], f["sessions"], _t(f["last"]), _counts(f["actions"]), f["path"]] for f in d["files"]]
    echo(table(rows, ["COUNT", "SESSIONS", "LAST", "ACTIONS", "PATH"]))
    echo(f"{d['total']} modification(s) of {d['distinct']} file(s)")


def loops(d: dict[str, Any]) -> None:
    if not d["findings"]:
        echo(f"{status('OK')} no loops found")
        return
    for f in d["findings"]:
        echo(
            f"{paint(f['pattern'].upper(), 'red', bold=True)}  {f['session']} ({f['agent']})  "
            f"{_t(f['first'])} .. {_t(f['last'])}  x{f['count']}  {_short(f['subject'], 70)}"
        )
        echo(f"    lines: {', '.join(f['lines'][:5])}{' …' if len(f['lines']) > 5 else ''}")
        echo(f"    next:  {f['suggestion']}")
    echo(f"{d['count']} finding(s): {_counts(d['by_pattern'])}")


def rollbacks(d: dict[str, Any]) -> None:
    for s in d["sessions"]:
        echo(paint(f"session {s['session']}", bold=True))
        echo(
            table(
                [[_t(r["ts"]), r["agent"], _short(r["action"], 50), _short(r["undo"], 60)] for r in s["rollbacks"]],
                ["TIME", "AGENT", "ACTION", "UNDO"],
            )
        )
    echo(f"{d['total']} rollback(s)")


def tail(d: dict[str, Any]) -> None:
    _events(d["events"])


def timeline(d: dict[str, Any]) -> None:
    current = None
    for ev in d["events"]:
        if ev.get("session") != current:
            current = ev.get("session")
            echo(paint(f"── session {current} ({ev.get('agent')})", bold=True))
        gap = ev.get("gap_s")
        echo(f"{'' if gap is None else f'+{gap:.1f}s':>9}  {event_line(ev)}")
    echo(f"{len(d['events'])} event(s) over {d['span_s']:.1f} s")


RENDERERS: dict[str, Callable[[dict[str, Any]], None]] = {
    "summary": summary,
    "sessions": sessions,
    "session": session,
    "errors": errors,
    "commands": commands,
    "files": files,
    "loops": loops,
    "rollbacks": rollbacks,
    "tail": tail,
    "timeline": timeline,
}
