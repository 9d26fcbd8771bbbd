"""Handlers for the Claude Code events around the tool calls: permission prompts, batches,
subagents, API failures, cwd and settings changes, worktrees, tasks, instructions.

None of them decides a tool call (PreToolUse does); they make the audit log complete: every
intent gets an outcome (PostToolBatch closes the ones the CLI itself rejected), a user's
permission answer is a DECISION, and a settings change that drops our hooks is refused.
"""

from __future__ import annotations

import json
import os
import re

from . import payload as pl
from . import state

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .dispatch import Hook

TAIL_BYTES = 1 << 20  # a batch's own events are the shard's latest: this much of its end holds them
RESULT_CHARS = 500
# the CLI's words when a call needed an approval nobody could give (`-p`, no prompt surface)
_APPROVAL = re.compile(r"needs? approval|requires? approval|permission", re.IGNORECASE)


def _str(v: Any) -> str:
    return v if isinstance(v, str) else ""


def _recent(h: Hook, ids: set[str]) -> tuple[dict[str, set[str]], set[str]]:
    """From the end of this agent's shard: the categories logged per tool_use_id in `ids`, and
    the call ids a permission prompt was shown for."""
    cats: dict[str, set[str]] = {}
    asked: set[str] = set()
    try:
        with open(h.log.path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - TAIL_BYTES))
            tail = f.read()
    except OSError:
        return cats, asked
    for line in tail.splitlines():
        if b'"tool_use_id"' not in line and b"PermissionRequest" not in line:
            continue
        try:
            e = json.loads(line)
        except ValueError:
            continue
        d = e.get("data") if isinstance(e, dict) and isinstance(e.get("data"), dict) else {}
        if d.get("hook") == "PermissionRequest" and isinstance(d.get("call_id"), str):
            asked.add(d["call_id"])
        elif d.get("tool_use_id") in ids:
            cats.setdefault(d["tool_use_id"], set()).add(str(e.get("cat")))
    return cats, asked


def permission_request(h: Hook) -> str:
    """The CLI is about to ask the user: logged, so the answer (seen at the batch's end) can be
    told from the guards' own decisions. We do not answer for the user."""
    p = h.p
    tool, ti = _str(p.get("tool_name")), p.get("tool_input")
    label = pl.tool_label(tool, ti)
    h.log.event(
        "OBSERVE",
        f"permission requested: {label}",
        cmd=label,
        data=h.data("PermissionRequest", tool=tool, call_id=pl.call_id(tool, ti)),
    )
    return ""


def permission_denied(h: Hook) -> str:
    """The CLI's permission layer (auto mode's classifier) refused a call: a DECISION, and the
    call's outcome."""
    p = h.p
    tool, ti, use_id = _str(p.get("tool_name")), p.get("tool_input"), p.get("tool_use_id")
    label = pl.tool_label(tool, ti)
    reason = _str(p.get("reason"))[:RESULT_CHARS]
    base = h.data("PermissionDenied", tool=tool, tool_use_id=use_id, call_id=pl.call_id(tool, ti))
    h.log.event(
        "DECISION",
        f"permission denied {tool}: {label}",
        cmd=label,
        level="WARN",
        details=reason,
        data={**base, "decision": "deny", "by": "claude-code"},
    )
    _close(h, tool, ti, use_id, "denied by permission", reason, base)
    return ""


def post_tool_batch(h: Hook) -> str:
    """Every call of the batch has an outcome in the log: calls the CLI rejected before or
    instead of running them (invalid input, an approval nobody could give) never reach
    PostToolUse, so they are closed here; a permission prompt's answer becomes a DECISION."""
    raw = h.p.get("tool_calls")
    calls = [c for c in raw if isinstance(c, dict)] if isinstance(raw, list) else []
    ids = {c["tool_use_id"] for c in calls if isinstance(c.get("tool_use_id"), str)}
    if not ids:
        return ""
    cats, asked = _recent(h, ids)
    for c in calls:
        tool, ti, use_id = _str(c.get("tool_name")), c.get("tool_input"), c.get("tool_use_id")
        seen = cats.get(use_id, set()) if isinstance(use_id, str) else set()
        cid = pl.call_id(tool, ti)
        base = h.data("PostToolBatch", tool=tool, tool_use_id=use_id, call_id=cid)
        ran = "CMD_RESULT" in seen
        if cid in asked:
            label = pl.tool_label(tool, ti)
            h.log.event(
                "DECISION",
                f"permission {'granted' if ran else 'refused'} {tool}: {label}",
                cmd=label,
                level="INFO" if ran else "WARN",
                data={**base, "decision": "allow" if ran else "deny", "by": "user"},
            )
        if ran or "DECISION" in seen:  # settled by PostToolUse, or refused by our guard
            continue
        resp = c.get("tool_response")
        text = resp if isinstance(resp, str) else json.dumps(resp, ensure_ascii=False, default=str)
        outcome = "denied by permission" if cid in asked or _APPROVAL.search(text or "") else "rejected"
        _close(h, tool, ti, use_id, outcome, text[:RESULT_CHARS], base)
    return ""


def _close(h: Hook, tool: str, ti: Any, use_id: Any, outcome: str, text: str, base: dict[str, Any]) -> None:
    """The call did not run: its result is logged with the outcome, and a Bash call is no
    longer pending (neither a failure nor a success for the retry rule)."""
    label = pl.tool_label(tool, ti)
    h.log.event(
        "CMD_RESULT",
        label,
        cmd=label,
        level="ERROR",
        details=f"{outcome}; {text}" if text else outcome,
        data={**base, "outcome": outcome},
    )
    command = ti.get("command") if isinstance(ti, dict) else None
    if tool == "Bash" and h.session and isinstance(use_id, str) and isinstance(command, str):
        from ..guards.retry import command_key

        state.settle_call(h.cfg.log_dir, h.session, use_id, command_key(command), None)


def subagent_start(h: Hook) -> str:
    """A subagent (a role agent) starts on its own shard; it is told the storage rules too."""
    atype = _str(h.p.get("agent_type")) or "subagent"
    h.log.event("OBSERVE", f"subagent started: {atype}", data=h.data("SubagentStart"))
    from .context import subagent_context

    return json.dumps(
        {"hookSpecificOutput": {"hookEventName": "SubagentStart", "additionalContext": subagent_context(h.cfg)}}
    )


def stop_failure(h: Hook) -> str:
    """An API error ended the turn: an ERROR (it is why the session stopped), and the turn's
    unsettled calls are forgotten as on Stop."""
    err = _str(h.p.get("error")) or "unknown"
    details = _str(h.p.get("error_details"))[:RESULT_CHARS]
    h.log.event("ERROR", f"turn ended by an API error: {err}", details=details, data=h.data("StopFailure"))
    h.end_turn()
    return ""


def cwd_changed(h: Hook) -> str:
    """The agent's shell moved: later relative paths resolve from here (the payloads' cwd), so
    leaving the root and the project is a WARNING."""
    old, new = _str(h.p.get("old_cwd")), _str(h.p.get("new_cwd"))
    inside = h.guard().check(new).allowed if new else True
    h.log.event(
        "OBSERVE" if inside else "WARNING",
        f"cwd changed: {old} -> {new}" + ("" if inside else " (outside the storage root)"),
        path=new,
        data=h.data("CwdChanged", old_cwd=old, new_cwd=new),
    )
    return ""


def config_change(h: Hook) -> str:
    """A settings file changed while the session runs. If it no longer registers our hooks (an
    agent editing them away with a program the guards cannot see), the change is refused while
    the guards enforce (`guards.protect`); a person's `hooks uninstall` applies to new sessions."""
    from .install import dropped_hooks

    source, path = _str(h.p.get("source")), _str(h.p.get("file_path"))
    gone = dropped_hooks(h.cfg, path) if path and source != "policy_settings" else []
    if not gone:
        h.log.event("OBSERVE", f"settings changed: {path or source}", path=path, data=h.data("ConfigChange"))
        return ""
    refuse = h.cfg.guards.get("protect", "enforce") != "off"
    why = f"{path} no longer registers the epyc-agent hook for {', '.join(gone)}"
    h.log.event(
        "WARNING",
        f"settings change {'refused' if refuse else 'applied'}: {why}",
        path=path,
        details="a person runs `epyc-agent hooks install` (or `hooks uninstall` before a new session)",
        data=h.data("ConfigChange", dropped=gone, decision="block" if refuse else "allow"),
    )
    if not refuse:
        return ""
    return json.dumps({"decision": "block", "reason": f"epyc-agent: {why}; the running session keeps its hooks."})


def file_changed(h: Hook) -> str:
    """A watched file (the protected ones SessionStart names) changed on disk: a WARNING, since
    the guards refuse the agent's own writes to them."""
    path, what = _str(h.p.get("file_path")), _str(h.p.get("event"))
    h.log.event("WARNING", f"protected file {what or 'changed'}: {path}", path=path, data=h.data("FileChanged"))
    return ""


def observe(h: Hook) -> str:
    """Events worth a line in the log and nothing more."""
    p = h.p
    event = _str(p.get("hook_event_name"))
    what = {
        "InstructionsLoaded": lambda: f"instructions loaded: {_str(p.get('file_path'))} ({_str(p.get('load_reason'))})",
        "Setup": lambda: f"setup ({_str(p.get('trigger'))})",
        "TaskCreated": lambda: f"task created: {_str(p.get('task_subject'))}",
        "TaskCompleted": lambda: f"task completed: {_str(p.get('task_subject'))}",
        "WorktreeRemove": lambda: f"worktree removed: {_str(p.get('worktree_path'))}",
    }.get(event, lambda: event)()
    task = {k: _str(p.get(k)) for k in ("task_id", "task_subject") if event.startswith("Task")}
    path = _str(p.get("file_path")) or _str(p.get("worktree_path"))
    h.log.event("OBSERVE", what, path=path, data=h.data(event, **task))
    return ""
