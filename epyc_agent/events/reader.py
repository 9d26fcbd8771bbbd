"""Read the audit log: every shard plus the legacy file, merged by parsed time.

All three old formats are upgraded here, in one place:
  * v1 JSON lines (ours) and the old toolkit's JSON lines (`ts` first, no `agent`),
  * older JSON lines keyed `timestamp` instead of `ts`,
  * bracketed text lines `[2025-12-15T17:12:49+01:00] TASK_END: message`.
Timestamps with any UTC offset (or none: taken as UTC) become one sortable UTC
key. Each shard is read as a stream with a bounded reorder window (concurrent
writers can append slightly out of order), then the shards are merged with a
stable heap merge. A line that cannot be read is counted with file:line, never
dropped silently and never fatal.
"""

from __future__ import annotations

import heapq
import json
import os
import re
from bisect import insort
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson

from .schema import DEFAULT_AGENT, NO_SESSION, SCHEMA_VERSION, default_level

LEGACY_FILE = "agent_audit.log"
SHARD_PREFIX = "agent_audit-"
REORDER_WINDOW = 4096
MAX_CORRUPT_KEPT = 1000

_BRACKET_RE = re.compile(r"^\[([^\]]+)\]\s*([A-Za-z_][A-Za-z0-9_]*)\s*:?\s?(.*)$", re.S)


class Record(NamedTuple):
    key: str  # UTC sort key, "YYYY-MM-DDTHH:MM:SS.ffffffZ"
    event: dict[str, Any]
    file: str
    line: int


class CorruptLine(NamedTuple):
    file: str
    line: int
    error: str
    text: str

    def location(self) -> str:
        return f"{self.file}:{self.line}"


class ReadStats:
    """What a read saw: files, lines, events, and every unreadable line (first 1000 kept)."""

    def __init__(self) -> None:
        self.files: list[str] = []
        self.lines = 0
        self.events = 0
        self.corrupt_count = 0
        self.corrupt: list[CorruptLine] = []
        self.legacy_lines = 0

    def add_corrupt(self, file: str, line: int, error: str, raw: bytes) -> None:
        self.corrupt_count += 1
        if len(self.corrupt) < MAX_CORRUPT_KEPT:
            self.corrupt.append(CorruptLine(file, line, error, raw[:200].decode("utf-8", "replace")))

    def as_dict(self) -> dict[str, Any]:
        return {"files": self.files, "lines": self.lines, "events": self.events,
                "legacy_lines": self.legacy_lines, "corrupt": self.corrupt_count,
                "corrupt_lines": [c._asdict() for c in self.corrupt]}


# --- files --------------------------------------------------------------------------

def shard_files(log_dir: str | os.PathLike[str]) -> list[str]:
    """The legacy file first, then per-agent shards by name."""
    d = os.fspath(log_dir)
    try:
        names = os.listdir(d)
    except FileNotFoundError:
        return []
    shards = sorted(n for n in names if n.startswith(SHARD_PREFIX) and n.endswith(".log"))
    legacy = [LEGACY_FILE] if LEGACY_FILE in names else []
    return [os.path.join(d, n) for n in (*legacy, *shards)]


def agent_of(path: str) -> str:
    name = os.path.basename(path)
    if name.startswith(SHARD_PREFIX) and name.endswith(".log"):
        return name[len(SHARD_PREFIX):-4] or DEFAULT_AGENT
    return "legacy"


# --- timestamps -------------------------------------------------------------------------

def ts_key(ts: Any) -> str | None:
    """A sortable UTC key for an RFC 3339 / ISO 8601 time; None if it is not one."""
    if not isinstance(ts, str):
        return None
    if len(ts) == 27 and ts[-1] == "Z" and ts[10] == "T":  # ours: already the key
        return ts
    try:
        dt = datetime.fromisoformat(ts.strip())
    except ValueError:
        return None
    dt = dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- upgrading old lines -------------------------------------------------------------------

def upgrade(obj: Any, agent: str) -> dict[str, Any] | None:
    """Any known line object -> a v1 event dict (in place when it already is one)."""
    if not isinstance(obj, dict):
        return None
    if obj.get("v") == SCHEMA_VERSION and "agent" in obj:
        return obj
    if "ts" not in obj and "timestamp" in obj:
        obj["ts"] = obj.pop("timestamp")
    if "ts" not in obj:
        return None
    obj.setdefault("session", NO_SESSION)
    obj.setdefault("agent", agent)
    cat = str(obj.get("cat") or obj.get("category") or "OBSERVE")
    obj["cat"] = cat
    obj.setdefault("level", default_level(cat))
    obj.setdefault("msg", obj.pop("message", ""))
    details = obj.get("details", "")
    obj["details"] = details if isinstance(details, str) else json.dumps(details)
    _typed_from_details(obj)
    obj["v"] = 0  # upgraded from a legacy line
    return obj


_EXIT_RE = re.compile(r"^exit=(-?\d+)")


def _typed_from_details(ev: dict[str, Any]) -> None:
    """The old `details` conventions carried facts the v1 typed fields now hold."""
    d, cat = ev["details"], ev["cat"]
    if cat == "CMD_RESULT" and "exit_code" not in ev:
        m = _EXIT_RE.match(d)
        if m:
            ev["exit_code"] = int(m.group(1))
        ev.setdefault("cmd", ev.get("msg", ""))
    elif cat == "CMD_INTENT":
        ev.setdefault("cmd", ev.get("msg", ""))
    elif cat == "ROLLBACK" and d.startswith("undo_with:"):
        ev.setdefault("undo", d[len("undo_with:"):].strip())
        ev.setdefault("action", ev.get("msg", ""))
    elif cat == "FILE_MODIFY":
        ev.setdefault("path", ev.get("msg", ""))
        if d.startswith("action="):
            ev.setdefault("action", d[len("action="):].split(";", 1)[0].strip())


def parse_line(raw: bytes, agent: str) -> dict[str, Any] | None:
    """One line -> event, or None if it is not a readable event."""
    s = raw.strip()
    if not s:
        return None
    if s[:1] == b"{":
        try:
            obj = orjson.loads(s)
        except orjson.JSONDecodeError:
            try:
                obj = json.loads(s)  # lone-surrogate escapes orjson refuses
            except ValueError:
                return None
        return upgrade(obj, agent)
    if s[:1] == b"[":
        m = _BRACKET_RE.match(s.decode("utf-8", "replace"))
        if not m:
            return None
        cat = m.group(2).upper()
        return upgrade({"ts": m.group(1), "cat": cat, "msg": m.group(3).rstrip()}, agent)
    return None


# --- streaming -----------------------------------------------------------------------------

def iter_shard(path: str, stats: ReadStats | None = None, *,
               accept: Callable[[bytes], bool] | None = None) -> Iterator[Record]:
    """A shard's records in file order. `accept(raw)` may skip lines cheaply before parsing
    (skipped lines are neither events nor corrupt)."""
    stats = stats if stats is not None else ReadStats()
    agent = agent_of(path)
    legacy = agent == "legacy"
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed in finally; a generator
    except OSError as e:
        stats.add_corrupt(path, 0, f"cannot open: {e.strerror}", b"")
        return
    stats.files.append(path)
    try:
        n = 0
        for n, raw in enumerate(f, 1):  # noqa: B007
            if accept is not None and not accept(raw):
                continue
            ev = parse_line(raw, agent)
            if ev is None:
                if raw.strip():
                    incomplete = not raw.endswith(b"\n")
                    stats.add_corrupt(path, n, "incomplete last line" if incomplete else "not an event", raw)
                continue
            key = ts_key(ev.get("ts"))
            if key is None:
                stats.add_corrupt(path, n, f"bad timestamp {ev.get('ts')!r}", raw)
                continue
            if legacy or ev.get("v") == 0:
                stats.legacy_lines += 1
            stats.events += 1
            yield Record(key, ev, path, n)
        stats.lines += n
    finally:
        f.close()


def _reordered(records: Iterable[Record], window: int) -> Iterator[Record]:
    """Sort a nearly sorted stream with a bounded buffer: appends are O(1) while in order."""
    buf: deque[Record] = deque()
    for rec in records:
        if not buf or rec.key >= buf[-1].key:
            buf.append(rec)
        else:
            insort(buf, rec, key=_key)  # rare: a line written slightly late
        if len(buf) > window:
            yield buf.popleft()
    yield from buf


def _key(r: Record) -> str:
    return r.key


def read_records(log_dir: str | os.PathLike[str], stats: ReadStats | None = None, *,
                 files: list[str] | None = None, accept: Callable[[bytes], bool] | None = None,
                 window: int = REORDER_WINDOW) -> Iterator[Record]:
    """All records of all shards, merged in time order (stable: file order breaks ties)."""
    stats = stats if stats is not None else ReadStats()
    paths = files if files is not None else shard_files(log_dir)
    streams = [_reordered(iter_shard(p, stats, accept=accept), window) for p in paths]
    if len(streams) == 1:
        return streams[0]
    return heapq.merge(*streams, key=_key)


def read_events(log_dir: str | os.PathLike[str], stats: ReadStats | None = None,
                **kw: Any) -> Iterator[dict[str, Any]]:
    """Just the event dicts, in time order."""
    return (r.event for r in read_records(log_dir, stats, **kw))
