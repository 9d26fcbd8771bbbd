"""`epyc-agent log analyze` (the old agent_log_analyze.sh modes) and `epyc-agent log tail`.

Thin adapters: parse options into a `Query`, call one library function, print
its data as JSON (`--json`) or through `analyze.render`.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from ..errors import EXIT_FINDINGS, EpycAgentError, SessionError
from ..output import print_json
from ..quickanalyze import DEFAULT_LIMIT
from . import obj

MODES = ("summary", "loops", "errors", "sessions", "commands", "files", "rollbacks")


def _filters(f: Any) -> Any:
    for opt in reversed(
        [
            click.option("--since", metavar="TIME", help="Only events at/after TIME (ISO, or 30m, 2h, 3d, 1w ago)."),
            click.option("--until", metavar="TIME", help="Only events at/before TIME (same forms)."),
            click.option("--agent", metavar="ID", help="Only this agent."),
            click.option("--level", metavar="LEVELS", help="Only these levels: INFO, WARN, ERROR (comma-separated)."),
            click.option("--json", "as_json", is_flag=True, help="Print JSON."),
        ]
    ):
        f = opt(f)
    return f


def _query(since: str | None, until: str | None, agent: str | None, session: str | None, level: str | None) -> Any:
    from ..analyze.filters import Query, parse_levels, parse_time

    return Query(
        since=parse_time(since) if since else None,
        until=parse_time(until) if until else None,
        agent=agent,
        session=session,
        levels=parse_levels(level) if level else None,
    )


@click.command("analyze")
@click.option("--summary", is_flag=True, help="Totals by category, level, agent; sessions; corrupt lines (default).")
@click.option("--loops", is_flag=True, help="Loops per session: retry storms, repeats, alternation, bursts, churn.")
@click.option("--errors", is_flag=True, help="Errors, warnings and failed commands.")
@click.option("--sessions", is_flag=True, help="One row per session.")
@click.option(
    "--session",
    "session_id",
    metavar="ID",
    help="Alone: every event of session ID ('' = the current one). With a mode: a filter.",
)
@click.option("--timeline", type=click.IntRange(min=1), metavar="N", help="The last N events with the gaps between.")
@click.option("--commands", is_flag=True, help="Commands run, grouped, most frequent first.")
@click.option("--files", is_flag=True, help="Files modified, most often first.")
@click.option("--rollbacks", is_flag=True, help="ROLLBACK events, newest first per session.")
@click.option("--script", is_flag=True, help="With --rollbacks: print a bash script undoing them (runs nothing).")
@click.option("--tail", type=click.IntRange(min=1), metavar="N", help="The last N events.")
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=DEFAULT_LIMIT,
    show_default=True,
    help="Rows for --commands/--files, events for --errors (0 = all).",
)
@click.option("--retry-storm", type=click.IntRange(min=2), metavar="N", help="Loop threshold override.")
@click.option("--repeat", type=click.IntRange(min=2), metavar="N", help="Loop threshold override.")
@click.option("--alternation", type=click.IntRange(min=4), metavar="N", help="Loop threshold override.")
@click.option("--burst", type=click.IntRange(min=1), metavar="N", help="Loop threshold override.")
@click.option("--burst-window", type=click.FloatRange(min=1), metavar="S", help="Burst window in seconds.")
@click.option("--churn", type=click.IntRange(min=2), metavar="N", help="Loop threshold override.")
@click.option(
    "--engine",
    type=click.Choice(["local", "clickhouse"]),
    default="local",
    show_default=True,
    help="Where to answer: this log folder, or the fleet table `log ship` fills (with --url).",
)
@click.option("--url", envvar="EPYC_AGENT_FLEET_URL", metavar="URL", help="--engine clickhouse: http://HOST:8123[/DB].")
@click.option("--host", metavar="NAME", help="--engine clickhouse: only this host's events (default: the whole fleet).")
@_filters
@click.pass_context
def analyze(
    ctx: click.Context,
    session_id: str | None,
    timeline: int | None,
    tail: int | None,
    script: bool,
    limit: int,
    since: str | None,
    until: str | None,
    agent: str | None,
    level: str | None,
    as_json: bool,
    **kw: Any,
) -> int:
    """Analyze the audit log (every shard and the old formats)."""
    from ..analyze import aggregate, listing, loops, render, rollbacks

    cfg = obj(ctx).config
    chosen = [m for m in MODES if kw.get(m)] + [m for m, v in (("timeline", timeline), ("tail", tail)) if v]
    if session_id is not None and not chosen:
        chosen = ["session"]
    if len(chosen) > 1:
        raise click.UsageError(f"choose one mode, not {' and '.join('--' + m for m in chosen)}")
    mode = chosen[0] if chosen else "summary"
    if script and mode != "rollbacks":
        raise click.UsageError("--script goes with --rollbacks")
    if session_id == "" or (mode == "session" and not session_id):
        from ..sessions import current_session_id

        session_id = current_session_id(cfg, agent)
        if not session_id:
            raise SessionError("no current session", hint="pass --session ID or set EPYC_AGENT_SESSION")
    q = _query(since, until, agent, session_id, level)
    log_dir = cfg.log_dir
    rc = 0
    if kw["engine"] == "clickhouse":
        from ..fleet.sql import answer

        data = answer(kw["url"], kw["host"], mode, q, limit, _thresholds(cfg, kw) if mode == "loops" else None)
        rc = EXIT_FINDINGS if mode == "loops" and data["count"] else 0
    elif kw["host"] or kw["url"]:
        raise click.UsageError("--url and --host go with --engine clickhouse")
    elif mode == "summary":
        data = aggregate.summary(log_dir, q)
    elif mode == "sessions":
        data = aggregate.sessions(log_dir, q)
    elif mode == "commands":
        data = aggregate.commands(log_dir, q, limit)
    elif mode == "files":
        data = aggregate.files(log_dir, q, limit)
    elif mode == "errors":
        data = listing.errors(log_dir, q, limit)
    elif mode == "session":
        data = listing.session(log_dir, q)
    elif mode == "tail":
        data = listing.tail(log_dir, tail or 0, q)
    elif mode == "timeline":
        data = listing.timeline(log_dir, timeline or 0, q)
    elif mode == "loops":
        data = loops.find_loops(log_dir, q, _thresholds(cfg, kw))
        rc = EXIT_FINDINGS if data["count"] else 0
    elif script:
        from ..events.schema import now_ts

        click.echo(rollbacks.script(log_dir, q, now_ts()))
        return 0
    else:
        data = rollbacks.rollbacks(log_dir, q)
    if as_json:
        print_json(data)
    else:
        render.RENDERERS[mode](data)
    return rc


def _thresholds(cfg: Any, kw: dict[str, Any]) -> dict[str, Any]:
    from ..analyze import loops

    return loops.thresholds(
        cfg.loops,
        retry_storm=kw["retry_storm"],
        repeat=kw["repeat"],
        alternation=kw["alternation"],
        burst=kw["burst"],
        burst_window_s=kw["burst_window"],
        churn=kw["churn"],
    )


@click.command("tail")
@click.option(
    "-n", "--lines", "n", type=click.IntRange(min=0), default=20, show_default=True, help="Events to show first."
)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new events as they arrive (Ctrl-C to stop).")
@click.option("--session", "session_id", metavar="ID", help="Only this session.")
@_filters
@click.pass_context
def tail(
    ctx: click.Context,
    n: int,
    follow: bool,
    session_id: str | None,
    since: str | None,
    until: str | None,
    agent: str | None,
    level: str | None,
    as_json: bool,
) -> int:
    """The last events of all shards, merged; with --follow, new ones as they are written."""
    from ..analyze import listing, render

    cfg = obj(ctx).config
    q = _query(since, until, agent, session_id, level)

    def show(items: list[Any]) -> None:
        for it in items:
            ev = listing.render_event(it)
            if as_json:
                sys.stdout.buffer.write(_json_line(ev))
            else:
                click.echo(render.event_line(ev), color=render.use_color())
        sys.stdout.flush()

    if not follow:
        show(listing.last_events(cfg.log_dir, n, q))
        return 0
    return _follow(cfg.log_dir, q, show, lambda: show(listing.last_events(cfg.log_dir, n, q)))


def _json_line(ev: dict[str, Any]) -> bytes:
    import orjson

    return orjson.dumps(ev, default=str) + b"\n"


def _follow(log_dir: str, q: Any, show: Any, backlog: Any) -> int:
    """Run until SIGTERM/SIGINT; both end it cleanly with exit 0. The follower takes its
    positions before the backlog is printed, so no line written meanwhile is lost."""
    import signal

    from ..analyze.follow import Follower

    class _Stop(Exception):
        pass

    def stop(*_: Any) -> None:
        raise _Stop

    signal.signal(signal.SIGTERM, stop)
    follower = Follower(log_dir, q)
    try:
        backlog()
        click.echo(f"epyc-agent: following {len(follower.shards)} shard(s) in {log_dir} (Ctrl-C to stop)", err=True)
        for batch in follower.batches():
            show(batch)
    except (_Stop, KeyboardInterrupt, BrokenPipeError):
        pass
    except OSError as e:
        raise EpycAgentError(f"cannot follow {log_dir}: {e}") from None
    finally:
        follower.close()
    return 0
