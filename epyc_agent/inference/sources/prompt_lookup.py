"""Prompt lookup (track 8): copy what followed the most recent earlier occurrence of the last n tokens."""

from __future__ import annotations

from epyc_agent.inference.sources.base import Draft, DraftSource

RESYNC = 4  # agreeing tokens after a miss that show the copy went on (a substituted token)
MAX_MISSES = 2  # substitutions a copied span may contain
LENGTH_GROUPS = 10  # span lengths are grouped by powers of two, the last group holds 512 and more


class PromptLookup(DraftSource):
    """n-gram sizes from `ngram_max` down to `ngram_min`, most recent match, up to k tokens.

    The context is indexed incrementally: one dict per n maps an n-gram to the position right after
    its latest occurrence, updated as tokens arrive (O(ngram sizes) per token), so a lookup never
    rescans the context. An n-gram is indexed only once the token after it exists, so the lookup of
    the current tail finds an earlier occurrence, never itself. When the copied span runs into the
    end of the context it continues from the draft itself, which drafts periodic repeats fully.
    How far a copy is trusted is learnt from the verified drafts (`SpanSurvival`).
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
        self.survival = SpanSurvival()
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
                return Draft(out, self.expected(len(out)), self, self.survival.probs(*self._span, k))
        return None

    def feedback(self, drafted: int, accepted: int) -> None:
        super().feedback(drafted, accepted)
        self.survival.observe(*self._span, drafted, accepted)

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


class SpanSurvival:
    """How long a copied span goes on, by how long it has agreed: a life table learnt from verified drafts.

    The chance that the next token still copies rises with the span's length, but not along one
    curve: a 2-token coincidence in free text breaks at once, while a verbatim restore of a file, once
    40 tokens in, runs for hundreds. So spans are grouped by length (powers of two) and by misses,
    and each group keeps decayed counts of tokens that went on copying and of breaks. Before data, a
    group's break rate is the rule of succession's, (1 + misses) / (length + 2 + misses), worth
    `weight` tokens; the counts decay per verified draft, so the table follows the current request.
    """

    def __init__(self, *, decay: float = 0.97, weight: float = 4.0) -> None:
        self.decay = decay
        self.weight = weight
        self.went_on: dict[tuple[int, int], float] = {}
        self.broke: dict[tuple[int, int], float] = {}

    @staticmethod
    def group(length: int, misses: int) -> tuple[int, int]:
        return min(length.bit_length(), LENGTH_GROUPS), min(misses, MAX_MISSES)

    def hazard(self, group: tuple[int, int]) -> float:
        """Chance that a span in this group breaks at its next token."""
        bits, misses = group
        typical = 1.5 * (1 << (bits - 1)) - 0.5  # the middle of the lengths [2^(bits-1), 2^bits)
        prior = (1 + misses) / (typical + 2 + misses)
        broke = self.broke.get(group, 0.0)
        return (broke + self.weight * prior) / (broke + self.went_on.get(group, 0.0) + self.weight)

    def probs(self, hits: int, misses: int, k: int) -> list[float]:
        """Chance that a span that agreed on `hits` tokens (with `misses`) goes on for 1..k more."""
        out: list[float] = []
        p, group, keep = 1.0, None, 1.0
        for j in range(k):
            g = self.group(hits + j, misses)
            if g != group:
                group, keep = g, 1.0 - self.hazard(g)
            p *= keep
            out.append(p)
        return out

    def observe(self, hits: int, misses: int, drafted: int, accepted: int) -> None:
        """A draft from a span of `hits` (and `misses`) had its first `accepted` of `drafted` tokens right."""
        if drafted <= 0:
            return
        for table in (self.went_on, self.broke):
            for g in table:
                table[g] *= self.decay
        for t in range(accepted):
            g = self.group(hits + t, misses)
            self.went_on[g] = self.went_on.get(g, 0.0) + 1.0
        if accepted < drafted:
            g = self.group(hits + accepted, misses)
            self.broke[g] = self.broke.get(g, 0.0) + 1.0
