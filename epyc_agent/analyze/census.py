"""The census behind `--summary` and `--sessions`: counts per (session, agent, level, cat),
first/last time and failed commands per session, session purposes and end summaries.

The hot loop never splits a line into fields. In our v1 lines the head
`"session":"…","agent":"…","level":"…","cat":"…"` sits between fixed offsets
(after the 27-byte timestamp) and `,"msg":"`, so it is sliced out and counted
as one bytes key; the few distinct keys are decoded (and validated) once.
Lines that do not have that exact shape take `scan.legacy`: the old toolkit's
fast path, else the careful one.
"""

from __future__ import annotations

import re
from collections import Counter
from itertools import compress
from typing import Any

import orjson

from ..events.reader import ReadStats, agent_of, glued_at, line_blocks, shard_files
from .filters import Query
from .scan import CAT, SES, TS, TS_HEAD, V1_TAIL, event, exit_code, legacy, map_shards, text

_MID = b'Z","session":"'  # bytes 33..47 of every v1 line: end of the timestamp, start of the head
_HEAD = re.compile(rb'"session":"([^"\\]*)","agent":"([^"\\]*)","level":"(INFO|WARN|ERROR)","cat":"([A-Z][A-Z0-9_]*)"')
_CMD = b'"cat":"CMD_RESULT"'
_NOTES = (b'"cat":"SESSION_START"', b'"cat":"SESSION_END"')
Head = tuple[bytes, bytes, bytes, bytes]


class _Tally:
    """Per-key counts, first/last time and failures; keys are raw heads or decoded tuples."""

    def __init__(self) -> None:
        self.counts: Counter[Any] = Counter()
        self.first: dict[Any, bytes] = {}
        self.last: dict[Any, bytes] = {}
        self.failed: Counter[Any] = Counter()
        self.notes: dict[Any, str] = {}

    def add(self, keys: list[Any], ts: list[bytes]) -> None:
        self.counts.update(keys)
        first, last = self.first, self.last
        for k, t in dict(zip(reversed(keys), reversed(ts), strict=True)).items():
            if k not in first or t < first[k]:
                first[k] = t
        for k, t in dict(zip(keys, ts, strict=True)).items():
            if k not in last or t > last[k]:
                last[k] = t


def _census_part(path: str, q: Query) -> tuple[dict[str, Any], ReadStats]:
    st = ReadStats()
    agent = agent_of(path)
    tally = _Tally()
    heads: dict[bytes, Head | None] = {}  # raw head -> decoded, None if not a valid head
    bad: set[bytes] = set()
    since, until = q.since, q.until
    for n, lines in line_blocks(path, st):
        ok = [ln[33:47] == _MID and ln.endswith(V1_TAIL) for ln in lines]
        if b"".join(lines).count(TS_HEAD) != len(lines):  # some line lacks a head or has two (glued)
            ok = [o and glued_at(ln) == -1 for o, ln in zip(ok, lines, strict=True)]
        v1 = lines if all(ok) else list(compress(lines, ok))
        keys = [ln[36 : ln.find(b',"msg":"', 36)] for ln in v1]
        uniq = set(keys)
        new = uniq.difference(heads)
        for k in new:
            m = _HEAD.fullmatch(k)
            heads[k] = m.groups() if m else None  # type: ignore[assignment]
            if m is None:
                bad.add(k)
        if bad and not bad.isdisjoint(keys):  # a v1-looking line with an odd head: read it carefully
            ok = [o and heads[ln[36 : ln.find(b',"msg":"', 36)]] is not None for o, ln in zip(ok, lines, strict=True)]
            v1 = list(compress(lines, ok))
            keys = [ln[36 : ln.find(b',"msg":"', 36)] for ln in v1]
        if v1 is not lines:
            others = [(n + j, ln) for j, (ln, o) in enumerate(zip(lines, ok, strict=True)) if not o]
            _tally_careful(others, path, agent, st, tally, q)
        ts = [ln[7:34] for ln in v1]
        if since is not None or until is not None:
            sel = [j for j, t in enumerate(ts) if (since is None or t >= since) and (until is None or t <= until)]
            v1, keys, ts = [v1[j] for j in sel], [keys[j] for j in sel], [ts[j] for j in sel]
        st.events += len(v1)
        tally.add(keys, ts)
        cmd = {k for k in uniq if k.endswith(_CMD)}  # per distinct head, not per line
        tally.failed.update(
            [
                k
                for k, ln in zip(keys, v1, strict=True)
                if k in cmd and b',"exit_code":' in ln and b',"exit_code":0,' not in ln
            ]
        )
        notes = {k for k in uniq if k.endswith(_NOTES)}
        for k, ln in zip(keys, v1, strict=True) if notes else ():
            if k in notes:
                tally.notes[k] = str(orjson.loads(ln).get("msg", ""))
    return _resolve(tally, heads, q), st


def _tally_careful(
    lines: list[tuple[int, bytes]], path: str, agent: str, st: ReadStats, tally: _Tally, q: Query
) -> None:
    """Lines that are not plain v1 lines: the old formats' fast path or the reader's upgrade path
    (legacy counted, corrupt counted)."""
    items = legacy([ln for _, ln in lines], [j for j, _ in lines], path, agent, st)
    kept = [i for i in items if i is not None and (q.trivial or q.keep(i))]
    st.events += len(kept)
    hk = [i[SES : CAT + 1] for i in kept]
    tally.add(hk, [i[TS] for i in kept])
    tally.failed.update(
        [k for k, i in zip(hk, kept, strict=True) if i[CAT] == b"CMD_RESULT" and exit_code(i) not in (0, None)]
    )
    for k, i in zip(hk, kept, strict=True):
        if i[CAT] in (b"SESSION_START", b"SESSION_END"):
            tally.notes[k] = str(event(i).get("msg", ""))


def _resolve(t: _Tally, heads: dict[bytes, Head | None], q: Query) -> dict[str, Any]:
    """Raw heads -> (session, agent, level, cat); the head-level filters apply here."""

    def head(k: Any) -> Head | None:
        h = heads[k] if k.__class__ is bytes else k
        if h is None:
            return None
        if (
            (q.agent is not None and h[1] != q.agent)
            or (q.session is not None and h[0] != q.session)
            or (q.levels is not None and h[2] not in q.levels)
        ):
            return None
        return h  # type: ignore[no-any-return]

    out = _empty_census()
    for k, n in t.counts.items():
        h = head(k)
        if h is None:
            continue
        ses = h[0]
        out["counts"][h] += n
        f, la = t.first[k], t.last[k]
        if ses not in out["first"] or f < out["first"][ses]:
            out["first"][ses] = f
        if ses not in out["last"] or la > out["last"][ses]:
            out["last"][ses] = la
        out["lo"] = f if out["lo"] is None or f < out["lo"] else out["lo"]
        out["hi"] = la if out["hi"] is None or la > out["hi"] else out["hi"]
        if k in t.failed:
            out["failed"][ses] += t.failed[k]
        if k in t.notes:
            out["notes"][(ses, h[3])] = t.notes[k]
    return out


def _empty_census() -> dict[str, Any]:
    return {"counts": Counter(), "first": {}, "last": {}, "failed": Counter(), "notes": {}, "lo": None, "hi": None}


def census(log_dir: str, q: Query, stats: ReadStats) -> dict[str, Any]:
    """The census of every shard, merged."""
    parts = map_shards(_census_part, shard_files(log_dir), q, stats=stats)
    out = _empty_census()
    for p in parts:
        out["counts"].update(p["counts"])
        out["failed"].update(p["failed"])
        out["notes"].update(p["notes"])
        for s, t in p["first"].items():
            out["first"][s] = min(t, out["first"].get(s, t))
        for s, t in p["last"].items():
            out["last"][s] = max(t, out["last"].get(s, t))
        for k, pick in (("lo", min), ("hi", max)):
            if p[k] is not None:
                out[k] = p[k] if out[k] is None else pick(out[k], p[k])
    return out


def session_rows(c: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per session from a census, oldest first."""
    rows: dict[bytes, dict[str, Any]] = {}
    for (ses, agent, level, cat), n in c["counts"].items():
        r = rows.get(ses)
        if r is None:
            r = rows[ses] = {
                "session": text(ses),
                "agents": set(),
                "first": text(c["first"][ses]),
                "last": text(c["last"][ses]),
                "events": 0,
                "errors": 0,
                "warnings": 0,
                "commands": 0,
                "failed": c["failed"].get(ses, 0),
                "files_modified": 0,
                "rollbacks": 0,
                "purpose": c["notes"].get((ses, b"SESSION_START")),
                "ended": (ses, b"SESSION_END") in c["notes"],
                "end_summary": c["notes"].get((ses, b"SESSION_END")),
            }
        r["agents"].add(text(agent))
        r["events"] += n
        r["errors"] += n if level == b"ERROR" else 0
        r["warnings"] += n if level == b"WARN" else 0
        r["commands"] += n if cat == b"CMD_RESULT" else 0
        r["files_modified"] += n if cat == b"FILE_MODIFY" else 0
        r["rollbacks"] += n if cat == b"ROLLBACK" else 0
    out = sorted(rows.values(), key=lambda r: (r["first"], r["session"]))
    for r in out:
        r["agents"] = sorted(r["agents"])
    return out
