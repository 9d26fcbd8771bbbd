"""Per-session hook state: a small JSON file, so the hook never reads the whole log.

`<log_dir>/.state/hook-<session>.json` holds the consecutive-failure count per
command (the retry guard) and the last few failures (for the compaction dump).
PreToolUse only reads it; PostToolUse / PostToolUseFailure update it under an
exclusive `flock` (parallel tool calls finish concurrently) and replace it
atomically, so a reader never sees half a file.
"""

from __future__ import annotations

import json
import os

from ..events.schema import now_ts, shard_name
from ..fileio import write_json_atomic

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

MAX_KEYS = 200  # commands tracked per session (oldest dropped)
RECENT = 10  # failures remembered for the dump


def state_path(log_dir: str, session: str) -> str:
    safe = shard_name(session)[len("agent_audit-") : -len(".log")]
    return os.path.join(log_dir, ".state", f"hook-{safe}.json")


def load(log_dir: str, session: str) -> dict[str, Any]:
    """The state, or an empty one (missing or unreadable: the guard then starts counting anew)."""
    try:
        with open(state_path(log_dir, session), encoding="utf-8") as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def update(log_dir: str, session: str, change: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """Apply `change` (returns True if it changed anything) under the lock; write if changed."""
    import fcntl  # only writers lock; PreToolUse just reads

    path = state_path(log_dir, session)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        data = load(log_dir, session)
        if change(data):
            write_json_atomic(path, data)
        return data
    finally:
        os.close(fd)


def record_result(log_dir: str, session: str, key: str, failed: bool, summary: str = "") -> dict[str, Any]:
    """Count a failure of `key`, or reset its count on success."""

    def change_ok(data: dict[str, Any]) -> bool:
        return data.setdefault("failures", {}).pop(key, None) is not None

    def change_fail(data: dict[str, Any]) -> bool:
        fails: dict[str, int] = data.setdefault("failures", {})
        n = fails.pop(key, 0) + 1  # re-inserted: dict order = least recently failed first
        fails[key] = n
        while len(fails) > MAX_KEYS:
            fails.pop(next(iter(fails)))
        recent: list[dict[str, Any]] = data.setdefault("recent_failures", [])
        recent.append({"ts": now_ts(), "cmd": key[:300], "count": n, "error": summary[:300]})
        del recent[:-RECENT]
        return True

    return update(log_dir, session, change_fail if failed else change_ok)
