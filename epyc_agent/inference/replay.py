"""Replay a draft source over text already generated: the speedup a perfect draft-length policy reaches.

The engine has to guess how much of each draft to verify. Replayed with hindsight over the output a
run produced, the same source shows what an oracle for draft length would have reached with these
drafts and this batch cost. That bound tells "the drafts are wrong" apart from "the engine sized
them badly". No model runs here, only the source and the cost curve.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from epyc_agent.inference.sources.base import DraftSource

Run = tuple[list[int], list[int]]  # (prompt, output) of one request


def oracle_speedup(
    source: DraftSource,
    runs: Sequence[Run],
    relative: Callable[[int], float],
    *,
    count_from: int = 0,
    max_draft: int = 64,
) -> float:
    """Decode speedup over one-token passes if every pass verified the best prefix of its draft.

    `runs` are replayed in order (a suffix source learns from earlier outputs); only runs from
    `count_from` on are counted, as the benchmark excludes warm-up requests. `relative(n)` is the
    cost of a pass of n tokens relative to one (`VerifyCost.relative`). Each pass verifies the
    prefix of the draft that is right and whose length gives the most tokens per unit of cost.
    """
    plain = spent = 0.0
    for i, (prompt, output) in enumerate(runs):
        cost = _replay(source, prompt, output, relative, max_draft)
        if i >= count_from:
            plain += len(output) - 1
            spent += cost
    return plain / spent if spent else 1.0


def _replay(
    source: DraftSource, prompt: list[int], output: list[int], relative: Callable[[int], float], cap: int
) -> float:
    """Relative cost of decoding `output` after its first token with hindsight-sized drafts."""
    source.begin(prompt)
    source.extend(output[:1])
    pos, spent = 1, 0.0
    while pos < len(output):
        room = min(cap, len(output) - pos - 1)
        draft = source.propose(room) if room > 0 else None
        right = 0
        if draft is not None:
            tokens = draft.tokens[:room]
            while right < len(tokens) and tokens[right] == output[pos + right]:
                right += 1
        n = max(range(right + 1), key=lambda m: (m + 1) / relative(m + 1))
        spent += relative(n + 1)
        emitted = output[pos : pos + n + 1]
        source.extend(emitted)
        pos += len(emitted)
    source.end(output)
    return spent
