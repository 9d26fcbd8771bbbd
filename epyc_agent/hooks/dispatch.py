"""One handler per Claude Code hook event: log it, apply the guards, answer in Claude Code's JSON.

`handle(raw, env)` never raises: a malformed payload or an internal failure is
logged as an ERROR and answered with exit 0 and no decision (Claude Code then
proceeds as without the hook), except that with `guards.fail_closed: true` a
PreToolUse call that cannot be evaluated is denied. A writing tool's PreToolUse
(Write, Edit, MultiEdit, NotebookEdit, Bash) fails closed on faults of its own:
when its audit event cannot be written (disk full, read-only or misplaced log dir,
a planted shard) or its payload is over the size cap, it is denied, since a change
that is not recorded cannot be reviewed or undone. Read-only tools still pass.
"""

from __future__ import annotations

import errno
import json
import os

from ..config import load_config
from ..errors import EpycAgentError
from ..events.writer import AuditLog, ShardError
from ..guards.check import EDIT_TOOLS, MalformedInput, check_bash, check_edit, check_worktree, edit_path
from ..guards.host import HostRules
from ..guards.retry import OVERRIDE, command_key, overridden, retry_finding
from ..sessions import agent_id, session_file
from ..storage import guard_for, is_under
from . import lifecycle, state
from . import payload as pl

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from ..config import Config
    from ..guards.finding import Finding

OUTPUT_CHARS = 500
PROMPT_CHARS = 200
WRITING_TOOLS = frozenset({*EDIT_TOOLS, "Bash", "EnterWorktree"})


def _out(event: str, **fields: Any) -> str:
    return json.dumps({"hookSpecificOutput": {"hookEventName": event, **fields}}, ensure_ascii=False)


def handle(raw: bytes, env: Mapping[str, str]) -> tuple[str, int]:
    """(stdout, exit code) for one hook invocation."""
    try:
        cfg = load_config(env=env, discover_cwd=False)
    except EpycAgentError as e:
        return _bad_config(raw, env, e), 0
    try:
        p = pl.parse(raw)
    except pl.PayloadError as e:
        _log_error(cfg, None, agent_id(env=env), f"hook payload rejected: {e}", raw[:200])
        return _oversized(raw), 0
    event = p.get("hook_event_name") if isinstance(p.get("hook_event_name"), str) else ""
    hook = Hook(cfg, p, env)
    if isinstance(hook.log, _HookLog):
        hook.log.root = cfg.root
    try:
        try:
            out = hook.run(event)
        except Exception as e:  # noqa: BLE001 - the hook must never break the agent's session
            out = _failed(hook, event, e)
        return _unrecorded(hook, event, out), 0
    finally:
        hook.log.close()


def _failed(hook: Hook, event: str, e: Exception) -> str:
    """The answer when a handler raised: logged; a writing call hit by a storage fault is denied."""
    cfg = hook.cfg
    _log_error(cfg, hook.session, hook.agent, f"hook failed on {event or 'unknown event'}: {type(e).__name__}: {e}", "")
    if event == "PreToolUse" and isinstance(e, OSError) and _writing(hook.p):
        return _deny(_fault_reason(e, cfg.log_dir, str(hook.p.get("tool_name"))))
    if event == "PreToolUse" and cfg.guards.get("fail_closed") and (_writing(hook.p) or not hook.p.get("tool_name")):
        return _deny(
            f"epyc-agent could not evaluate this call ({type(e).__name__}: {e}) and "
            "guards.fail_closed is true. Report it; the user can set fail_closed: false."
        )
    return ""


def _bad_config(raw: bytes, env: Mapping[str, str], e: EpycAgentError) -> str:
    """The config cannot be loaded, so the guards cannot be set up: a writing tool call is denied
    (read-only ones pass), and the failure is logged where it can be (the root's log dir when the
    root is known from the environment, else the user's state folder)."""
    from ..fileio import secret_dir

    msg = f"epyc-agent config cannot be loaded: {e.render()}"
    _stderr(f"epyc-agent hook: {msg}", 0)
    try:
        p = pl.parse(raw)
    except pl.PayloadError:
        p = {}
    root = env.get("EPYC_AGENT_ROOT") or env.get("LLM_ROOT")
    log_dir = os.path.join(root, "logs") if root and os.path.isdir(root) else os.path.join(secret_dir(""), "logs")
    try:
        with AuditLog(log_dir, pl.session_for(p), pl.agent_for(p)) as log:
            log.error(msg, str(p.get("hook_event_name") or ""))
    except OSError:
        pass
    if p.get("hook_event_name") == "PreToolUse" and _writing(p):
        return _deny(f"{msg}. Writing tools are refused until a person fixes the config file.")
    return ""


def _writing(p: dict[str, Any]) -> bool:
    return p.get("tool_name") in WRITING_TOOLS


def _unrecorded(hook: Hook, event: str, out: str) -> str:
    """`out`, or a deny when this writing call's audit events could not be written (a guard's own
    deny is kept: its reason says more)."""
    fault = hook.log.failed if isinstance(hook.log, _HookLog) else None
    if fault is None or event != "PreToolUse" or not _writing(hook.p) or '"permissionDecision": "deny"' in out:
        return out
    return _deny(_fault_reason(fault, hook.cfg.log_dir, str(hook.p.get("tool_name"))))


_FIXES = {
    errno.ENOSPC: "free space on the disk holding {log_dir}",
    errno.EDQUOT: "free space (quota) on the disk holding {log_dir}",
    errno.EFBIG: "free space on the disk holding {log_dir} (or raise the file size limit)",
    errno.ELOOP: "replace the symlink at {path} with a regular file (or remove it)",
    errno.EINVAL: "replace {path} with a regular file (or remove it)",
    errno.EXDEV: "make {log_dir} a real folder under the storage root (it resolves outside it)",
    errno.ETIMEDOUT: "stop the process holding a lock on {path} (`fuser -v {path}` names it)",
}


def _fault_reason(e: OSError, log_dir: str, tool: str) -> str:
    """One line: what failed, and what the user can do about it."""
    path = e.filename or log_dir
    fix = _FIXES.get(e.errno or 0, "make {log_dir} writable (or set EPYC_AGENT_LOG_DIR to a writable folder)")
    return (
        f"epyc-agent cannot write its audit log ({path}: {e.strerror or e}), so this {tool} call cannot be "
        f"recorded and is refused; read-only tools still run. Fix: {fix.format(log_dir=log_dir, path=path)}, "
        "then retry."
    )


def _oversized(raw: bytes) -> str:
    """A deny for a PreToolUse of a writing tool (or of a tool that cannot be told) over the size cap."""
    if len(raw) <= pl.MAX_STDIN or "PreToolUse" not in pl.sniff(raw, "hook_event_name"):
        return ""
    tools = pl.sniff(raw, "tool_name")
    if tools and not tools & WRITING_TOOLS:
        return ""
    name = "/".join(sorted(tools & WRITING_TOOLS)) or "tool"
    return _deny(
        f"epyc-agent refused this {name} call: its payload is over the hook's {pl.MAX_STDIN >> 20} MiB limit, "
        "too big to check or record. Write the content in smaller pieces (several Edits, or a file built by "
        "a script under the storage root)."
    )


def _stderr(msg: str, code: int) -> int:
    import sys

    print(msg, file=sys.stderr)
    return code


def _log_error(cfg: Config, session: str | None, agent: str, msg: str, context: Any) -> None:
    try:
        with AuditLog(cfg.log_dir, session, agent) as log:
            log.error(msg, context if isinstance(context, str) else repr(context))
    except OSError:
        _stderr(f"epyc-agent hook: {msg}", 0)


def _deny(reason: str) -> str:
    return _out("PreToolUse", permissionDecision="deny", permissionDecisionReason=reason)


class _HookLog(AuditLog):
    """A log write that fails (disk full, permissions, a planted shard) must not turn a deny into an
    allow: the failure is kept (`handle` denies a writing call it hit), reported on stderr, and the
    hook carries on. A log dir under the root must also resolve under it: a symlink there must not
    send the log (or a forged one) elsewhere."""

    failed: OSError | None = None
    root: str | None = None

    def _open(self) -> int:
        if self._fd is None and self.root is not None:
            real, root = os.path.realpath(self.log_dir), os.path.realpath(self.root)
            if is_under(os.path.abspath(self.log_dir), os.path.abspath(self.root)) and not is_under(real, root):
                raise ShardError(errno.EXDEV, f"the log dir resolves to {real}, outside the root", self.log_dir)
        return super()._open()

    def write(self, event: dict[str, Any]) -> dict[str, Any]:
        try:
            return super().write(event)
        except OSError as e:
            self.failed = e
            return event

    def close(self) -> None:
        try:
            super().close()
        except OSError:
            pass
        if self.failed is not None:
            e = self.failed
            _stderr(f"epyc-agent hook: cannot write the audit log {e.filename or self.path}: {e.strerror or e}", 0)
            self.failed = None


class _Unlogged(AuditLog):
    """The root is missing: logging would create it (and hide the problem). Events are dropped
    and counted on stderr; the guards still run, and SessionStart tells the agent."""

    dropped = 0

    def write(self, event: dict[str, Any]) -> dict[str, Any]:
        self.dropped += 1
        return event

    def close(self) -> None:
        if self.dropped:
            _stderr(f"epyc-agent hook: storage root missing; {self.dropped} event(s) not logged", 0)
            self.dropped = 0


class Hook:
    """One invocation: the config, the payload, and where its events go."""

    def __init__(self, cfg: Config, p: dict[str, Any], env: Mapping[str, str]) -> None:
        self.cfg, self.p, self.env = cfg, p, env
        self.session = pl.session_for(p)
        # compaction's forked summariser stops as a subagent with no type: part of the
        # session's compaction, logged on the session's own shard
        self.summariser = p.get("hook_event_name") == "SubagentStop" and p.get("agent_type") == ""
        self.agent = agent_id(env=env) if self.summariser else pl.agent_for(p)
        missing_root = not os.path.isdir(cfg.root) and is_under(os.path.abspath(cfg.log_dir), cfg.root)
        self.log = (_Unlogged if missing_root else _HookLog)(cfg.log_dir, self.session, self.agent)

    def data(self, event: str, **more: Any) -> dict[str, Any]:
        d: dict[str, Any] = {"hook": event, **more}
        extra = pl.extra_fields(self.p, event)
        if extra:
            d["extra"] = extra
        if self.p.get("agent_type"):
            d["agent_type"] = self.p.get("agent_type")
        return d

    def run(self, event: str) -> str:
        handler = HANDLERS.get(event)
        if event not in ("SessionStart", "SessionEnd") and self.session:
            self.ensure_session(event)
        if handler is None:
            self.log.event("OBSERVE", f"hook event {event or '(none)'}", data=self.data(event or "unknown"))
            return ""
        return handler(self)

    def ensure_session(self, event: str) -> None:
        """A session first seen mid-way (hooks installed while it ran) is started on first sight."""
        if os.path.exists(session_file(self.cfg, self.session)):
            return
        try:
            self.start(f"claude code session (first seen at {event})")
        except EpycAgentError as e:  # e.g. the root is missing: log it, the guards still run
            self.log.error(f"session could not start: {e.render()}", event)

    def start(self, purpose: str) -> dict[str, Any]:
        from ..sessions import start_session

        p = self.p
        extra = {k: p[k] for k in ("session_id", "transcript_path", "model") if isinstance(p.get(k), str)}
        return start_session(
            self.cfg,
            purpose,
            agent_id(env=self.env),
            session_id=self.session,
            extra={"claude": extra, "cwd": p.get("cwd") if isinstance(p.get("cwd"), str) else ""},
        )

    # -- guards ------------------------------------------------------------------------
    def guard(self) -> Any:
        extra = []
        g = self.cfg.guards
        home = self.env.get("HOME") or os.path.expanduser("~")
        if g.get("allow_project_dir", True):
            proj = self.env.get("CLAUDE_PROJECT_DIR") or self.p.get("cwd")
            if isinstance(proj, str) and proj and _plausible_project(proj, self.cfg.root, home):
                extra.append(proj)
        if g.get("allow_claude_dir", True):
            extra.append(os.path.join(home, ".claude"))
        guard = guard_for(self.cfg, extra)
        guard.host = HostRules(g)
        if g.get("protect", "enforce") != "off":
            from ..guards.protect import protected_for

            proj = self.env.get("CLAUDE_PROJECT_DIR") or self.p.get("cwd")
            guard.protected = protected_for(self.cfg, self.env, proj if isinstance(proj, str) and proj else None)
        return guard

    def findings(self, tool: str, ti: dict[str, Any], info: dict[str, Any]) -> list[Finding]:
        cwd = self.p.get("cwd") if isinstance(self.p.get("cwd"), str) else None
        if tool in EDIT_TOOLS:
            return check_edit(tool, ti, cwd, self.guard())
        if tool == "EnterWorktree":
            return check_worktree(ti, cwd, self.guard())
        if tool != "Bash":
            return []
        command = ti.get("command")
        tables = None if isinstance(self.log, _Unlogged) else os.path.join(self.cfg.log_dir, ".state")
        found, how = check_bash(command, cwd, self.guard(), self.env, tables)
        info.update(how)
        retry = self.retry(command, ti)
        return found if retry is None else [*found, retry]

    pending: str | None = None  # this call's retry key, if recorded as running

    def retry(self, command: str, ti: dict[str, Any]) -> Finding | None:
        """The retry rule for this call, counting identical calls still running; a call it lets
        through is recorded as running (by tool_use_id) in the same locked step."""
        if not self.session:
            return None
        limit = int(self.cfg.guards.get("retry_limit", 3))
        key = command_key(command)
        use_id = self.p.get("tool_use_id")
        if isinstance(use_id, str) and use_id and not isinstance(self.log, _Unlogged):
            timeout = ti.get("timeout")
            secs = timeout / 1000 if isinstance(timeout, int | float) else None
            failed, running = state.begin_call(self.cfg.log_dir, self.session, use_id, key, limit, secs)
            self.pending = key if failed + running < limit else None
        else:  # no id to settle it by (or no log to keep state in): results only
            failed, running = state.load(self.cfg.log_dir, self.session).get("failures", {}).get(key, 0), 0
        finding = retry_finding(failed, running, limit)
        if finding is None or not overridden(command, self.env):
            return finding
        self.log.event(
            "DECISION",
            f"retry limit overridden ({OVERRIDE}=1)",
            cmd=command,
            level="WARN",
            details=f"failed {failed} times in a row before" + (f", {running} still running" if running else ""),
            data=self.data("PreToolUse", guard="retry", override=True),
        )
        return None

    def release(self) -> None:
        """The call was denied after all (another guard): it will not run, so it is not pending."""
        use_id = self.p.get("tool_use_id")
        if self.pending is not None and self.session and isinstance(use_id, str):
            state.settle_call(self.cfg.log_dir, self.session, use_id, self.pending, None)
            self.pending = None

    def end_turn(self) -> None:
        """The main agent's turn ended: calls never settled lost their result (state.clear_pending)."""
        if self.session and not self.p.get("agent_id"):
            state.clear_pending(self.cfg.log_dir, self.session)


def _plausible_project(proj: str, root: str, home: str) -> bool:
    """A project folder, not `/`, the home folder or an ancestor of the root (a `cd /` in the
    agent's shell moves the payload's cwd; allowlisting that would allow everything)."""
    real = os.path.realpath(proj)
    return real not in ("/", os.path.realpath(home)) and not is_under(os.path.realpath(root), real)


def _pre_tool(h: Hook) -> str:
    p = h.p
    tool = p.get("tool_name") if isinstance(p.get("tool_name"), str) else ""
    ti = p.get("tool_input")
    label = pl.tool_label(tool, ti)
    use_id = p.get("tool_use_id")
    info: dict[str, Any] = {}
    modes = h.cfg.guards
    try:
        if not tool or not isinstance(ti, dict):
            raise MalformedInput("PreToolUse payload lacks tool_name or a tool_input object")
        findings = h.findings(tool, ti, info)
    except Exception as e:  # noqa: BLE001 - MalformedInput, or a guard's own failure: same rule
        why = str(e) if isinstance(e, MalformedInput) else f"{type(e).__name__}: {e}"
        h.log.error(f"guard could not evaluate {tool or 'tool call'}: {why}", label)
        if modes.get("fail_closed"):
            return _deny(
                f"epyc-agent could not evaluate this call ({why}); guards.fail_closed is true, so "
                "it is refused. Retry with a complete tool input, or ask the user."
            )
        findings = []
        ti = ti if isinstance(ti, dict) else {}
    deny = [f for f in findings if modes.get(f.guard, "enforce") == "enforce"]
    warn = [f for f in findings if modes.get(f.guard, "enforce") == "warn"]
    base = h.data("PreToolUse", tool=tool, tool_use_id=use_id, call_id=pl.call_id(tool, ti), **info)
    if deny:
        h.release()
        reason = " | ".join(f"[{f.guard}] {f.reason}" for f in deny)
        h.log.event(
            "DECISION",
            f"denied {tool}: {label}",
            cmd=label,
            level="WARN",
            details=reason,
            data={**base, "decision": "deny", "findings": [f.as_dict() for f in deny]},
        )
        return _deny(f"epyc-agent guard refused this call: {reason}")
    for f in warn:
        h.log.event(
            "WARNING",
            f"guard {f.guard} (warn-only): {label}",
            cmd=label,
            details=f.reason,
            data={**base, "finding": f.as_dict()},
        )
    if tool in EDIT_TOOLS:
        _log_edit(h, tool, ti, use_id, base)
    else:
        if tool == "TodoWrite" and isinstance(ti.get("todos"), list):
            base["todos"] = [
                {"content": str(t.get("content", ""))[:200], "status": str(t.get("status", ""))}
                for t in ti["todos"][:50]
                if isinstance(t, dict)
            ]
        details = ti.get("description") if isinstance(ti.get("description"), str) else ""
        h.log.event("CMD_INTENT", label, cmd=label, details=details, data=base)
    if warn:
        return _out(
            "PreToolUse",
            additionalContext="epyc-agent guard warnings (warn-only mode, the call runs): "
            + " | ".join(f"[{f.guard}] {f.reason}" for f in warn),
        )
    return ""


def _log_edit(h: Hook, tool: str, ti: dict[str, Any], use_id: Any, base: dict[str, Any]) -> None:
    from .rollback import plan

    path = edit_path(tool, ti)
    cwd = h.p.get("cwd") if isinstance(h.p.get("cwd"), str) else None
    path = path if os.path.isabs(path) or not cwd else os.path.join(cwd, path)
    try:
        action, undo = plan(h.cfg, h.session or "none", path, tool)
    except OSError as e:
        action, undo = ("edit" if os.path.exists(path) else "create"), f"(no undo plan: {e.strerror})"
    size = len(ti.get("content", "")) if isinstance(ti.get("content"), str) else None
    h.log.event(
        "FILE_MODIFY",
        path,
        path=path,
        action=action,
        details=f"action={action}; {tool}",
        data={**base, "bytes": size} if size is not None else base,
    )
    h.log.event(
        "ROLLBACK",
        f"{tool} {path}",
        action=f"{tool} {path}",
        undo=undo,
        details=f"undo_with: {undo}",
        data={"hook": "PreToolUse", "tool_use_id": use_id},
    )


def _exit_code(p: dict[str, Any]) -> int | None:
    if p.get("hook_event_name") == "PostToolUseFailure":
        err = str(p.get("error") or "")
        first = err.strip().splitlines()[0] if err.strip() else ""
        if first.lower().startswith("exit code"):
            tail = first[9:].strip()
            return int(tail) if tail.lstrip("-").isdigit() else 1
        return 130 if p.get("is_interrupt") else 1
    resp = p.get("tool_response")
    if isinstance(resp, dict):
        for k in ("exit_code", "exitCode", "returnCode", "return_code"):
            if isinstance(resp.get(k), int):
                return int(resp[k])
        if resp.get("interrupted") is True:
            return 130
        if resp.get("success") is False:
            return 1
    return 0


def _post_tool(h: Hook) -> str:
    p = h.p
    event = p.get("hook_event_name", "PostToolUse")
    tool = p.get("tool_name") if isinstance(p.get("tool_name"), str) else ""
    label = pl.tool_label(tool, p.get("tool_input"))
    code = _exit_code(p)
    failed = event == "PostToolUseFailure" or code != 0
    resp = p.get("tool_response")
    interrupted = p.get("is_interrupt") is True or (isinstance(resp, dict) and resp.get("interrupted") is True)
    if event == "PostToolUseFailure":
        summary = str(p.get("error") or "")[:OUTPUT_CHARS]
    else:
        if isinstance(resp, dict):
            summary = "".join(str(resp.get(k) or "") for k in ("stdout", "stderr"))[:OUTPUT_CHARS]
        else:
            summary = str(resp or "")[:OUTPUT_CHARS]
    call = pl.call_id(tool, p.get("tool_input"))
    h.log.event(
        "CMD_RESULT",
        label,
        cmd=label,
        exit_code=code,
        duration_ms=p.get("duration_ms"),
        level="ERROR" if failed else "INFO",
        details=f"exit={code}; {summary}" if summary else f"exit={code}",
        data=h.data(
            event,
            tool=tool,
            tool_use_id=p.get("tool_use_id"),
            call_id=call,
            outcome="interrupted" if interrupted else "failed" if failed else "ok",
            **({"interrupted": True} if interrupted else {}),
        ),
    )
    ti = p.get("tool_input")
    if tool == "Bash" and h.session and isinstance(ti, dict) and isinstance(ti.get("command"), str):
        use_id = p.get("tool_use_id")
        outcome = None if failed and interrupted else failed  # the user stopping a command is not it failing
        key = command_key(ti["command"])
        state.settle_call(h.cfg.log_dir, h.session, use_id if isinstance(use_id, str) else None, key, outcome, summary)
    loops = h.cfg.loops
    if loops["warn"] and h.session and not interrupted:
        n = state.note_outcome(h.cfg.log_dir, h.session, call, failed, loops["mistake_streak"])
        if n:
            return _out(
                event,
                additionalContext=f"epyc-agent loop check: your last {n} calls all failed, with different "
                "calls. Stop and re-read the errors: find their shared cause (a wrong path, a missing build, "
                "a bad assumption) before the next call.",
            )
    return ""


def _session_start(h: Hook) -> str:
    from .context import session_context

    source = h.p.get("source") if isinstance(h.p.get("source"), str) else "startup"
    if not h.session:
        h.log.error("SessionStart without a session_id", "")
        return ""
    context = session_context(h, source)
    guard = h.guard()
    watch = sorted(f for f in guard.protected.files if os.path.isfile(f)) if guard.protected else []
    # FileChanged then reports a change to the files the guards protect (made by a program the
    # parser cannot see, or by a person)
    return _out("SessionStart", additionalContext=context, **({"watchPaths": watch} if watch else {}))


def _prompt(h: Hook) -> str:
    prompt = h.p.get("prompt")
    text = prompt if isinstance(prompt, str) else ""
    h.log.event(
        "OBSERVE",
        "user prompt",
        details=text[:PROMPT_CHARS],
        data=h.data("UserPromptSubmit", length=len(text), prompt_head=text[:PROMPT_CHARS]),
    )
    h.end_turn()  # also after an interrupt (Esc), where Stop does not fire
    warning = state.take_warning(h.cfg.log_dir, h.session) if h.session and h.cfg.loops["warn"] else ""
    return _out("UserPromptSubmit", additionalContext=warning) if warning else ""


def _pre_compact(h: Hook) -> str:
    from ..compaction import write_dump

    trigger = h.p.get("trigger") if isinstance(h.p.get("trigger"), str) else "auto"
    if not h.session:
        return ""
    try:
        paths = write_dump(h.cfg, h.session, trigger)
    except Exception as e:  # noqa: BLE001 - never block compaction
        h.log.error(f"pre-compaction dump failed: {type(e).__name__}: {e}", "")
        return ""
    h.log.event(
        "OBSERVE",
        "pre-compaction dump",
        path=paths["md"],
        details=paths["md"],
        data=h.data("PreCompact", trigger=trigger, **paths),
    )
    return ""


def _simple(h: Hook) -> str:
    event = str(h.p.get("hook_event_name"))
    msg = {"Stop": "agent stopped", "SubagentStop": "subagent stopped"}
    if h.summariser:
        text = "compaction summariser stopped"
    else:
        text = msg.get(event) or (f"notification: {h.p.get('message')}" if event == "Notification" else event)
    facts = _text_facts(h) if event == "Stop" and not h.summariser else {}
    h.log.event("OBSERVE", text, data=h.data(event, **({"compaction": True} if h.summariser else facts)))
    if event == "Stop":
        h.end_turn()
    return ""


def _text_facts(h: Hook) -> dict[str, Any]:
    """The digest of the assistant's last text; a text loop is saved as a warning for the next
    prompt (Stop itself cannot add context without making the model go on)."""
    from .assistant_text import latest_text, text_facts

    facts = text_facts(latest_text(h.p))
    loops = h.cfg.loops
    if facts and h.session and loops["warn"]:
        n = state.note_text(h.cfg.log_dir, h.session, facts["text_digest"])
        if n >= loops["text_loop"] or facts["sentence_repeats"] >= loops["text_repeat"]:
            what = (
                f"the same answer {n} times in a row"
                if n >= loops["text_loop"]
                else (f"one sentence {facts['sentence_repeats']} times in one message")
            )
            state.save_warning(
                h.cfg.log_dir,
                h.session,
                f"epyc-agent loop check: you wrote {what}, with no tool call in between. You are in a "
                "loop: do not repeat it; act on the task, or say plainly what blocks you.",
            )
    return facts


def _post_compact(h: Hook) -> str:
    """The CLI's own summary is kept beside our pre-compaction dump (not in it: SessionStart
    re-injects the dump, and the model already has this summary)."""
    from ..compaction import keep_summary

    trigger = h.p.get("trigger") if isinstance(h.p.get("trigger"), str) else "auto"
    summary = h.p.get("compact_summary") if isinstance(h.p.get("compact_summary"), str) else ""
    path = keep_summary(h.cfg, h.session, summary) if h.session and summary else None
    h.log.event(
        "OBSERVE",
        "context compacted",
        path=path or "",
        data=h.data("PostCompact", trigger=trigger, summary_chars=len(summary), summary_path=path),
    )
    return ""


def _session_end(h: Hook) -> str:
    from ..errors import SessionError
    from ..sessions import end_session

    reason = h.p.get("reason") if isinstance(h.p.get("reason"), str) else "other"
    if not h.session:
        return ""
    if h.p.get("agent_id"):
        return _simple(h)
    try:
        end_session(h.cfg, h.session, f"claude code session ended ({reason})", agent_id(env=h.env))
    except SessionError:
        h.log.event("SESSION_END", f"claude code session ended ({reason})", data=h.data("SessionEnd"))
    return ""


HANDLERS = {
    "SessionStart": _session_start,
    "UserPromptSubmit": _prompt,
    "PreToolUse": _pre_tool,
    "PostToolUse": _post_tool,
    "PostToolUseFailure": _post_tool,
    "PreCompact": _pre_compact,
    "Stop": _simple,
    "SubagentStop": _simple,
    "Notification": _simple,
    "PostCompact": _post_compact,
    "SessionEnd": _session_end,
    "PostToolBatch": lifecycle.post_tool_batch,
    "PermissionRequest": lifecycle.permission_request,
    "PermissionDenied": lifecycle.permission_denied,
    "SubagentStart": lifecycle.subagent_start,
    "StopFailure": lifecycle.stop_failure,
    "CwdChanged": lifecycle.cwd_changed,
    "ConfigChange": lifecycle.config_change,
    "FileChanged": lifecycle.file_changed,
    "InstructionsLoaded": lifecycle.observe,
    "Setup": lifecycle.observe,
    "TaskCreated": lifecycle.observe,
    "TaskCompleted": lifecycle.observe,
    "WorktreeRemove": lifecycle.observe,
}
