"""Append-only audit log writer.

Every event is one `os.write` of one whole line on an `O_APPEND` descriptor:
the kernel appends it atomically, so concurrent processes writing the same
shard never interleave. One shard per agent keeps agents from contending.

Faults never merge two events into one line. A shard whose last byte is not a
newline (a disk-full partial line, a writer killed mid-line) gets a newline before
the next event, so the partial stays a corrupt line of its own; a short write is
ended with a newline and the whole event written once more; a second failure
raises. Shards are opened with O_NOFOLLOW and must be regular files: a symlink
planted at a shard's name cannot send events out of the log dir.

Every event is chained to the one before it in its shard (`chain`): the writer
holds an flock on the shard from reading the last link to the end of its write, so
concurrent processes still append one valid chain. Without the user's secret key
(`fileio.secret_key`) events are written unchained.

`AuditLog.logger()` gives a structlog logger whose renderer is the same
`encode_event` and whose sink is the same descriptor, for library code that
prefers structlog's bind-and-log style; structlog is imported only then.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import time

from ..fileio import secret_key
from . import chain, verbs
from .schema import DEFAULT_AGENT, NO_SESSION, encode_event, make_event, shard_name

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# O_RDWR: the tail is read (pread) to find a partial line and the last link. O_NONBLOCK: a FIFO
# planted at the shard's name cannot hang the hook.
_FLAGS = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
# A write holds the lock for microseconds; one held longer is someone stalling the log (an agent
# running `flock` on its shard would otherwise hang every hook and so get past the guards).
LOCK_WAIT_S = 2.0


class ShardError(OSError):
    """The shard is not a regular file we may append to (a symlink, a device, a folder)."""


def open_shard(path: str) -> int:
    """An O_APPEND descriptor on the shard. Refuses symlinks and non-files."""
    try:
        fd = os.open(path, _FLAGS, 0o644)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise ShardError(errno.ELOOP, "the shard is a symlink; refusing to follow it", path) from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ShardError(errno.EINVAL, "the shard is not a regular file", path)
        return fd
    except BaseException:
        os.close(fd)
        raise


def lock_shard(fd: int, path: str) -> None:
    """An exclusive flock, waited for at most LOCK_WAIT_S; then the write fails (and a hook denies)."""
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise ShardError(errno.ETIMEDOUT, f"the shard stayed locked for {LOCK_WAIT_S:g} s", path) from None
            time.sleep(0.001)


def append_line(fd: int, line: bytes) -> None:
    """Write one whole line in one `os.write`, retried once on a fault; raises if that fails too.

    A short write (disk full, file size limit, signal) leaves part of the line on disk: it is
    ended with a newline, so it reads as one corrupt line, and the whole line is written again.
    Finishing the rest instead could glue it to a concurrent writer's line.
    """
    for attempt in (1, 2):
        try:
            n = os.write(fd, line)
        except OSError:
            if attempt == 2:
                raise
            continue
        if n == len(line):
            return
        try:
            os.write(fd, b"\n")
        except OSError:
            pass  # the next write sees the missing newline
    raise OSError(errno.ENOSPC, f"short write to the audit log ({n} of {len(line)} bytes, twice)")


class AuditLog:
    """Writes v1 events for one (session, agent) to `<log_dir>/agent_audit-<agent>.log`."""

    def __init__(self, log_dir: str | os.PathLike[str], session: str | None = None, agent: str | None = None) -> None:
        self.log_dir = os.fspath(log_dir)
        self.session = session or NO_SESSION
        self.agent = agent or DEFAULT_AGENT
        self.path = os.path.join(self.log_dir, shard_name(self.agent))
        self._fd: int | None = None
        self._pid = 0  # the process that opened _fd
        self._key: bytes | None = None
        self._link = chain.GENESIS
        self._end = -1  # the shard's size after our last write: if it still is, the link is current

    # -- core ---------------------------------------------------------------
    def _open(self) -> int:
        if self._fd is not None and self._pid != os.getpid():  # forked: a shared descriptor shares its flock
            os.close(self._fd)
            self._fd, self._end = None, -1
        if self._fd is None:
            os.makedirs(self.log_dir, exist_ok=True)
            self._fd, self._pid = open_shard(self.path), os.getpid()
            self._key = secret_key(self.log_dir)
        return self._fd

    def write(self, event: dict[str, Any]) -> dict[str, Any]:
        """Append a ready event (from `make_event`)."""
        self._append(encode_event(event))
        return event

    def _append(self, line: bytes) -> None:
        """One line, chained when there is a key; after a partial line (a crashed writer's, or left
        by a failed write) a newline first. Under the lock: the last link and the write are one step."""
        fd = self._open()
        lock_shard(fd, self.path)
        try:
            size, partial = os.fstat(fd).st_size, False
            if size != self._end:  # first write, or another writer appended since ours
                partial, self._link = chain.last_link(fd, size)
            new = self._link
            if self._key is not None:
                line, new = chain.link(self._key, self._link, line)
            self._end = -1  # until the write is known whole
            append_line(fd, b"\n" + line if partial else line)
            self._link, self._end = new, os.fstat(fd).st_size
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def event(self, cat: str, msg: Any = "", **fields: Any) -> dict[str, Any]:
        """Build and append an event for this session and agent."""
        fields.setdefault("session", self.session)
        fields.setdefault("agent", self.agent)
        return self.write(make_event(cat, msg, **fields))

    def verb(self, name: str, *args: str) -> dict[str, Any]:
        """Log one of the old toolkit's functions by its verb name (`task-start`, ...)."""
        return self.event(**verbs.build(name, [str(a) for a in args]))

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd, self._end = None, -1

    def reopen_if_moved(self) -> None:
        """For a writer kept open across events (the shell's helper): if the shard was renamed,
        deleted or replaced since it was opened, let go of it, so the next event goes to the file
        now at the path (and chains onto its last line) instead of a file no reader sees."""
        if self._fd is None:
            return
        try:
            now = os.stat(self.path)
        except OSError:
            now = None
        ours = os.fstat(self._fd)
        if now is None or (now.st_ino, now.st_dev) != (ours.st_ino, ours.st_dev):
            self.close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # a forgotten close must not leak descriptors
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    # -- the old functions, as methods ----------------------------------------
    def task_start(self, description: str, reasoning: str = "") -> dict[str, Any]:
        return self.verb("task-start", description, reasoning)

    def task_end(self, description: str, outcome: str = "success") -> dict[str, Any]:
        return self.verb("task-end", description, outcome)

    def cmd_intent(self, command: str, reasoning: str = "") -> dict[str, Any]:
        return self.verb("cmd-intent", command, reasoning)

    def cmd_result(
        self, command: str, exit_code: int, summary: str = "", duration_ms: float | None = None
    ) -> dict[str, Any]:
        fields = verbs.build("cmd-result", [command, str(exit_code), summary])
        return self.event(**fields, duration_ms=duration_ms)

    def file_modify(self, path: str, action: str = "edit", reasoning: str = "") -> dict[str, Any]:
        return self.verb("file-modify", path, action, reasoning)

    def decision(self, decision: str, reasoning: str = "") -> dict[str, Any]:
        return self.verb("decision", decision, reasoning)

    def warn(self, message: str, context: str = "") -> dict[str, Any]:
        return self.verb("warn", message, context)

    def error(self, message: str, context: str = "") -> dict[str, Any]:
        return self.verb("error", message, context)

    def observe(self, what: str, value: Any = "", data: dict[str, Any] | None = None) -> dict[str, Any]:
        fields = verbs.build("observe", [what, str(value)])
        if data is not None:
            fields["data"] = {**fields["data"], **data}
        elif not isinstance(value, str):
            fields["data"]["value"] = value
        return self.event(**fields)

    def rollback(self, action: str, undo: str) -> dict[str, Any]:
        return self.verb("rollback", action, undo)

    # -- structlog --------------------------------------------------------------
    def logger(self, **context: Any) -> Any:
        """A structlog BoundLogger writing v1 events to this shard.

        `log.info("built", cat="OBSERVE", data={...})`: the method name sets the
        level (warning -> WARN), `cat` defaults to OBSERVE, unknown keys go to `data`.
        """
        import structlog

        return structlog.wrap_logger(
            _ShardSink(self),
            processors=[structlog.processors.add_log_level, _to_event(self)],
            context_class=dict,
        ).bind(**context)


class _ShardSink:
    """structlog logger: receives rendered bytes and appends them."""

    def __init__(self, log: AuditLog) -> None:
        self._log = log

    def msg(self, line: bytes) -> None:
        self._log._append(line)

    debug = info = warning = warn = error = critical = exception = log = msg


def _to_event(log: AuditLog) -> Any:
    """The structlog renderer: event_dict -> one encoded v1 line."""
    level_map = {
        "debug": "INFO",
        "info": "INFO",
        "warning": "WARN",
        "warn": "WARN",
        "error": "ERROR",
        "critical": "ERROR",
        "exception": "ERROR",
    }

    def render(_logger: Any, _name: str, ed: dict[str, Any]) -> bytes:
        fields: dict[str, Any] = {
            "session": ed.pop("session", log.session),
            "agent": ed.pop("agent", log.agent),
            "level": level_map.get(str(ed.pop("level", "info")), "INFO"),
            "details": ed.pop("details", ""),
        }
        cat = ed.pop("cat", "OBSERVE")
        msg = ed.pop("event", "")
        for key in ("cmd", "exit_code", "duration_ms", "path", "action", "undo", "ts"):
            if key in ed:
                fields[key] = ed.pop(key)
        data = ed.pop("data", None)
        if ed:
            data = {**(data or {}), **ed}
        if data is not None:
            fields["data"] = data
        return encode_event(make_event(cat, msg, **fields))

    return render
