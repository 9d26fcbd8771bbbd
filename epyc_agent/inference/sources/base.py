"""The draft-source interface and the adaptive back-off every source shares.

The engine drives a source through one request: `attach(llm)` (once per generation, to learn the
target's tokenizer), `begin(prompt)`, then per step `draft(k)` -> verify -> `feedback(d, a)` on the
source that drafted and `extend(emitted)` on all, and finally `end(output)`.
"""

from __future__ import annotations

from typing import Any, NamedTuple


class Draft(NamedTuple):
    """Proposed tokens, an estimate of how many will be accepted, and who proposed them.

    `probs`, when a source has them, are its probabilities that the draft is right up to each token.
    """

    tokens: list[int]
    score: float
    source: DraftSource
    probs: list[float] | None = None


class Backoff:
    """Stop drafting when recent acceptance is near zero; probe again after a growing pause.

    Rejected drafts are not free (verifying 8 extra tokens costs ~1.8x a single-token pass here), so
    on open-ended text a source that keeps missing goes quiet: after each failed probe the pause
    doubles (up to `max_pause` steps); one good probe resumes drafting.
    """

    def __init__(self, *, alpha: float = 0.4, threshold: float = 0.15, max_pause: int = 64) -> None:
        self.alpha = alpha
        self.threshold = threshold
        self.max_pause = max_pause
        self.reset()

    def reset(self) -> None:
        self.ewma = 0.5  # neutral prior: three straight misses start the first pause
        self.hits = 1.0  # decayed per-token counts behind token_rate (prior 1 of 2)
        self.trials = 2.0
        self.new_request()

    def new_request(self) -> None:
        """A new request probes at once, but keeps what was learnt about acceptance: on repeated
        requests (an agent's SQL, tool calls) a source that was right last time starts trusted."""
        self.pause = 0
        self.skip = 0

    @property
    def token_rate(self) -> float:
        """Probability that a drafted token is accepted given the ones before it were."""
        return self.hits / self.trials

    def allow(self) -> bool:
        """Whether to draft this step (consumes one skipped step when paused)."""
        if self.skip > 0:
            self.skip -= 1
            return False
        return True

    def update(self, drafted: int, accepted: int) -> None:
        if drafted <= 0:
            return
        self.hits = 0.8 * self.hits + accepted
        self.trials = 0.8 * self.trials + accepted + (accepted < drafted)
        self.ewma += self.alpha * (accepted / drafted - self.ewma)
        if self.ewma < self.threshold:
            self.pause = min(self.max_pause, max(1, self.pause * 2))
            self.skip = self.pause
        else:
            self.pause = 0


class DraftSource:
    """Base class: context bookkeeping hooks plus back-off; subclasses implement `propose`."""

    name = "source"

    def __init__(self, *, adaptive: bool = True) -> None:
        self.backoff = Backoff() if adaptive else None

    def attach(self, llm: Any) -> None:
        """Called with the target model before each generation (tokenizer checks, caches)."""

    def begin(self, prompt: list[int]) -> None:
        """A new request starts with `prompt` as its whole context."""
        if self.backoff is not None:
            self.backoff.new_request()

    def extend(self, tokens: list[int]) -> None:
        """`tokens` were emitted and appended to the context."""

    def end(self, output: list[int]) -> None:
        """The request finished with `output` as its response."""

    def propose(self, k: int) -> Draft | None:
        """Up to k tokens continuing the current context, or None."""
        raise NotImplementedError

    def draft(self, k: int) -> Draft | None:
        if k <= 0 or (self.backoff is not None and not self.backoff.allow()):
            return None
        d = self.propose(k)
        return d if d is not None and d.tokens else None

    def feedback(self, drafted: int, accepted: int) -> None:
        if self.backoff is not None:
            self.backoff.update(drafted, accepted)

    def token_rate(self) -> float:
        """Recent per-token acceptance (the engine sizes drafts from it)."""
        return self.backoff.token_rate if self.backoff is not None else 0.9

    def expected(self, n: int) -> float:
        """Default score: draft length times recent acceptance (an expected accepted count)."""
        return n * (self.backoff.ewma if self.backoff is not None else 1.0)

    def sources(self) -> list[DraftSource]:
        """The leaf sources (a stack lists its children)."""
        return [self]
