"""A Claude Code hook payload: parsed leniently, with the names epyc-agent logs it under.

Claude Code's session id becomes the epyc-agent session `cc-<session_id>`; a
subagent's events go to the agent `<agent_type>-<agent_id>` (its own shard), the
main conversation's to the usual agent id (`$EPYC_AGENT_ID`, else `main`).
"""

from __future__ import annotations

import json
import re

from ..events.schema import shard_name
from ..sessions import agent_id

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# Read at most this much; a bigger payload is not parsed, and a PreToolUse of a writing tool over it
# is denied (dispatch). 16 MiB is far above any real edit (Claude Code's Write tool is meant for
# source files) and keeps the worst-case parse near 100 ms; an edit this size belongs in a script.
MAX_STDIN = 16 * 1024 * 1024
COMMON = ("session_id", "transcript_path", "cwd", "hook_event_name", "permission_mode", "agent_id", "agent_type")
KNOWN_FIELDS = {
    "SessionStart": ("source", "model"),
    "UserPromptSubmit": ("prompt",),
    "PreToolUse": ("tool_name", "tool_input", "tool_use_id"),
    "PostToolUse": ("tool_name", "tool_input", "tool_use_id", "tool_response", "duration_ms"),
    "PostToolUseFailure": ("tool_name", "tool_input", "tool_use_id", "error", "is_interrupt", "duration_ms"),
    "Notification": ("message", "title", "notification_type"),
    "Stop": ("stop_hook_active", "last_assistant_message"),
    "SubagentStop": ("stop_hook_active", "last_assistant_message", "agent_transcript_path"),
    "PreCompact": ("trigger", "custom_instructions"),
    "PostCompact": ("trigger", "compact_summary"),
    "SessionEnd": ("reason",),
    "PostToolBatch": ("tool_calls",),
    "PermissionRequest": ("tool_name", "tool_input", "permission_suggestions"),
    "PermissionDenied": ("tool_name", "tool_input", "tool_use_id", "reason"),
    "SubagentStart": (),
    "StopFailure": ("error", "error_details", "last_assistant_message"),
    "CwdChanged": ("old_cwd", "new_cwd"),
    "ConfigChange": ("source", "file_path"),
    "FileChanged": ("file_path", "event"),
    "InstructionsLoaded": ("file_path", "memory_type", "load_reason"),
    "Setup": ("trigger",),
    "TaskCreated": ("task_id", "task_subject", "task_description", "teammate_name", "team_name"),
    "TaskCompleted": ("task_id", "task_subject", "task_description", "teammate_name", "team_name"),
    "WorktreeRemove": ("worktree_path",),
}
# fields every 2.1.x payload may carry that say nothing about the event itself
RUN_FIELDS = ("prompt_id", "effort", "background_tasks", "session_crons")


class PayloadError(ValueError):
    """stdin is empty, not JSON, or not an object."""


def parse(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        raise PayloadError("empty stdin (expected the hook's JSON payload)")
    if len(raw) > MAX_STDIN:
        raise PayloadError(f"payload of {len(raw)} bytes is larger than {MAX_STDIN}")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as e:
        raise PayloadError(f"stdin is not JSON: {str(e)[:200]}") from None
    if not isinstance(data, dict):
        raise PayloadError(f"payload is a JSON {type(data).__name__}, not an object")
    return data


def sniff(raw: bytes, key: str) -> set[str]:
    """Every value of `key` (e.g. tool_name) in a payload too big to parse, from the raw bytes.

    A key's opening quote is never escaped, while inside a JSON string every quote is (`\\"`), so
    content that merely mentions "tool_name" is not taken for a field. All values are returned
    (an object inside tool_input may use the same key): the caller decides conservatively.
    """
    pattern = rb'(?<!\\)"' + re.escape(key.encode()) + rb'"\s*:\s*"([A-Za-z0-9_]*)"'
    return {m.decode() for m in re.findall(pattern, raw)}


def _str(v: Any) -> str:
    return v if isinstance(v, str) else ""


def session_for(p: dict[str, Any]) -> str | None:
    sid = _str(p.get("session_id"))
    return f"cc-{sid}" if sid else None


def agent_for(p: dict[str, Any]) -> str:
    aid, atype = _str(p.get("agent_id")), _str(p.get("agent_type"))
    if aid or atype:
        name = f"{atype or 'subagent'}-{aid[:16]}" if aid else atype
        return shard_name(name)[len("agent_audit-") : -len(".log")]
    return agent_id()


def extra_fields(p: dict[str, Any], event: str) -> dict[str, Any]:
    """Fields this event is not documented to carry: logged, never an error."""
    known = KNOWN_FIELDS.get(event)
    if known is None:
        return {k: v for k, v in p.items() if k not in COMMON}
    return {k: v for k, v in p.items() if k not in COMMON and k not in known and k not in RUN_FIELDS}


def tool_label(tool: str, tool_input: Any) -> str:
    """A one-line description of a tool call for display: the command for Bash, `Tool <main arg>`
    otherwise. It keeps one argument, so calls are compared by `call_id`, never by the label."""
    if not isinstance(tool_input, dict):
        return tool
    if tool == "Bash":
        return _str(tool_input.get("command"))
    for key in ("file_path", "notebook_path", "path", "pattern", "url", "query", "description", "prompt"):
        v = tool_input.get(key)
        if isinstance(v, str) and v:
            v = v if len(v) <= 200 else v[:200] + "..."
            return f"{tool} {v}"
    return tool


METADATA_KEYS = frozenset({"description", "timeout", "run_in_background"})  # how a call runs, not what it does


def call_id(tool: str, tool_input: Any) -> str:
    """A call's identity, to tell a real repeat from a different call with the same label (one
    Grep pattern over two globs): a hash of the tool and its sorted arguments without the
    metadata keys. A Bash command counts in its parsed form (guards.retry.command_key), so the
    loops report and the retry guard see the same command."""
    from ..guards.retry import command_key, digest

    args = (
        {k: _digested(v) for k, v in tool_input.items() if k not in METADATA_KEYS}
        if isinstance(tool_input, dict)
        else {}
    )
    if tool == "Bash" and isinstance(args.get("command"), str):
        args["command"] = command_key(args["command"])
    text = json.dumps([tool, args], sort_keys=True, ensure_ascii=False, default=str)
    return digest(text)


def _digested(v: Any) -> Any:
    """A long string (a Write's content) by its own digest, which skips escaping it for json.dumps:
    for 16 MB that was 330 ms of a 460 ms identity, paid at PreToolUse and again at Post."""
    from ..guards.retry import digest

    return f"<{len(v)} chars {digest(v)}>" if isinstance(v, str) and len(v) > 4096 else v
