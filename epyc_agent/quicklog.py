"""`epyc-agent log <verb> ARGS...` without click: one event, one write, one process.

The old toolkit's functions are called from scripts in loops; this path keeps a
whole process well under the 60 ms budget by importing only the stdlib JSON
encoder, the lean config and the writer.
"""

from __future__ import annotations

import os
import sys

from .config import load_config
from .errors import EpycAgentError
from .events import schema, verbs
from .events.writer import AuditLog
from .sessions import agent_id, current_session_id


def log_verb(
    verb: str,
    args: list[str],
    *,
    agent: str | None = None,
    session: str | None = None,
    config_file: str | None = None,
    root: str | None = None,
) -> dict:
    """Write one verb event for the current (or given) session and agent; return it."""
    cfg = load_config(config_file, root)
    fields = verbs.build(verb, args)
    agent = agent_id(agent)
    session = session or current_session_id(cfg, agent)
    with AuditLog(cfg.log_dir, session, agent) as log:
        return log.event(**fields)


def main(verb: str, args: list[str]) -> int:
    schema.set_lean()
    args = [os.fsdecode(a) if isinstance(a, bytes) else a for a in args]
    try:
        log_verb(verb, args)
    except ValueError as e:  # wrong argument count or value
        print(f"epyc-agent: {e}", file=sys.stderr)
        return 2
    except EpycAgentError as e:
        print(f"epyc-agent: {e.render()}", file=sys.stderr)
        return e.exit_code
    except OSError as e:
        print(f"epyc-agent: cannot write the audit log: {e.strerror} ({e.filename})", file=sys.stderr)
        return 2
    return 0
