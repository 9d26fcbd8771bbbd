"""External draft model (track 1): a second `Llama` with the same tokenizer drafts k tokens greedily."""

from __future__ import annotations

from typing import Any

from epyc_agent.inference.sources.base import Draft, DraftSource


class DraftModelSource(DraftSource):
    """Its KV cache follows the target's context: each step only the tokens the target emitted
    since the last draft are decoded (rejected draft positions are dropped), never a re-prefill.
    """

    name = "draft_model"

    def __init__(self, draft_llm: Any, *, k: int = 8, adaptive: bool = True) -> None:
        super().__init__(adaptive=adaptive)
        self.llm = draft_llm
        self.k = k
        self.dec: Any = None
        self.context: list[int] = []
        self.kv: list[int] = []  # tokens held in the draft model's KV cache, in order
        self.tokens_decoded = 0  # lifetime total: shows the KV is kept in step, never re-prefilled
        self._stable = 0  # kv[:_stable] == context[:_stable]; the context only grows within a request
        self._checked: int | None = None

    def attach(self, llm: Any) -> None:
        """Refuse a draft model whose token ids mean something else to the target."""
        if self._checked == id(llm):
            return
        from epyc_agent.errors import EpycAgentError
        from epyc_agent.inference.model import tokenizer_compat

        reason = tokenizer_compat(llm, self.llm)
        if reason is not None:
            raise EpycAgentError(
                f"draft model cannot draft for the target: {reason}",
                hint="use a draft model with the same tokenizer (same model family)",
            )
        if self.dec is None:
            from epyc_agent.inference.runtime import Decoder

            self.dec = Decoder(self.llm)
        self._checked = id(llm)

    def begin(self, prompt: list[int]) -> None:
        super().begin(prompt)
        self.context = list(prompt)
        self.kv = []
        self._stable = 0
        if self.dec is not None:
            self.dec.reset()

    def extend(self, tokens: list[int]) -> None:
        self.context.extend(tokens)

    def _sync(self) -> int:
        """Drop KV entries that diverge from the context; return how many context tokens are held."""
        ctx, kv = self.context, self.kv
        n = min(len(kv), len(ctx) - 1)  # keep >= 1 token to decode: its logits give the first draft
        i = min(self._stable, n)
        while i < n and kv[i] == ctx[i]:
            i += 1
        if i < len(kv):
            self.dec.truncate(i)
            del kv[i:]
        return i

    def propose(self, k: int) -> Draft | None:
        if self.dec is None:
            return None
        k = min(k, self.k, self.dec.n_ctx - len(self.context) - 1)
        if k <= 0:
            return None
        held = self._sync()
        pending = self.context[held:]
        cap = self.dec.capacity
        for start in range(0, len(pending), cap):
            chunk = pending[start : start + cap]
            last = start + cap >= len(pending)
            self.dec.decode(chunk, logits_from=len(chunk) - 1 if last else len(chunk))
        self.tokens_decoded += len(pending) + k - 1
        self.kv.extend(pending)
        self._stable = len(self.context)
        out = [self.dec.argmax(1)[0]]
        while len(out) < k:
            self.dec.decode([out[-1]])
            self.kv.append(out[-1])
            out.append(self.dec.argmax(1)[0])
        return Draft(out, self.expected(len(out)), self)

    def end(self, output: list[int]) -> None:
        if self.dec is not None:
            self.dec.reset()
        self.kv = []
