"""`epyc-agent log verify`: check every shard's hash chain; exit 1 if one was tampered with."""

from __future__ import annotations

import os
from typing import Any

import click

from ..errors import EXIT_FINDINGS, EXIT_OK
from ..output import echo, emit_json, paint, table
from . import obj

_COLORS = {"INTACT": "green", "UNCHAINED": "cyan", "TAMPERED": "red", "EMPTY": "blue"}


@click.command("verify")
@click.argument("shards", nargs=-1, type=click.Path(dir_okay=False), metavar="[SHARD]...")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def verify(ctx: click.Context, shards: tuple[str, ...], as_json: bool) -> int:
    """Check the hash chain of every shard (or the SHARDs given); exit 1 at an edited,
    deleted, inserted or moved line. Shards written before the chain read as unchained."""
    from ..events.verify import verify as verify_log

    res = verify_log(obj(ctx).config.log_dir, list(shards))
    if as_json:
        emit_json(res)
    else:
        echo(render(res))
    return EXIT_FINDINGS if res["counts"]["tampered"] else EXIT_OK


def render(res: dict[str, Any]) -> str:
    """One row per shard, the first broken line in its detail, then the notes."""
    if not res["shards"]:
        return f"no shards in {res['log_dir']}"
    rows, notes = [], []
    for v in res["shards"]:
        name = os.path.basename(v["shard"])
        p = v["problem"]
        detail = f"line {p['line']}: {p['kind']}: {p['message']}" if p else ""
        if not p and v["status"] == "unchained":
            detail = "no hashes (written before the chain, or without the key)"
        rows.append([name, v["status"].upper(), v["lines"], v["chained"], detail])
        notes += [f"{name}: {n}" for n in v["notes"]]
    out = [table(rows, ["shard", "status", "lines", "chained", "detail"], colorize={1: _paint})]
    out += ["", "notes:", *(f"  {n}" for n in notes)] if notes else []
    c = res["counts"]
    out.append(
        f"{len(res['shards'])} shard(s): {c['intact']} intact, {c['unchained']} unchained, {c['tampered']} tampered"
    )
    return "\n".join(out)


def _paint(cell: str) -> str:
    return paint(cell, _COLORS.get(cell.strip()), bold=True)
