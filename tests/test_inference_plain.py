"""The plain greedy baseline, model loading and helpers of epyc_agent.inference."""

from __future__ import annotations

from pathlib import Path

import pytest

from epyc_agent.errors import EpycAgentError
from epyc_agent.inference.generate import first_divergence
from epyc_agent.inference.result import GenerationResult


def test_first_divergence() -> None:
    """Identical lists give None; otherwise the first differing index or the shorter length."""
    assert first_divergence([1, 2, 3], [1, 2, 3]) is None
    assert first_divergence([1, 2, 3], [1, 9, 3]) == 1
    assert first_divergence([1, 2], [1, 2, 3]) == 2
    assert first_divergence([], []) is None


def test_result_as_dict_round_trips() -> None:
    """as_dict carries every field, so JSON reports lose nothing."""
    r = GenerationResult(
        tokens=[1],
        text="a",
        n_prompt=2,
        n_generated=1,
        ttft_s=0.1,
        prefill_tps=20.0,
        decode_tps=0.0,
        wall_s=0.1,
        peak_rss_mb=10.0,
        steps=0,
    )
    d = r.as_dict()
    assert d["tokens"] == [1] and d["acceptance_rate"] is None and d["accepted_by_source"] == {}
    assert GenerationResult(**d) == r


def test_load_model_missing_file(tmp_path: Path) -> None:
    """A missing model is a one-line user error naming the path."""
    from epyc_agent.inference.model import load_model

    with pytest.raises(EpycAgentError, match="model file not found"):
        load_model(tmp_path / "nope.gguf")


@pytest.mark.slow
def test_plain_matches_llama_cpp_greedy(default_model: Path) -> None:
    """generate_plain yields exactly llama-cpp-python's own greedy tokens and sane timings."""
    from epyc_agent.inference.generate import generate_plain
    from epyc_agent.inference.model import load_model, system_info

    assert "AVX" in system_info() or "NEON" in system_info()
    llm = load_model(default_model, n_ctx=512, n_threads=2)
    prompt = llm.tokenize(b"The three primary colors are")
    r = generate_plain(llm, prompt, 24, record_margins=True)
    ref = []
    for tok in llm.generate(prompt, temp=0.0, top_k=1):
        ref.append(tok)
        if len(ref) == 24:
            break
    assert r.tokens == ref
    assert r.n_generated == 24 and r.steps == 23 and r.n_prompt == len(prompt)
    assert r.text == llm.detokenize(ref).decode("utf-8", errors="replace")
    assert r.margins is not None and len(r.margins) == 24 and min(r.margins) >= 0
    assert r.decode_tps > 0 and 0 < r.ttft_s < r.wall_s and r.peak_rss_mb > 100
    again = generate_plain(llm, prompt, 24)
    assert again.tokens == r.tokens and again.margins is None
