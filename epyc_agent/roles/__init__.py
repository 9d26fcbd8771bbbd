"""Role agents: definitions (agents/*.md), Claude Code subagent install, role policies
as code, and the pipeline that runs a research track through the roles."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import Config
    from ..events.writer import AuditLog

ROLES = ("sysadmin", "build-engineer", "model-engineer", "benchmark-analyst", "safety-reviewer", "research-engineer")


def role_log(cfg: Config, role: str, session: str | None = None) -> AuditLog | None:
    """An audit log writing as `role` (its own shard) in the current session, or None
    while the root is missing: logging must never create the root as a side effect."""
    from ..events.writer import AuditLog
    from ..sessions import current_session_id

    if not os.path.isdir(cfg.root) and not os.path.isdir(cfg.log_dir):
        return None
    return AuditLog(cfg.log_dir, session or current_session_id(cfg), agent=role)
