"""One entry for the hook: a tool call -> the storage and Bash guards' findings."""

from __future__ import annotations

import os

from .finding import Finding
from .host import bench_edit
from .prescan import needs_parse

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from ..storage import StorageGuard

EDIT_TOOLS = ("Write", "Edit", "MultiEdit", "NotebookEdit")


class MalformedInput(ValueError):
    """The tool input lacks what the guard needs (the guard cannot evaluate)."""


def edit_path(tool: str, tool_input: Mapping[str, Any]) -> str:
    """The file an edit tool writes; MalformedInput if the payload has none."""
    path = tool_input.get("notebook_path" if tool == "NotebookEdit" else "file_path") or tool_input.get("file_path")
    if not isinstance(path, str) or not path:
        raise MalformedInput(f"{tool} payload has no file_path")
    return path


def check_edit(tool: str, tool_input: Mapping[str, Any], cwd: str | None, guard: StorageGuard) -> list[Finding]:
    path = edit_path(tool, tool_input)
    v = guard.check(path, cwd)
    if v.allowed:
        edit = bench_edit(v.resolved, guard.host, f"{tool} of") if guard.host is not None else None
        return [edit] if edit is not None else []
    return [
        Finding(
            "storage",
            f"{tool} of {path}: {v.reason} (temp files: {guard.root_resolved}/tmp). "
            "If the user needs this exact path, ask them to allow it (allow_write in the epyc-agent "
            "config).",
            v.resolved,
        )
    ]


def worktree_path(tool_input: Mapping[str, Any], cwd: str | None) -> str | None:
    """Where EnterWorktree puts the tree: `path` (an existing worktree), else the CLI's default
    `<repository>/.claude/worktrees/<name>`; None outside a repository (the CLI refuses then)."""
    path = tool_input.get("path")
    if isinstance(path, str) and path:
        return path
    here = os.path.abspath(cwd or os.getcwd())
    while not os.path.exists(os.path.join(here, ".git")):
        if here == os.path.dirname(here):
            return None
        here = os.path.dirname(here)
    name = tool_input.get("name")
    return os.path.join(here, ".claude", "worktrees", name if isinstance(name, str) and name else "new")


def check_worktree(tool_input: Mapping[str, Any], cwd: str | None, guard: StorageGuard) -> list[Finding]:
    """A worktree is a checkout the agent then writes in: outside the root it is refused."""
    path = worktree_path(tool_input, cwd)
    v = guard.check(path, cwd) if path else None
    if v is None or v.allowed:
        return []
    return [
        Finding(
            "storage",
            f"EnterWorktree at {path}: {v.reason}. Create the worktree under {guard.root_resolved} "
            f"(`git worktree add {guard.root_resolved}/worktrees/NAME`, then EnterWorktree with that path).",
            v.resolved,
        )
    ]


def check_bash(
    command: Any,
    cwd: str | None,
    guard: StorageGuard,
    env: Mapping[str, str] | None = None,
    tables_dir: str | None = None,
) -> tuple[list[Finding], dict[str, Any]]:
    """Findings and how they were found (`parser`: prescan|bashlex|shlex, `blind` notes)."""
    if not isinstance(command, str):
        raise MalformedInput("Bash payload has no command string")
    if not needs_parse(command):
        return [], {"parser": "prescan"}
    from .bash import BashCheck
    from .shell import parse

    parsed = parse(command, cwd, env, tables_dir)
    findings = BashCheck(guard, parsed).run()
    return findings, {"parser": parsed.parser, "blind": parsed.blind}
