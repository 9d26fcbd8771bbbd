"""What verifying n tokens in one batch costs on this machine, learnt while generating.

The draft length that pays off depends on how much more a batch of n tokens costs than one, and
that differs between machines by 2-3x: on the reference machine 16 tokens cost 2.5x one token, on a
2-core VM with gemma-3-270m (whose 262k-token output layer is most of the model) 6x. So the engine
times every verification pass and sizes drafts from what it measured, falling back to the
reference curve only for batch sizes it has not seen yet.
"""

from __future__ import annotations

import weakref
from typing import Any

# Reference curve (gemma-3-270m Q4_K_M, 2 threads: 14.5, 16.7, 19.0, 26.3, 36.6 ms for n = 1, 2, 4, 8, 16).
PRIOR = ((1, 1.0), (2, 1.15), (4, 1.31), (8, 1.81), (16, 2.52), (64, 8.0))


def prior_cost(n: int) -> float:
    """The reference curve at n, relative to one token (linear between points, proportional beyond)."""
    for (a, ca), (b, cb) in zip(PRIOR, PRIOR[1:], strict=False):
        if n <= b:
            return ca + (cb - ca) * (n - a) / (b - a)
    return PRIOR[-1][1] * n / PRIOR[-1][0]


class VerifyCost:
    """Measured pass times per batch size; `relative(n)` is cost(n) / cost(1).

    One token is its own case (a matrix-vector pass). From two tokens on, the time grows about
    linearly with n, so a line fitted through every measured size prices the sizes never tried and
    keeps one disturbed measurement (another process took the CPU) from condemning a size for good.
    Each size keeps a moving average that follows a drop faster than a rise, since interference
    only ever adds time. With a single measured size the reference curve supplies the slope.
    """

    def __init__(self) -> None:
        self.ms: dict[int, float] = {}
        self.count: dict[int, int] = {}
        self._table: list[float] = []

    def record(self, n: int, ms: float) -> None:
        old = self.ms.get(n)
        if old is None:
            self.ms[n] = ms
        else:
            self.ms[n] = old + (0.5 if ms < old else 0.1) * (ms - old)
        self.count[n] = self.count.get(n, 0) + 1
        self._table = []

    def _line(self) -> tuple[float, float] | None:
        """Weighted least-squares a + b*n through the sizes >= 2 (None with fewer than two sizes)."""
        pts = [(n, ms, min(self.count[n], 8)) for n, ms in self.ms.items() if n >= 2]
        if len(pts) < 2:
            return None
        sw = sum(w for _, _, w in pts)
        mx = sum(w * n for n, _, w in pts) / sw
        my = sum(w * ms for _, ms, w in pts) / sw
        sxx = sum(w * (n - mx) ** 2 for n, _, w in pts)
        b = max(0.0, sum(w * (n - mx) * (ms - my) for n, ms, w in pts) / sxx)
        return my - b * mx, b

    def estimate_ms(self, n: int) -> float | None:
        """Estimated ms of a pass of n tokens (None until something was measured)."""
        return self._estimate(n, self._line()) if self.ms else None

    def _estimate(self, n: int, line: tuple[float, float] | None) -> float:
        if n == 1 and 1 in self.ms:
            return self.ms[1]
        if n >= 2 and line is not None:
            return max(line[0] + line[1] * n, 1e-3)
        near = min(self.ms, key=lambda m: (abs(m - n), m))
        return self.ms[near] * prior_cost(n) / prior_cost(near)

    def relative(self, n: int) -> float:
        table = self._table
        if n >= len(table):
            table = self._table = self._build(max(n + 1, 2 * len(table), 80))
        return table[n]

    def _build(self, size: int) -> list[float]:
        if not self.ms:
            return [0.0, *(prior_cost(n) for n in range(1, size))]
        line = self._line()  # fitted once per table, not once per size
        one = self._estimate(1, line)
        return [0.0, *(self._estimate(n, line) / one for n in range(1, size))]

    def curve(self) -> dict[int, float]:
        """Measured sizes and their ms (for reports)."""
        return dict(sorted(self.ms.items()))


_BY_MODEL: weakref.WeakKeyDictionary[Any, VerifyCost] = weakref.WeakKeyDictionary()


def cost_of(llm: Any) -> VerifyCost:
    """The cost model of one loaded model, kept as long as the model lives (it outlasts a request)."""
    cost = _BY_MODEL.get(llm)
    if cost is None:
        cost = _BY_MODEL[llm] = VerifyCost()
    return cost
