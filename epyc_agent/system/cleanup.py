"""Storage cleanup: old files in the root's tmp and cache folders, nothing else.

Safety rules, in order:
- a folder is cleaned only if it resolves (symlinks followed) to a place inside
  the storage root: a `tmp_dir` configured or symlinked outside is refused;
- the walk never follows symlinks: a link is a file of its own and removing it
  never touches its target;
- every entry's real parent folder is re-checked against the cleaned folder
  before deletion;
- dry run by default; `apply` deletes and logs one FILE_MODIFY (action=delete)
  per file.
"""

from __future__ import annotations

import os
import re
import stat
import time
from typing import TYPE_CHECKING, Any

from ..errors import EpycAgentError
from ..storage import guard_for, is_under

if TYPE_CHECKING:
    from ..config import Config

_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_age(text: str) -> float:
    """'30m', '2h', '7d', '1w', '45s' -> seconds."""
    m = _AGE.match(text or "")
    if not m:
        raise EpycAgentError(f"bad age {text!r}", hint="use a number and a unit: 45s, 30m, 2h, 7d, 1w")
    return float(m.group(1)) * _UNIT_S[m.group(2).lower()]


def cleanable_dirs(cfg: Config) -> list[tuple[str, str]]:
    """(label, resolved folder) for tmp and cache; refuses one that lies outside the root."""
    guard = guard_for(cfg)
    out = []
    for label, d in (("tmp", cfg.tmp_dir), ("cache", cfg.cache_dir)):
        resolved = os.path.realpath(d)
        if not is_under(resolved, guard.root_resolved) or resolved == guard.root_resolved:
            raise EpycAgentError(
                f"{label} folder {d} resolves to {resolved}, not inside the storage root "
                f"{guard.root_resolved}; refusing to clean it",
                hint=f"set {label}_dir under the root in the config",
            )
        out.append((label, resolved))
    return out


def find_old(base: str, cutoff: float) -> list[dict[str, Any]]:
    """Files and symlinks under `base` last modified before `cutoff` (links not followed)."""
    found = []
    if not os.path.isdir(base):
        return found
    for dirpath, dirnames, filenames in os.walk(base, followlinks=False):
        # a symlinked folder shows up in dirnames: treat it as a link, never descend
        names = filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        for name in names:
            path = os.path.join(dirpath, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
                continue
            if st.st_mtime < cutoff:
                found.append(
                    {
                        "path": path,
                        "bytes": st.st_size if stat.S_ISREG(st.st_mode) else 0,
                        "mtime": st.st_mtime,
                        "link": stat.S_ISLNK(st.st_mode),
                    }
                )
    return found


def cleanup(
    cfg: Config, older_than: str = "7d", apply: bool = False, log: Any = None, now: float | None = None
) -> dict[str, Any]:
    """Plan (or, with `apply`, perform) the cleanup; returns files, bytes and errors."""
    age_s = parse_age(older_than)
    cutoff = (time.time() if now is None else now) - age_s
    files: list[dict[str, Any]] = []
    errors: list[str] = []
    freed = 0
    for label, base in cleanable_dirs(cfg):
        for f in find_old(base, cutoff):
            f["area"] = label
            # the real folder holding the entry (the entry itself is not followed)
            parent = os.path.realpath(os.path.dirname(f["path"]))
            if not is_under(parent, base):
                errors.append(f"{f['path']}: parent resolves outside {base}; skipped")
                continue
            files.append(f)
            if not apply:
                continue
            try:
                os.unlink(f["path"])
            except OSError as e:
                errors.append(f"{f['path']}: {e.strerror}")
                continue
            f["deleted"] = True
            freed += f["bytes"]
            if log is not None:
                log.file_modify(
                    f["path"], "delete", f"storage cleanup: {label} file older than {older_than} ({f['bytes']} bytes)"
                )
    total = sum(f["bytes"] for f in files)
    result = {
        "older_than": older_than,
        "applied": apply,
        "files": files,
        "count": len(files),
        "bytes": total,
        "bytes_freed": freed,
        "errors": errors,
    }
    if log is not None:
        verb = "freed" if apply else "would free"
        log.observe(
            "storage cleanup",
            f"{len(files)} files, {verb} {freed if apply else total} bytes",
            data={k: v for k, v in result.items() if k != "files"},
        )
    return result
