"""`epyc-agent session start|end|status|list|exec`."""

from __future__ import annotations

import os
import shlex

import click

from .. import sessions
from ..errors import SessionError
from ..output import echo, emit_json, kv, table
from . import obj


@click.group()
def session() -> None:
    """Start, end, inspect sessions; run commands inside one."""


@session.command("start")
@click.option("--purpose", default="", help="What this session is for.")
@click.option("--agent", help="Agent id (else $EPYC_AGENT_ID, $AGENT_ID, 'main').")
@click.option("--init", is_flag=True, help="Create the root and its layout if missing.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def session_start(ctx: click.Context, purpose: str, agent: str | None, init: bool, as_json: bool) -> int:
    """Check the root, set up the environment, log SESSION_START.

    Prints the status as comments and an export line, so
    eval "$(epyc-agent session start --purpose X)" sets EPYC_AGENT_SESSION.
    """
    from ..events.writer import AuditLog
    from ..priorities import priority_actions

    cfg = obj(ctx).config
    st = sessions.start_session(cfg, purpose, agent, init)
    with AuditLog(cfg.log_dir, st["session"], st["agent"]) as log:
        st["priority_actions"] = priority_actions(cfg, log)
    if as_json:
        emit_json(st)
        return 0
    echo(f"# session {st['session']} started (agent {st['agent']})")
    echo(
        f"# root {st['root']}: {st['free_gb']} GB free ({st['used_pct']}% used)"
        + (" WARNING: nearly full" if st.get("warn") else "")
    )
    if "ram_total_gb" in st:
        echo(f"# RAM {st['ram_total_gb']} GB, {st['ram_available_gb']} GB available")
    echo(f"# log dir {st['log_dir']}")
    for n, action in enumerate(st["priority_actions"], 1):
        echo(f"# priority {n}: {action}")
    echo(f"export EPYC_AGENT_SESSION={shlex.quote(st['session'])}")
    return 0


def _resolve(ctx: click.Context, session_id: str | None, agent: str | None) -> str:
    cfg = obj(ctx).config
    sid = session_id or sessions.current_session_id(cfg, agent)
    if not sid:
        raise SessionError("no current session", hint="start one with `epyc-agent session start` or pass --session ID")
    return sid


@session.command("end")
@click.option("--summary", default="", help="One-line summary of what was done.")
@click.option("--session", "session_id", help="Session id (else the current one).")
@click.option("--agent", help="Agent id.")
@click.pass_context
def session_end(ctx: click.Context, summary: str, session_id: str | None, agent: str | None) -> int:
    """Log SESSION_END and close the session (only this agent's pointer is cleared)."""
    sid = _resolve(ctx, session_id, agent)
    rec = sessions.end_session(obj(ctx).config, sid, summary, agent)
    echo(f"# session {rec['id']} ended")
    echo("unset EPYC_AGENT_SESSION")
    return 0


@session.command("status")
@click.option("--session", "session_id", help="Session id (else the current one).")
@click.option("--agent", help="Agent id.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def session_status(ctx: click.Context, session_id: str | None, agent: str | None, as_json: bool) -> int:
    """Show the current session, the root's free space and memory."""
    cfg = obj(ctx).config
    sid = session_id or sessions.current_session_id(cfg, agent)
    rec = sessions.load_session(cfg, sid) if sid else None
    usage = sessions.disk_usage(cfg.root) if os.path.isdir(cfg.root) else {}
    data = {"session": rec, "root": cfg.root, "log_dir": cfg.log_dir, **usage, **sessions.memory()}
    if as_json:
        emit_json(data)
        return 0 if rec else 1
    if rec is None:
        echo("no current session" + (f" (id {sid} has no record)" if sid else ""))
    else:
        echo(
            kv(
                [
                    ("session", rec["id"]),
                    ("agent", rec.get("agent")),
                    ("status", rec.get("status")),
                    ("purpose", rec.get("purpose") or "-"),
                    ("started", rec.get("started")),
                    ("ended", rec.get("ended") or "-"),
                ]
            )
        )
    echo(
        kv(
            [
                ("root", cfg.root),
                ("free", f"{usage.get('free_gb', '?')} GB ({usage.get('used_pct', '?')}% used)"),
                ("log dir", cfg.log_dir),
            ]
        )
    )
    return 0 if rec else 1


@session.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def session_list(ctx: click.Context, as_json: bool) -> int:
    """List registered sessions, oldest first."""
    recs = sessions.list_sessions(obj(ctx).config)
    if as_json:
        emit_json(recs)
        return 0
    rows = [
        (
            r.get("id"),
            r.get("agent", ""),
            r.get("status", ""),
            r.get("started", ""),
            r.get("ended") or "",
            r.get("purpose", ""),
        )
        for r in recs
    ]
    echo(table(rows, ["session", "agent", "status", "started", "ended", "purpose"]) if rows else "no sessions")
    return 0


@session.command("exec", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--reason", default="", help="Why this command runs (logged with it).")
@click.option("--shell", "use_shell", is_flag=True, help="Run the single CMD string through bash -c.")
@click.option("--session", "session_id", help="Session id (else the current one).")
@click.option("--agent", help="Agent id.")
@click.option(
    "--sandbox",
    is_flag=True,
    help="Kernel-enforced: the command's process tree can write only under the root (Landlock; Linux >= 5.13).",
)
@click.option(
    "--allow-unsandboxed",
    is_flag=True,
    help="With --sandbox: run unguarded (logged) where Landlock is unavailable instead of refusing.",
)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_context
def session_exec(
    ctx: click.Context,
    reason: str,
    use_shell: bool,
    session_id: str | None,
    agent: str | None,
    sandbox: bool,
    allow_unsandboxed: bool,
    command: tuple[str, ...],
) -> int:
    """Run COMMAND with the session environment; log intent and result; return its exit code.

    Example: epyc-agent session exec --sandbox --reason "build" -- make -j2
    """
    from ..execution import run_logged

    cfg = obj(ctx).config
    agent = sessions.agent_id(agent)
    sid = session_id or sessions.current_session_id(cfg, agent)
    if use_shell and len(command) != 1:
        command = (shlex.join(command),)
    box = _sandbox(cfg, sid, agent, allow_unsandboxed) if sandbox else None
    try:
        return run_logged(
            cfg,
            list(command),
            reason=reason,
            use_shell=use_shell,
            session=sid,
            agent=agent,
            preexec=box.apply if box else None,
        )
    finally:
        if box:
            box.close()


def _sandbox(cfg, sid: str | None, agent: str, allow_unsandboxed: bool):  # noqa: ANN001, ANN202
    """A prepared Landlock sandbox, or None (logged) when unavailable and --allow-unsandboxed."""
    from ..events.writer import AuditLog
    from ..sandbox import SandboxError, prepare, write_dirs_for

    try:
        return prepare(write_dirs_for(cfg))
    except SandboxError as e:
        if not allow_unsandboxed:
            raise
        with AuditLog(cfg.log_dir, sid, agent) as log:
            log.warn(f"running unsandboxed: {e}", "--allow-unsandboxed")
        click.echo(f"epyc-agent: WARNING: {e}; running unsandboxed (--allow-unsandboxed)", err=True)
        return None


@session.command("compact")
@click.option("--session", "session_id", help="Session id (else the current one).")
@click.option("--agent", help="Agent id.")
@click.option("--json", "as_json", is_flag=True, help="Print the paths as JSON.")
@click.pass_context
def session_compact(ctx: click.Context, session_id: str | None, agent: str | None, as_json: bool) -> int:
    """Write the pre-compaction state dump (tasks, errors, files, models, next steps) as .md and .json.

    The PreCompact hook does the same; SessionStart after a compaction re-injects it.
    """
    from ..compaction import write_dump

    sid = _resolve(ctx, session_id, agent)
    paths = write_dump(obj(ctx).config, sid, "manual")
    if as_json:
        emit_json(paths)
    else:
        echo(f"# state dump for {sid}")
        echo(paths["md"])
        echo(paths["json"])
    return 0
