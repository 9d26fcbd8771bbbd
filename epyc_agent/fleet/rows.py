"""The fleet table: one row per whole line of a shard, and how a line becomes a row.

Every line is a row, readable or not (`kind`: event, corrupt, blank), so the server knows
what the local reader would count: lines, legacy lines, corrupt lines with file:line.
Lines are read by the analyzers' own scanner (`analyze.scan.parse_lines`: the v1 fast
path, the old formats upgraded by `events.reader`), and the keys the analyzers compare on
(the normalised command, the retry identity, the normalised error message) are computed
here with the analyzers' own functions, so SQL groups exactly what they would group.

The row key is (host, shard, offset, hash of the line): deterministic, so shipping a line
twice (a re-run, a crash between the INSERT and the checkpoint) writes the same key, and
ReplacingMergeTree keeps one row per key (queries read it FINAL). A rotated shard's new
file reuses offsets, but not the same line at the same offset, so nothing is replaced.
"""

from __future__ import annotations

import os
from typing import Any

import orjson

from ..analyze.normalize import normalize
from ..analyze.scan import AGENT, CAT, LEVEL, LINE, RAW, SES, TS, V1_TAIL, Item, event, field, parse_lines
from ..events.reader import LEGACY_FILE, ReadStats, agent_of

TABLE = "epyc_events"
COLUMNS = (
    ("host", "String"),
    ("shard", "String"),  # the shard's file name where it was shipped from (part of the key)
    ("file", "String"),  # its path on the host, for `where` (file:line) as the local analyzers print it
    ("inode", "UInt64"),  # which generation of a rotated shard
    ("offset", "UInt64"),  # byte offset of the line in the file
    ("hash", "UInt64"),  # BLAKE2b-64 of the line's bytes
    ("line", "UInt64"),  # 1-based line number
    ("kind", "String"),  # event | corrupt | blank
    ("error", "String"),  # why a corrupt line is not an event
    ("legacy", "UInt8"),  # an old-format line the reader upgraded
    ("ts", "String"),  # UTC sort key, YYYY-MM-DDTHH:MM:SS.ffffffZ
    ("session", "String"),
    ("agent", "String"),
    ("level", "String"),
    ("cat", "String"),
    ("msg", "String"),
    ("cmd", "String"),  # CMD_RESULT: cmd, else msg
    ("cmd_norm", "String"),  # CMD_RESULT: analyze.normalize(cmd)
    ("call", "String"),  # CMD_RESULT: the retry identity (data.call_id, else cmd_norm)
    ("tool", "String"),  # data.tool (exempt tools)
    ("interrupted", "UInt8"),  # data.interrupted: a user's stop, no result
    ("exit_code", "Nullable(Int64)"),
    ("failed", "UInt8"),  # CMD_RESULT with an exit code other than 0
    ("msg_norm", "String"),  # rows --errors lists: normalize(msg, 200)
    ("event", "String"),  # the event as JSON (the line itself for v1 lines)
)
KEY = ("host", "shard", "offset", "hash")


def create_table_sql(db: str) -> str:
    cols = ",\n  ".join(f"`{n}` {t}" for n, t in COLUMNS)
    engine = f"ReplacingMergeTree() ORDER BY ({', '.join(KEY)})"
    return f"CREATE TABLE IF NOT EXISTS {db}.{TABLE} (\n  {cols}\n) ENGINE = {engine}"


try:  # hashlib would load OpenSSL; blake2 is built in
    from _blake2 import blake2b
except ImportError:  # pragma: no cover
    from hashlib import blake2b


def line_hash(raw: bytes) -> int:
    return int.from_bytes(blake2b(raw, digest_size=8).digest(), "big")


class _Corrupt(ReadStats):
    """Read stats that keep every corrupt line's reason by line number (not only the first 1000)."""

    def __init__(self) -> None:
        super().__init__()
        self.why: dict[int, str] = {}

    def add_corrupt(self, file: str, line: int, error: str, raw: bytes) -> None:
        self.why[line] = error


class Source:
    """What every row of one shard shares: host, shard name, path, inode."""

    def __init__(self, host: str, path: str, inode: int, shard: str | None = None) -> None:
        self.host, self.path, self.inode = host, path, inode
        self.shard = shard or os.path.basename(path)
        self.agent = agent_of(os.path.join(os.path.dirname(path), self.shard))


def encode_rows(src: Source, lines: list[bytes], first_line: int, first_offset: int) -> tuple[bytes, dict[str, int]]:
    """JSONEachRow bytes for whole `lines` starting at line `first_line`, byte `first_offset`;
    and counts of what they were (lines, events, corrupt)."""
    stats = _Corrupt()
    items = {it[LINE]: it for it in parse_lines(lines, first_line, src.path, src.agent, stats)}
    out: list[bytes] = []
    counts = {"lines": len(lines), "events": len(items), "corrupt": len(stats.why)}
    offset = first_offset
    for n, raw in enumerate(lines, first_line):
        row: dict[str, Any] = {
            "host": src.host,
            "shard": src.shard,
            "file": src.path,
            "inode": src.inode,
            "offset": offset,
            "hash": line_hash(raw),
            "line": n,
        }
        offset += len(raw)
        it = items.get(n)
        if it is not None:
            row.update(_event_fields(it, src))
        elif n in stats.why:
            row.update(kind="corrupt", error=stats.why[n])
        else:
            row["kind"] = "blank"
        out.append(_dumps(row))
    return b"\n".join(out) + b"\n" if out else b"", counts


def _event_fields(it: Item, src: Source) -> dict[str, Any]:
    raw = it[RAW]
    ev, as_json = None, None
    if raw.__class__ is bytes and raw[:1] == b"{" and raw.endswith(V1_TAIL):  # our v1 line: stored as written
        try:
            ev = orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
        if ev.__class__ is dict:
            as_json = raw.rstrip(b"\n").decode("utf-8", "replace")
    if as_json is None:
        ev = event(it)  # the event the analyzers see: upgraded, or what a broken line's head says
    assert ev is not None
    cat = it[CAT].decode("utf-8", "replace")
    level = it[LEVEL].decode()
    code = ev.get("exit_code")
    code = code if code.__class__ is int else None
    data = ev.get("data")
    data = data if data.__class__ is dict else {}
    out: dict[str, Any] = {
        "kind": "event",
        # what the reader counts as legacy: upgraded lines, and lines of the legacy file it read carefully
        "legacy": int(ev.get("v") == 0 or (raw.__class__ is dict and src.shard == LEGACY_FILE)),
        "ts": it[TS].decode(),
        "session": _text(it[SES]),
        "agent": _text(it[AGENT]),
        "level": level,
        "cat": cat,
        "msg": str(ev.get("msg", "")),
        "exit_code": code,
        "tool": data.get("tool") if isinstance(data.get("tool"), str) else "",
        "interrupted": int(data.get("interrupted") is True),
        "event": as_json if as_json is not None else _json_text(ev),
    }
    failed = cat == "CMD_RESULT" and code not in (0, None)
    if cat == "CMD_RESULT":
        cmd = str(ev.get("cmd") or ev.get("msg") or "")
        norm = normalize(cmd)
        call = data.get("call_id")
        out.update(cmd=cmd, cmd_norm=norm, call=call if call.__class__ is str else norm, failed=int(failed))
    if level != "INFO" or failed:
        out["msg_norm"] = normalize(str(field(it, "msg") or ""), 200)
    return out


def _text(b: bytes) -> str:
    return b.decode("utf-8", "replace")


def _json_text(ev: dict[str, Any]) -> str:
    try:
        return orjson.dumps(ev, default=str).decode()
    except TypeError:  # a lone surrogate (from the json fallback): the server refuses those
        return orjson.dumps(_clean(ev), default=str).decode()


def _dumps(row: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(row)
    except TypeError:
        return orjson.dumps(_clean(row))


def _clean(v: Any) -> Any:
    """Lone surrogates replaced (U+FFFD), recursively: ClickHouse rejects them in JSON."""
    if isinstance(v, str):
        return v.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    if isinstance(v, dict):
        return {_clean(k): _clean(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_clean(x) for x in v]
    return v
