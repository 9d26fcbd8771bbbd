"""`epyc-agent log <verb>`: the old toolkit's functions, plus analyze, tail and verify.

The verbs normally run on the click-free fast path (`epyc_agent.quicklog`); these
click commands serve `--help`, `--agent`/`--session` and the same arguments.
"""

from __future__ import annotations

import click

from ..events.verbs import VERBS
from . import LazyGroup, obj

LAZY = {
    "analyze": "epyc_agent.cli.analyze_cmd:analyze",
    "tail": "epyc_agent.cli.analyze_cmd:tail",
    "ship": "epyc_agent.cli.ship_cmd:ship",
    "verify": "epyc_agent.cli.verify_cmd:verify",
    "upgrade": "epyc_agent.cli.upgrade_cmd:upgrade",
}


@click.group(cls=LazyGroup, lazy=LAZY)
def log() -> None:
    """Write audit-log events (the old agent_* functions) and read the log."""


def _make_verb(name: str) -> click.Command:
    verb = VERBS[name]

    @click.pass_context
    def callback(ctx: click.Context, args: tuple[str, ...], agent: str | None, session_id: str | None) -> int:
        from ..quicklog import log_verb

        o = obj(ctx)
        try:
            log_verb(name, list(args), agent=agent, session=session_id, config_file=o.config_file, root=o.root)
        except ValueError as e:
            raise click.UsageError(str(e)) from None
        return 0

    params = [
        click.Option(["--agent"], help="Agent id (else $EPYC_AGENT_ID, $AGENT_ID, 'main')."),
        click.Option(["--session", "session_id"], help="Session id (else the current one)."),
        click.Argument(["args"], nargs=-1, type=click.UNPROCESSED),
    ]
    return click.Command(
        name,
        callback=callback,
        params=params,
        help=f"Usage: {verb.usage()[len('epyc-agent log ') :]}",
        context_settings={"ignore_unknown_options": True},
    )


for _name in VERBS:
    log.add_command(_make_verb(_name))


@log.command("serve", hidden=True, context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def log_serve(args: tuple[str, ...]) -> int:
    """Internal: the shell library's per-shell helper (OWNER_PID FIFO_DIR); see epyc_agent.logserve."""
    from ..logserve import main

    return main(list(args))
