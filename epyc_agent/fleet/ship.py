"""`epyc-agent log ship`: send every shard's new lines to the fleet table, incrementally.

Per destination and host, each shard has a checkpoint under
`<log_dir>/.state/ship/<id>/<shard>.json`: the file's inode, the byte offset after the
last whole line shipped, and that line's number. A batch is INSERTed first and the
checkpoint written (atomically) after the server accepted it, so a crash loses nothing:
the next run re-sends at most the batch in flight, and those rows have the keys they had
(`fleet.rows`), which the ReplacingMergeTree collapses. An unfinished last line is left
for the next run. A shard whose inode changed was rotated: the old file's unshipped
tail is shipped first if it is still in the log folder (under any name), then the new
file from its start. A shard shorter than its checkpoint was truncated: it is shipped
again from the start (new lines have new keys; lines shipped before stay on the server).
"""

from __future__ import annotations

import fcntl
import io
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from ..events.reader import shard_files
from ..fileio import write_json_atomic
from ..guards.retry import digest
from .clickhouse import Client, FleetError, Target
from .rows import TABLE, Source, create_table_sql, encode_rows

BATCH_BYTES = 4 << 20  # per INSERT: ~20,000 lines of the lab's logs
POLL_S = 1.0


def default_host() -> str:
    return socket.gethostname()


class Round:
    """What one pass over the shards shipped."""

    def __init__(self) -> None:
        self.shards: dict[str, dict[str, int]] = {}
        self.notes: list[str] = []
        self.seconds = 0.0

    def add(self, path: str, counts: dict[str, int], offset: int) -> None:
        s = self.shards.setdefault(path, {"lines": 0, "events": 0, "corrupt": 0, "offset": 0})
        for k in ("lines", "events", "corrupt"):
            s[k] += counts[k]
        s["offset"] = offset

    def total(self, key: str) -> int:
        return sum(s[key] for s in self.shards.values())

    def as_dict(self, shipper: Shipper) -> dict[str, Any]:
        events = self.total("events")
        return {
            "to": str(shipper.target),
            "table": f"{shipper.target.db}.{TABLE}",
            "host": shipper.host,
            "log_dir": shipper.log_dir,
            "lines": self.total("lines"),
            "events": events,
            "corrupt": self.total("corrupt"),
            "seconds": round(self.seconds, 3),
            "events_per_s": round(events / self.seconds) if self.seconds > 0 else None,
            "shards": [{"file": p, **s} for p, s in self.shards.items()],
            "notes": self.notes,
        }


class Shipper:
    """Ships one log folder as one host to one destination; holds the destination's lock."""

    def __init__(
        self,
        log_dir: str,
        target: Target,
        host: str,
        batch_bytes: int = BATCH_BYTES,
        stop: threading.Event | None = None,
    ) -> None:
        if not host or "/" in host:
            raise FleetError(f"not a host name: {host!r}", hint="pass --host NAME (letters, digits, . _ -)")
        self.log_dir, self.target, self.host, self.batch_bytes = os.fspath(log_dir), target, host, batch_bytes
        self.stop = stop or threading.Event()
        self.state_dir = os.path.join(self.log_dir, ".state", "ship", digest(f"{target}|{host}"))
        self._lock_fd = self._lock()
        self.client = Client(target)

    def _lock(self) -> int:
        os.makedirs(self.state_dir, exist_ok=True)
        fd = os.open(os.path.join(self.state_dir, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise FleetError(
                f"another `log ship` of {self.log_dir} to {self.target} as {self.host} is running",
                hint="let it finish or stop it; one shipper per destination",
            ) from None
        return fd

    def close(self) -> None:
        self.client.close()
        os.close(self._lock_fd)

    def prepare(self) -> None:
        """The database and table, created if missing (the server ignores what exists)."""
        if self.target.db != "default":
            self.client.query(f"CREATE DATABASE IF NOT EXISTS {self.target.db}")
        self.client.query(create_table_sql(self.target.db))

    # -- checkpoints ---------------------------------------------------------------------------
    def _cp_path(self, shard: str) -> str:
        return os.path.join(self.state_dir, f"{shard}.json")

    def _load(self, shard: str) -> dict[str, Any] | None:
        import json

        try:
            with open(self._cp_path(shard), encoding="utf-8") as f:
                cp = json.load(f)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            raise FleetError(
                f"unreadable ship checkpoint {self._cp_path(shard)}: {e}",
                hint="delete it to ship that shard again from its start (the server drops the duplicates)",
            ) from None
        ok = isinstance(cp, dict) and all(isinstance(cp.get(k), int) for k in ("inode", "offset", "line"))
        return cp if ok else None

    def _save(self, src: Source, offset: int, line: int) -> None:
        write_json_atomic(
            self._cp_path(src.shard),
            {
                "to": str(self.target),
                "host": self.host,
                "file": src.path,
                "inode": src.inode,
                "offset": offset,
                "line": line,
            },
        )

    # -- shipping ------------------------------------------------------------------------------
    def ship(self) -> Round:
        """One pass: every shard's lines since its checkpoint."""
        r, t0 = Round(), time.perf_counter()
        for path in shard_files(self.log_dir):
            if self.stop.is_set():
                break
            self._ship_shard(path, r)
        r.seconds = time.perf_counter() - t0
        return r

    def _ship_shard(self, path: str, r: Round) -> None:
        shard = os.path.basename(path)
        cp = self._load(shard)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return  # gone since it was listed: a rotation in progress, shipped next pass
        try:
            st = os.fstat(fd)
            if cp is not None and cp["inode"] != st.st_ino:
                self._finish_rotated(cp, shard, r)
                cp = None
            elif cp is not None and st.st_size < cp["offset"]:
                r.notes.append(f"{path} is shorter than when it was last shipped: shipping it again from its start")
                cp = None
            offset, line = (cp["offset"], cp["line"]) if cp is not None else (0, 1)
            self._ship_fd(fd, Source(self.host, path, st.st_ino), offset, line, r)
        finally:
            os.close(fd)

    def _finish_rotated(self, cp: dict[str, Any], shard: str, r: Round) -> None:
        """The old generation's tail, from wherever rotation moved it in the log folder."""
        for entry in os.scandir(self.log_dir):
            if entry.is_file(follow_symlinks=False) and entry.inode() == cp["inode"]:
                fd = os.open(entry.path, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    src = Source(self.host, str(cp.get("file") or entry.path), cp["inode"], shard)
                    self._ship_fd(fd, src, cp["offset"], cp["line"], r)
                finally:
                    os.close(fd)
                return
        r.notes.append(
            f"{shard} was rotated and its previous file is no longer in {self.log_dir}: "
            f"lines written to it after byte {cp['offset']} were not shipped"
        )

    def _ship_fd(self, fd: int, src: Source, offset: int, line: int, r: Round) -> None:
        """Whole lines from `offset` to the end, one INSERT and one checkpoint per batch."""
        while not self.stop.is_set():
            buf = _whole_lines(fd, offset, self.batch_bytes)
            if not buf:
                return
            lines = io.BytesIO(buf).readlines()  # split on b"\n" only, as the reader does
            rows, counts = encode_rows(src, lines, line, offset)
            self.client.insert(f"{self.target.db}.{TABLE}", rows)
            offset, line = offset + len(buf), line + len(lines)
            self._save(src, offset, line)
            r.add(src.path, counts, offset)

    def follow(self, on_round: Callable[[Round], None], poll_s: float = POLL_S) -> None:
        """Ship, then ship again whenever the log folder changes (or every `poll_s`), until `stop`."""
        wake = threading.Event()
        observer = _watch(self.log_dir, wake)
        try:
            while not self.stop.is_set():
                r = self.ship()
                if r.shards or r.notes:
                    on_round(r)
                wake.wait(poll_s)
                wake.clear()
        finally:
            if observer is not None:
                observer.stop()
                observer.join(timeout=2)


def _whole_lines(fd: int, offset: int, size: int) -> bytes:
    """About `size` bytes from `offset` up to the last newline (more for a longer line); b"" if
    there is no whole line yet."""
    buf = os.pread(fd, size, offset)
    cut = buf.rfind(b"\n") + 1
    while cut == 0 and len(buf) >= size:  # one line longer than a batch
        more = os.pread(fd, size, offset + len(buf))
        if not more:
            break
        buf += more
        cut = buf.rfind(b"\n") + 1
    return buf[:cut]


def _watch(log_dir: str, wake: threading.Event) -> Any:
    """A watchdog observer setting `wake` on any change in the folder (None if it does not exist yet)."""
    if not os.path.isdir(log_dir):
        return None
    from watchdog.events import FileSystemEventHandler
    from watchdog.observers import Observer

    class _Handler(FileSystemEventHandler):
        def on_any_event(self, event: Any) -> None:
            wake.set()

    observer = Observer()
    observer.schedule(_Handler(), log_dir, recursive=False)
    observer.daemon = True
    observer.start()
    return observer
