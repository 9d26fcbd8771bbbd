"""Disk monitor: usage of the storage root and of `/` against the config's `disk`
thresholds (used % and free GB, GB = 10^9 bytes).

A level change is logged (WARN event at warn, ERROR at critical, OBSERVE on
recovery), not every sample: a monitor that runs for days must not fill the log
it protects. `stop` is an Event the caller sets (the CLI sets it on SIGTERM).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .probe import GB

if TYPE_CHECKING:
    import threading
    from collections.abc import Callable

    from ..config import Config

LEVELS = ("OK", "WARN", "CRITICAL")


def sample(cfg: Config) -> list[dict[str, Any]]:
    """One reading per distinct mount point among the root and `/` (psutil)."""
    import psutil

    out, seen = [], set()
    for label, path in (("root", cfg.root), ("/", "/")):
        try:
            u = psutil.disk_usage(path)
            dev = os.stat(path).st_dev
        except OSError as e:
            out.append({"label": label, "path": path, "level": "UNKNOWN", "error": e.strerror or str(e)})
            continue
        if dev in seen:  # `/` on the root's filesystem: one reading, both names
            out[-1]["label"] = f"{out[-1]['label']} (and /)"
            continue
        seen.add(dev)
        free_gb = u.free / GB
        lim = cfg.disk
        if u.percent >= lim["critical_used_pct"] or free_gb < lim["min_free_gb"]:
            level = "CRITICAL"
        elif u.percent >= lim["warn_used_pct"]:
            level = "WARN"
        else:
            level = "OK"
        out.append(
            {
                "label": label,
                "path": path,
                "level": level,
                "used_pct": round(u.percent, 1),
                "free_gb": round(free_gb, 2),
                "total_gb": round(u.total / GB, 2),
            }
        )
    return out


def describe(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"{r['label']} {r['path']}: unreadable ({r['error']})"
    return f"{r['label']} {r['path']}: {r['used_pct']}% used, {r['free_gb']} GB free of {r['total_gb']} GB"


def log_changes(log: Any, readings: list[dict[str, Any]], last: dict[str, str]) -> None:
    """Log each path whose level differs from `last` (updated in place)."""
    for r in readings:
        level, prev = r["level"], last.get(r["path"])
        if level == prev:
            continue
        last[r["path"]] = level
        text = describe(r)
        if level == "CRITICAL":
            log.error(f"disk critical: {text}", "free space: epyc-agent storage cleanup --apply")
        elif level == "WARN":
            log.warn(f"disk nearly full: {text}", "epyc-agent storage cleanup")
        elif prev is not None or level == "UNKNOWN":
            log.observe(f"disk {level.lower()}", text, data=r)


def monitor(
    cfg: Config,
    log: Any,
    interval: float,
    once: bool,
    stop: threading.Event,
    report: Callable[[list[dict[str, Any]]], None],
) -> int:
    """Sample until `stop` is set (or once); returns the number of samples taken."""
    last: dict[str, str] = {}
    n = 0
    while True:
        readings = sample(cfg)
        n += 1
        report(readings)
        if log is not None:
            log_changes(log, readings, last)
        if once or stop.wait(interval):
            return n
