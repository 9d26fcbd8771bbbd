"""The outcome of one generation, shared by the plain and speculative loops."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class GenerationResult:
    """Tokens plus the timings and speculation counters a benchmark or track report needs.

    `steps` counts target forward passes during decode (the prefill pass that yields the first
    token is not a step). `acceptance_rate` = accepted / drafted and `mean_accepted_per_step` =
    accepted / steps are None when nothing was drafted. `margins[i]` is the target's top-1 minus
    top-2 logit at emitted token i, recorded only on request (it costs a partial sort per token).
    """

    tokens: list[int]
    text: str
    n_prompt: int
    n_generated: int
    ttft_s: float
    prefill_tps: float
    decode_tps: float
    wall_s: float
    peak_rss_mb: float
    steps: int
    drafted: int = 0
    accepted: int = 0
    acceptance_rate: float | None = None
    mean_accepted_per_step: float | None = None
    accepted_by_source: dict[str, int] = field(default_factory=dict)
    margins: list[float] | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
