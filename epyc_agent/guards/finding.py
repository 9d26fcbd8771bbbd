"""A guard's objection to one tool call: which guard, why, and what to do instead."""

from __future__ import annotations

GUARDS = ("storage", "bash", "destructive", "retry")


class Finding:
    """`guard` names the config switch (guards.<guard>: enforce|warn|off) that governs it."""

    __slots__ = ("guard", "reason", "path")

    def __init__(self, guard: str, reason: str, path: str = "") -> None:
        self.guard, self.reason, self.path = guard, reason, path

    def as_dict(self) -> dict[str, str]:
        return {"guard": self.guard, "reason": self.reason, "path": self.path}

    def __repr__(self) -> str:
        return f"Finding({self.guard}: {self.reason})"
