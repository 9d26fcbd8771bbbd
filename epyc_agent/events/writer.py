"""Append-only audit log writer.

Every event is one `os.write` of one whole line on an `O_APPEND` descriptor:
the kernel appends it atomically, so concurrent processes writing the same
shard never interleave. One shard per agent keeps agents from contending.

`AuditLog.logger()` gives a structlog logger whose renderer is the same
`encode_event` and whose sink is the same descriptor, for library code that
prefers structlog's bind-and-log style; structlog is imported only then.
"""

from __future__ import annotations

import os

from . import verbs
from .schema import DEFAULT_AGENT, NO_SESSION, encode_event, make_event, shard_name

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC


def append_line(fd: int, line: bytes) -> None:
    """Write a whole line; a short write (disk full, signal) continues rather than drops."""
    view = memoryview(line)
    while view:
        n = os.write(fd, view)
        view = view[n:]


class AuditLog:
    """Writes v1 events for one (session, agent) to `<log_dir>/agent_audit-<agent>.log`."""

    def __init__(self, log_dir: str | os.PathLike[str], session: str | None = None, agent: str | None = None) -> None:
        self.log_dir = os.fspath(log_dir)
        self.session = session or NO_SESSION
        self.agent = agent or DEFAULT_AGENT
        self.path = os.path.join(self.log_dir, shard_name(self.agent))
        self._fd: int | None = None

    # -- core ---------------------------------------------------------------
    def _open(self) -> int:
        if self._fd is None:
            os.makedirs(self.log_dir, exist_ok=True)
            self._fd = os.open(self.path, _FLAGS, 0o644)
        return self._fd

    def write(self, event: dict[str, Any]) -> dict[str, Any]:
        """Append a ready event (from `make_event`)."""
        append_line(self._open(), encode_event(event))
        return event

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
            self._fd = None

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
        append_line(self._log._open(), line)

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
