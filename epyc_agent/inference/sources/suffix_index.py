"""A token index answering SuffixDecoding's queries, numpy-backed for ~0.1 ms lookups.

A depth-limited suffix trie with counts is what SuffixDecoding describes; in Python its nodes
cost hundreds of bytes each (tens of millions of bytes per 100k tokens). Every trie query here is
instead answered from the occurrence positions of the last context token: the set of positions
whose preceding p tokens equal the context's last p is the trie node at depth p, its size is the
node's count, and the distribution of the tokens following those positions is the node's
children with their counts. Matching and walking shrink that set with vectorised comparisons.
Sequences are separated by -1, which never matches, so nothing spans two responses.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

SEP = -1
_SMALL = 48  # below this many candidates, counting in Python beats np.unique


class SuffixIndex:
    """Tokens of one or more sequences plus, per token id, where it occurs."""

    def __init__(self) -> None:
        import numpy as np

        self._np = np
        self.n = 0
        self.arr: Any = np.full(1024, SEP, dtype=np.int32)
        self.positions: dict[int, list[int]] = {}
        self._cache: dict[int, Any] = {}

    def append(self, tokens: list[int]) -> None:
        """Add tokens at the end (SEP ends a sequence); amortised O(1) per token."""
        np = self._np
        need = self.n + len(tokens) + 1  # always keep one trailing SEP: arr[n] == SEP
        if need > len(self.arr):
            grown = np.full(max(need, 2 * len(self.arr)), SEP, dtype=np.int32)
            grown[: self.n] = self.arr[: self.n]
            self.arr = grown
        pos = self.positions
        start = self.n
        self.arr[start : start + len(tokens)] = tokens
        for i, tok in enumerate(tokens, start):
            if tok >= 0:
                lst = pos.get(tok)
                if lst is None:
                    pos[tok] = [i]
                else:
                    lst.append(i)
        self.n = start + len(tokens)

    def _occurrences(self, tok: int) -> Any:
        """Positions of `tok` as an array, extended incrementally from the cached one."""
        lst = self.positions.get(tok)
        if not lst:
            return None
        cached = self._cache.get(tok)
        if cached is None or len(cached) != len(lst):
            np = self._np
            if cached is None:
                cached = np.array(lst, dtype=np.int64)
            else:
                cached = np.concatenate([cached, np.array(lst[len(cached) :], dtype=np.int64)])
            self._cache[tok] = cached
        return cached

    def match(self, context: list[int], max_depth: int, max_candidates: int) -> list[tuple[int, Any]]:
        """Trie nodes matched by the context's tail: [(depth p, positions of its last token)].

        Only depths where the node's count changes are listed (deeper with the same occurrences
        is the same distribution), longest first. Occurrences without a following token are
        dropped; at most the `max_candidates` most recent are kept, which bounds the cost on very
        frequent tokens and favours recent responses.
        """
        if not context:
            return []
        occ = self._occurrences(context[-1])
        if occ is None:
            return []
        arr = self.arr
        occ = occ[arr[occ + 1] != SEP]
        if len(occ) > max_candidates:
            occ = occ[-max_candidates:]
        if not len(occ):
            return []
        levels = [(1, occ)]
        depth = min(max_depth, len(context))
        p = 1
        while p < depth:
            # arr[-k] lands in the SEP padding at the end, so no bounds mask is needed
            keep = occ[arr[occ - p] == context[-1 - p]]
            if not len(keep):
                break
            p += 1
            if len(keep) == len(occ):
                levels[-1] = (p, keep)
            else:
                levels.append((p, keep))
            occ = keep
        levels.reverse()
        return levels

    def walk(self, occ: Any, limit: int, min_prob: float) -> tuple[list[int], list[float], Any]:
        """Follow the most frequent child from a node while the path probability >= min_prob.

        Returns (tokens, path probability after each token, positions of the last drafted token);
        the draft's score is the sum of the path probabilities.
        """
        np = self._np
        arr = self.arr
        out: list[int] = []
        probs: list[float] = []
        prob = 1.0
        cur = occ + 1
        while len(out) < limit and len(cur):
            nxt = arr[cur]
            if len(cur) <= _SMALL:
                counts = Counter(nxt.tolist())
                counts.pop(SEP, None)
                if not counts:
                    break
                tok, cnt = counts.most_common(1)[0]
            else:
                vals, cnts = np.unique(nxt, return_counts=True)
                if vals[0] == SEP:
                    vals, cnts = vals[1:], cnts[1:]
                if not len(vals):
                    break
                j = int(cnts.argmax())
                tok, cnt = int(vals[j]), int(cnts[j])
            prob *= cnt / len(cur)
            if prob < min_prob:
                break
            out.append(tok)
            probs.append(prob)
            cur = cur[nxt == tok] + 1
        return out, probs, cur - 1

    def speculate(
        self,
        context: list[int],
        *,
        k: int,
        max_depth: int,
        max_spec_factor: float,
        max_spec_offset: float,
        min_prob: float,
        max_candidates: int = 4096,
        max_levels: int = 4,
    ) -> tuple[list[int], list[float], Any]:
        """The best-scoring draft over the matched depths (longer matches earn longer drafts)."""
        best: tuple[list[int], list[float], Any] = ([], [], None)
        for p, occ in self.match(context, max_depth, max_candidates)[:max_levels]:
            limit = min(k, int(max_spec_factor * p + max_spec_offset))
            if limit <= 0:
                continue
            cand = self.walk(occ, limit, min_prob)
            if sum(cand[1]) > sum(best[1]):
                best = cand
        return best
