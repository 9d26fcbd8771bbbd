"""The plain greedy baseline: one target forward pass per token, same low-level loop as the engine."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from epyc_agent.inference.result import GenerationResult
from epyc_agent.inference.runtime import Decoder, detokenize, peak_rss_mb

if TYPE_CHECKING:
    import llama_cpp


def build_result(
    llm: llama_cpp.Llama,
    prompt_tokens: list[int],
    out: list[int],
    *,
    t0: float,
    t_first: float,
    t_prefill: float,
    t_end: float,
    steps: int,
    drafted: int = 0,
    accepted: int = 0,
    by_source: dict[str, int] | None = None,
    margins: list[float] | None = None,
) -> GenerationResult:
    """Derive the rates once so the plain and speculative loops report identically.

    decode_tps counts the tokens after the first (the first comes from the prefill pass) over the
    time after the first token; it is the figure speedups are computed from.
    """
    decode_s = t_end - t_first
    n = len(out)
    return GenerationResult(
        tokens=out,
        text=detokenize(llm, out),
        n_prompt=len(prompt_tokens),
        n_generated=n,
        ttft_s=t_first - t0,
        prefill_tps=len(prompt_tokens) / max(t_prefill - t0, 1e-9),
        decode_tps=(n - 1) / decode_s if n > 1 and decode_s > 0 else 0.0,
        wall_s=t_end - t0,
        peak_rss_mb=peak_rss_mb(),
        steps=steps,
        drafted=drafted,
        accepted=accepted,
        acceptance_rate=accepted / drafted if drafted else None,
        mean_accepted_per_step=accepted / steps if drafted and steps else None,
        accepted_by_source=dict(by_source or {}),
        margins=margins,
    )


def generate_plain(
    llm: llama_cpp.Llama,
    prompt_tokens: list[int],
    max_tokens: int,
    *,
    stop_at_eos: bool = True,
    record_margins: bool = False,
) -> GenerationResult:
    """Greedy decoding, one token per forward pass: the reference every speedup is measured against."""
    prompt = list(prompt_tokens)
    out: list[int] = []
    margins: list[float] | None = [] if record_margins else None
    steps = 0
    with Decoder(llm) as dec:
        t0 = time.perf_counter()
        dec.prefill(prompt)
        t_prefill = time.perf_counter()
        t_first = t_prefill
        while len(out) < max_tokens:
            if out:
                dec.decode([out[-1]])
                steps += 1
            tok = dec.argmax(1)[0]
            if margins is not None:
                margins.append(dec.margins(1)[0])
            if not out:
                t_first = time.perf_counter()
            out.append(tok)
            if stop_at_eos and dec.is_eog(tok):
                break
        t_end = time.perf_counter()
        dec.reset()
    return build_result(
        llm, prompt, out, t0=t0, t_first=t_first, t_prefill=t_prefill, t_end=t_end, steps=steps, margins=margins
    )


def first_divergence(a: list[int], b: list[int]) -> int | None:
    """Index of the first differing token, or of the shorter end; None when identical."""
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))
