"""Event schema v1 and the one encoder every writer uses.

A line is one JSON object, `ts` first:
  ts, session, agent, level, cat, msg, details, [cmd, exit_code, duration_ms,
  path, action, undo, data], [seq, hash], v
`seq` and `hash` are the writer's hash chain (`chain`), added when the line is written.
`details` stays a string for the old toolkit's readers; the typed fields carry
the same facts as numbers and structured values.
"""

from __future__ import annotations

import json
import re
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SCHEMA_VERSION = 1

LEVELS = ("INFO", "WARN", "ERROR")
CATEGORIES = (
    "SESSION_START",
    "SESSION_END",
    "TASK_START",
    "TASK_END",
    "CMD_INTENT",
    "CMD_RESULT",
    "FILE_MODIFY",
    "DECISION",
    "WARNING",
    "ERROR",
    "OBSERVE",
    "ROLLBACK",
)
TYPED_FIELDS = ("cmd", "exit_code", "duration_ms", "path", "action", "undo", "data")
BASE_FIELDS = ("ts", "session", "agent", "level", "cat", "msg", "details")

MAX_FIELD_CHARS = 16_384  # per string field
MAX_DATA_BYTES = 65_536  # encoded size of `data`
NO_SESSION = "none"
DEFAULT_AGENT = "main"

_KNOWN_CATS = frozenset(CATEGORIES)
_CAT_RE = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")
_SHARD_RE = re.compile(r"[^A-Za-z0-9._-]+")


_sec_cache: list = [-1, ""]  # (second, formatted prefix): strftime once per second


def now_ts() -> str:
    """UTC now as RFC 3339 with microseconds and a Z: sorts as a string."""
    sec, rem = divmod(time.time_ns(), 1_000_000_000)
    if sec != _sec_cache[0]:
        _sec_cache[0], _sec_cache[1] = sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
    return f"{_sec_cache[1]}.{rem // 1000:06d}Z"


def truncate(s: str, limit: int = MAX_FIELD_CHARS) -> str:
    """Cut a too-long string and say by how much; the event itself is never dropped."""
    if len(s) <= limit:
        return s
    return f"{s[:limit]}…[truncated {len(s) - limit} chars]"


def as_text(v: Any) -> str:
    """Any value as a string field (bytes decoded leniently, None as empty)."""
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    if isinstance(v, bytes):
        return v.decode("utf-8", "surrogateescape")
    return str(v)


_DEFAULT_LEVELS = {"ERROR": "ERROR", "WARNING": "WARN"}


def default_level(cat: str) -> str:
    return _DEFAULT_LEVELS.get(cat, "INFO")


def shard_name(agent: str) -> str:
    """`agent_audit-<agent>.log` with the agent id made safe for a file name."""
    safe = _SHARD_RE.sub("_", agent).strip("._")[:64] or DEFAULT_AGENT
    return f"agent_audit-{safe}.log"


def _text(v: Any, limit: int = MAX_FIELD_CHARS) -> str:
    if type(v) is str and len(v) <= limit:
        return v
    return truncate(as_text(v), limit)


def make_event(
    cat: str,
    msg: Any = "",
    *,
    session: str,
    agent: str,
    level: str | None = None,
    details: Any = "",
    ts: str | None = None,
    **typed: Any,
) -> dict[str, Any]:
    """Build a v1 event in field order; unknown typed fields are rejected (a programming error)."""
    if cat not in _KNOWN_CATS:
        cat = as_text(cat).upper()
        if not _CAT_RE.match(cat):
            cat = "OBSERVE"
    if level is None:
        level = default_level(cat)
    elif level not in LEVELS:
        level = str(level).upper()
        if level not in LEVELS:
            level = "WARN" if level.startswith("WARN") else "ERROR" if level.startswith("ERR") else "INFO"
    ev: dict[str, Any] = {
        "ts": ts or now_ts(),
        "session": _text(session, 256) or NO_SESSION,
        "agent": _text(agent, 256) or DEFAULT_AGENT,
        "level": level,
        "cat": cat,
        "msg": _text(msg),
        "details": _text(details),
    }
    if typed:
        for key in TYPED_FIELDS:
            v = typed.pop(key, None)
            if v is None:
                continue
            if key == "exit_code":
                v = _as_int(v)
            elif key == "duration_ms":
                v = _as_number(v)
            elif key != "data":  # data is capped at encode time, where its size is known for free
                v = _text(v)
            if v is not None:
                ev[key] = v
        if typed:
            raise TypeError(f"unknown event fields: {', '.join(sorted(typed))}")
    ev["v"] = SCHEMA_VERSION
    return ev


def _as_int(v: Any) -> int | None:
    if type(v) is int:
        return v
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def _as_number(v: Any) -> float | int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        return v
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _cap_data(v: Any) -> Any:
    """Keep `data` as structured JSON unless it is huge; then keep a marked preview."""
    raw = encode_json(v)
    if len(raw) <= MAX_DATA_BYTES:
        return v
    text = raw.decode("utf-8", "replace")
    return {"_truncated": True, "_bytes": len(raw), "preview": text[:MAX_FIELD_CHARS]}


_lean = False  # set by one-shot processes: importing orjson costs ~25 ms, more than they save


def set_lean(lean: bool = True) -> None:
    """Encode with the stdlib only (same compact output); for the hook and one-line verbs."""
    global _lean
    _lean = lean


def _stdlib_dumps(v: Any) -> bytes:
    try:
        return json.dumps(v, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
    except (TypeError, ValueError, UnicodeEncodeError):
        return json.dumps(v, ensure_ascii=True, default=str, separators=(",", ":")).encode("ascii")


def encode_json(v: Any) -> bytes:
    """orjson when it can; the stdlib with ASCII escapes for what orjson refuses
    (lone surrogates from invalid UTF-8, huge ints, odd types), so nothing is lost."""
    if _lean:
        return _stdlib_dumps(v)
    import orjson

    try:
        return orjson.dumps(v)
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(v, ensure_ascii=True, default=str, separators=(",", ":")).encode("ascii")


def encode_event(ev: dict[str, Any]) -> bytes:
    """One line, newline included: what every writer appends."""
    line = encode_json(ev)
    if len(line) > MAX_DATA_BYTES and "data" in ev:
        capped = _cap_data(ev["data"])
        if capped is not ev["data"]:
            line = encode_json({**ev, "data": capped})
    return line + b"\n"


def decode_json(raw: bytes | str) -> Any:
    """Inverse of encode_json: the stdlib fallback reads back the escapes orjson refuses."""
    import orjson

    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)
