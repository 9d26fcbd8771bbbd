"""The hash chain that makes a shard tamper-evident.

A chained line ends `,"seq":N,"hash":"H","v":1}`: `seq` counts the shard's chained
events from 1, and H is a keyed BLAKE2b-128 (RFC 7693's MAC mode, keyed by
`fileio.secret_key`, so no one without the user's key can recompute it) over the
previous line's H and this line's bytes with H's 32 digits left out. Editing a line
breaks its own H; deleting, inserting or moving lines breaks the next line's, and
`seq` then says which of those it was. The fields sit just before `"v":1`, so a
chained line keeps the head and tail the analyzers' fast path matches.

Writing costs one MAC per event: the writer keeps the last link and reads a
shard's tail (its last ~4 KB, under the writer's lock) only when someone else
appended since its own last write.
"""

from __future__ import annotations

import os
import re

try:  # hashlib loads OpenSSL (~15-25 ms at every hook start); blake2 is built in
    from _blake2 import blake2b as _blake2b
except ImportError:  # pragma: no cover - an interpreter without the builtin module
    from hashlib import blake2b as _blake2b

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final

Link = tuple[int, bytes]  # (seq, hash hex) of the last chained line; GENESIS before the first
GENESIS: Final = (0, b"")
V1_END: Final = b',"v":1}\n'  # how every v1 line ends, chained or not
END: Final = b'","v":1}\n'  # what follows a chained line's hash
HASH_HEX: Final = 32
_PERSON = b"epyc-agent-chain"  # BLAKE2's personalization: the key's signed-state MACs can never match these
_TAIL_RE = re.compile(rb',"seq":([1-9][0-9]{0,17}),"hash":"([0-9a-f]{32})","v":1\}\n\Z')
TAIL_MAX: Final = 80  # the longest chained tail: `,"seq":` 18 digits `,"hash":"` 32 digits `","v":1}\n`
_READ = 4096  # tail bytes read to find the last link


def mac(key: bytes, prev: bytes, covered: bytes) -> bytes:
    """The hash of a line: `covered` is the line without its hash digits."""
    return _blake2b(prev + covered, key=key, digest_size=HASH_HEX // 2, person=_PERSON).hexdigest().encode()


def link(key: bytes, prev: Link, line: bytes) -> tuple[bytes, Link]:
    """(the v1 line with its seq and hash, the new last link)."""
    if not line.endswith(V1_END):
        raise ValueError('only a v1 line (ending in "v":1) can be chained')
    seq = prev[0] + 1
    head = b'%s,"seq":%d,"hash":"' % (line[: -len(V1_END)], seq)
    h = mac(key, prev[1], head + END)
    return head + h + END, (seq, h)


def parse(line: bytes) -> tuple[int, bytes, bytes] | None:
    """(seq, hash, the bytes its hash covers) of a chained line, or None if it is not one."""
    m = _TAIL_RE.search(line, max(0, len(line) - TAIL_MAX))
    if m is None:
        return None
    cut = len(line) - len(END)
    return int(m.group(1)), m.group(2), line[: cut - HASH_HEX] + line[cut:]


def last_link(fd: int, size: int) -> tuple[bool, Link]:
    """(whether the shard lacks a final newline, the link of its last whole line).

    After a crash the last line is a partial one: the link is then that of the line before it,
    which the next event chains to (the partial stays an unreadable line of its own). A last
    line that is not chained (an old format, an unchained writer) starts a new chain.
    """
    if size == 0:
        return False, GENESIS
    start = max(0, size - _READ)
    buf = os.pread(fd, size - start, start)
    partial = not buf.endswith(b"\n")
    if partial:
        end = buf.rfind(b"\n")
        while end == -1 and start > 0:  # a partial line longer than the read: look further back
            start = max(0, start - _READ * 16)
            buf = os.pread(fd, size - start, start)
            end = buf.rfind(b"\n")
        buf = buf[: end + 1]
    found = parse(buf)
    return partial, GENESIS if found is None else found[:2]
