"""`epyc-agent config show`: the resolved configuration and where each value came from."""

from __future__ import annotations

import click

from ..output import echo, emit_json, table
from . import obj


@click.group()
def config() -> None:
    """Inspect the configuration."""


@config.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def config_show(ctx: click.Context, as_json: bool) -> int:
    """Print resolved values and the source of each (flag, env, file or default)."""
    cfg = obj(ctx).config
    values = cfg.as_dict()
    if as_json:
        emit_json({"config_file": cfg.config_file, "values": values, "sources": dict(cfg.sources)})
        return 0
    rows = []
    for key, v in values.items():
        if isinstance(v, dict):
            rows += [(f"{key}.{k}", sv, cfg.sources.get(f"{key}.{k}", "")) for k, sv in v.items()]
        else:
            shown = ", ".join(v) if isinstance(v, list) else v
            rows.append((key, shown, cfg.sources.get(key, "")))
    echo(f"config file: {cfg.config_file or '(none)'}")
    echo(table(rows, ["key", "value", "source"]))
    return 0
