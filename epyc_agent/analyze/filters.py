"""Filters shared by every mode: time window, agent, session, level, and categories.

A `Query` does two things: `select(lines)` is a cheap byte test run on a block
of lines before they are parsed (it may let too much through, never too little:
lines that are not our v1 lines always pass and are checked after parsing), and `keep(item)` is
the exact test on the parsed item. It is a plain picklable object so shard
scans can run in worker processes.
"""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime, timedelta
from itertools import compress, repeat
from typing import Any

import orjson

from ..errors import EpycAgentError
from ..events.reader import ts_key
from .oldformat import HeadTest
from .scan import AGENT, CAT, LEVEL, SES, TS, V1_TAIL, Item

_REL = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
LEVEL_NAMES = {"INFO": "INFO", "WARN": "WARN", "WARNING": "WARN", "ERROR": "ERROR", "ERR": "ERROR"}


def parse_time(value: str, now: datetime | None = None) -> str:
    """`2h`, `3d`, `90m`, `1w` (ago), or an ISO time/date (no offset: UTC) -> a UTC sort key."""
    m = _REL.match(value)
    if m:
        now = now or datetime.now(UTC)
        t = now - timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])
        return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    v = value.strip()
    key = ts_key(v[:-1] + "+00:00" if v.endswith(("Z", "z")) else v)
    if key is None:
        raise EpycAgentError(
            f"cannot read the time {value!r}",
            hint="use an ISO time like 2026-01-31T12:00:00+01:00, a date, or 30m/2h/3d/1w",
        )
    return key


def parse_levels(value: str) -> frozenset[bytes]:
    """`ERROR`, `warn,error` -> the level names the log uses."""
    out = set()
    for part in value.split(","):
        name = LEVEL_NAMES.get(part.strip().upper())
        if name is None:
            raise EpycAgentError(f"unknown level {part.strip()!r}", hint="use INFO, WARN or ERROR (comma-separated)")
        out.add(name.encode())
    return frozenset(out)


def _json_text(s: str) -> bytes:
    """How a string appears inside our JSON lines (for the byte prefilter)."""
    return orjson.dumps(s)[1:-1]


class Query:
    """What to read: optional since/until keys, agent, session, levels, and categories."""

    def __init__(
        self,
        since: str | None = None,
        until: str | None = None,
        agent: str | None = None,
        session: str | None = None,
        levels: frozenset[bytes] | None = None,
        cats: tuple[str, ...] | None = None,
    ) -> None:
        self.since = since.encode() if since else None
        self.until = until.encode() if until else None
        self.agent = agent.encode() if agent else None
        self.session = session.encode() if session else None
        self.levels = levels or None
        self.cats: frozenset[bytes] | None = None
        self.head_cats: frozenset[bytes] | None = None  # the categories an old-format line may have
        # every group must match a selected v1 line; a group matches if any of its regexes does
        self.marks: list[tuple[re.Pattern[bytes], ...]] = [
            (re.compile(re.escape(_json_text(s))),) for s in (agent, session) if s
        ]
        if levels:
            self.marks.append((re.compile(b'"level":"(?:' + b"|".join(sorted(levels)) + b')"'),))
        if cats:
            self.add_mark(b'"cat":"(?:' + b"|".join(c.encode() for c in cats) + b')"')
            self.cats = self.head_cats = frozenset(c.encode() for c in cats)
        self.trivial = not (since or until or agent or session or levels or cats)

    def add_mark(self, *patterns: bytes) -> None:
        """Byte regexes of which every selected v1 line must contain at least one."""
        self.marks.append(tuple(re.compile(p) for p in patterns))
        self.trivial = False

    def with_cats(self, *cats: str, also: dict[str, bytes] | None = None) -> Query:
        """A copy limited to these categories, and to the lines of category C matching the
        byte regex `also[C]` (`{"OBSERVE": rb'"hook":"Stop"'}`: only some of a common category)."""
        q = copy.copy(self)
        q.marks = list(self.marks)
        also = also or {}
        q.add_mark(
            b'"cat":"(?:' + b"|".join(c.encode() for c in cats if c not in also) + b')"',
            *(b'"cat":"' + c.encode() + b'".*' + rx for c, rx in also.items()),
        )
        q.cats = frozenset(c.encode() for c in (*cats, *also))
        # an old-format line carries no `data` or typed fields, so it never matches an `also` regex
        q.head_cats = frozenset(c.encode() for c in cats if c not in also)
        return q

    def select(self, lines: list[bytes]) -> list[int] | None:
        """Indices of the lines worth parsing: all that are not our v1 lines, and the v1 lines
        containing every mark. A cheap superset of `keep`; None means all lines."""
        if not self.marks:
            return None
        if lines and lines[0].endswith(V1_TAIL) and lines[-1].endswith(V1_TAIL):  # v1 mostly: one pass over all
            return [
                j
                for j, (h, ln) in enumerate(zip(self._hits(lines), lines, strict=True))
                if h or not ln.endswith(V1_TAIL)
            ]
        is_v1 = list(map(bytes.endswith, lines, repeat(V1_TAIL)))  # the old formats' lines are not searched
        hits = iter(self._hits(list(compress(lines, is_v1))))
        return [j for j, v in enumerate(is_v1) if not v or next(hits)]

    def _hits(self, lines: list[bytes]) -> list[Any]:
        """Per line: whether it matches every group of marks (a group: any of its regexes)."""
        hit: Any = None
        for group in self.marks:
            any_hit: Any = list(map(group[0].search, lines))
            for rx in group[1:]:
                any_hit = [a or b for a, b in zip(any_hit, map(rx.search, lines), strict=True)]
            hit = any_hit if hit is None else [h and a for h, a in zip(hit, any_hit, strict=True)]
        return hit  # type: ignore[no-any-return]

    def keep(self, it: Item) -> bool:
        """The exact test on a parsed item."""
        if self.since is not None and it[TS] < self.since:
            return False
        if self.until is not None and it[TS] > self.until:
            return False
        if self.agent is not None and it[AGENT] != self.agent:
            return False
        if self.session is not None and it[SES] != self.session:
            return False
        if self.levels is not None and it[LEVEL] not in self.levels:
            return False
        return self.cats is None or it[CAT] in self.cats

    def head_ok(self, ses: bytes, level: bytes, cat: bytes) -> bool:
        """The exact test on an old-format line's head, before its item is built."""
        if self.session is not None and ses != self.session:
            return False
        if self.levels is not None and level not in self.levels:
            return False
        return self.head_cats is None or cat in self.head_cats

    def head_test(self) -> HeadTest | None:
        """`head_ok`, or None when it keeps every head; a bare category test when only categories
        count (the common case: it runs on every old-format line)."""
        if not (self.session or self.levels or self.head_cats is not None):
            return None
        cats = self.head_cats
        if self.session is None and self.levels is None and cats is not None:
            return lambda _ses, _level, cat: cat in cats
        return self.head_ok

    def describe(self) -> dict[str, str | list[str] | None]:
        """The active filters, for JSON output and script headers."""

        def s(b: bytes | None) -> str | None:
            return b.decode() if b is not None else None

        return {
            "since": s(self.since),
            "until": s(self.until),
            "agent": s(self.agent),
            "session": s(self.session),
            "level": sorted(x.decode() for x in self.levels) if self.levels else None,
        }
