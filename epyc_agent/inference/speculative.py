"""Greedy speculative decoding on llama.cpp's low-level API.

Each step evaluates [last emitted token] + draft in one batch with logits for exactly those
positions, accepts the longest draft prefix equal to the target's argmax, emits the target's own
token at the first mismatch (or after a fully accepted draft), and removes the rejected positions
from the KV cache. The prompt is prefilled exactly as in `generate_plain` (no `logits_all`), so
time to first token is unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from epyc_agent.inference.generate import build_result
from epyc_agent.inference.result import GenerationResult
from epyc_agent.inference.runtime import Decoder
from epyc_agent.inference.sources.base import DraftSource
from epyc_agent.inference.sources.stack import Stack

if TYPE_CHECKING:
    import llama_cpp

# Cost of verifying n tokens in one pass relative to one token (gemma-3-270m, 2 threads, measured:
# 14.5, 16.7, 19.0, 26.3, 36.6 ms for n = 1, 2, 4, 8, 16). Batches are cheap per token but not free.
_COST_POINTS = ((1, 1.0), (2, 1.15), (4, 1.31), (8, 1.81), (16, 2.52), (64, 8.0))


def relative_cost(n: int) -> float:
    for (a, ca), (b, cb) in zip(_COST_POINTS, _COST_POINTS[1:], strict=False):
        if n <= b:
            return ca + (cb - ca) * (n - a) / (b - a)
    return _COST_POINTS[-1][1] * n / _COST_POINTS[-1][0]


def best_length(q: float, available: int, probs: list[float] | None = None) -> int:
    """Draft length d (>= 1) maximising expected tokens per pass, (1 + P1 + ... + Pd) / cost(d + 1).

    Pj, the chance the first j draft tokens are all right, is q^j with q the source's recent
    per-token acceptance (a source that keeps hitting drafts long, one that misses drafts short),
    capped by the source's own path probabilities when it has them (suffix counts).
    """
    best_d, best_v = 1, 0.0
    emitted, term = 1.0, 1.0
    for d in range(1, available + 1):
        term *= q
        emitted += min(term, probs[d - 1]) if probs is not None else term
        v = emitted / relative_cost(d + 1)
        if v > best_v:
            best_d, best_v = d, v
    return best_d


# trace(position in the output, emitted token, the target's logits row that verified it)
TraceHook = Callable[[int, int, Any], None]


def generate_speculative(
    llm: llama_cpp.Llama,
    prompt_tokens: list[int],
    max_tokens: int,
    sources: Sequence[DraftSource] | DraftSource,
    *,
    stop_at_eos: bool = True,
    record_margins: bool = False,
    max_draft: int = 16,
    select: str = "first",
    trace: TraceHook | None = None,
) -> GenerationResult:
    """Generate greedily with drafts from `sources` (several are stacked in order, see `Stack`).

    `max_draft` caps tokens verified per step (the batch-verification cost grows with it). `trace`
    is a debug hook called for every emitted token with the logits row it was chosen from, so a
    test can check the argmax invariant directly; it slows generation, use only in tests.
    """
    if isinstance(sources, DraftSource):
        source = sources
    else:
        source = sources[0] if len(sources) == 1 else Stack(list(sources), select=select)
    prompt = list(prompt_tokens)
    out: list[int] = []
    margins: list[float] | None = [] if record_margins else None
    by_source = {s.name: 0 for s in source.sources()}
    steps = drafted = accepted = 0
    source.attach(llm)
    with Decoder(llm) as dec:
        max_draft = max(0, min(max_draft, dec.capacity - 1))
        t0 = time.perf_counter()
        dec.prefill(prompt)
        t_prefill = time.perf_counter()
        first = dec.argmax(1)[0]
        if trace is not None:
            trace(0, first, dec.logits(1)[0])
        if margins is not None:
            margins.append(dec.margins(1)[0])
        t_first = time.perf_counter()
        out.append(first)
        source.begin(prompt)
        source.extend(out)
        done = max_tokens <= 1 or (stop_at_eos and dec.is_eog(first))
        while not done:
            base = dec.n_past
            # emitted per step = accepted + 1, so a draft may use all but one remaining slot
            room = min(max_draft, max_tokens - len(out) - 1, dec.n_ctx - base - 1)
            d = source.draft(room) if room > 0 else None
            draft = []
            if d is not None:
                draft = d.tokens[: best_length(d.source.token_rate(), min(room, len(d.tokens)), d.probs)]
            n = len(draft)
            dec.decode([out[-1], *draft])
            best = dec.argmax(n + 1)
            i = 0
            while i < n and draft[i] == best[i]:
                i += 1
            emitted = best[: i + 1]
            if stop_at_eos:
                for j, tok in enumerate(emitted):
                    if dec.is_eog(tok):
                        emitted = emitted[: j + 1]
                        done = True
                        break
            if trace is not None:
                rows = dec.logits(n + 1)
                for j, tok in enumerate(emitted):
                    trace(len(out) + j, tok, rows[j])
            if margins is not None:
                margins.extend(dec.margins(len(emitted)))
            dec.truncate(base + 1 + i)
            steps += 1
            if d is not None:
                drafted += n
                accepted += i
                by_source[d.source.name] = by_source.get(d.source.name, 0) + i
                d.source.feedback(n, i)
            out.extend(emitted)
            source.extend(emitted)
            if len(out) >= max_tokens:
                done = True
        t_end = time.perf_counter()
        source.end(out)
        dec.reset()
    return build_result(
        llm,
        prompt,
        out,
        t0=t0,
        t_first=t_first,
        t_prefill=t_prefill,
        t_end=t_end,
        steps=steps,
        drafted=drafted,
        accepted=accepted,
        by_source=by_source,
        margins=margins,
    )
