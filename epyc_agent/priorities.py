"""Priority actions a session must see first (the lab's rules: test untested models before
other work; fix failing health checks). Each provider returns short action lines."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import Config

# "module:function" taking (cfg, log) and returning a list of action strings
PROVIDERS: list[str] = [
    "epyc_agent.models.tested:priority_untested",  # first: the lab's rule, untested models before other work
    "epyc_agent.system.health:priority_lines",
]


def priority_actions(cfg: Config, log: object) -> list[str]:
    """Collect every provider's actions; a provider that fails reports itself, never hides the rest."""
    actions: list[str] = []
    for target in PROVIDERS:
        module, func = target.split(":")
        try:
            actions += getattr(importlib.import_module(module), func)(cfg, log)
        except Exception as e:  # noqa: BLE001 - one broken check must not block a session
            actions.append(f"could not evaluate {target}: {e}")
    return actions
