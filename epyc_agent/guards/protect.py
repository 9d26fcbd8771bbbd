"""Protected files: what decides the guards may not be changed by the agent they guard.

The Claude Code settings that register our hooks, every config file the hook could load, the
role definitions, the audit log (shards, session and guard state, compaction dumps) and the key
that signs that state. A write, edit, move, delete or truncation of one of them by a tool call is
refused, whether it comes from Write/Edit or from a Bash command the parser places there; the
reason says how a person changes it instead. The only switch, `guards.protect: off`, lives in a
config file, which is itself protected.
"""

from __future__ import annotations

import os

from ..storage import is_under

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..config import Config

CONFIG_NAME = "epyc-agent.yaml"  # discovery's name: protected wherever it lies
SHARD_PREFIX = "agent_audit"


class Protected:
    """The protected files and folders for one hook call."""

    def __init__(self, files: dict[str, str], dirs: dict[str, str], log_dir: str) -> None:
        self.files, self.dirs, self.log_dir = files, dirs, log_dir

    def why(self, resolved: str) -> str | None:
        """The refusal for a write to `resolved` (already resolved as the kernel would), or None."""
        what = self.files.get(resolved)
        if what is None:
            what = next((w for d, w in self.dirs.items() if is_under(resolved, d)), None)
        if what is None and os.path.basename(resolved) == CONFIG_NAME:
            what = "an epyc-agent config file: a person edits it outside the agent session"
        if what is None and _is_shard(resolved, self.log_dir):
            what = "an audit-log shard: append-only, written by the hooks and `epyc-agent log ...`"
        return f"{resolved} is protected ({what})" if what else None


def _is_shard(path: str, log_dir: str) -> bool:
    return os.path.dirname(path) == log_dir and os.path.basename(path).startswith(SHARD_PREFIX)


def protected_for(cfg: Config, env: Mapping[str, str], project: str | None) -> Protected:
    """What is protected for a call in `project` (None: no project folder known)."""
    from ..fileio import secret_dir

    real = os.path.realpath
    home = env.get("HOME") or os.path.expanduser("~")
    settings = "Claude Code settings registering the epyc-agent hooks: a person runs `epyc-agent hooks install`"
    config = "an epyc-agent config file: a person edits it outside the agent session"
    files: dict[str, str] = {}
    for base in filter(None, (project, home)):
        for name in ("settings.json", "settings.local.json"):
            files[real(os.path.join(base, ".claude", name))] = settings
    for p in (
        cfg.config_file,
        env.get("EPYC_AGENT_CONFIG"),
        os.path.join(home, ".config", "epyc-agent", "config.yaml"),
    ):
        if p:
            files[real(os.path.expanduser(p))] = config
    log_dir = real(cfg.log_dir)
    files[log_dir] = "the audit log's folder"
    dirs = {
        os.path.join(log_dir, ".state"): "guard state of the hooks",
        os.path.join(log_dir, "sessions"): "session records",
        os.path.join(log_dir, "compactions"): "pre-compaction dumps",
        real(secret_dir(cfg.log_dir)): "the key that signs the guard state",
    }
    roles = "a role definition: a person edits it, then runs `epyc-agent agents install`"
    for d in filter(None, (env.get("EPYC_AGENT_AGENTS_DIR"), _shipped_agents())):
        dirs[real(d)] = roles
    if project:
        dirs[real(os.path.join(project, ".claude", "agents"))] = roles
    return Protected(files, dirs, log_dir)


def _shipped_agents() -> str | None:
    """The `agents/` that `agents install` copies from: the checkout's or the installed package's
    (roles.definitions.agents_dir knows it too, but importing that module would put `typing` and
    `dataclasses` on the hook path)."""
    from ..shipped import shipped_path

    d = shipped_path("agents")
    return d if os.path.isdir(d) else None
