"""The old toolkit's log functions, one table: positional arguments -> event fields.

Used by `AuditLog`'s methods, the `epyc-agent log <verb>` commands and the
shell library, so all three write identical events.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Fields = dict[str, Any]


def _num(v: str) -> Any:
    """'12.3' -> 12.3, '7' -> 7, anything else stays text: numbers stay numbers."""
    try:
        return int(v)
    except ValueError:
        pass
    try:
        f = float(v)
    except ValueError:
        return v
    return f if f == f and f not in (float("inf"), float("-inf")) else v


def _task_start(desc: str, reasoning: str = "") -> Fields:
    return {"cat": "TASK_START", "msg": desc, "details": reasoning}


def _task_end(desc: str, outcome: str = "success") -> Fields:
    ok = outcome.lower() in ("success", "ok", "done", "passed", "pass")
    return {
        "cat": "TASK_END",
        "msg": desc,
        "details": f"outcome={outcome}",
        "level": "INFO" if ok else "WARN",
        "data": {"outcome": outcome},
    }


def _cmd_intent(cmd: str, reasoning: str = "") -> Fields:
    return {"cat": "CMD_INTENT", "msg": cmd, "details": reasoning, "cmd": cmd}


def _cmd_result(cmd: str, exit_code: str, summary: str = "") -> Fields:
    code = _num(str(exit_code).strip())
    if not isinstance(code, int):  # the retry rule and the analyzers count failures by this number
        raise ValueError(f"exit code {exit_code!r} is not an integer")
    return {
        "cat": "CMD_RESULT",
        "msg": cmd,
        "cmd": cmd,
        "exit_code": code,
        "details": f"exit={exit_code}; {summary}" if summary else f"exit={exit_code}",
        "level": "INFO" if code == 0 else "ERROR",
    }


def _file_modify(path: str, action: str = "edit", reasoning: str = "") -> Fields:
    return {
        "cat": "FILE_MODIFY",
        "msg": path,
        "path": path,
        "action": action,
        "details": f"action={action}; {reasoning}" if reasoning else f"action={action}",
    }


def _decision(decision: str, reasoning: str = "") -> Fields:
    return {"cat": "DECISION", "msg": decision, "details": reasoning}


def _warn(msg: str, context: str = "") -> Fields:
    return {"cat": "WARNING", "msg": msg, "details": context, "level": "WARN"}


def _error(msg: str, context: str = "") -> Fields:
    return {"cat": "ERROR", "msg": msg, "details": context, "level": "ERROR"}


def _observe(what: str, value: str = "") -> Fields:
    return {"cat": "OBSERVE", "msg": what, "details": value, "data": {"what": what, "value": _num(value)}}


def _rollback(action: str, undo: str = "") -> Fields:
    return {"cat": "ROLLBACK", "msg": action, "action": action, "undo": undo, "details": f"undo_with: {undo}"}


class Verb:
    """A verb's name, its positional argument names and how many are required."""

    __slots__ = ("name", "args", "required", "build")

    def __init__(self, name: str, args: tuple[str, ...], required: int, build: Callable[..., Fields]) -> None:
        self.name, self.args, self.required, self.build = name, args, required, build

    def usage(self) -> str:
        parts = [a.upper() if i < self.required else f"[{a.upper()}]" for i, a in enumerate(self.args)]
        return f"epyc-agent log {self.name} {' '.join(parts)}"


VERBS: dict[str, Verb] = {
    v.name: v
    for v in (
        Verb("task-start", ("description", "reasoning"), 1, _task_start),
        Verb("task-end", ("description", "outcome"), 1, _task_end),
        Verb("cmd-intent", ("command", "reasoning"), 1, _cmd_intent),
        Verb("cmd-result", ("command", "exit_code", "summary"), 2, _cmd_result),
        Verb("file-modify", ("path", "action", "reasoning"), 1, _file_modify),
        Verb("decision", ("decision", "reasoning"), 1, _decision),
        Verb("warn", ("message", "context"), 1, _warn),
        Verb("error", ("message", "context"), 1, _error),
        Verb("observe", ("what", "value"), 1, _observe),
        Verb("rollback", ("action", "undo_command"), 1, _rollback),
    )
}


def build(verb: str, args: list[str] | tuple[str, ...]) -> Fields:
    """Event fields for a verb and its positional arguments; ValueError (naming the usage) on a
    wrong count or a value the verb cannot take."""
    v = VERBS[verb]
    if len(args) < v.required:
        raise ValueError(f"usage: {v.usage()}")
    if len(args) > len(v.args):  # old scripts pass unquoted words: keep them, joined into the last field
        args = [*args[: len(v.args) - 1], " ".join(args[len(v.args) - 1 :])]
    try:
        return v.build(*args)
    except ValueError as e:
        raise ValueError(f"{e}; usage: {v.usage()}") from None
