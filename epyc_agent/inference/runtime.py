"""A thin, allocation-free layer over llama.cpp's batch/decode/KV API for greedy loops.

`Llama.eval` asks for logits at every position when `logits_all` is set and copies them into
`scores`; here each decode says exactly which positions need logits, argmax runs on a numpy view
of llama.cpp's own buffer, and rejected positions are removed from the KV cache.
"""

from __future__ import annotations

import resource
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import llama_cpp
    import numpy as np


class Decoder:
    """One sequence (seq 0) in a `Llama`'s context, appended to and truncated at the end."""

    def __init__(self, llm: llama_cpp.Llama) -> None:
        import llama_cpp
        import numpy

        self._lc = llama_cpp
        self._np = numpy
        self.llm = llm
        self.ctx = llm._ctx.ctx
        self.mem = llama_cpp.llama_get_memory(self.ctx)
        self.vocab = llama_cpp.llama_model_get_vocab(llm._model.model)
        self.n_vocab = llm.n_vocab()
        self.n_ctx = llm.n_ctx()
        self.capacity = llm.n_batch
        self.batch = llama_cpp.llama_batch_init(self.capacity, 0, 1)
        for i in range(self.capacity):
            self.batch.n_seq_id[i] = 1
            self.batch.seq_id[i][0] = 0
        self.n_past = 0
        self.reset()

    def close(self) -> None:
        if self.batch is not None:
            self._lc.llama_batch_free(self.batch)
            self.batch = None

    def __enter__(self) -> Decoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def reset(self) -> None:
        """Empty the KV cache; also tell the `Llama` wrapper so its own API does not reuse it."""
        self._lc.llama_memory_clear(self.mem, True)
        self.n_past = 0
        self.llm.n_tokens = 0

    def decode(self, tokens: list[int], logits_from: int = 0) -> int:
        """Append `tokens` (at most `capacity`), with logits for positions >= `logits_from`.

        Returns the number of logit rows produced.
        """
        n = len(tokens)
        if self.n_past + n > self.n_ctx:
            from epyc_agent.errors import EpycAgentError

            raise EpycAgentError(
                f"context full: {self.n_past + n} tokens > n_ctx {self.n_ctx}",
                hint="load the model with a larger n_ctx or lower max_tokens",
            )
        b = self.batch
        tok, pos, lg = b.token, b.pos, b.logits
        p = self.n_past
        for i in range(n):
            tok[i] = tokens[i]
            pos[i] = p + i
            lg[i] = i >= logits_from
        b.n_tokens = n
        rc = self._lc.llama_decode(self.ctx, b)
        if rc != 0:
            raise RuntimeError(f"llama_decode returned {rc} at position {p} ({n} tokens)")
        self.n_past = p + n
        return n - logits_from

    def prefill(self, tokens: list[int]) -> None:
        """Evaluate a prompt in `capacity`-sized chunks with logits for its last token only."""
        if not tokens:
            raise ValueError("empty prompt: at least one token (e.g. BOS) is needed")
        step = self.capacity
        for start in range(0, len(tokens), step):
            chunk = tokens[start : start + step]
            last = start + step >= len(tokens)
            self.decode(chunk, logits_from=len(chunk) - 1 if last else len(chunk))

    def logits(self, rows: int) -> np.ndarray:
        """A zero-copy (rows, n_vocab) view of the logits of the last decode."""
        ptr = self._lc.llama_get_logits(self.ctx)
        return self._np.ctypeslib.as_array(ptr, shape=(rows, self.n_vocab))

    def argmax(self, rows: int) -> list[int]:
        return self.logits(rows).argmax(axis=1).tolist()  # type: ignore[no-any-return]

    def margins(self, rows: int) -> list[float]:
        """Top-1 minus top-2 logit per row: how close each greedy choice was to a tie."""
        top2 = self._np.partition(self.logits(rows), -2, axis=1)[:, -2:]
        return (top2[:, 1] - top2[:, 0]).tolist()  # type: ignore[no-any-return]

    def truncate(self, n_keep: int) -> None:
        """Drop every KV position >= n_keep (rejected draft tokens)."""
        if n_keep < self.n_past:
            if not self._lc.llama_memory_seq_rm(self.mem, 0, n_keep, -1):
                raise RuntimeError(f"KV cache refused to drop positions >= {n_keep}")
            self.n_past = n_keep

    def is_eog(self, token: int) -> bool:
        return bool(self._lc.llama_vocab_is_eog(self.vocab, token))


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def detokenize(llm: Any, tokens: list[int]) -> str:
    return str(llm.detokenize(tokens).decode("utf-8", errors="replace"))
