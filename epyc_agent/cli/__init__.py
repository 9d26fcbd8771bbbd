"""The click CLI: a thin layer over the library. Subcommands load lazily (click's
lazy-group recipe) so `epyc-agent models scan` never imports the inference stack.

Errors are translated here, in one place: an `EpycAgentError` becomes one line
on stderr and its exit code (0 ok, 1 findings/check failed, 2 usage/refused).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import warnings
from typing import Any

import click

from ..errors import EXIT_USAGE, EpycAgentError, EpycAgentWarning, RunInterrupted

# command name -> "module:attribute"; a command whose module is absent is not offered
COMMANDS: dict[str, str] = {
    "config": "epyc_agent.cli.config_cmd:config",
    "storage": "epyc_agent.cli.storage_cmd:storage",
    "env": "epyc_agent.cli.env_cmd:env",
    "shell-init": "epyc_agent.cli.env_cmd:shell_init",
    "session": "epyc_agent.cli.session_cmd:session",
    "log": "epyc_agent.cli.log_cmd:log",
    "hook": "epyc_agent.cli.hooks_cmd:hook",
    "hooks": "epyc_agent.cli.hooks_cmd:hooks",
    "models": "epyc_agent.cli.models_cmd:models",
    "track": "epyc_agent.cli.track_cmd:track",
    "report": "epyc_agent.cli.track_cmd:report",
    "agents": "epyc_agent.cli.agents_cmd:agents",
    "system": "epyc_agent.cli.system_cmd:system",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported only when invoked (or listed in --help)."""

    def __init__(self, *args: Any, lazy: dict[str, str] | None = None, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.lazy = lazy or {}

    def _available(self) -> dict[str, str]:
        return {n: t for n, t in self.lazy.items() if importlib.util.find_spec(t.split(":")[0]) is not None}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._available()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        target = self._available().get(cmd_name)
        if target is None:
            return None
        module, attr = target.split(":")
        cmd = getattr(importlib.import_module(module), attr)
        assert isinstance(cmd, click.Command), target
        return cmd


class Ctx:
    """Global options, and the config resolved once on first use."""

    def __init__(self, config_file: str | None, root: str | None) -> None:
        self.config_file, self.root = config_file, root
        self._config: Any = None

    @property
    def config(self) -> Any:
        if self._config is None:
            from ..config import load_config

            self._config = load_config(self.config_file, self.root)
        return self._config


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_file",
    metavar="FILE",
    help="Config file (else $EPYC_AGENT_CONFIG, ./epyc-agent.yaml, ~/.config/epyc-agent/config.yaml).",
)
@click.option("--root", metavar="DIR", help="Storage root (overrides $EPYC_AGENT_ROOT and the file).")
@click.version_option(package_name="epyc-agent", prog_name="epyc-agent")
@click.pass_context
def cli(ctx: click.Context, config_file: str | None, root: str | None) -> None:
    """Agent-governed session runner with structured audit logging for llama.cpp research."""
    ctx.obj = Ctx(config_file, root)


def _show_warning(message: Any, category: type[Warning], *args: Any, **kw: Any) -> None:
    """Our warnings as one line on stderr; anyone else's as Python prints them."""
    if issubclass(category, EpycAgentWarning):
        click.echo(f"epyc-agent: warning: {message}", err=True)
    else:
        _python_show_warning(message, category, *args, **kw)


_python_show_warning = warnings.showwarning


def run(args: list[str]) -> int:
    """Run the CLI; translate errors into one line and an exit code."""
    warnings.showwarning = _show_warning
    try:
        rv = cli.main(args, prog_name="epyc-agent", standalone_mode=False)
    except (EpycAgentError, RunInterrupted) as e:
        click.echo(f"epyc-agent: {e.render()}", err=True)
        return e.exit_code
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except click.exceptions.Abort:
        click.echo("epyc-agent: aborted", err=True)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # noqa: BLE001 - the one place a bug meets the user
        if os.environ.get("EPYC_AGENT_DEBUG"):
            raise
        click.echo(
            f"epyc-agent: internal error: {type(e).__name__}: {e} "
            "(rerun with EPYC_AGENT_DEBUG=1 for the traceback, and report it)",
            err=True,
        )
        return 70
    return rv if isinstance(rv, int) else 0


def obj(ctx: click.Context) -> Ctx:
    """The root context object, from any subcommand."""
    return ctx.find_root().obj  # type: ignore[no-any-return]


__all__ = ["COMMANDS", "EXIT_USAGE", "LazyGroup", "cli", "obj", "run"]
