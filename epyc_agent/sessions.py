"""Session lifecycle: start, end, status, list.

Each session is a file `<log_dir>/sessions/<id>.json`. A process finds its
session through `$EPYC_AGENT_SESSION` (what `session start` tells the shell to
export) or, failing that, the per-agent pointer `current-<agent>.json`. Ending a
session removes only its own agent's pointer, and only if it still points at
that session: concurrent agents never end each other's sessions (the old
toolkit's shared `.current_session` file did).

Lean on purpose: the hook starts sessions from a new process per event.
"""

from __future__ import annotations

import json
import os
import time

from .errors import SessionError, StorageError
from .events.schema import DEFAULT_AGENT, now_ts, shard_name
from .events.writer import AuditLog
from .fileio import write_json_atomic

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from .config import Config

SESSION_ENV = "EPYC_AGENT_SESSION"
AGENT_ENVS = ("EPYC_AGENT_ID", "AGENT_ID")  # the old toolkit's shard variable still works
LAYOUT = ("models", "benchmarks/runs", "research", "lmstudio/models", "hf")


# --- ids and locations ------------------------------------------------------------


def agent_id(explicit: str | None = None, env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    if explicit:
        return explicit
    return next((env[n] for n in AGENT_ENVS if env.get(n)), DEFAULT_AGENT)


def new_session_id() -> str:
    """`ses_YYYYMMDD_HHMMSS_<6 hex>`: sortable, unique across concurrent agents."""
    return time.strftime("ses_%Y%m%d_%H%M%S_", time.gmtime()) + os.urandom(3).hex()


def sessions_dir(cfg: Config) -> str:
    return os.path.join(cfg.log_dir, "sessions")


def _safe(name: str) -> str:
    return shard_name(name)[len("agent_audit-") : -len(".log")]


def session_file(cfg: Config, session_id: str) -> str:
    return os.path.join(sessions_dir(cfg), f"{_safe(session_id)}.json")


def pointer_file(cfg: Config, agent: str) -> str:
    return os.path.join(sessions_dir(cfg), f"current-{_safe(agent)}.json")


def read_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValueError) as e:
        raise SessionError(
            f"{path}: unreadable session state: {e}",
            hint="delete the file; the audit log still has the session's events",
        ) from None


def load_session(cfg: Config, session_id: str) -> dict[str, Any] | None:
    return read_json(session_file(cfg, session_id))


def current_session_id(cfg: Config, agent: str | None = None, env: Mapping[str, str] | None = None) -> str | None:
    """This process's session: `$EPYC_AGENT_SESSION`, else the agent's pointer."""
    env = os.environ if env is None else env
    if env.get(SESSION_ENV):
        return env[SESSION_ENV]
    ptr = read_json(pointer_file(cfg, agent_id(agent, env)))
    return ptr.get("session") if isinstance(ptr, dict) else None


# --- checks -------------------------------------------------------------------------


def disk_usage(path: str) -> dict[str, float]:
    st = os.statvfs(path)
    total = st.f_blocks * st.f_frsize
    free = st.f_bavail * st.f_frsize
    used_pct = 100.0 * (total - free) / total if total else 0.0
    return {"total_gb": round(total / 1e9, 2), "free_gb": round(free / 1e9, 2), "used_pct": round(used_pct, 1)}


def check_root(cfg: Config, init: bool = False) -> dict[str, Any]:
    """Refuse a missing, non-directory, unwritable or critically full root; nothing is
    created outside it (with `init`, the root and its layout are created)."""
    root = cfg.root
    if not os.path.exists(root):
        if not init:
            raise StorageError(
                f"storage root {root} does not exist",
                hint="create it, set EPYC_AGENT_ROOT, or run `epyc-agent session start --init`",
            )
        try:
            os.makedirs(root, exist_ok=True)
        except OSError as e:
            raise StorageError(
                f"cannot create storage root {root}: {e.strerror}", hint="choose a root you can write (EPYC_AGENT_ROOT)"
            ) from None
    if not os.path.isdir(root):
        raise StorageError(f"storage root {root} is not a directory", hint="point EPYC_AGENT_ROOT at a folder")
    if not _can_write(root):
        raise StorageError(f"storage root {root} is not writable", hint="fix its permissions or choose another root")
    usage = disk_usage(root)
    limits = cfg.disk
    if usage["used_pct"] >= limits["critical_used_pct"] or usage["free_gb"] < limits["min_free_gb"]:
        raise StorageError(
            f"storage root {root} is critically full ({usage['used_pct']}% used, {usage['free_gb']} GB free)",
            hint="free space (epyc-agent storage cleanup) or raise disk thresholds in the config",
        )
    usage["warn"] = usage["used_pct"] >= limits["warn_used_pct"]
    if init:
        for sub in LAYOUT:
            os.makedirs(os.path.join(root, sub), exist_ok=True)
    return usage


def _can_write(folder: str) -> bool:
    """Really try (os.access says yes to root on read-only mounts and pseudo file systems)."""
    probe = os.path.join(folder, f".epyc-agent-probe-{os.getpid()}-{os.urandom(3).hex()}")
    try:
        os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        os.unlink(probe)
    except OSError:
        return False
    return True


def memory() -> dict[str, float]:
    """Total and available RAM in GB from /proc/meminfo (psutil costs more to import)."""
    info: dict[str, float] = {}
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("MemTotal", "MemAvailable"):
                    info[k] = int(v.split()[0]) * 1024 / 1e9
    except OSError:
        return {}
    return {
        "ram_total_gb": round(info.get("MemTotal", 0), 1),
        "ram_available_gb": round(info.get("MemAvailable", 0), 1),
    }


# --- lifecycle ------------------------------------------------------------------------


def start_session(
    cfg: Config,
    purpose: str = "",
    agent: str | None = None,
    init: bool = False,
    session_id: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Check the root, set up the environment folders, register and log the session.

    With an existing `session_id` (a resumed Claude session) the record is reused
    and a new SESSION_START notes the resume.
    """
    from .environment import create_env_dirs

    usage = check_root(cfg, init)
    os.makedirs(cfg.log_dir, exist_ok=True)
    create_env_dirs(cfg)
    agent = agent_id(agent)
    sid = session_id or new_session_id()
    existing = load_session(cfg, sid) if session_id else None
    record: dict[str, Any] = existing or {
        "id": sid,
        "agent": agent,
        "purpose": purpose,
        "started": now_ts(),
        "ended": None,
        "status": "open",
        "pid": os.getppid(),
        "host": os.uname().nodename,
        "cwd": os.getcwd(),
    }
    if existing:
        record.update(status="open", ended=None, resumed=now_ts())
    record.update(extra or {})
    write_json_atomic(session_file(cfg, sid), record)
    write_json_atomic(pointer_file(cfg, agent), {"session": sid, "since": now_ts()})
    status = {
        "session": sid,
        "agent": agent,
        "root": cfg.root,
        "log_dir": cfg.log_dir,
        "resumed": bool(existing),
        **usage,
        **memory(),
    }
    with AuditLog(cfg.log_dir, sid, agent) as log:
        log.event(
            "SESSION_START",
            purpose or ("resumed" if existing else "session started"),
            details=f"new_session={sid}",
            data={k: v for k, v in status.items() if k != "session"},
        )
        if usage.get("warn"):
            log.warn(f"storage root {usage['used_pct']}% used", f"{usage['free_gb']} GB free")
    return status


def end_session(cfg: Config, session_id: str, summary: str = "", agent: str | None = None) -> dict[str, Any]:
    record = load_session(cfg, session_id)
    if record is None:
        raise SessionError(f"no session {session_id} in {sessions_dir(cfg)}", hint="see `epyc-agent session list`")
    agent = agent or record.get("agent") or agent_id()
    record.update(status="ended", ended=now_ts(), summary=summary)
    write_json_atomic(session_file(cfg, session_id), record)
    ptr_path = pointer_file(cfg, agent)
    ptr = read_json(ptr_path)
    if isinstance(ptr, dict) and ptr.get("session") == session_id:
        try:
            os.unlink(ptr_path)
        except FileNotFoundError:
            pass
    with AuditLog(cfg.log_dir, session_id, agent) as log:
        log.event("SESSION_END", summary or "session ended", details=summary)
    return record


def list_sessions(cfg: Config) -> list[dict[str, Any]]:
    """Every registered session, oldest first; unreadable records are skipped and named."""
    out = []
    d = sessions_dir(cfg)
    try:
        names = sorted(os.listdir(d))
    except FileNotFoundError:
        return []
    for name in names:
        if not name.endswith(".json") or name.startswith("current-"):
            continue
        try:
            rec = read_json(os.path.join(d, name))
        except SessionError:
            rec = {"id": name[:-5], "status": "unreadable"}
        if isinstance(rec, dict):
            out.append(rec)
    return sorted(out, key=lambda r: str(r.get("started") or ""))
