"""Prompt lookup (track 8): copy what followed the most recent earlier occurrence of the last n tokens."""

from __future__ import annotations

from epyc_agent.inference.sources.base import Draft, DraftSource


class PromptLookup(DraftSource):
    """n-gram sizes from `ngram_max` down to `ngram_min`, most recent match, up to k tokens.

    The context is indexed incrementally: one dict per n maps an n-gram to the position right after
    its latest occurrence, updated as tokens arrive (O(ngram sizes) per token), so a lookup never
    rescans the context. An n-gram is indexed only once the token after it exists, so the lookup of
    the current tail finds an earlier occurrence, never itself. When the copied span runs into the
    end of the context it continues from the draft itself, which drafts periodic repeats fully.
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
                return Draft(out, self.expected(len(out)), self, continuation_probs(self.match_length(start, n), k))
        return None

    def match_length(self, start: int, n: int, cap: int = 256) -> int:
        """How many tokens before `start` agree with the context's tail (at least the n-gram)."""
        ctx = self.tokens
        size = len(ctx)
        m = n
        while m < cap and m < start and ctx[start - 1 - m] == ctx[size - 1 - m]:
            m += 1
        return m


def continuation_probs(length: int, k: int, failures: float = 1.0) -> list[float]:
    """Chance that a copy which has agreed for `length` tokens goes on for 1..k more.

    Laplace's rule of succession with `failures` pseudo-misses: after L agreements the next token
    agrees with probability (L + 1) / (L + 1 + failures), and each agreement raises the odds. A
    short n-gram hit in free text earns one cautious token; a long copied span earns a draft about
    as long as the span so far (SuffixDecoding's draft length = factor x match length).
    """
    out, p = [], 1.0
    for j in range(k):
        hits = length + j + 1
        p *= hits / (hits + failures)
        out.append(p)
    return out
