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

from epyc_agent.inference.cost import VerifyCost, cost_of, prior_cost
from epyc_agent.inference.generate import build_result
from epyc_agent.inference.result import GenerationResult
from epyc_agent.inference.runtime import Decoder
from epyc_agent.inference.sources.base import DraftSource
from epyc_agent.inference.sources.stack import Stack

if TYPE_CHECKING:
    import llama_cpp

# Every EXPLORE-th pass sizes its draft by the reference curve instead of the measured one, so a
# batch size that once measured slow (a disturbed pass) is timed again rather than shunned for good.
EXPLORE = 16


def best_length(q: float, available: int, probs: list[float] | None = None, cost: VerifyCost | None = None) -> int:
    """Draft length d maximising expected tokens per pass, (1 + P1 + ... + Pd) / cost(d + 1); 0 = no draft.

    Pj, the chance that the first j draft tokens are all right, is the source's own estimate when it
    has one (prompt lookup: from the match length; suffix: from counts), else q^j with q the
    source's recent per-token acceptance. `cost` is the batch cost measured on this model (the
    reference curve without it). Where a pass of two tokens costs almost two of one, a doubtful
    single-token draft loses time, so no draft (d = 0) is an answer too.
    """
    rel = cost.relative if cost is not None else prior_cost
    best_d, best_v = 0, 1.0
    emitted, term = 1.0, 1.0
    for d in range(1, available + 1):
        if probs is not None:
            emitted += probs[d - 1]
        else:
            term *= q
            emitted += term
        v = emitted / rel(d + 1)
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
    max_draft: int = 64,
    select: str = "first",
    trace: TraceHook | None = None,
) -> GenerationResult:
    """Generate greedily with drafts from `sources` (several are stacked in order, see `Stack`).

    `max_draft` caps tokens verified per step; below it the draft length is chosen from the
    source's recent acceptance and the batch cost measured on this model (see `cost`). `trace`
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
    cost = cost_of(llm)
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
            t_step = time.perf_counter()
            base = dec.n_past
            # emitted per step = accepted + 1, so a draft may use all but one remaining slot
            room = min(max_draft, max_tokens - len(out) - 1, dec.n_ctx - base - 1)
            # a pass without draft first, so the cost model knows what one token costs
            d = source.draft(room) if room > 0 and 1 in cost.ms else None
            draft = []
            if d is not None:
                priced = None if steps % EXPLORE == EXPLORE - 1 else cost
                draft = d.tokens[: best_length(d.source.token_rate(), min(room, len(d.tokens)), d.probs, priced)]
            n = len(draft)
            t_pass = time.perf_counter()
            dec.decode([out[-1], *draft])
            best = dec.argmax(n + 1)
            t_verified = time.perf_counter()
            cost.record(n + 1, (t_verified - t_pass) * 1e3)
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
            if d is not None and n:
                drafted += n
                accepted += i
                by_source[d.source.name] = by_source.get(d.source.name, 0) + i
                d.source.feedback(n, i)
            elif d is not None:  # proposed but not worth a pass: score its first token anyway, for free
                d.source.feedback(1, int(d.tokens[0] == best[0]))
            out.extend(emitted)
            source.extend(emitted)
            if len(out) >= max_tokens:
                done = True
            cost.record_step((time.perf_counter() - t_step - (t_verified - t_pass)) * 1e3)
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
