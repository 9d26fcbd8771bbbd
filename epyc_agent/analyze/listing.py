"""Modes that list events: errors, one session, the last N (tail, timeline).

`--tail`/`--timeline` read every shard backwards from its end, so their cost
does not grow with the log. The others prefilter lines by bytes and keep only
what they print.
"""

from __future__ import annotations

import os
from collections import Counter, deque
from io import BytesIO
from typing import Any

from ..errors import SessionError
from ..events.reader import ReadStats, agent_of, shard_files
from .census import session_rows
from .filters import Query
from .loops import seconds
from .normalize import normalize
from .oldformat import HeadTest
from .scan import (
    AGENT,
    CAT,
    LEVEL,
    LINE,
    SES,
    TS,
    Item,
    event,
    exit_code,
    field,
    map_shards,
    parse_lines,
    scan_shard,
    text,
    where,
)


def render_event(it: Item, **extra: Any) -> dict[str, Any]:
    """The full event with where it came from."""
    return {**event(it), "where": where(it), **extra}


def _by_time(items: list[Item]) -> list[Item]:
    return sorted(items, key=lambda i: i[TS])


# --- errors --------------------------------------------------------------------------------

ERROR_MARKS = (rb'"level":"(?:ERROR|WARN)"', rb',"exit_code":(?!0[,}])')


class _ErrorQuery(Query):
    """Errors, warnings and failed commands (whatever their level), within the user's filters."""

    def keep(self, it: Item) -> bool:
        if not super().keep(it):
            return False
        return it[LEVEL] != b"INFO" or (it[CAT] == b"CMD_RESULT" and exit_code(it) not in (0, None))

    def head_ok(self, ses: bytes, level: bytes, cat: bytes) -> bool:
        return super().head_ok(ses, level, cat) and (level != b"INFO" or cat == b"CMD_RESULT")

    def head_test(self) -> HeadTest:
        return self.head_ok


def _errors_part(path: str, q: _ErrorQuery, limit: int) -> tuple[dict[str, Any], ReadStats]:
    st = ReadStats()
    recent: deque[Item] = deque(maxlen=limit or None)
    by_cat: Counter[bytes] = Counter()
    by_agent: Counter[bytes] = Counter()
    msgs: Counter[str] = Counter()
    n = 0
    for items in scan_shard(path, st, q):
        for it in items:
            if not q.keep(it):
                continue
            n += 1
            by_cat[it[CAT]] += 1
            by_agent[it[AGENT]] += 1
            msgs[normalize(field(it, "msg") or "", 200)] += 1
            recent.append(it)
    return {"n": n, "cat": by_cat, "agent": by_agent, "msgs": msgs, "recent": list(recent)}, st


def errors(log_dir: str, q: Query, limit: int = 50) -> dict[str, Any]:
    """Errors, warnings and failed commands: counts, the most frequent messages, the latest `limit`."""
    eq = _ErrorQuery.__new__(_ErrorQuery)
    eq.__dict__.update(q.__dict__)
    eq.marks = [*q.marks]
    eq.add_mark(*ERROR_MARKS)
    st = ReadStats()
    parts = map_shards(_errors_part, shard_files(log_dir), eq, limit, stats=st)
    tot: dict[str, Counter[Any]] = {"cat": Counter(), "agent": Counter(), "msgs": Counter()}
    recent: list[Item] = []
    for p in parts:
        for k in tot:
            tot[k].update(p[k])
        recent += p["recent"]
    recent = _by_time(recent)[-limit:] if limit else _by_time(recent)
    return {
        "total": sum(p["n"] for p in parts),
        "by_category": {text(k): v for k, v in tot["cat"].most_common()},
        "by_agent": {text(k): v for k, v in tot["agent"].most_common()},
        "top_messages": [{"msg": m, "count": c} for m, c in tot["msgs"].most_common(10)],
        "events": [render_event(i) for i in recent],
        "corrupt": st.corrupt_count,
        "corrupt_lines": [f"{x.file}:{x.line}: {x.error}" for x in st.corrupt[:20]],
        "filters": q.describe(),
    }


# --- one session ------------------------------------------------------------------------


def collect_part(path: str, q: Query) -> tuple[list[Item], ReadStats]:
    st = ReadStats()
    out: list[Item] = []
    for items in scan_shard(path, st, q):
        out += [i for i in items if q.keep(i)]
    return out, st


def session(log_dir: str, q: Query) -> dict[str, Any]:
    """Every event of one session (all agents), in time order, with its totals."""
    assert q.session is not None
    st = ReadStats()
    items = _by_time([i for p in map_shards(collect_part, shard_files(log_dir), q, stats=st) for i in p])
    sid = text(q.session)
    if not items:
        raise SessionError(
            f"no events for session {sid} in {log_dir}", hint="list sessions with `epyc-agent log analyze --sessions`"
        )
    c: dict[str, Any] = {
        "counts": Counter(i[1:5] for i in items),
        "first": {q.session: items[0][TS]},
        "last": {q.session: items[-1][TS]},
        "notes": {},
        "failed": Counter(i[SES] for i in items if i[CAT] == b"CMD_RESULT" and exit_code(i) not in (0, None)),
    }
    for i in items:
        if i[CAT] in (b"SESSION_START", b"SESSION_END"):
            c["notes"][(i[SES], i[CAT])] = str(event(i).get("msg", ""))
    return {**session_rows(c)[0], "events": [render_event(i) for i in items], "filters": q.describe()}


# --- the last N events ------------------------------------------------------------------------


def tail_shard(path: str, n: int, q: Query) -> list[Item]:
    """The last `n` items of a shard that pass `q`, read backwards in growing chunks. Their
    line numbers count from the end (-1 is the last line): counting from the start would read
    the whole shard, and `tail -n K FILE | head -1` finds the line as well."""
    agent, st = agent_of(path), ReadStats()
    try:
        f = open(path, "rb")  # noqa: SIM115
    except OSError:
        return []
    out: list[Item] = []  # newest round first
    with f:
        pos = f.seek(0, os.SEEK_END)
        carry, chunk, after = b"", 1 << 16, 0  # after: lines in the newer rounds
        while pos > 0 and len(out) < n:
            start = max(0, pos - chunk)
            f.seek(start)
            data = f.read(pos - start) + carry
            pos, chunk = start, min(chunk * 2, 1 << 24)
            if start > 0:
                cut = data.find(b"\n") + 1
                carry, data = data[:cut] if cut else data, data[cut:] if cut else b""
            else:
                carry = b""
            lines = BytesIO(data).readlines()  # at "\n" only, as the reader splits (not at "\r")
            last = len(lines) + after + 1
            items = [i for i in parse_lines(lines, 1, path, agent, st, q) if q.keep(i)]
            out = [(*i[:LINE], i[LINE] - last, *i[LINE + 1 :]) for i in items] + out
            after += len(lines)
    return out[-n:]


def last_events(log_dir: str, n: int, q: Query) -> list[Item]:
    """The last `n` events of all shards (merged by time), oldest first."""
    items: list[Item] = []
    for p in shard_files(log_dir):
        items += tail_shard(p, n, q)
    return _by_time(items)[-n:] if n else []


def tail(log_dir: str, n: int, q: Query) -> dict[str, Any]:
    return {"events": [render_event(i) for i in last_events(log_dir, n, q)], "filters": q.describe()}


def timeline(log_dir: str, n: int, q: Query) -> dict[str, Any]:
    """The last `n` events with the gap since the previous one (what happened, how fast)."""
    items = last_events(log_dir, n, q)
    out, prev = [], None
    for i in items:
        t = seconds(i[TS])
        out.append(render_event(i, gap_s=None if prev is None else round(t - prev, 3)))
        prev = t
    span = round(seconds(items[-1][TS]) - seconds(items[0][TS]), 3) if items else 0
    return {"events": out, "span_s": span, "sessions": sorted({text(i[SES]) for i in items}), "filters": q.describe()}
