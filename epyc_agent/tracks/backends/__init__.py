"""Where a run's generations happen: in-process llama-cpp-python (`embedded`, the default) or the
lab's llama.cpp tools (`binaries`). Both yield the same per-generation records."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# called after each generation with a short description of what runs
Tick = Callable[[str], None]
Record = dict[str, Any]

GEN_FIELDS = (
    "n_prompt",
    "n_generated",
    "ttft_s",
    "prefill_tps",
    "decode_tps",
    "wall_s",
    "peak_rss_mb",
    "steps",
    "drafted",
    "accepted",
    "acceptance_rate",
    "mean_accepted_per_step",
)


def backend_for(name: str) -> Any:
    """The backend module for a plan's backend name; each has `info(plan)` and `generations(plan, tick)`."""
    if name == "binaries":
        from . import binaries

        return binaries
    from . import embedded

    return embedded
