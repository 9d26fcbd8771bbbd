"""`log verify`: walk each shard's hash chain and name the first line that breaks it.

A shard is `intact` (its chain holds from its first chained line to its end; older
unchained lines before that are fine), `unchained` (no hashes: written before the
chain, or without the key), `tampered` (a line was edited, deleted, inserted or
moved; the first such line is named) or `empty`. A crash leaves at most an
unfinished last line, or (once the next event is written) an unreadable line the
chain steps over: both are notes, not tampering. Deleting whole lines at the very
end cannot be seen by a chain alone (nothing follows them to break).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from ..errors import EpycAgentError
from ..fileio import SECRET_NAME, secret_dir, secret_key
from . import chain
from .reader import ReadStats, agent_of, line_blocks, parse_line

INTACT, UNCHAINED, TAMPERED, EMPTY = "intact", "unchained", "tampered", "empty"


def key_for(log_dir: str) -> bytes:
    """The key the writer chained this log dir's shards with (never created here: a new key would
    call every chained line edited); refused if it is missing or cannot be read safely."""
    key = secret_key(log_dir, create=False)
    if key is None:
        path = os.path.join(secret_dir(log_dir), SECRET_NAME)
        raise EpycAgentError(
            f"no usable secret key at {path}, so the chain cannot be checked",
            hint="it must be the 32-byte file (yours, mode 0600) that wrote the log; run verify as that user",
        )
    return key


def _lines(path: str) -> Iterator[tuple[int, bytes]]:
    stats = ReadStats()
    for first, lines in line_blocks(path, stats):
        yield from enumerate(lines, first)
    if stats.corrupt:  # the shard could not be opened
        raise EpycAgentError(f"cannot read {path}: {stats.corrupt[0].error}", hint="check the path and permissions")


class _Walk:
    """The chain state while a shard is read line by line."""

    def __init__(self, path: str) -> None:
        self.path, self.agent = path, agent_of(path)
        self.key: bytes | None = None  # read at the first chained line: unchained shards need none
        self.link: chain.Link | None = None  # None until the first chained line
        self.prev = ""  # what the line before was: chained, event, unreadable
        self.lines = self.chained = self.unchained = 0
        self.first_chained: int | None = None
        self.problem: dict[str, Any] | None = None
        self.missing_from: int | None = None  # with a "deleted" problem: the first missing event
        self.broken: chain.Link | None = None  # the link of a line whose hash did not match
        self.notes: list[str] = []

    def step(self, n: int, raw: bytes) -> None:
        self.lines = n
        found = chain.parse(raw)
        if found is not None:
            self._chained(n, *found)
        elif not raw.endswith(b"\n"):
            self.notes.append(f"line {n} is unfinished (a write cut short by a crash); every event before it verifies")
        elif parse_line(raw, self.agent) is None:
            self.notes.append(f"line {n} is unreadable (an interrupted write); the chain steps over it")
            self.prev = "unreadable"
        elif self.link is not None:
            self._fail(n, "inserted", "an event without a hash inside the chain (added by hand, or without the key)")
        else:
            self.unchained += 1
            self.prev = "event"

    def _chained(self, n: int, seq: int, h: bytes, covered: bytes) -> None:
        if self.key is None:
            self.key = key_for(os.path.dirname(self.path))
        link = self.link
        if seq == 1:
            if link is not None and self.prev == "chained":
                self._fail(n, "deleted", "the chain starts again right after a chained line: lines were removed")
                return
            if link is not None:
                self.notes.append(f"line {n} starts a new chain after the unreadable line before it")
            prev = b""
        elif link is None:
            self._fail(
                n, "deleted", f"the chain begins at event #{seq}: the {seq - 1} chained events before it are gone"
            )
            return
        else:
            prev = link[1]
        if chain.mac(self.key, prev, covered) != h:
            self._mismatch(n, seq)
            self.broken = (seq, h)
            return
        if self.first_chained is None:
            self.first_chained = n
        self.link, self.prev = (seq, h), "chained"
        self.chained += 1

    def _mismatch(self, n: int, seq: int) -> None:
        """Name what the broken link means, from the line's own sequence number."""
        expected = 1 if self.link is None or seq == 1 else self.link[0] + 1
        if seq == expected:
            self._fail(n, "edited", "its hash does not match its content")
        elif seq > expected:
            missing = f"#{expected}" if seq == expected + 1 else f"#{expected}-#{seq - 1}"
            self._fail(n, "deleted", f"event {missing} is missing before it (deleted, or the shard cut here)", expected)
        else:
            self._fail(n, "reordered", f"it holds event #{seq} after #{expected - 1} (lines moved or copied)")

    def _fail(self, n: int, kind: str, message: str, missing_from: int | None = None) -> None:
        self.problem = {"line": n, "kind": kind, "message": message}
        self.missing_from = missing_from


def verify_shard(path: str) -> dict[str, Any]:
    """The verdict for one shard: status, counts, the first broken line (if any) and notes."""
    walk = _Walk(path)
    lines = _lines(path)
    for n, raw in lines:
        walk.step(n, raw)
        if walk.problem is not None:
            break
    if walk.problem is not None and walk.missing_from is not None:
        _moved_or_deleted(walk, lines)
    elif walk.problem is not None and walk.first_chained is None and walk.broken is not None:
        _check_key(walk, next(lines, None))
    walk.lines = max((n for n, _ in lines), default=walk.lines)  # count the rest
    if walk.problem is not None:
        status = TAMPERED
    elif walk.link is not None:
        status = INTACT
        if walk.first_chained and walk.first_chained > 1:
            walk.notes.insert(0, f"lines 1-{walk.first_chained - 1} predate the chain (unchained)")
    else:
        status = UNCHAINED if walk.lines else EMPTY
    return {
        "shard": path,
        "status": status,
        "lines": walk.lines,
        "chained": walk.chained,
        "unchained": walk.unchained,
        "first_chained_line": walk.first_chained,
        "problem": walk.problem,
        "notes": walk.notes,
    }


def _moved_or_deleted(walk: _Walk, rest: Iterator[tuple[int, bytes]]) -> None:
    """Missing events that turn up later were moved, not deleted: the rest of the chain says which."""
    assert walk.problem is not None and walk.missing_from is not None
    n0, want = walk.problem["line"], walk.missing_from
    for n, raw in rest:
        walk.lines = n
        found = chain.parse(raw)
        if found is None:
            continue
        if found[0] == 1:  # a new chain: its numbers are not this one's
            return
        if found[0] == want:
            walk.problem = {
                "line": n0,
                "kind": "reordered",
                "message": f"event #{want} should come before it but is at line {n} (lines moved)",
            }
            return


def _check_key(walk: _Walk, after: tuple[int, bytes] | None) -> None:
    """No line has checked yet: if the next one does not follow the broken one either, the key
    may be the wrong one rather than every line edited."""
    assert walk.problem is not None and walk.broken is not None
    if after is None:
        found = None
    else:
        walk.lines, found = after[0], chain.parse(after[1])
    if (
        found is not None
        and found[0] == walk.broken[0] + 1
        and chain.mac(walk.key, walk.broken[1], found[2]) == found[1]
    ):
        return
    walk.problem["message"] += " (or this is not the key that wrote it: run verify as the writer's user)"


def verify(log_dir: str, shards: list[str] | None = None) -> dict[str, Any]:
    """Every shard of `log_dir` (or the given ones): verdicts and a summary."""
    from .reader import shard_files

    paths = [os.path.abspath(p) for p in shards] if shards else shard_files(log_dir)
    for p in paths:
        if not os.path.isfile(p):
            raise EpycAgentError(f"{p} is not a file", hint="pass audit-log shards (agent_audit-*.log)")
    verdicts = [verify_shard(p) for p in paths]
    counts = {s: sum(v["status"] == s for v in verdicts) for s in (INTACT, UNCHAINED, TAMPERED, EMPTY)}
    return {"log_dir": log_dir, "shards": verdicts, "counts": counts}
