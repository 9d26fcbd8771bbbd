"""Fast shard scanning: lines -> compact items, without building an event per line.

An item is a plain tuple `(ts, session, agent, level, cat, line, raw, file)`:
the first five are bytes (ts is the sortable UTC key), `line` the 1-based line
number, `raw` the line's bytes (or, for lines the careful path read, the event
dict) and `file` the shard path. Our writer's v1 lines have a fixed head and
tail, so one regex recognises them and yields the head fields; a full JSON parse
(`event(item)`) happens only for the few items a mode looks into. The old
toolkit's lines of its writers' exact shapes take a fast path of their own
(`oldformat`: their head from one regex, their event from the reader's
`parse_line` when looked into). Every other line goes through the Foundation
reader's `parse_line` (legacy formats, upgrades) and is counted there as legacy
or corrupt, exactly like `read_records`. A line with our exact head and tail is
trusted without a full parse: the writer appends each line whole, with one write.

`map_shards` runs a per-shard function in forked worker processes when the log
is large: modes that need no global order (counts, loops per session) use it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Sequence
from itertools import repeat
from typing import TYPE_CHECKING, Any

import orjson

from ..events.chain import V1_END as V1_TAIL
from ..events.reader import ReadStats, agent_of, glued_at, line_blocks, parse_line, ts_key, why_corrupt
from . import oldformat

if TYPE_CHECKING:
    from .filters import Query

TS, SES, AGENT, LEVEL, CAT, LINE, RAW, FILE = range(8)
Item = tuple[Any, ...]

PARALLEL_BYTES = 32 << 20  # below this, forking costs more than it saves
MAX_WORKERS = 8
_HEAD = re.compile(
    rb'\{"ts":"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z)","session":"([^"\\]*)","agent":"([^"\\]*)",'
    rb'"level":"(INFO|WARN|ERROR)","cat":"([A-Z][A-Z0-9_]*)",.*,"v":1\}\n',
    re.S,
)
TS_HEAD = b'{"ts":"'
_EXIT = re.compile(rb',"exit_code":(-?\d+)[,}]')
_LEVELS = {"WARNING": b"WARN", "WARN": b"WARN", "ERROR": b"ERROR", "ERR": b"ERROR", "INFO": b"INFO"}


def _b(v: Any) -> bytes:
    return (v if isinstance(v, str) else "" if v is None else str(v)).encode("utf-8", "surrogatepass")


def careful(raw: bytes, line: int, path: str, agent: str, stats: ReadStats) -> Item | None:
    """A line that is not our plain v1 line: the reader's upgrade path, or a counted corrupt line."""
    ev = parse_line(raw, agent)
    if ev is None:
        if raw.strip():
            stats.add_corrupt(path, line, why_corrupt(raw), raw)
        return None
    key = ts_key(ev.get("ts"))
    if key is None:
        stats.add_corrupt(path, line, f"bad timestamp {ev.get('ts')!r}", raw)
        return None
    if agent == "legacy" or ev.get("v") == 0:
        stats.legacy_lines += 1
    level = _LEVELS.get(str(ev.get("level", "")).upper(), b"INFO")
    return (key.encode(), _b(ev.get("session")), _b(ev.get("agent")), level, _b(ev.get("cat")), line, ev, path)


def legacy(
    lines: list[bytes],
    numbers: Sequence[int],
    path: str,
    agent: str,
    stats: ReadStats,
    head_ok: oldformat.HeadTest | None = None,
) -> list[Item | None]:
    """Lines that are not our plain v1 lines: the old toolkit's fast path for those of its exact
    shapes, `careful` for the rest (and for all with EPYC_AGENT_CAREFUL_READ=1). Counted as
    legacy or corrupt either way; None for a line that is no event, () for one `head_ok` refused."""
    out = oldformat.items(lines, numbers, path, agent, head_ok) if oldformat.enabled() else [None] * len(lines)
    fast = len(out) - out.count(None)
    stats.legacy_lines += fast
    if fast < len(out):
        out = [
            careful(raw, i, path, agent, stats) if it is None else it
            for it, i, raw in zip(out, numbers, lines, strict=True)
        ]
    return out


def parse_lines(
    lines: list[bytes], first: int, path: str, agent: str, stats: ReadStats, q: Query | None = None
) -> list[Item]:
    """Items for the lines worth parsing for `q` (all when None): v1 lines its byte marks pick,
    old-format lines whose head it may keep, every other line. Line numbers start at `first`."""
    head_ok = q.head_test() if q is not None else None
    if True not in map(bytes.endswith, lines, repeat(V1_TAIL)):  # the old toolkit's block: no v1 line
        return [x for x in legacy(lines, range(first, first + len(lines)), path, agent, stats, head_ok) if x]
    idx = q.select(lines) if q is not None else None
    if idx is not None and len(idx) < len(lines):  # all selected (an old-format block): nothing to pick
        lines, numbers = [lines[j] for j in idx], [first + j for j in idx]
    else:
        numbers = range(first, first + len(lines))  # type: ignore[assignment]
    ms = list(map(_HEAD.fullmatch, lines))
    # The common case: all our own v1 lines, one line head each (nothing glued: one C pass).
    if None not in ms and b"".join(lines).count(TS_HEAD) == len(ms):
        return [(*m.groups(), i, raw, path) for m, i, raw in zip(ms, numbers, lines, strict=False)]
    if ms.count(None) == len(ms):  # no v1 line (the old toolkit's shard): nothing to merge
        return [x for x in legacy(lines, numbers, path, agent, stats, head_ok) if x]
    ms = [None if m is not None and glued_at(m.string) != -1 else m for m in ms]  # glued: the careful path
    rest = [j for j, m in enumerate(ms) if m is None]
    others = iter(legacy([lines[j] for j in rest], [numbers[j] for j in rest], path, agent, stats, head_ok))
    out = [
        (*m.groups(), i, raw, path) if m is not None else next(others)
        for m, i, raw in zip(ms, numbers, lines, strict=False)
    ]
    return [x for x in out if x]


def scan_shard(path: str, stats: ReadStats, q: Query | None = None) -> Iterator[list[Item]]:
    """A shard's items in file order, in blocks of ~0.5 MB of lines."""
    agent = agent_of(path)
    for first, lines in line_blocks(path, stats):
        items = parse_lines(lines, first, path, agent, stats, q)
        stats.events += len(items)
        yield items


def event(item: Item) -> dict[str, Any]:
    """The full event of an item (parsed now for fast-path items)."""
    raw = item[RAW]
    if raw.__class__ is dict:
        return raw  # type: ignore[no-any-return]
    if _is_old(raw):
        ev = parse_line(raw, _agents.get(item[FILE]) or _agents.setdefault(item[FILE], agent_of(item[FILE])))
    else:
        try:
            ev = orjson.loads(raw)
        except orjson.JSONDecodeError:
            ev = _json_loads(raw)
    if ev.__class__ is not dict:  # a v1 head and tail around a broken middle: keep what the head says
        ev = {
            "ts": item[TS].decode(),
            "session": text(item[SES]),
            "agent": text(item[AGENT]),
            "level": item[LEVEL].decode(),
            "cat": item[CAT].decode(),
            "msg": "",
            "details": "unreadable",
        }
    return ev  # type: ignore[no-any-return]


def _json_loads(raw: bytes) -> Any:
    """The standard parser, which reads a lone surrogate (`\\ud800`) that orjson refuses; None if broken."""
    import json

    try:
        return json.loads(raw)
    except ValueError:
        return None


def exit_code(item: Item) -> int | None:
    """A CMD_RESULT's exit code without parsing the whole line."""
    raw = item[RAW]
    if raw.__class__ is dict:
        v = raw.get("exit_code")
        return v if isinstance(v, int) and not isinstance(v, bool) else None
    if _is_old(raw):
        return oldformat.exit_code(raw, item[CAT])
    m = _EXIT.search(raw)
    return int(m.group(1)) if m else None


def old_text(item: Item) -> tuple[str, str] | None:
    """`msg` and `details` of an old toolkit's JSON line on the fast path, read from its bytes
    without building its event; None for any other item."""
    raw = item[RAW]
    if raw.__class__ is dict or raw[:1] != b"{" or raw.endswith(V1_TAIL):
        return None
    return oldformat.msg_details(raw)


_agents: dict[str, str] = {}  # shard path -> its agent (the old formats' events take it from there)


def _is_old(raw: bytes) -> bool:
    """Whether a bytes item is an old-format line (a v1 item's line starts with `{` and ends with V1_TAIL)."""
    return raw[:1] != b"{" or not raw.endswith(V1_TAIL)


def text(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


def where(item: Item) -> str:
    return f"{item[FILE]}:{item[LINE]}"


def merge_stats(into: ReadStats, other: ReadStats) -> None:
    into.files += other.files
    into.lines += other.lines
    into.events += other.events
    into.legacy_lines += other.legacy_lines
    into.corrupt_count += other.corrupt_count
    into.corrupt += other.corrupt[: max(0, 1000 - len(into.corrupt))]


def _sizes(paths: list[str]) -> list[int]:
    out = []
    for p in paths:
        try:
            out.append(os.path.getsize(p))
        except OSError:
            out.append(0)
    return out


def map_shards(fn: Callable[..., tuple[Any, ReadStats]], paths: list[str], *args: Any, stats: ReadStats) -> list[Any]:
    """`fn(path, *args) -> (part, stats)` for every shard; parts in path order, stats merged.

    Large logs use one forked worker per shard (at most MAX_WORKERS): the kernel spreads
    them over the cores, which balances 5 shards on 2 cores better than a 3:2 split.
    `fn` and `args` must pickle.
    """
    sizes = _sizes(paths)
    workers = min(MAX_WORKERS, len(paths))
    if (os.cpu_count() or 1) < 2 or workers < 2 or sum(sizes) < PARALLEL_BYTES:
        results = [fn(p, *args) for p in paths]
    else:
        import multiprocessing

        order = sorted(range(len(paths)), key=lambda i: -sizes[i])
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            done = pool.starmap(fn, [(paths[i], *args) for i in order], chunksize=1)
        results = [r for _, r in sorted(zip(order, done, strict=False), key=lambda t: t[0])]
    parts = []
    for part, st in results:
        merge_stats(stats, st)
        parts.append(part)
    return parts


_FIELD_RES: dict[str, re.Pattern[bytes]] = {}


def field(item: Item, name: str) -> Any:
    """One string field of an item (`cmd`, `path`, `action`, ...) without parsing the whole line.

    In our v1 lines `,"name":"` cannot occur inside a string value (quotes are escaped), and
    the typed fields come before `data`, so the first match is the field itself.
    """
    raw = item[RAW]
    if raw.__class__ is dict:
        return raw.get(name)
    if _is_old(raw):
        return event(item).get(name)
    rx = _FIELD_RES.get(name)
    if rx is None:
        rx = _FIELD_RES[name] = re.compile(b',"' + name.encode() + rb'":"((?:[^"\\]|\\.)*)"')
    m = rx.search(raw)
    if m is None:
        return None
    v = m.group(1)
    if b"\\" not in v:
        return v.decode("utf-8", "surrogateescape")
    try:
        return orjson.loads(b'"' + v + b'"')
    except orjson.JSONDecodeError:
        return _json_loads(b'"' + v + b'"')
