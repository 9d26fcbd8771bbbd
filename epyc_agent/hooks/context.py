"""SessionStart: begin (or resume) the session and tell the agent where it stands.

The returned text becomes Claude's context: the root and its free space, the
guards in force, priority actions (untested models, from `priorities.PROVIDERS`),
open tasks, the research report, and after a compaction the newest
pre-compaction dump of this session. Capped under 10,000 characters.
"""

from __future__ import annotations

import os
import shlex

from ..errors import EpycAgentError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..config import Config
    from .dispatch import Hook

MAX_CHARS = 9_900


def session_context(h: Hook, source: str) -> str:
    cfg = h.cfg
    try:
        st = h.start(f"claude code session ({source})")
    except EpycAgentError as e:
        h.log.error(f"session could not start: {e.render()}", source)
        return (
            f"epyc-agent: the session could not start: {e.render()}. Nothing may be written until the "
            "storage root is usable; tell the user."
        )
    _export_session(h)
    lines = [
        f"epyc-agent: session {st['session']} ({'resumed' if st['resumed'] else 'new'}); every tool "
        f"call is logged to {cfg.log_dir}.",
        f"Storage root {cfg.root}: {st['free_gb']} GB free ({st['used_pct']}% used)"
        + (" - NEARLY FULL" if st.get("warn") else "")
        + f". Write only under it (temp: {cfg.tmp_dir}).",
        guards_line(cfg),
    ]
    from ..priorities import priority_actions

    for n, action in enumerate(priority_actions(cfg, h.log), 1):
        lines.append(f"Priority {n}: {action}")
    if st["resumed"] or source in ("resume", "compact"):
        from ..compaction import open_tasks, session_events

        tasks = open_tasks(session_events(cfg, h.session or ""))
        if tasks:
            lines.append("Open tasks: " + "; ".join(tasks[-10:]))
    report = os.path.join(cfg.root, "research", "research_report.md")
    if os.path.exists(report):
        import time

        mtime = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(os.path.getmtime(report)))
        lines.append(f"Research report: {report} (last changed {mtime}); update it after every test.")
    text = "\n".join(lines)
    if source == "compact":
        from ..compaction import latest_dump

        dump = latest_dump(cfg, h.session or "")
        if dump:
            room = MAX_CHARS - len(text) - 60
            text += "\n\nState saved before the compaction:\n\n" + (
                dump if len(dump) <= room else dump[:room] + "\n[cut]"
            )
    return text[:MAX_CHARS]


def guards_line(cfg: Config) -> str:
    return (
        "Guards: "
        + ", ".join(f"{k}={cfg.guards[k]}" for k in ("storage", "bash", "destructive", "retry"))
        + f", retry limit {cfg.guards['retry_limit']}. A denied call says why and what to do instead."
        + (
            " Host changes (sudo, package installs, service restarts, drop_caches) are the user's; run llama-cli "
            f"one-shot (-n N -no-cnv), pytest with at most -n {cfg.guards['pytest_max_workers']}; while a "
            "benchmark runs, do not edit benchmark files."
        )  # fmt: skip
    )


def subagent_context(cfg: Config) -> str:
    """What a subagent (a role agent) is told when it starts: it shares the session's rules."""
    return (
        f"epyc-agent: your tool calls are logged to {cfg.log_dir} and guarded like the main agent's. "
        f"Write only under the storage root {cfg.root} (temp: {cfg.tmp_dir}). {guards_line(cfg)}"
    )


def _export_session(h: Hook) -> None:
    """Claude Code runs SessionStart hooks with $CLAUDE_ENV_FILE and sources what they write there
    before each Bash command: the session id (`epyc-agent log ...` lands in this session) and the
    storage environment, which a project's settings `env` block cannot set (Claude Code ignores
    TMPDIR, XDG_*_HOME and CLAUDE_CODE_TMPDIR there)."""
    from ..environment import env_vars

    path = h.env.get("CLAUDE_ENV_FILE")
    if not path or h.p.get("agent_id") or not h.session:
        return
    exports = {**env_vars(h.cfg), "EPYC_AGENT_SESSION": h.session}
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write("".join(f"export {k}={shlex.quote(v)}\n" for k, v in exports.items()))
    except OSError as e:
        h.log.warn(f"could not write CLAUDE_ENV_FILE {path}: {e.strerror}", "")
