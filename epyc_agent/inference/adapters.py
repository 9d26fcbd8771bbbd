"""Draft sources as `llama_cpp.llama_speculative.LlamaDraftModel`s, for plain llama-cpp-python users.

`Llama(draft_model=...)` calls the draft model with the whole context (prompt + accepted tokens +
the pending one) each step. The adapter recovers the request structure from that: a context that
extends the previous one continues the request (the tokens that matched the previous draft are
its accepted count); anything else starts a new request, ending the old one (which lets the
suffix source learn from the previous response).
"""

from __future__ import annotations

from typing import Any

from llama_cpp.llama_speculative import LlamaDraftModel

from epyc_agent.inference.sources.base import DraftSource
from epyc_agent.inference.sources.stack import Stack


class SourceDraftModel(LlamaDraftModel):
    """Wraps one source (or several, stacked in order) for `Llama(draft_model=...)`.

    Pass `llm` (the target) when a source needs the tokenizer: the suffix source keys its global
    cache by it and the draft-model source checks compatibility.
    """

    def __init__(self, sources: DraftSource | list[DraftSource], *, k: int = 10, llm: Any = None) -> None:
        import numpy as np

        self._np = np
        if isinstance(sources, list):
            self.source = sources[0] if len(sources) == 1 else Stack(sources)
        else:
            self.source = sources
        self.k = k
        self.context: list[int] = []
        self.prompt_len = 0
        self.last_draft: list[int] = []
        self.last_owner: DraftSource | None = None
        self.llm = llm
        if llm is not None:
            self.source.attach(llm)

    def _continues(self, ids: Any) -> bool:
        n = len(self.context)
        return 0 < n <= len(ids) and ids[:n].tolist() == self.context

    def __call__(self, input_ids: Any, /, **kwargs: Any) -> Any:
        np = self._np
        ids = np.asarray(input_ids, dtype=np.intc)
        if self.context and self._continues(ids):
            new = ids[len(self.context) :].tolist()
            if self.last_owner is not None:
                acc = 0
                while acc < min(len(new), len(self.last_draft)) and new[acc] == self.last_draft[acc]:
                    acc += 1
                self.last_owner.feedback(len(self.last_draft), acc)
            if new:
                self.source.extend(new)
                self.context.extend(new)
        else:
            self.close_request()
            self.context = ids.tolist()
            self.prompt_len = len(self.context)
            self.source.begin(self.context)
        d = self.source.draft(self.k)
        self.last_draft = d.tokens[: self.k] if d is not None else []
        self.last_owner = d.source if d is not None else None
        return np.array(self.last_draft, dtype=np.intc)

    def close_request(self) -> None:
        """End the current request (call after the last generation to record its response)."""
        if self.context:
            self.source.end(self.context[self.prompt_len :])
        self.context = []
        self.last_draft = []
        self.last_owner = None
