"""Per-session hook state: a small JSON file, so the hook never reads the whole log.

`<log_dir>/.state/hook-<session>.json` holds the consecutive-failure count per
command (the retry guard), the Bash calls still running, and the last few failures
(for the compaction dump). Every change (a Bash PreToolUse recording its call as
pending, PostToolUse / PostToolUseFailure settling it) happens under an exclusive
`flock` (parallel tool calls start and finish concurrently) and replaces the file
atomically, so a reader never sees half a file.
"""

from __future__ import annotations

import os

from ..events.schema import now_ts, shard_name
from ..fileio import read_json_signed, secret_key, write_json_signed
from ..guards.retry import count_result

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

RECENT = 10  # failures remembered for the dump


def state_path(log_dir: str, session: str) -> str:
    safe = shard_name(session)[len("agent_audit-") : -len(".log")]
    return os.path.join(log_dir, ".state", f"hook-{safe}.json")


def load(log_dir: str, session: str) -> dict[str, Any]:
    """The verified state. The file is agent-writable: a missing, unsigned or forged one is
    rebuilt from the session's audit log (and saved), so deleting it never resets a guard."""
    data = _read(log_dir, session)
    if data is not None:
        return data
    if not os.path.isdir(log_dir):  # reading must not create it (a missing root stays missing)
        return rebuild(log_dir, session)
    try:
        return update(log_dir, session, _unchanged)
    except OSError:  # the state cannot be saved (read-only log dir): the log still counts
        return rebuild(log_dir, session)


def update(log_dir: str, session: str, change: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """Apply `change` (returns True if it changed anything) under the lock; write if changed
    (or if the state had to be rebuilt from the log)."""
    import fcntl  # only writers lock; PreToolUse just reads

    path = state_path(log_dir, session)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        data = _read(log_dir, session)
        rebuilt = data is None
        if data is None:
            data = rebuild(log_dir, session)
        if change(data) or rebuilt:
            write_json_signed(path, data, secret_key(log_dir))
        return data
    finally:
        os.close(fd)


def _read(log_dir: str, session: str) -> dict[str, Any] | None:
    data = read_json_signed(state_path(log_dir, session), secret_key(log_dir))
    return data if isinstance(data, dict) else None


def _unchanged(_data: dict[str, Any]) -> bool:
    return False


# -- rebuilding from the audit log ------------------------------------------------------------
# The log is the record the guard's counts come from; the state file only saves reading it. A
# rebuild replays the session's Bash results (every shard: subagents share the session) through
# the same rule, and remembers their tool_use_ids, so a result logged before the rebuild and
# settled after it is not counted twice (`counted_before`). It runs once per session (the state
# is saved), scans with bytes.find and parses only the session's CMD_RESULT lines, with the
# stdlib json: the hook path stays free of the reader and orjson.
COUNTED = 64  # tool_use_ids of replayed results kept
_CHUNK = 1 << 20


def rebuild(log_dir: str, session: str) -> dict[str, Any]:
    """The failure counts and recent failures as the session's CMD_RESULT events give them."""
    from ..guards.retry import command_key

    data: dict[str, Any] = {"failures": {}, "recent_failures": [], "counted": []}
    for ev in _session_results(log_dir, session):
        d = ev.get("data")
        if not isinstance(d, dict) or d.get("tool") != "Bash" or not isinstance(ev.get("cmd"), str):
            continue
        failed = ev.get("level") == "ERROR"
        if failed and d.get("interrupted"):
            continue  # the user stopping a command is not the command failing
        details = str(ev.get("details") or "")
        if _count(data, command_key(ev["cmd"]), failed, details.partition("; ")[2]) and failed:
            data["recent_failures"][-1]["ts"] = ev.get("ts")
        if isinstance(d.get("tool_use_id"), str):
            data["counted"].append(d["tool_use_id"])
    del data["counted"][:-COUNTED]
    return data


def _session_results(log_dir: str, session: str) -> list[dict[str, Any]]:
    """The session's CMD_RESULT events from every shard, in time order."""
    import json

    needle = b'"session":' + json.dumps(session, ensure_ascii=False).encode()
    found = []
    for line in _lines_with(_shards(log_dir), needle):
        if b'"CMD_RESULT"' not in line:
            continue
        try:
            ev = json.loads(line)
        except ValueError:
            continue  # a corrupt line: the reader reports it
        if isinstance(ev, dict) and ev.get("cat") == "CMD_RESULT" and ev.get("session") == session:
            found.append(ev)
    found.sort(key=lambda ev: str(ev.get("ts")))
    return found


def _shards(log_dir: str) -> list[str]:
    try:
        names = os.listdir(log_dir)
    except OSError:
        return []
    return [os.path.join(log_dir, n) for n in sorted(names) if n.startswith("agent_audit-") and n.endswith(".log")]


def _lines_with(paths: list[str], needle: bytes) -> list[bytes]:
    """Whole lines containing `needle`; chunks without it are skipped at memchr speed."""
    out: list[bytes] = []
    for path in paths:
        try:
            f = open(os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC), "rb")  # noqa: SIM115
        except OSError:
            continue
        with f:
            tail = b""
            while chunk := f.read(_CHUNK):
                buf, tail = (tail + chunk).rpartition(b"\n")[::2] if b"\n" in chunk else (b"", tail + chunk)
                if needle in buf:
                    out += [ln for ln in buf.split(b"\n") if needle in ln]
            if needle in tail:
                out.append(tail)
    return out


def counted_before(data: dict[str, Any], use_id: str | None) -> bool:
    """Whether a rebuild already counted this call's result (it was logged before the rebuild)."""
    counted = data.get("counted")
    return use_id is not None and isinstance(counted, list) and use_id in counted


def record_result(log_dir: str, session: str, key: str, failed: bool, summary: str = "") -> dict[str, Any]:
    """Count a failure of `key`, or reset its count on success (the rule: guards.retry.count_result)."""
    return update(log_dir, session, lambda data: _count(data, key, failed, summary))


def _count(data: dict[str, Any], key: str, failed: bool, summary: str) -> bool:
    fails: dict[str, int] = data.setdefault("failures", {})
    ended = count_result(fails, key, failed, _plus_one)
    if not failed:
        return bool(ended)
    recent: list[dict[str, Any]] = data.setdefault("recent_failures", [])
    recent.append({"ts": now_ts(), "cmd": key[:300], "count": fails[key], "error": summary[:300]})
    del recent[:-RECENT]
    return True


def _plus_one(n: int | None) -> int:
    return (n or 0) + 1


# -- calls still running --------------------------------------------------------------------
# Claude Code runs every PreToolUse of one message's parallel batch before the first result
# arrives, so four identical failing calls would all pass a guard that counts results only.
# A call is therefore pending from its PreToolUse (by tool_use_id) until its PostToolUse /
# PostToolUseFailure settles it. An entry whose Post never comes (the user pressed Esc,
# another hook denied the call, a hook timed out) must not count for ever: all are dropped
# when a turn ends (Stop) or a new prompt arrives (UserPromptSubmit; Stop does not fire on
# an interrupt), and each expires after its call's timeout (at least Bash's 10-minute
# maximum) plus a grace minute. Dropping one early only makes the guard more lenient.
PENDING_MAX = 200
BASH_MAX_S = 600.0
GRACE_S = 60.0


def begin_call(
    log_dir: str, session: str, use_id: str, key: str, limit: int, timeout_s: float | None = None
) -> tuple[int, int]:
    """(failures, other pending calls) of `key`; below `limit` this call is recorded as pending.

    One locked read-decide-write, so concurrent PreToolUse hooks of one batch see each other.
    A call the retry rule refuses is not recorded (it will not run).
    """
    import time

    now = time.time()
    seen = [0, 0]

    def change(data: dict[str, Any]) -> bool:
        pending = _pending(data)
        stale = [u for u, c in pending.items() if not isinstance(c.get("until"), int | float) or c["until"] < now]
        for u in stale:
            del pending[u]
        fails = data.get("failures")
        n = fails.get(key, 0) if isinstance(fails, dict) else 0
        running = sum(1 for u, c in pending.items() if c.get("key") == key and u != use_id)
        seen[:] = n, running
        if n + running >= limit:
            return bool(stale)
        pending[use_id] = {"key": key, "until": now + max(timeout_s or 0.0, BASH_MAX_S) + GRACE_S}
        while len(pending) > PENDING_MAX:
            del pending[next(iter(pending))]
        return True

    update(log_dir, session, change)
    return seen[0], seen[1]


def settle_call(
    log_dir: str, session: str, use_id: str | None, key: str, outcome: bool | None, summary: str = ""
) -> None:
    """A call ended: no longer pending; its failure counted (True), its success resets the
    command's count (False), an interrupt does neither (None). Writes only if something changes."""
    data = load(log_dir, session)
    is_pending = use_id is not None and use_id in _pending(data)
    fails = data.get("failures")
    if not is_pending and not outcome and (outcome is None or not isinstance(fails, dict) or key not in fails):
        return  # the common case, a success of a command that never failed: no lock, no write

    def change(data: dict[str, Any]) -> bool:
        dropped = use_id is not None and _pending(data).pop(use_id, None) is not None
        counted = outcome is not None and not counted_before(data, use_id) and _count(data, key, outcome, summary)
        return dropped or counted

    update(log_dir, session, change)


def clear_pending(log_dir: str, session: str) -> None:
    """Forget every running call: the turn is over, so any call not settled lost its result."""
    if _pending(load(log_dir, session)):
        update(log_dir, session, lambda data: bool(data.pop("pending", None)))


def _pending(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The pending calls, {tool_use_id: {"key", "until"}}, with malformed entries left out."""
    pending = data.get("pending")
    if not isinstance(pending, dict):
        pending = data["pending"] = {}
    for u in [u for u, c in pending.items() if not isinstance(c, dict)]:
        del pending[u]
    return pending


def note_outcome(log_dir: str, session: str, call: str, failed: bool, threshold: int) -> int:
    """The mistake streak after this call: how many calls in a row failed, with at least two
    different ones among them (all the same is the retry guard's case), once it reaches
    `threshold`, else 0. A success that ends nothing writes nothing."""
    now = load(log_dir, session)
    if not failed and not now.get("streak") and not now.get("text"):
        return 0
    out = [0]

    def change(data: dict[str, Any]) -> bool:
        text = data.pop("text", None) is not None  # a call: the assistant's texts are no longer in a row
        s = data.get("streak") if isinstance(data.get("streak"), dict) else {"n": 0, "calls": []}
        if not failed:
            return data.pop("streak", None) is not None or text
        calls = [c for c in s.get("calls", []) if isinstance(c, str)][-8:]
        s = {"n": int(s.get("n", 0)) + 1, "calls": calls if call in calls else [*calls, call]}
        data["streak"] = s
        out[0] = s["n"] if s["n"] >= threshold and len(s["calls"]) > 1 else 0
        return True

    update(log_dir, session, change)
    return out[0]


def note_text(log_dir: str, session: str, digest: str) -> int:
    """How many assistant texts in a row (this one included) had this digest."""
    out = [1]

    def change(data: dict[str, Any]) -> bool:
        t = data.get("text") if isinstance(data.get("text"), dict) else {}
        n = int(t.get("n", 0)) + 1 if t.get("digest") == digest else 1
        data["text"], out[0] = {"digest": digest, "n": n}, n
        return True

    update(log_dir, session, change)
    return out[0]


def take_warning(log_dir: str, session: str) -> str:
    """A loop warning saved for the next prompt (and forgotten once given)."""
    if not load(log_dir, session).get("warning"):
        return ""
    out = [""]

    def change(data: dict[str, Any]) -> bool:
        out[0] = str(data.pop("warning", "") or "")
        return True

    update(log_dir, session, change)
    return out[0]


def save_warning(log_dir: str, session: str, text: str) -> None:
    def change(data: dict[str, Any]) -> bool:
        data["warning"] = text
        return True

    update(log_dir, session, change)
