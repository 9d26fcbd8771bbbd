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


# Rows per tile of llama.cpp's repacked CPU matrix kernels; a batch that is not a multiple pays extra.
ROW_TILE = 4

Line = tuple[float, float, float]  # a + b * n, plus c when n is not a multiple of ROW_TILE


def prior_cost(n: int) -> float:
    """The reference curve at n, relative to one token (linear between points, proportional beyond)."""
    for (a, ca), (b, cb) in zip(PRIOR, PRIOR[1:], strict=False):
        if n <= b:
            return ca + (cb - ca) * (n - a) / (b - a)
    return PRIOR[-1][1] * n / PRIOR[-1][0]


class VerifyCost:
    """Measured pass times per batch size; `relative(n)` is cost(n) / cost(1).

    Batches smaller than `ROW_TILE` go through the one-row (matrix-vector) path and are priced by
    their own measurements. From `ROW_TILE` tokens on, the time grows about linearly with n, plus a
    step when n is not a multiple of `ROW_TILE`: llama.cpp's repacked CPU kernels multiply
    activations in tiles of 4 rows and send the leftover rows through the slow one-row path
    (measured here: 16 tokens 99 ms, 17 tokens 116 ms). So a line with that step, fitted through
    every measured size, prices the sizes never tried and keeps one disturbed measurement (another
    process took the CPU) from condemning a size for good. Each size keeps a moving average that
    follows a drop faster than a rise, since interference only ever adds time. With a single
    measured size the reference curve supplies the slope. A step also spends time outside its
    pass (drafting, bookkeeping) that does not grow with the batch: `relative` counts it, which
    matters on tiny models whose passes take less than a millisecond.
    """

    def __init__(self) -> None:
        self.ms: dict[int, float] = {}
        self.count: dict[int, int] = {}
        self.step_ms = 0.0  # moving average of a step's time outside its verification pass
        self._table: list[float] = []

    def record(self, n: int, ms: float) -> None:
        old = self.ms.get(n)
        if old is None:
            self.ms[n] = ms
        else:
            self.ms[n] = old + (0.5 if ms < old else 0.1) * (ms - old)
        self.count[n] = self.count.get(n, 0) + 1
        self._table = []

    def record_step(self, ms: float) -> None:
        """Time a step spent outside its verification pass."""
        self.step_ms += 0.1 * (max(ms, 0.0) - self.step_ms)
        self._table = []

    def _line(self) -> Line | None:
        """Weighted least squares a + b*n + c*[n % ROW_TILE != 0] through the sizes >= ROW_TILE.

        None with fewer than two sizes; without sizes on both sides of the tile boundary (or with a
        step that comes out negative) the step is left out and a plain line is fitted.
        """
        import numpy as np

        pts = [(n, ms, min(self.count[n], 8)) for n, ms in self.ms.items() if n >= ROW_TILE]
        if len(pts) < 2:
            return None
        n, y, w = (np.array(col, dtype=float) for col in zip(*pts, strict=True))
        sw = np.sqrt(w)
        line = np.column_stack((np.ones_like(n), n))
        stepped = np.column_stack((line, n % ROW_TILE != 0))
        if np.linalg.matrix_rank(stepped) == 3:
            a, b, c = np.linalg.lstsq(stepped * sw[:, None], y * sw, rcond=None)[0].tolist()
            if c >= 0:
                return a, max(0.0, b), c
        a, b = np.linalg.lstsq(line * sw[:, None], y * sw, rcond=None)[0].tolist()
        return a, max(0.0, b), 0.0

    def estimate_ms(self, n: int) -> float | None:
        """Estimated ms of a pass of n tokens (None until something was measured)."""
        return self._estimate(n, self._line()) if self.ms else None

    def _estimate(self, n: int, line: Line | None) -> float:
        if n < ROW_TILE and n in self.ms:
            return self.ms[n]
        if line is not None:
            a, b, c = line
            if n >= ROW_TILE:
                return max(a + b * n + (c if n % ROW_TILE else 0.0), 1e-3)
            if 1 in self.ms:  # an unmeasured small batch: between one token and a full tile
                one, tile = self.ms[1], max(a + b * ROW_TILE, 1e-3)
                return one + (tile - one) * (n - 1) / (ROW_TILE - 1)
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
        extra = self.step_ms
        one = self._estimate(1, line) + extra
        return [0.0, *((self._estimate(n, line) + extra) / one for n in range(1, size))]

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
