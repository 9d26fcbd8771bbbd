"""`epyc-agent env` and `epyc-agent shell-init`: the shell side of a session."""

from __future__ import annotations

from importlib import resources

import click

from ..environment import SHELLS, create_env_dirs, env_vars, render
from . import obj


@click.command()
@click.option(
    "--shell",
    type=click.Choice(SHELLS),
    default="bash",
    show_default=True,
    help="Output syntax: eval it (bash, zsh), source it (fish) or parse it (json).",
)
@click.pass_context
def env(ctx: click.Context, shell: str) -> int:
    """Print exports that keep every cache and temp dir under the root; create those folders.

    Use: eval "$(epyc-agent env)"
    """
    cfg = obj(ctx).config
    create_env_dirs(cfg)
    click.echo(render(env_vars(cfg), shell))
    return 0


def shell_library() -> str:
    return resources.files("epyc_agent").joinpath("data/agent_log.sh").read_text(encoding="utf-8")


@click.command("shell-init")
def shell_init() -> int:
    """Print the shell library defining the old agent_* functions.

    Use: eval "$(epyc-agent shell-init)"
    """
    click.echo(shell_library(), nl=False)
    return 0
