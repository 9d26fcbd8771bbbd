"""`epyc-agent storage ...`: the storage guard from the command line."""

from __future__ import annotations

import click

from ..output import echo, emit_json, status, table
from ..storage import guard_for
from . import obj


@click.group()
def storage() -> None:
    """Storage root: check paths, monitor disk, clean up."""


@storage.command("check")
@click.argument("paths", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def storage_check(ctx: click.Context, paths: tuple[str, ...], as_json: bool) -> int:
    """Exit 0 if every PATH may be written (under the root or allowlisted), else 1."""
    cfg = obj(ctx).config
    guard = guard_for(cfg)
    verdicts = [guard.check(p) for p in paths]
    ok = all(v.allowed for v in verdicts)
    if as_json:
        emit_json({"root": guard.root_resolved, "ok": ok, "paths": [v.as_dict() for v in verdicts]})
    else:
        rows = [("ALLOWED" if v.allowed else "REFUSED", v.path, v.reason) for v in verdicts]
        echo(table(rows, colorize={0: status}))
    return 0 if ok else 1


@storage.command("monitor")
@click.option(
    "--interval", type=click.FloatRange(min=0.1), default=60.0, show_default=True, help="Seconds between samples."
)
@click.option("--once", is_flag=True, help="Take one sample and exit.")
@click.pass_context
def storage_monitor(ctx: click.Context, interval: float, once: bool) -> int:
    """Watch disk usage of the root and of / against the config's disk thresholds.

    Level changes are logged (WARN at warn, ERROR at critical). SIGTERM or Ctrl-C
    stops it cleanly (exit 0).
    """
    import signal
    import threading

    from ..roles import role_log
    from ..system.monitor import describe, monitor

    cfg = obj(ctx).config
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    def report(readings: list[dict]) -> None:
        rows = [(r["level"], describe(r)) for r in readings]
        echo(table(rows, colorize={0: status}))

    log = role_log(cfg, "sysadmin")
    try:
        monitor(cfg, log, interval, once, stop, report)
    finally:
        if log is not None:
            log.close()
    return 0


@storage.command("cleanup")
@click.option("--older-than", default="7d", show_default=True, help="Age: 45s, 30m, 2h, 7d, 1w.")
@click.option("--apply", is_flag=True, help="Delete (default: dry run, list only).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def storage_cleanup(ctx: click.Context, older_than: str, apply: bool, as_json: bool) -> int:
    """Delete old files inside the root's tmp and cache folders only (dry run by default).

    Symlinks are removed as links, never followed; each deletion is logged.
    """
    from ..roles import role_log
    from ..system.cleanup import cleanup

    cfg = obj(ctx).config
    log = role_log(cfg, "sysadmin")
    try:
        res = cleanup(cfg, older_than, apply, log)
    finally:
        if log is not None:
            log.close()
    if as_json:
        emit_json(res)
        return 1 if res["errors"] else 0
    for f in res["files"]:
        echo(f"{'deleted' if f.get('deleted') else 'would delete'}  {f['bytes']:>12}  {f['path']}")
    for err in res["errors"]:
        echo(f"error  {err}")
    if apply:
        deleted = sum(1 for f in res["files"] if f.get("deleted"))
        echo(f"{deleted} files deleted, {res['bytes_freed']} bytes freed")
    else:
        echo(
            f"dry run: {res['count']} files older than {older_than}, {res['bytes']} bytes; rerun with --apply to delete"
        )
    return 1 if res["errors"] else 0
