"""`epyc-agent hook`: the command Claude Code runs for every hook event.

A new process per tool call, so it imports only the stdlib `json` and our lean
modules (no click, structlog, orjson, yaml, pathlib, typing, subprocess); bashlex
only when a Bash command could write. stdin is the event's JSON; stdout the
answer; exit 0 always (a guard's refusal is a JSON `permissionDecision: "deny"`).
"""

from __future__ import annotations

import os
import sys

from ..events import schema
from .payload import MAX_STDIN


def main() -> int:
    schema.set_lean()
    try:
        raw = sys.stdin.buffer.read(MAX_STDIN + 1)
    except (OSError, ValueError):
        raw = b""
    from .dispatch import handle

    try:
        out, code = handle(raw, os.environ)
    except BaseException as e:  # noqa: BLE001 - last resort: never a traceback into Claude Code
        if isinstance(e, KeyboardInterrupt | SystemExit):
            raise
        print(f"epyc-agent hook: internal error: {type(e).__name__}: {e}", file=sys.stderr)
        return 0
    if out:
        sys.stdout.write(out + "\n")
        sys.stdout.flush()
    return code
