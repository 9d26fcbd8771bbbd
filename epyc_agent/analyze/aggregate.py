"""Count-style modes: summary, sessions, commands, files.

Each scans shards independently (no global merge needed) into a mergeable part;
`map_shards` runs the parts in worker processes when the log is large.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from ..events.reader import ReadStats, shard_files
from .census import census, session_rows
from .filters import Query
from .normalize import normalize
from .scan import SES, TS, event, map_shards, scan_shard, text

MAX_CORRUPT_SHOWN = 20


def _by(counts: Counter[tuple[bytes, ...]], idx: int) -> dict[str, int]:
    c: Counter[str] = Counter()
    for k, n in counts.items():
        c[text(k[idx])] += n
    return dict(c.most_common())


def summary(log_dir: str, q: Query) -> dict[str, Any]:
    """Totals: events by category, level and agent; sessions; time range; unreadable lines."""
    st = ReadStats()
    c = census(log_dir, q, st)
    counts = c["counts"]
    read = {
        "files": len(st.files),
        "lines": st.lines,
        "legacy_lines": st.legacy_lines,
        "corrupt": st.corrupt_count,
        "corrupt_lines": [f"{x.file}:{x.line}: {x.error}" for x in st.corrupt[:MAX_CORRUPT_SHOWN]],
    }
    span = (text(c["lo"]) if c["lo"] else None, text(c["hi"]) if c["hi"] else None)
    totals = (sum(counts.values()), len(c["first"]), sum(c["failed"].values()))
    return summary_shape(log_dir, read, span, totals, (_by(counts, 3), _by(counts, 2), _by(counts, 1)), q)


def summary_shape(
    source: str,
    read: dict[str, Any],
    span: tuple[str | None, str | None],
    totals: tuple[int, int, int],
    ranked: tuple[dict[str, int], dict[str, int], dict[str, int]],
    q: Query,
) -> dict[str, Any]:
    """The `--summary` answer, one shape for every engine (local shards, ClickHouse): `read` says what
    was read (files, lines, legacy and corrupt lines), `span` the first and last time, `totals` the
    events, sessions and failed commands, `ranked` the counts by category, level and agent."""
    (events, n_sessions, failed), (cats, levels, agents) = totals, ranked
    return {
        "log_dir": source,
        "files": read["files"],
        "lines": read["lines"],
        "events": events,
        "legacy_lines": read["legacy_lines"],
        "corrupt": read["corrupt"],
        "corrupt_lines": read["corrupt_lines"],
        "first": span[0] if events else None,
        "last": span[1] if events else None,
        "sessions": n_sessions,
        "commands": cats.get("CMD_RESULT", 0),
        "failed_commands": failed,
        "files_modified": cats.get("FILE_MODIFY", 0),
        "rollbacks": cats.get("ROLLBACK", 0),
        "errors": levels.get("ERROR", 0),
        "warnings": levels.get("WARN", 0),
        "levels": levels,
        "categories": cats,
        "agents": agents,
        "filters": q.describe(),
    }


def sessions(log_dir: str, q: Query) -> dict[str, Any]:
    """Every session: agents, time span, events, errors, commands (failed), files, rollbacks."""
    st = ReadStats()
    rows = session_rows(census(log_dir, q, st))
    return {"count": len(rows), "sessions": rows, "corrupt": st.corrupt_count, "filters": q.describe()}


# --- commands and files -------------------------------------------------------------------


def _commands_part(path: str, q: Query) -> tuple[dict[str, list[Any]], ReadStats]:
    st = ReadStats()
    agg: dict[str, list[Any]] = {}  # norm -> [count, failed, sessions, last ts, last exit, example]
    for items in scan_shard(path, st, q):
        for i in items:
            if not q.keep(i):
                continue
            ev = event(i)
            cmd = str(ev.get("cmd") or ev.get("msg") or "")
            norm = normalize(cmd)
            code = ev.get("exit_code")
            code = code if code.__class__ is int else None
            a = agg.get(norm)
            if a is None:
                a = agg[norm] = [0, 0, set(), b"", None, cmd]
            a[0] += 1
            a[1] += 1 if code not in (0, None) else 0
            a[2].add(i[SES])
            if i[TS] >= a[3]:
                a[3], a[4] = i[TS], code
    return agg, st


def commands(log_dir: str, q: Query, limit: int = 50) -> dict[str, Any]:
    """Commands run (CMD_RESULT), grouped by normalised command, most frequent first."""
    st = ReadStats()
    merged: dict[str, list[Any]] = {}
    for part in map_shards(_commands_part, shard_files(log_dir), q.with_cats("CMD_RESULT"), stats=st):
        for norm, a in part.items():
            m = merged.get(norm)
            if m is None:
                merged[norm] = a
                continue
            m[0] += a[0]
            m[1] += a[1]
            m[2] |= a[2]
            if a[3] >= m[3]:
                m[3], m[4] = a[3], a[4]
    ranked = sorted(merged.items(), key=lambda kv: (-kv[1][0], kv[0]))
    rows = [
        {
            "cmd": norm,
            "count": a[0],
            "failed": a[1],
            "sessions": len(a[2]),
            "last": text(a[3]),
            "last_exit": a[4],
            "example": a[5],
        }
        for norm, a in ranked[: limit or None]
    ]
    return {
        "total": sum(a[0] for a in merged.values()),
        "distinct": len(merged),
        "failed": sum(a[1] for a in merged.values()),
        "commands": rows,
        "filters": q.describe(),
    }


def _files_part(path: str, q: Query) -> tuple[dict[str, list[Any]], ReadStats]:
    st = ReadStats()
    agg: dict[str, list[Any]] = {}  # path -> [count, actions, sessions, last ts]
    for items in scan_shard(path, st, q):
        for i in items:
            if not q.keep(i):
                continue
            ev = event(i)
            p = str(ev.get("path") or ev.get("msg") or "")
            a = agg.get(p)
            if a is None:
                a = agg[p] = [0, Counter(), set(), b""]
            a[0] += 1
            a[1][str(ev.get("action") or "?")] += 1
            a[2].add(i[SES])
            a[3] = max(a[3], i[TS])
    return agg, st


def files(log_dir: str, q: Query, limit: int = 50) -> dict[str, Any]:
    """Files modified (FILE_MODIFY), most often first, with their actions."""
    st = ReadStats()
    merged: dict[str, list[Any]] = {}
    for part in map_shards(_files_part, shard_files(log_dir), q.with_cats("FILE_MODIFY"), stats=st):
        for p, a in part.items():
            m = merged.setdefault(p, [0, Counter(), set(), b""])
            m[0] += a[0]
            m[1].update(a[1])
            m[2] |= a[2]
            m[3] = max(m[3], a[3])
    ranked = sorted(merged.items(), key=lambda kv: (-kv[1][0], kv[0]))
    rows = [
        {"path": p, "count": a[0], "actions": dict(a[1].most_common()), "sessions": len(a[2]), "last": text(a[3])}
        for p, a in ranked[: limit or None]
    ]
    return {
        "total": sum(a[0] for a in merged.values()),
        "distinct": len(merged),
        "files": rows,
        "filters": q.describe(),
    }
