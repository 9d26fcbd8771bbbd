"""`epyc-agent hook` (help only: the real work is the click-free fast path) and
`epyc-agent hooks install|uninstall|doctor`."""

from __future__ import annotations

import click

from ..output import echo, emit_json, status, table
from . import obj


@click.command()
def hook() -> int:
    """Handle one Claude Code hook event: JSON payload on stdin, JSON answer on stdout.

    Register it for every event (`epyc-agent hooks install` does). It logs every
    tool call, prompt and session event to the audit log, and refuses (permissionDecision
    "deny", with the reason and what to do instead) writes outside the storage root,
    destructive Bash commands, and a command that already failed 3 times in a row.
    Always exits 0.
    """
    from ..hooks.fastpath import main

    return main()


@click.group()
def hooks() -> None:
    """Install, remove and check epyc-agent's Claude Code hooks."""


def _target(project: str | None, user: bool) -> str:
    from ..hooks.install import settings_path

    if project and user:
        raise click.UsageError("use either --project DIR or --user")
    return settings_path(project, user)


_where = [
    click.option(
        "--project",
        metavar="DIR",
        help="Project folder: DIR/.claude/settings.json (default: $CLAUDE_PROJECT_DIR or the current folder).",
    ),
    click.option("--user", is_flag=True, help="~/.claude/settings.json instead."),
]


def where(f):  # noqa: ANN001, ANN201 - decorator
    for opt in reversed(_where):
        f = opt(f)
    return f


@hooks.command("install")
@where
@click.option("--enable-sandbox", is_flag=True, help="Also turn on Claude Code's Bash sandbox.")
@click.option(
    "--kernel-sandbox/--no-kernel-sandbox",
    default=None,
    help="Run every shell command of Claude Code under Landlock (default: where the kernel has it).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def hooks_install(
    ctx: click.Context,
    project: str | None,
    user: bool,
    enable_sandbox: bool,
    kernel_sandbox: bool | None,
    as_json: bool,
) -> int:
    """Merge our hooks, env block, sandbox allowWrite and deny rules into settings.json."""
    from ..hooks.install import install, kernel_sandbox_available

    if kernel_sandbox and not kernel_sandbox_available():
        raise click.UsageError("--kernel-sandbox needs Landlock (Linux >= 5.13 with Landlock enabled)")
    res = install(obj(ctx).config, _target(project, user), enable_sandbox, kernel_sandbox)
    if as_json:
        emit_json(res)
    elif res["changed"]:
        echo(f"installed into {res['path']}" + (f" (previous file: {res['backup']})" if res["backup"] else ""))
    else:
        echo(f"already installed in {res['path']}; nothing changed")
    return 0


@hooks.command("uninstall")
@where
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def hooks_uninstall(ctx: click.Context, project: str | None, user: bool, as_json: bool) -> int:
    """Remove exactly what `hooks install` added (other hooks and settings stay)."""
    from ..hooks.install import uninstall

    res = uninstall(obj(ctx).config, _target(project, user))
    if as_json:
        emit_json(res)
    else:
        echo(f"removed from {res['path']}" if res["changed"] else f"nothing of ours in {res['path']}")
    return 0


@hooks.command("doctor")
@where
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def hooks_doctor(ctx: click.Context, project: str | None, user: bool, as_json: bool) -> int:
    """Check the installed hooks and run dry payloads through the hook; exit 1 on a failure."""
    from ..hooks.install import doctor

    rows = doctor(obj(ctx).config, _target(project, user))
    failed = any(s == "FAIL" for _, s, _ in rows)
    if as_json:
        emit_json([{"check": c, "status": s, "detail": d} for c, s, d in rows])
    else:
        echo(table(rows, ["check", "status", "detail"], colorize={1: status}))
    return 1 if failed else 0
