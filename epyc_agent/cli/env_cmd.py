"""`epyc-agent env` and `epyc-agent shell-init`: the shell side of a session."""

from __future__ import annotations

import os
import shlex
import sys
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


def own_executable() -> str:
    """The absolute path of the `epyc-agent` that is running, so the functions it emits work in a
    shell whose PATH lacks the venv. `python -m epyc_agent` has no script: the venv's one, else PATH."""
    argv0 = sys.argv[0] if sys.argv else ""
    if os.path.basename(argv0).startswith("epyc-agent") and os.path.isfile(argv0):
        return os.path.abspath(argv0)
    beside = os.path.join(os.path.dirname(sys.executable), "epyc-agent")
    return beside if os.path.isfile(beside) else "epyc-agent"


def shell_library(bin_path: str | None = None) -> str:
    """The library text, with EPYC_AGENT_BIN defaulting to `bin_path` (an explicit one still wins)."""
    text = resources.files("epyc_agent").joinpath("data/agent_log.sh").read_text(encoding="utf-8")
    default = shlex.quote(bin_path or own_executable())
    return text.replace(
        ': "${EPYC_AGENT_BIN:=epyc-agent}"', f'[ -n "${{EPYC_AGENT_BIN:-}}" ] || EPYC_AGENT_BIN={default}', 1
    )


@click.command("shell-init")
def shell_init() -> int:
    """Print the shell library defining the old agent_* functions.

    Use: eval "$(epyc-agent shell-init)"
    """
    click.echo(shell_library(), nl=False)
    return 0
