"""`epyc-agent log upgrade`: rewrite the old toolkit's shards as v1 (the original kept as `<shard>.orig`)."""

from __future__ import annotations

import os
from typing import Any

import click

from ..errors import EXIT_OK, EXIT_USAGE
from ..output import echo, emit_json, table, warn
from . import obj


@click.command("upgrade")
@click.argument("shards", nargs=-1, type=click.Path(dir_okay=False), metavar="[SHARD]...")
@click.option(
    "--idle",
    "idle_s",
    type=click.FloatRange(min=0),
    default=300,
    show_default=True,
    help="Refuse a shard written in the last S seconds.",
)
@click.option("--dry-run", is_flag=True, help="Say what would be upgraded; write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def upgrade(ctx: click.Context, shards: tuple[str, ...], idle_s: float, dry_run: bool, as_json: bool) -> int:
    """Rewrite every shard's old-format lines (or the SHARDs') as v1, keeping each original as
    <shard>.orig; refuses a shard still being written (exit 2). The analyzers' answers stay the same."""
    from ..events.migrate import upgrade as upgrade_log

    res = upgrade_log(obj(ctx).config.log_dir, list(shards), idle_s, dry_run)
    if as_json:
        emit_json(res)
    else:
        echo(render(res))
    for r in res["shards"]:
        if r["status"] == "refused":
            warn(f"refused {r['shard']}: {r['reason']}")
    return EXIT_USAGE if res["counts"]["refused"] else EXIT_OK


def render(res: dict[str, Any]) -> str:
    """One row per shard: what it was or would be, its lines, how many were upgraded and kept."""
    if not res["shards"]:
        return f"no shards in {res['log_dir']}"
    rows = [
        [os.path.basename(r["shard"]), r["status"], r["lines"], r["upgraded"], r["kept"], r.get("reason", "")]
        for r in res["shards"]
    ]
    c = res["counts"]
    done = f"{c['would upgrade']} would be upgraded" if res["dry_run"] else f"{c['upgraded']} upgraded"
    return "\n".join(
        [
            table(rows, ["shard", "status", "lines", "upgraded", "kept", "reason"]),
            f"{len(rows)} shard(s): {done}, {c['v1']} already v1, {c['refused']} refused",
        ]
    )
