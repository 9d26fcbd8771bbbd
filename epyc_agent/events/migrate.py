"""`log upgrade`: rewrite the old toolkit's shards as v1 lines, keeping the original as `<shard>.orig`.

The analyzers read the old formats as they are (analyze/oldformat.py); upgrading a frozen
shard once makes every later read take the v1 path. Each line that the careful reader reads
as an old-format event becomes the v1 line of that same event (its time as the UTC key,
`v` 1); a line whose v1 form would not read back as the same event (a field v1 has no
place for, a field v1 would truncate), a corrupt line and a line that already is v1 stay
byte for byte. Nothing changes for the analyzers but the speed, the time's spelling and `v`.

A shard still being written is refused: modified in the last `idle_s` seconds, open in a
process we can see, or locked by a writer. The rewrite is atomic (temp file and rename) and
checked under the shard's lock: a shard that changed while it was read is left as it was.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from typing import Any

from ..errors import EpycAgentError
from ..fileio import write_bytes_atomic
from ..storage import is_under
from .chain import V1_END
from .reader import agent_of, parse_line, shard_files, ts_key
from .schema import BASE_FIELDS, TYPED_FIELDS, encode_event, make_event

IDLE_S = 300  # a shard written within this many seconds may still be in use
BACKUP = ".orig"
_KNOWN = frozenset((*BASE_FIELDS, *TYPED_FIELDS, "v"))


def v1_line(raw: bytes, agent: str) -> bytes | None:
    """The v1 line of an old-format line's event, or None if the line should stay as it is."""
    ev = parse_line(raw, agent)
    if ev is None or ev.get("v") != 0 or not _KNOWN.issuperset(ev):
        return None
    key = ts_key(ev["ts"])
    if key is None:
        return None
    typed = {k: ev[k] for k in TYPED_FIELDS if k in ev}
    try:
        new = make_event(
            ev["cat"], ev["msg"], session=ev["session"], agent=ev["agent"], level=ev["level"],
            details=ev["details"], ts=key, **typed,
        )  # fmt: skip
    except (TypeError, ValueError):
        return None
    line = encode_event(new)
    return line if parse_line(line, agent) == {**ev, "ts": key, "v": 1} else None


def _convert(data: bytes, agent: str) -> tuple[bytes, int, int]:
    """(new content, lines upgraded, lines that are not v1 and stay so). Lines end at `\\n` only, as the reader's do."""
    parts = data.split(b"\n")
    lines = [p + b"\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
    out, upgraded, kept = [], 0, 0
    for raw in lines:
        new = None if raw.endswith(V1_END) or not raw.strip() else v1_line(raw, agent)
        if new is None:
            out.append(raw)
            if not raw.endswith(V1_END) and raw.strip():
                ev = parse_line(raw, agent)
                kept += ev is None or ev.get("v") != 1
        else:
            out.append(new)
            upgraded += 1
    return b"".join(out), upgraded, kept


def _open_elsewhere(path: str) -> bool:
    """Whether a process we can see (not this one) holds the file open."""
    try:
        st = os.stat(path)
        pids = [p for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid()]
    except OSError:
        return False
    for pid in pids:
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            with contextlib.suppress(OSError):
                s = os.stat(f"{fd_dir}/{fd}")
                if (s.st_ino, s.st_dev) == (st.st_ino, st.st_dev):
                    return True
    return False


def _busy(path: str, idle_s: float) -> str | None:
    """Why the shard may still be written, or None."""
    age = time.time() - os.stat(path).st_mtime
    if age < idle_s:
        return f"written {age:.0f} s ago (less than {idle_s:g} s)"
    if _open_elsewhere(path):
        return "open in another process"
    return None


def upgrade_shard(path: str, idle_s: float = IDLE_S, dry_run: bool = False) -> dict[str, Any]:
    """Upgrade one shard; the result says what was (or would be) done, or why it was refused."""
    row: dict[str, Any] = {"shard": path, "status": "", "lines": 0, "upgraded": 0, "kept": 0, "backup": None}
    with open(path, "rb") as f:
        data = f.read()
    new, row["upgraded"], row["kept"] = _convert(data, agent_of(path))
    row["lines"] = data.count(b"\n") + (not data.endswith(b"\n") and bool(data))
    backup = path + BACKUP
    why = _busy(path, idle_s) if row["upgraded"] else None
    if not row["upgraded"]:
        row["status"] = "v1"
    elif why is not None:
        row.update(status="refused", reason=why)
    elif os.path.lexists(backup):
        row.update(status="refused", reason=f"{backup} exists (move it away to upgrade again)")
    elif dry_run:
        row.update(status="would upgrade", backup=backup)
    elif (why := _replace(path, data, new, backup)) is not None:
        row.update(status="refused", reason=why)
    else:
        row.update(status="upgraded", backup=backup)
    return row


def _replace(path: str, old: bytes, new: bytes, backup: str) -> str | None:
    """Under the writer lock: unchanged since read? Then keep the original as the backup and swap
    in the new content. Returns why it did not, or None."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a writer holds it for microseconds
        except BlockingIOError:
            return "locked by a writer"
        st = os.fstat(fd)
        if st.st_size != len(old) or os.pread(fd, len(old), 0) != old:
            return "changed while it was read"
        os.link(path, backup)
        try:
            write_bytes_atomic(path, new)
            os.chmod(path, st.st_mode & 0o7777)
        except BaseException:
            os.unlink(backup)
            raise
        return None
    finally:
        os.close(fd)


def _shipped(log_dir: str) -> set[str]:
    """Shard names `log ship` has a checkpoint for (`.state/ship/<destination>/<shard>.json`)."""
    base = os.path.join(log_dir, ".state", "ship")
    try:
        dests = os.listdir(base)
    except OSError:
        return set()
    out: set[str] = set()
    for d in dests:
        try:
            out.update(n.removesuffix(".json") for n in os.listdir(os.path.join(base, d)) if n.endswith(".json"))
        except OSError:
            continue
    return out


def upgrade(
    log_dir: str, shards: list[str] | None = None, idle_s: float = IDLE_S, dry_run: bool = False
) -> dict[str, Any]:
    """Upgrade every shard of `log_dir` (or the given ones)."""
    paths = shards or shard_files(log_dir)
    for p in paths:
        if not os.path.isfile(p) or not is_under(os.path.realpath(p), os.path.realpath(log_dir)):
            raise EpycAgentError(
                f"no shard {p} in the log folder {log_dir}",
                hint="name shards in the log folder, or none for all of them",
            )
    shipped = _shipped(log_dir)
    rows = [
        {
            "shard": p,
            "status": "refused",
            "reason": "already shipped to a fleet store: its rewritten lines would be new rows",
        }
        if os.path.basename(p) in shipped
        else upgrade_shard(p, idle_s, dry_run)
        for p in paths
    ]
    counts = {s: sum(r["status"] == s for r in rows) for s in ("upgraded", "would upgrade", "refused", "v1")}
    return {"log_dir": log_dir, "shards": rows, "counts": counts, "dry_run": dry_run}
