"""Prompt lookup (track 8): copy what followed the most recent earlier occurrence of the last n tokens."""

from __future__ import annotations

import math

from epyc_agent.inference.sources.base import Draft, DraftSource

RESYNC = 4  # agreeing tokens after a miss that show the copy went on (a substituted token)
MAX_MISSES = 2  # substitutions a copied span may contain


class PromptLookup(DraftSource):
    """n-gram sizes from `ngram_max` down to `ngram_min`, most recent match, up to k tokens.

    The context is indexed incrementally: one dict per n maps an n-gram to the position right after
    its latest occurrence, updated as tokens arrive (O(ngram sizes) per token), so a lookup never
    rescans the context. An n-gram is indexed only once the token after it exists, so the lookup of
    the current tail finds an earlier occurrence, never itself. When the copied span runs into the
    end of the context it continues from the draft itself, which drafts periodic repeats fully.
    How far a copy is trusted is learnt from the verified drafts (`SpanCalibration`).
    """

    name = "prompt_lookup"

    def __init__(self, *, k: int = 64, ngram_max: int = 12, ngram_min: int = 2, adaptive: bool = True) -> None:
        super().__init__(adaptive=adaptive)
        if not 1 <= ngram_min <= ngram_max:
            raise ValueError(f"need 1 <= ngram_min <= ngram_max, got {ngram_min}, {ngram_max}")
        self.k = k
        self.ngram_max = ngram_max
        self.ngram_min = ngram_min
        self.tokens: list[int] = []
        self.index: dict[int, dict[tuple[int, ...], int]] = {}
        self.calibration = SpanCalibration()
        self._span = (0, 0)  # agreement behind the last proposal, for its feedback

    def begin(self, prompt: list[int]) -> None:
        super().begin(prompt)
        self.tokens = []
        self.index = {n: {} for n in range(self.ngram_min, self.ngram_max + 1)}
        self.extend(prompt)

    def extend(self, tokens: list[int]) -> None:
        ctx = self.tokens
        index = self.index
        for tok in tokens:
            j = len(ctx)
            for n, table in index.items():
                if j >= n:
                    table[tuple(ctx[j - n : j])] = j
            ctx.append(tok)

    def propose(self, k: int) -> Draft | None:
        ctx = self.tokens
        k = min(k, self.k)
        size = len(ctx)
        for n in range(min(self.ngram_max, size), self.ngram_min - 1, -1):
            start = self.index[n].get(tuple(ctx[size - n :]))
            if start is not None:
                out: list[int] = []
                for i in range(start, start + k):
                    out.append(ctx[i] if i < size else out[i - size])
                self._span = self.agreement(start, n)
                probs = continuation_probs(*self._span, k, self.calibration.failures)
                return Draft(out, self.expected(len(out)), self, probs)
        return None

    def feedback(self, drafted: int, accepted: int) -> None:
        super().feedback(drafted, accepted)
        self.calibration.observe(*self._span, drafted, accepted)

    def agreement(self, start: int, n: int, cap: int = 256) -> tuple[int, int]:
        """Tokens before `start` that agree with the context's tail, and the misses among them.

        Walking back from the n-gram, a miss followed by `RESYNC` agreeing tokens was a substituted
        token inside the copied span (the model changed one word and went on copying), so the walk
        goes on, up to `MAX_MISSES` misses; misses not followed by agreement end the span.
        """
        ctx = self.tokens
        size = len(ctx)
        hits, misses, run, best = n, 0, 0, (n, 0)
        for m in range(n, min(cap, start)):
            if ctx[start - 1 - m] == ctx[size - 1 - m]:
                hits += 1
                run += 1
                if misses == 0 or run >= RESYNC:
                    best = (hits, misses)
            else:
                misses += 1
                run = 0
                if misses > MAX_MISSES:
                    break
        return best


FAILURE_GRID = (1 / 16, 1 / 8, 1 / 4, 1 / 2, 1.0, 2.0, 4.0, 8.0)


class SpanCalibration:
    """The rule of succession's pseudo-miss weight, fitted to how this source's copies really fare.

    How faithfully a model copies varies: a verbatim restore of a file runs for hundreds of tokens,
    a model that paraphrases breaks every few dozen. Each verified draft (the span's hits and misses,
    d drafted, a accepted) scores every weight on a grid by its likelihood under `continuation_probs`; the
    scores decay so the fit follows the current request, and start from a weak prior around 1.
    """

    def __init__(self, *, decay: float = 0.9) -> None:
        self.decay = decay
        self.score = [-0.5 * math.log2(f) ** 2 for f in FAILURE_GRID]
        self.failures = 1.0

    def observe(self, hits: int, misses: int, drafted: int, accepted: int) -> None:
        if drafted <= 0:
            return
        lg = math.lgamma
        h, a = hits + 1, accepted
        for i, f in enumerate(FAILURE_GRID):
            g = f + misses
            # log P(first `a` agree) = sum_t log((h+t)/(h+t+g)), t = 0..a-1, then a miss
            ll = lg(h + a) - lg(h) - lg(h + a + g) + lg(h + g)
            if a < drafted:
                ll += math.log(g / (h + a + g))
            self.score[i] = self.decay * self.score[i] + ll
        self.failures = FAILURE_GRID[max(range(len(FAILURE_GRID)), key=self.score.__getitem__)]


def continuation_probs(hits: int, misses: int, k: int, failures: float = 1.0) -> list[float]:
    """Chance that a copy which agreed on `hits` tokens and missed `misses` goes on for 1..k more.

    Laplace's rule of succession with `failures` pseudo-misses: the next token agrees with
    probability (hits + 1) / (hits + 1 + failures + misses), and each agreement raises the odds. A
    short n-gram hit in free text earns one cautious token; a long copied span earns a draft about
    as long as the span so far (SuffixDecoding's draft length = factor x match length).
    """
    out, p = [], 1.0
    for j in range(k):
        h = hits + j + 1
        p *= h / (h + failures + misses)
        out.append(p)
    return out
