"""Draft sources of the speculative engine, pure Python: indexes, counts, back-off, persistence."""

from __future__ import annotations

import random
import time
from pathlib import Path

import numpy as np
import pytest

from epyc_agent.errors import EpycAgentError
from epyc_agent.inference.methods import METHODS, make_sources, resolve_params
from epyc_agent.inference.sources.base import Backoff, Draft, DraftSource
from epyc_agent.inference.sources.prompt_lookup import PromptLookup
from epyc_agent.inference.sources.stack import Stack
from epyc_agent.inference.sources.suffix import GlobalSuffixCache, SuffixDecoding
from epyc_agent.inference.sources.suffix_index import SuffixIndex


def test_prompt_lookup_longest_most_recent_match() -> None:
    """The longest n-gram wins over shorter ones, and among equal n-grams the most recent one."""
    pl = PromptLookup(k=3, ngram_max=3, ngram_min=1, adaptive=False)
    pl.begin([1, 2, 3, 10, 11, 5, 2, 3, 20, 21, 7, 1, 2, 3])
    d = pl.propose(3)
    assert d is not None and d.tokens == [10, 11, 5]  # "1 2 3" matched at the start (3-gram)
    pl.begin([2, 3, 10, 11, 9, 2, 3, 20, 21, 8, 2, 3])
    assert pl.propose(2).tokens == [20, 21]  # "2 3" latest earlier occurrence


def test_prompt_lookup_incremental_and_periodic() -> None:
    """Tokens added with extend are indexed; a copy reaching the end continues periodically."""
    pl = PromptLookup(k=6, ngram_max=2, ngram_min=1, adaptive=False)
    pl.begin([4, 5])
    assert pl.propose(6) is None  # no earlier occurrence of the tail
    pl.extend([4, 5])
    assert pl.propose(6).tokens == [4, 5, 4, 5, 4, 5]
    pl.extend([9])
    assert pl.propose(6) is None


def test_prompt_lookup_indexes_without_rescan() -> None:
    """Lookups on a 50k-token context take microseconds (an index, not a scan)."""
    rng = random.Random(1)
    pl = PromptLookup(adaptive=False)
    pl.begin([rng.randrange(1000) for _ in range(50_000)])
    t = time.perf_counter()
    for _ in range(200):
        pl.propose(10)
        pl.extend([rng.randrange(1000)])
    assert (time.perf_counter() - t) / 200 < 0.0005


def test_suffix_index_counts_and_probabilities() -> None:
    """Walking follows the most frequent child; probability = child count / node count."""
    idx = SuffixIndex()
    for seq in ([1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3, 5], [7, 2, 9]):
        idx.append([*seq, -1])
    levels = idx.match([0, 1, 2], max_depth=8, max_candidates=100)
    assert [(p, len(occ)) for p, occ in levels] == [(2, 3), (1, 4)]  # "1 2" x3, "2" x4
    toks, probs, _ = idx.walk(levels[0][1], 5, 0.1)
    assert toks == [3, 4]
    assert probs == pytest.approx([1.0, 2 / 3])
    toks, _, _ = idx.walk(levels[0][1], 5, 0.7)
    assert toks == [3]  # 2/3 < 0.7 stops the walk
    # adaptive length: a 2-token match with factor 1.0 drafts at most 2 tokens
    toks, _, _ = idx.speculate([1, 2], k=8, max_depth=8, max_spec_factor=1.0, max_spec_offset=0.0, min_prob=0.1)
    assert toks == [3, 4]
    toks, _, _ = idx.speculate([1, 2], k=8, max_depth=8, max_spec_factor=0.5, max_spec_offset=0.0, min_prob=0.1)
    assert toks == [3]


def test_suffix_index_never_spans_sequences() -> None:
    """The separator stops matches and walks at a response boundary."""
    idx = SuffixIndex()
    idx.append([1, 2, -1, 3, 4, -1])
    assert idx.match([2, 3], max_depth=4, max_candidates=10)[0][0] == 1
    assert idx.speculate([9, 1], k=4, max_depth=4, max_spec_factor=4, max_spec_offset=0, min_prob=0.1)[0] == [2]


def test_suffix_speculate_fast_with_100k_tokens() -> None:
    """speculate() stays under 1 ms (median) with 100,000 cached tokens."""
    rng = random.Random(0)
    vocab, weights = list(range(5000)), [1 / (i + 1) for i in range(5000)]
    templates = [rng.choices(vocab, weights, k=250) for _ in range(20)]
    cache = GlobalSuffixCache(None, max_tokens=200_000)
    for _ in range(400):
        t = list(rng.choice(templates))
        for _ in range(20):
            t[rng.randrange(250)] = rng.choices(vocab, weights)[0]
        cache.add(t)
    assert cache.n_tokens == 100_000
    contexts = [rng.choice(templates)[: rng.randrange(10, 240)] for _ in range(100)]
    contexts += [rng.choices(vocab, weights, k=50) for _ in range(100)]
    d = resolve_params("suffix")  # the defaults the engine runs with
    opts = {"k": d["suffix_k"], "max_depth": d["max_depth"], "max_spec_factor": d["max_spec_factor"]}
    opts |= {"max_spec_offset": d["max_spec_offset"], "min_prob": d["min_token_prob"]}
    times = []
    for ctx in contexts:
        t = time.perf_counter()
        cache.index.speculate(ctx, **opts)
        times.append(time.perf_counter() - t)
    assert sorted(times)[len(times) // 2] < 0.001


def test_global_cache_evicts_least_recently_used(tmp_path: Path) -> None:
    """Past the cap, the least recently used responses go first, down to 90% of the cap."""
    cache = GlobalSuffixCache(None, max_tokens=100)
    for i in range(4):
        cache.add([i] * 30)  # 120 tokens > 100
    assert cache.n_tokens == 90
    kept = sorted({r["tokens"][0] for r in cache.responses.values()})
    assert kept == [1, 2, 3]
    # using response "1" makes "2" the oldest
    _, _, pos = cache.index.speculate([1, 1], k=2, max_depth=4, max_spec_factor=2, max_spec_offset=0, min_prob=0.1)
    cache.touch(pos)
    cache.add([9] * 30)
    assert sorted({r["tokens"][0] for r in cache.responses.values()}) == [1, 3, 9]


def test_global_cache_persists_and_merges(tmp_path: Path) -> None:
    """Responses survive a restart; two writers' responses are merged, not overwritten."""
    path = str(tmp_path / "suffix" / "global-x.json")
    a = GlobalSuffixCache(path)
    b = GlobalSuffixCache(path)
    a.add([1, 2, 3])
    a.save()
    b.add([4, 5, 6])
    b.save()
    c = GlobalSuffixCache(path)
    assert sorted(r["tokens"][0] for r in c.responses.values()) == [1, 4]
    assert c.index.speculate([4, 5], k=1, max_depth=4, max_spec_factor=1, max_spec_offset=0, min_prob=0.1)[0] == [6]
    assert not [p for p in (tmp_path / "suffix").iterdir() if p.suffix == ".tmp"]
    Path(path).write_text("{broken")
    assert GlobalSuffixCache(path).n_tokens == 0  # damaged cache: start afresh, no crash


def test_suffix_source_local_then_global() -> None:
    """The per-request index drafts from the prompt; the global one from earlier responses."""
    s = SuffixDecoding(adaptive=False)
    s.begin([5, 6, 7, 8, 9, 5, 6])
    assert s.propose(4).tokens == [7, 8]  # 2-token match, factor 1 -> 2 tokens
    s.end([11, 12, 13, 14, 15, 16])
    s.begin([1, 11, 12, 13])
    assert s.propose(8).tokens == [14, 15, 16]
    # the prompt's tail is stored in front of the response: a similar request drafts from its first token
    s.end([20, 21, 22])
    s.begin([7, 8, 1, 11, 12, 13])  # "1 11 12 13" (4 tokens) matches only the stored lead
    assert s.propose(8).tokens == [20, 21, 22]


def test_draft_length_follows_acceptance() -> None:
    """The engine drafts long for a source that keeps hitting, and not at all for one that misses."""
    from epyc_agent.inference.cost import prior_cost
    from epyc_agent.inference.speculative import best_length

    assert prior_cost(1) == 1.0 and prior_cost(16) == pytest.approx(2.52)
    assert best_length(0.0, 16) == 0
    assert best_length(0.5, 16) <= 4
    assert best_length(0.97, 16) >= 12
    lengths = [best_length(q, 16) for q in (0.2, 0.5, 0.8, 0.9, 0.97)]
    assert lengths == sorted(lengths)
    assert best_length(0.99, 3) == 3
    # a source's own probabilities replace q
    assert best_length(0.0, 8, [1.0] * 8) == 8 and best_length(0.99, 8, [0.05] * 8) == 0


def test_verify_cost_learns_the_machine() -> None:
    """Measured pass times replace the reference curve; a line through them prices unseen sizes."""
    from epyc_agent.inference.cost import VerifyCost
    from epyc_agent.inference.speculative import best_length

    cost = VerifyCost()
    assert cost.relative(16) == pytest.approx(2.52)  # nothing measured: the reference curve
    cheap = best_length(0.95, 64, cost=cost)
    for n, ms in ((1, 16.0), (2, 32.0), (4, 44.0), (8, 64.0), (16, 101.0)):
        cost.record(n, ms)
    assert cost.relative(16) == pytest.approx(101.0 / 16.0, rel=0.1)
    assert cost.relative(32) == pytest.approx(cost.relative(16) + 16 * (101 - 64) / 8 / 16, rel=0.15)  # the line
    assert best_length(0.95, 64, cost=cost) < cheap  # an expensive batch earns a shorter draft
    assert best_length(0.6, 64, cost=cost) == 0  # doubtful tokens are not worth a 2x pass
    cost.record(16, 400.0)  # one disturbed pass moves the estimate a little, not all the way
    assert cost.ms[16] < 140.0


def test_verify_cost_knows_the_row_tile() -> None:
    """Batches that are not a multiple of 4 rows pay for the leftover rows (times measured on the
    2-core VM); the engine then drafts so that the batch fills whole tiles."""
    from epyc_agent.inference.cost import VerifyCost
    from epyc_agent.inference.speculative import best_length

    cost = VerifyCost()
    measured = {1: 18.4, 2: 28.7, 3: 34.8, 4: 36.2, 5: 63.2, 8: 60.1, 9: 76.7, 12: 79.1, 13: 99.0, 16: 99.5, 17: 116.0}
    for n, ms in measured.items():
        cost.record(n, ms)
    assert cost.relative(2) == pytest.approx(28.7 / 18.4)  # below a tile: its own measurement
    assert cost.relative(33) - cost.relative(32) > 10.0 / 18.4  # the step, priced for an unseen size
    assert cost.relative(36) < cost.relative(33)
    assert all((best_length(q, 64, cost=cost) + 1) % 4 == 0 for q in (0.7, 0.9, 0.95, 0.98))


def test_verify_cost_counts_time_outside_the_pass() -> None:
    """On a tiny model a pass takes 0.2 ms and a step ~1 ms more (drafting, bookkeeping): what a longer
    batch adds is small against the whole step, so timer noise between passes must not stop drafting."""
    from epyc_agent.inference.cost import VerifyCost
    from epyc_agent.inference.speculative import best_length

    cost = VerifyCost()
    for n, ms in ((1, 0.14), (2, 0.3), (4, 0.4), (5, 0.45)):
        cost.record(n, ms)
    assert best_length(0.7, 4, cost=cost) == 0  # pass times alone: 5 tokens look 3x one, not worth it
    for _ in range(60):
        cost.record_step(1.0)
    assert cost.relative(5) == pytest.approx((0.45 + cost.step_ms) / (0.14 + cost.step_ms))
    assert best_length(0.7, 4, cost=cost) == 4


def test_prompt_lookup_confidence_grows_with_the_match() -> None:
    """A long copied span earns long drafts, a two-token coincidence a cautious one."""
    from epyc_agent.inference.sources.prompt_lookup import SpanSurvival

    prior = SpanSurvival()
    short, long_ = prior.probs(2, 0, 16), prior.probs(100, 0, 16)
    assert short[0] < 0.8 and long_[15] > 0.8
    assert all(a >= b for a, b in zip(short, short[1:], strict=False))
    pl = PromptLookup(k=8, ngram_max=4, ngram_min=2)
    text = [5, 6, 7, 8, 9, 10, 11, 12, 13, 14]
    pl.begin([*text, 1, *text[:6]])  # the copy of `text` has run for 6 tokens
    d = pl.propose(8)
    assert d is not None and d.tokens[:4] == [11, 12, 13, 14]
    assert d.probs == prior.probs(6, 0, 8)


def test_prompt_lookup_span_survives_a_substituted_token() -> None:
    """A copy that changed one token and went on copying keeps its trust; a span that ends does not."""
    from epyc_agent.inference.sources.prompt_lookup import SpanSurvival

    text = list(range(100, 140))
    copied = [*text[:20], 999, *text[21:30]]  # token 20 substituted, then 9 more copied tokens
    pl = PromptLookup(ngram_max=4, ngram_min=2)
    pl.begin([*text, 1, *copied])
    d = pl.propose(8)
    assert d is not None and d.tokens[:4] == text[30:34]
    assert pl._span == (29, 1)  # 9 after the miss + 20 before it, one miss
    pl.begin([*text, 1, 7, 8, 9, *text[25:30]])  # the copy started 5 tokens ago: no resync, span 5
    assert pl.propose(8) is not None and pl._span == (5, 0)
    prior = SpanSurvival()
    assert prior.probs(29, 1, 8)[-1] > prior.probs(9, 0, 8)[-1]


def test_prompt_lookup_learns_how_long_copies_last() -> None:
    """Verified drafts teach how long spans of each length go on; short coincidences and long copies
    are learnt apart, and the table follows the current behaviour."""
    from epyc_agent.inference.sources.prompt_lookup import SpanSurvival

    prior, learnt = SpanSurvival(), SpanSurvival()
    for _ in range(10):
        learnt.observe(2, 0, 3, 0)  # 2-token coincidences break at once
        learnt.observe(40, 0, 31, 31)  # a copy 40 tokens in goes on for 31 more
    assert learnt.probs(2, 0, 1)[0] < 0.5 * prior.probs(2, 0, 1)[0]
    assert learnt.probs(40, 0, 31)[-1] > 0.95 > prior.probs(40, 0, 31)[-1]
    learnt.observe(100, 0, 0, 0)  # nothing verified: nothing learnt
    assert learnt.probs(40, 0, 31)[-1] > 0.95
    for _ in range(40):  # the copies start to break: long drafts lose their trust
        learnt.observe(40, 0, 31, 4)
    assert learnt.probs(40, 0, 31)[-1] < prior.probs(40, 0, 31)[-1]


def test_backoff_pauses_and_recovers() -> None:
    """Repeated zero acceptance pauses drafting for growing periods; a good probe resumes it."""
    b = Backoff()
    pauses, skipped = [], 0
    for _ in range(10):
        while not b.allow():
            skipped += 1
        b.update(8, 0)
        pauses.append(b.pause)
    assert pauses == [0, 0, 1, 2, 4, 8, 16, 32, 64, 64]
    assert skipped == sum(pauses[:-1])
    b.update(8, 8)  # a probe that was fully accepted
    b.skip = 0
    assert b.ewma >= b.threshold and b.pause == 0 and b.allow()


class _Fixed(DraftSource):
    def __init__(self, name: str, tokens: list[int], score: float) -> None:
        super().__init__(adaptive=False)
        self.name, self.tokens, self.score = name, tokens, score

    def propose(self, k: int) -> Draft | None:
        return Draft(self.tokens[:k], self.score, self) if self.tokens else None


def test_stack_order_and_score() -> None:
    """'first' takes the first child with a draft; 'score' the highest score; the child is reported."""
    a, b, c = _Fixed("a", [], 0), _Fixed("b", [1, 2], 0.5), _Fixed("c", [3, 4, 5], 2.0)
    assert Stack([a, b, c]).draft(4).source is b
    assert Stack([a, b, c], select="score").draft(4).source is c
    assert [s.name for s in Stack([a, Stack([b, c])]).sources()] == ["a", "b", "c"]
    with pytest.raises(ValueError):
        Stack([a], select="best")


def test_methods_params_and_errors() -> None:
    """--param strings are coerced to the default's type; unknown names are one-line errors."""
    assert set(METHODS) == {"prompt_lookup", "suffix", "draft_model", "stack"}
    p = resolve_params("suffix", {"suffix_k": "8", "use_global": "false", "min_token_prob": "0.2"})
    assert p["suffix_k"] == 8 and p["use_global"] is False and p["min_token_prob"] == 0.2
    with pytest.raises(EpycAgentError, match="no parameter"):
        resolve_params("suffix", {"bogus": 1})
    with pytest.raises(EpycAgentError, match="not a valid int"):
        resolve_params("prompt_lookup", {"pl_k": "many"})
    with pytest.raises(EpycAgentError, match="unknown speculative method"):
        make_sources("eagle", {})
    with pytest.raises(EpycAgentError, match="needs a draft model"):
        make_sources("draft_model", {})
    (stack,) = make_sources("stack", {"select": "score"})
    assert isinstance(stack, Stack) and stack.select == "score"
    assert [s.name for s in stack.sources()] == ["prompt_lookup", "suffix"]


def test_adapter_shape_dtype_and_feedback() -> None:
    """The LlamaDraftModel adapter returns intc arrays and infers acceptance from the next call."""
    from llama_cpp.llama_speculative import LlamaDraftModel

    from epyc_agent.inference.adapters import SourceDraftModel

    pl = PromptLookup(k=4, adaptive=True)
    dm = SourceDraftModel(pl, k=3)
    assert isinstance(dm, LlamaDraftModel)
    out = dm(np.array([1, 2, 3, 4, 1, 2], dtype=np.intc))
    assert out.dtype == np.intc and out.tolist() == [3, 4, 1]
    out = dm(np.array([1, 2, 3, 4, 1, 2, 9, 8], dtype=np.intc))  # draft rejected at once
    assert pl.backoff.ewma < 1.0
    empty = dm(np.array([7], dtype=np.intc))  # new request
    assert empty.dtype == np.intc and empty.shape == (0,)


def test_oracle_replay_verifies_exactly_the_right_prefix() -> None:
    """The hindsight bound: a verbatim copy is verified in full-length passes, text the source cannot
    predict in one-token passes, and drafts are not verified where a pass costs as much as its tokens."""
    from epyc_agent.inference.replay import oracle_speedup

    text = list(range(100, 200))
    copy_run = ([*text, 1, *text[:5]], text[5:80])  # 75 tokens, every one after the first predictable
    linear = lambda n: 1 + 0.1 * (n - 1)  # noqa: E731
    # 74 tokens to decode: a pass of 1 + 64 (cost 7.4), then one of 1 + 8 for the rest (cost 1.8)
    assert oracle_speedup(PromptLookup(), [copy_run], linear) == pytest.approx(74 / 9.2)
    novel_run = ([*text, 1], list(range(500, 560)))
    assert oracle_speedup(PromptLookup(), [novel_run], linear) == 1.0
    assert oracle_speedup(PromptLookup(), [copy_run], lambda n: float(n)) == 1.0
    both = oracle_speedup(PromptLookup(), [novel_run, copy_run], linear, count_from=1)
    assert both == pytest.approx(74 / 9.2)


DIGITS = frozenset(range(100, 110))  # token ids standing for the digits 0-9 in these tests


def test_number_pointer_takes_the_current_requests_number() -> None:
    """A number the source had copied from after an anchor is replaced by what follows that anchor now."""
    from epyc_agent.inference.sources.numbers import NumberPointer

    # source: "id 1 2 . SQL id = 1 2 AND"; the draft copies "1 2 AND" from its SQL line
    source = [7, 8, 101, 102, 9, 50, 7, 8, 51, 101, 102, 60, -1]
    context = [3, 7, 8, 104, 105, 106, 9, 50, 7, 8, 51]  # "id 4 5 6 . SQL id ="
    ptr = NumberPointer(DIGITS)
    toks, probs = ptr.repoint([101, 102, 60], [0.4, 0.4, 0.3], source, 11, context)
    assert toks == [104, 105, 106, 60]  # the whole current number, then the source's next token
    assert probs == pytest.approx([0.8, 0.8, 0.8, 0.6])  # the pointer's prior, not the source's spread
    ptr.feedback(4, 4)
    assert ptr.accuracy > 0.8
    ptr.repoint([101, 102, 60], [0.4, 0.4, 0.3], source, 11, context)
    before = ptr.accuracy
    ptr.feedback(4, 1)  # its first digit was wrong
    assert ptr.accuracy < before


def test_number_pointer_leaves_what_it_cannot_place() -> None:
    """No earlier occurrence in the source, no anchor in the context, or a run still being written: unchanged."""
    from epyc_agent.inference.sources.numbers import NumberPointer

    ptr = NumberPointer(DIGITS)
    draft, probs = [101, 102, 60], [0.4, 0.4, 0.3]
    fresh = [7, 8, 51, 101, 102, 60, -1]  # the number appears only once in the source
    assert ptr.repoint(draft, probs, fresh, 5, [7, 8, 104, 9]) == (draft, probs)
    source = [7, 8, 101, 102, 9, 51, 101, 102, 60, -1]
    assert ptr.repoint(draft, probs, source, 8, [1, 2, 3]) == (draft, probs)  # anchor absent
    assert ptr.repoint(draft, probs, source, 8, [7, 8, 104]) == (draft, probs)  # "4..." may go on
    assert ptr.repoint([60, 61], [0.5, 0.4], source, 9, [7, 8, 104, 9]) == ([60, 61], [0.5, 0.4])
    ptr.feedback(3, 0)  # nothing was re-pointed: nothing learnt
    assert ptr.accuracy == pytest.approx(0.8)
