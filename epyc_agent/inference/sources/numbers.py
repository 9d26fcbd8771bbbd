"""Re-point the numbers a draft copies: a past response's ids are wrong, the current request's are right.

Agentic requests repeat a template with different values: "rows of tickets for user_id 1296" is
answered with "WHERE user_id = 1296 ... LIMIT 5", where both numbers come from the request. A
draft copied from an earlier response carries that response's numbers, so every number is a
rejected pass (gemma's tokenizer spells numbers digit by digit, and on the repeated SQL workload
digits are a third of where drafts break). But in the earlier response that number was itself a
copy: it appeared before, after some anchor tokens ("user_id "). The same anchor in the current
context is followed by the current request's number, which replaces the stale one in the draft.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

ANCHOR = 2  # tokens before a number's earlier occurrence that locate it ("_id", " ")
REACH = 256  # how far back (tokens) a number's earlier occurrence and the anchor are looked for

_DIGITS: weakref.WeakKeyDictionary[Any, frozenset[int]] = weakref.WeakKeyDictionary()


def digit_tokens(llm: Any) -> frozenset[int]:
    """Ids of the tokens spelled only with ASCII digits (scanned once per loaded model, ~0.15 s)."""
    found = _DIGITS.get(llm)
    if found is None:
        model = llm._model
        found = _DIGITS[llm] = frozenset(
            t for t in range(model.n_vocab()) if (s := model.token_get_text(t)).isascii() and s.isdigit()
        )
    return found


class NumberPointer:
    """Replaces digit runs in a draft by the run that follows the same anchor in the current context.

    How often a re-pointed number turns out right is learnt from verification (decayed counts), and
    it stands in for the source's own probability at the number's first digit, so the engine sizes
    drafts that run through a number by the pointer's record rather than by how the source's past
    numbers were spread.
    """

    def __init__(self, digits: frozenset[int]) -> None:
        self.digits = digits
        self.hits, self.trials = 4.0, 5.0  # prior: right 4 times in 5
        self._runs: list[tuple[int, int]] = []  # re-pointed spans of the last draft

    @property
    def accuracy(self) -> float:
        return self.hits / self.trials

    def repoint(
        self, tokens: list[int], probs: list[float], source: Sequence[int], end: int, context: list[int]
    ) -> tuple[list[int], list[float]]:
        """The draft with its numbers re-pointed, and its path probabilities adjusted to match.

        `tokens` were copied from `source` (-1 separates sequences there) ending at position `end`;
        `context` is the current request's prompt and output so far.
        """
        digits = self.digits
        self._runs = []
        if not digits or not any(t in digits for t in tokens):
            return tokens, probs
        factors = [probs[0], *(b / a if a else 0.0 for a, b in zip(probs, probs[1:], strict=False))]
        start = end - len(tokens) + 1
        out: list[int] = []
        out_f: list[float] = []
        i = 0
        while i < len(tokens):
            if tokens[i] not in digits:
                out.append(tokens[i])
                out_f.append(factors[i])
                i += 1
                continue
            j = i
            while j < len(tokens) and tokens[j] in digits:
                j += 1
            current = self._current(source, start + i, [*context[-REACH:], *out])
            if current is None:
                out += tokens[i:j]
                out_f += factors[i:j]
            else:
                self._runs.append((len(out), len(out) + len(current)))
                out += current
                out_f += [self.accuracy] + [1.0] * (len(current) - 1)
            i = j
        p, new_probs = 1.0, []
        for f in out_f:
            p *= f
            new_probs.append(p)
        return out, new_probs

    def _current(self, source: Sequence[int], pos: int, context: list[int]) -> list[int] | None:
        """The number the anchor of the source's number at `pos` is followed by in `context`."""
        digits = self.digits
        end = pos
        while end < len(source) and source[end] in digits:
            end += 1
        number = [int(t) for t in source[pos:end]]
        n = len(number)
        lo = pos
        while lo > 0 and source[lo - 1] >= 0 and pos - lo < REACH:
            lo -= 1
        for r in range(pos - n, lo + ANCHOR - 1, -1):  # the number's latest earlier occurrence
            if (
                source[r] == number[0]
                and [int(t) for t in source[r : r + n]] == number
                and source[r - 1] not in digits
                and source[r + n] not in digits
            ):
                anchor = [int(t) for t in source[r - ANCHOR : r]]
                return self._after(anchor, context)
        return None

    def _after(self, anchor: list[int], context: list[int]) -> list[int] | None:
        """The complete digit run right after the latest occurrence of `anchor` in `context`."""
        digits = self.digits
        size = len(context)
        for i in range(size - ANCHOR - 1, max(-1, size - REACH), -1):
            if context[i + ANCHOR] in digits and context[i : i + ANCHOR] == anchor:
                j = i + ANCHOR
                while j < size and context[j] in digits:
                    j += 1
                if j < size:  # a run still being written may not be complete
                    return context[i + ANCHOR : j]
        return None

    def feedback(self, drafted: int, accepted: int) -> None:
        """Score the re-pointed numbers that verification reached (the first `drafted` tokens)."""
        for a, b in self._runs:
            if b > drafted or accepted < a:
                continue  # cut off, or an earlier token already failed: says nothing about the number
            self.hits = 0.9 * self.hits + (accepted >= b)
            self.trials = 0.9 * self.trials + 1.0
        self._runs = []
