"""`epyc-agent log ship --to http://HOST:8123[/DB] [--host NAME] [--follow] [--json]`."""

from __future__ import annotations

import sys
from typing import Any

import click

from . import obj

URL_ENV = "EPYC_AGENT_FLEET_URL"


@click.command("ship")
@click.option(
    "--to", "url", envvar=URL_ENV, required=True, metavar="URL", help=f"http://HOST:8123[/DB] (else ${URL_ENV})."
)
@click.option("--host", metavar="NAME", help="Host name the events are stored under (default: this machine's).")
@click.option(
    "-f", "--follow", is_flag=True, help="Keep shipping as the shards grow (SIGTERM or Ctrl-C stops it cleanly)."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (with --follow: one line per round).")
@click.pass_context
def ship(ctx: click.Context, url: str, host: str | None, follow: bool, as_json: bool) -> int:
    """Send the audit log's new events to ClickHouse (a checkpoint per shard; never twice, never lost)."""
    from ..fleet.clickhouse import Target
    from ..fleet.ship import Shipper, default_host

    shipper = Shipper(obj(ctx).config.log_dir, Target(url), host or default_host())
    try:
        shipper.prepare()
        if not follow:
            _show(shipper.ship().as_dict(shipper), as_json)
            return 0
        _stop_on_signals(shipper)
        click.echo(
            f"epyc-agent: shipping {shipper.log_dir} to {shipper.target} as {shipper.host} (Ctrl-C to stop)", err=True
        )
        try:
            shipper.follow(lambda r: _show(r.as_dict(shipper), as_json, line=True))
        except KeyboardInterrupt:
            pass
    finally:
        shipper.close()
    return 0


def _stop_on_signals(shipper: Any) -> None:
    """SIGTERM ends --follow after the batch in flight (its rows inserted, its checkpoint written)."""
    import signal

    signal.signal(signal.SIGTERM, lambda *_: shipper.stop.set())


def _show(data: dict[str, Any], as_json: bool, line: bool = False) -> None:
    for note in data["notes"]:
        click.echo(f"epyc-agent: warning: {note}", err=True)
    if as_json:
        import orjson

        opt = 0 if line else orjson.OPT_INDENT_2
        sys.stdout.buffer.write(orjson.dumps(data, option=opt) + b"\n")
        sys.stdout.flush()
        return
    rate = f", {data['events_per_s']:,} events/s" if data["events_per_s"] and data["events"] else ""
    click.echo(
        f"shipped {data['events']:,} events ({data['lines']:,} lines, {data['corrupt']:,} corrupt) "
        f"from {len(data['shards'])} shard(s) to {data['table']} at {data['to']} as {data['host']} "
        f"in {data['seconds']:.1f} s{rate}"
    )
