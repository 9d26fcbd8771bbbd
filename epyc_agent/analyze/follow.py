"""Follow every shard live: `epyc-agent log tail --follow`.

watchdog (inotify here) wakes the loop as soon as a file in the log folder
changes; a 1 s poll backs it up (network filesystems, missed events). Each
shard is read from where we left off with `pread`: a line without its newline
yet is held until it is complete; a shard that appears later is read from its
start; a rotated shard (same name, new inode) is drained through the old
descriptor first, then the new file is read from its start; a truncated one
restarts at 0. Each wake-up yields the new items of all shards merged by time.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from io import BytesIO
from typing import Any

from ..events.reader import ReadStats, agent_of, shard_files
from .filters import Query
from .scan import TS, Item, parse_lines

READ_BYTES = 1 << 20


class _Shard:
    """One followed file: descriptor, inode, offset, the held partial line, lines seen."""

    def __init__(self, path: str, at_end: bool) -> None:
        self.path, self.agent = path, agent_of(path)
        self.fd: int | None = None
        self.ino = 0
        self.offset = 0
        self.partial = b""
        self.lines = 0
        if self._open() and at_end:
            end = self._last_line_end(os.fstat(self.fd).st_size)  # type: ignore[arg-type]
            self.lines = self._count_lines(end)
            self.offset = end  # a line still being written is read once it is complete

    def _open(self) -> bool:
        try:
            self.fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            self.fd = None
            return False
        self.ino, self.offset, self.partial, self.lines = os.fstat(self.fd).st_ino, 0, b"", 0
        return True

    def _last_line_end(self, size: int) -> int:
        """The offset just after the last newline at or before `size` (0 if none)."""
        pos = size
        while pos > 0:
            start = max(0, pos - READ_BYTES)
            cut = os.pread(self.fd, pos - start, start).rfind(b"\n")  # type: ignore[arg-type]
            if cut >= 0:
                return start + cut + 1
            pos = start
        return 0

    def _count_lines(self, end: int) -> int:
        n = pos = 0
        while pos < end:
            b = os.pread(self.fd, min(READ_BYTES * 4, end - pos), pos)  # type: ignore[arg-type]
            if not b:
                break
            n += b.count(b"\n")
            pos += len(b)
        return n

    def _drain(self, q: Query, stats: ReadStats) -> list[Item]:
        """Complete lines appended since the last read."""
        assert self.fd is not None
        chunks = []
        while True:
            b = os.pread(self.fd, READ_BYTES, self.offset)
            if not b:
                break
            chunks.append(b)
            self.offset += len(b)
        if not chunks:
            return []
        buf = self.partial + b"".join(chunks)
        cut = buf.rfind(b"\n") + 1
        self.partial = buf[cut:]
        lines = BytesIO(buf[:cut]).readlines()  # at "\n" only, as the reader splits (not at "\r")
        items = parse_lines(lines, self.lines + 1, self.path, self.agent, stats, q)
        self.lines += len(lines)
        return [i for i in items if q.keep(i)]

    def poll(self, q: Query, stats: ReadStats) -> list[Item]:
        if self.fd is None and not self._open():
            return []
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return self._drain(q, stats)  # moved away: keep reading the old file until a new one appears
        out: list[Item] = []
        if st.st_ino != self.ino:  # rotated: finish the old file, then start the new one
            out = self._drain(q, stats)
            self.close()
            if not self._open():
                return out
        elif st.st_size < self.offset:  # truncated in place
            self.offset, self.partial, self.lines = 0, b"", 0
        return out + self._drain(q, stats)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class Follower:
    """New events of all shards of `log_dir`, batch by batch, until closed."""

    def __init__(self, log_dir: str, q: Query, poll_s: float = 1.0) -> None:
        self.log_dir, self.q, self.poll_s = os.fspath(log_dir), q, poll_s
        self.stats = ReadStats()
        self.shards = {p: _Shard(p, at_end=True) for p in shard_files(self.log_dir)}
        self._wake = threading.Event()
        self._observer: Any = None
        self._closed = False
        self._watch()

    def _watch(self) -> None:
        if not os.path.isdir(self.log_dir):
            return  # polled until it exists
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer

        wake = self._wake

        class _Handler(FileSystemEventHandler):
            def on_any_event(self, event: Any) -> None:
                wake.set()

        self._observer = Observer()
        self._observer.schedule(_Handler(), self.log_dir, recursive=False)
        self._observer.daemon = True
        self._observer.start()

    def poll(self) -> list[Item]:
        """Everything new right now, merged by time."""
        for p in shard_files(self.log_dir):
            if p not in self.shards:
                self.shards[p] = _Shard(p, at_end=False)  # a new shard: all of it is new
        items: list[Item] = []
        for sh in self.shards.values():
            items += sh.poll(self.q, self.stats)
        items.sort(key=lambda i: i[TS])
        return items

    def batches(self) -> Iterator[list[Item]]:
        while not self._closed:
            if self._observer is None and os.path.isdir(self.log_dir):
                self._watch()
            items = self.poll()
            if items:
                yield items
            self._wake.wait(self.poll_s)
            self._wake.clear()

    def close(self) -> None:
        self._closed = True
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=2)
            self._observer = None
        for sh in self.shards.values():
            sh.close()
