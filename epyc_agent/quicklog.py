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

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    OpenLog = Callable[[str, str | None, str], AuditLog]  # (log dir, session, agent) -> a writer


def log_verb(
    verb: str,
    args: list[str],
    *,
    agent: str | None = None,
    session: str | None = None,
    config_file: str | None = None,
    root: str | None = None,
    open_log: OpenLog | None = None,
) -> dict:
    """Write one verb event for the current (or given) session and agent; return it.
    `open_log` gives a writer kept open across events (the shell's helper); else one per call."""
    cfg = load_config(config_file, root)
    fields = verbs.build(verb, args)
    agent = agent_id(agent)
    session = session or current_session_id(cfg, agent)
    if open_log is not None:
        return open_log(cfg.log_dir, session, agent).event(**fields)
    with AuditLog(cfg.log_dir, session, agent) as log:
        return log.event(**fields)


def plain(args: list[str]) -> bool:
    """Whether `log <verb> ARGS` is for this path: no option first and no help flag (click's)."""
    return not (args and args[0].startswith("--")) and not any(a in ("--help", "-h") for a in args)


def run(verb: str, args: list[str], open_log: OpenLog | None = None) -> tuple[int, str]:
    """Log one verb event: (exit code, the error line or ""). Shared by `main` and the shell's
    helper (`logserve`), so both report a failure alike."""
    try:
        log_verb(verb, args, open_log=open_log)
    except ValueError as e:  # wrong argument count or value
        return 2, f"epyc-agent: {e}"
    except EpycAgentError as e:
        return e.exit_code, f"epyc-agent: {e.render()}"
    except OSError as e:
        return 2, f"epyc-agent: cannot write the audit log: {e.strerror} ({e.filename})"
    return 0, ""


def main(verb: str, args: list[str]) -> int:
    schema.set_lean()
    code, err = run(verb, [os.fsdecode(a) if isinstance(a, bytes) else a for a in args])
    if err:
        print(err, file=sys.stderr)
    return code
