"""`epyc-agent storage ...`: the storage guard from the command line."""

from __future__ import annotations

import click

from ..storage import guard_for
from . import obj
from .output import echo, emit_json, status, table


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
