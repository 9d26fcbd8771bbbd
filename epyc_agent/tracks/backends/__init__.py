"""Where a run's generations happen: in-process llama-cpp-python (`embedded`, the default) or the
lab's llama.cpp tools (`binaries`). Both yield the same per-generation records."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# called after each configuration's warm-up with its label
Tick = Callable[[str], None]
Record = dict[str, Any]
Skip = frozenset[tuple[str, int]]  # (config label, rep) already measured: a resumed run's complete reps

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


def todo_reps(plan: Any, label: str, skip: Skip) -> list[int]:
    """The reps of a configuration still to measure; none means no warm-up (nor model load) either."""
    return [rep for rep in range(plan.request.reps) if (label, rep) not in skip]


def backend_for(name: str) -> Any:
    """The backend module for a plan's backend name; each has `info(plan)` and
    `generations(plan, tick, skip)`."""
    if name == "binaries":
        from . import binaries

        return binaries
    from . import embedded

    return embedded
