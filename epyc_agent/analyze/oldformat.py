"""The old toolkit's lines on the fast path, with the answers of the careful one.

The lab's history is in the old formats: agent_log.sh's JSON (`ts` with the writer's
UTC offset, no `agent`, no `v`, facts only in `details`), its older `timestamp`-keyed
JSON and the bracketed `[ts] CAT: message` lines. A line of exactly the shape those
writers produce becomes an item from one regex match and a cached UTC conversion of
its minute. Only the head is taken from the match; the event itself is parsed when a
mode looks into it, by the reader's own `parse_line`, so it is the event the careful
path builds. A line of any other shape (an escape, a quote agent_log.sh did not
escape, invalid UTF-8, another field, an unusual time) is left to the careful path.

`EPYC_AGENT_CAREFUL_READ=1` sends every line that is not our v1 line down the careful
path: the answers must be the same, only slower (the tests compare the two).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from typing import Any

from ..events.reader import KEY_PAD, TS_PATTERN, details_exit, utc_minute
from ..events.schema import NO_SESSION, default_level

CAREFUL_ENV = "EPYC_AGENT_CAREFUL_READ"
Item = tuple[Any, ...]
HeadTest = Callable[[bytes, bytes, bytes], bool]  # (session, level, cat) -> may the item be kept?

# agent_log.sh's JSON (KEY `ts`) and the older `timestamp`-keyed JSON; TEXT is what a string's
# content may hold. Groups: local minute, seconds[.fraction], offset, session, level, category.
_JSON = (
    rb'\{"KEY":"TIME","session":"(TEXT)","level":"(INFO|WARN|ERROR)","cat":"([A-Z][A-Z0-9_]*+)","msg":"TEXT"'
    rb'(?:,"details":"TEXT")?\}\n'
).replace(b"TIME", TS_PATTERN.encode())
# The bracketed lines. The reader reads the category as the longest name after the bracket: a
# colon ends it here. Groups: local minute, seconds[.fraction], offset, category.
_BRACKET = re.compile(rb"\[" + TS_PATTERN.encode() + rb"\] ([A-Z][A-Z0-9_]*+):.*\n", re.S)


def _json(text: bytes) -> tuple[re.Pattern[bytes], re.Pattern[bytes]]:
    """The `ts` and the `timestamp` pattern (one alternation would cost a third more per line)."""
    rx = _JSON.replace(b"TEXT", text)
    return re.compile(rx.replace(b"KEY", b"ts")), re.compile(rx.replace(b"KEY", b"timestamp"))


# Content that needs no unescaping: no quote, backslash or control character. A block free of
# backslashes and control characters (but newlines) is matched by the simpler (2x faster) patterns.
_STRICT = _json(rb'[^"\\\x00-\x1f]*+')
_PLAIN = _json(rb'[^"]*+')
_CONTROL = bytes(range(32)).replace(b"\n", b"")
_DETAILS_EXIT = re.compile(rb',"details":"(exit=[^"]*)"\}\n\Z')
_NONE = NO_SESSION.encode()
_PAD = KEY_PAD.encode()
_HEADS_MAX = 100_000
_heads: dict[bytes, bytes] = {}  # local minute + offset -> UTC "YYYY-MM-DDTHH:MM:"
_levels: dict[bytes, bytes] = {}  # a bracketed line's category -> its default level


def enabled() -> bool:
    return os.environ.get(CAREFUL_ENV) != "1"


def items(
    lines: list[bytes], numbers: Sequence[int], path: str, agent: str, head_ok: HeadTest | None = None
) -> list[Item | None]:
    """Per line, its item if it has exactly one of the old shapes, else None (for the careful path);
    () for such a line whose head `head_ok` refuses (its time checked first: a bad one is the careful
    path's to report)."""
    ag = agent.encode("utf-8", "surrogatepass")
    block = b"".join(lines)
    ts_rx, stamp_rx = _PLAIN if b"\\" not in block and len(block.translate(None, _CONTROL)) == len(block) else _STRICT
    ascii_only = block.isascii()
    heads = _heads
    out: list[Item | None] = []
    for m, i, raw in zip(map(ts_rx.fullmatch, lines), numbers, lines, strict=True):
        if m is None:
            m = _BRACKET.fullmatch(raw) if raw[:1] == b"[" else stamp_rx.fullmatch(raw)
        if m is None or not (ascii_only or _utf8(raw)):  # the careful path decides what the line is
            out.append(None)
            continue
        g = m.groups()
        if len(g) == 6:
            minute, sec, offset, ses, level, cat = g
        else:  # bracketed
            (minute, sec, offset, cat), ses = g, _NONE
            level = _levels.get(cat) or _levels.setdefault(cat, default_level(cat.decode()).encode())
        head = heads.get(minute + offset) or _head(minute, offset)
        if head is None:
            out.append(None)
        elif head_ok is None or head_ok(ses, level, cat):
            out.append((head + sec + _PAD[len(sec) - 2 :], ses, ag, level, cat, i, raw, path))
        else:
            out.append(())
    return out


def _utf8(raw: bytes) -> bool:
    try:
        raw.decode()
    except UnicodeDecodeError:
        return False
    return True


def _head(minute: bytes, offset: bytes) -> bytes | None:
    """The UTC minute for a local one (None: not a time; the careful path counts the line)."""
    h = utc_minute(minute.decode(), offset.decode())
    if h is None:
        return None
    if len(_heads) >= _HEADS_MAX:
        _heads.clear()
    head = _heads[minute + offset] = h.encode()
    return head


_MSG = b',"msg":"'
_THEN_DETAILS = b'","details":"'
_COMMA = ord(",")


def msg_details(raw: bytes) -> tuple[str, str]:
    """`msg` and `details` ("" if absent) of a JSON line `items` took, as its event holds them: no
    string there has a quote or an escape, so their bytes are their text (and the first `,"msg":"`
    is the field's)."""
    i = raw.index(_MSG) + len(_MSG)
    j = raw.index(b'"', i)
    details = raw[j + len(_THEN_DETAILS) : -3].decode() if raw[j + 1] == _COMMA else ""  # else `}\n`
    return raw[i:j].decode(), details


def exit_code(raw: bytes, cat: bytes) -> int | None:
    """The exit code the reader's upgrade finds in `details` (`exit=N; summary`) of a CMD_RESULT."""
    if cat != b"CMD_RESULT" or raw[:1] == b"[":
        return None
    i = raw.find(b',"details":"exit=0')  # the common success, without a regex (`exit=05` is 5)
    if i != -1 and raw[i + 18 : i + 19] in (b";", b'"'):
        return 0
    m = _DETAILS_EXIT.search(raw)
    return details_exit(m.group(1).decode()) if m else None
