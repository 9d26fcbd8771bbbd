"""Several sources as one: the lab's order (first source with a draft wins) or the highest score."""

from __future__ import annotations

from typing import Any

from epyc_agent.inference.sources.base import Draft, DraftSource

SELECT_MODES = ("first", "score")


class Stack(DraftSource):
    """Children are consulted in order; each accepted token stays attributed to the child that drafted it.

    "first" stops at the first child with a draft, so an expensive draft model runs only when the
    cheap lookups found nothing; "score" asks every child and keeps the highest expected gain.
    The stack itself never backs off: each child has its own back-off.
    """

    name = "stack"

    def __init__(self, children: list[DraftSource], *, select: str = "first") -> None:
        super().__init__(adaptive=False)
        if select not in SELECT_MODES:
            raise ValueError(f"select must be one of {', '.join(SELECT_MODES)}, got {select!r}")
        if not children:
            raise ValueError("a stack needs at least one source")
        self.children = children
        self.select = select

    def attach(self, llm: Any) -> None:
        for c in self.children:
            c.attach(llm)

    def begin(self, prompt: list[int]) -> None:
        for c in self.children:
            c.begin(prompt)

    def extend(self, tokens: list[int]) -> None:
        for c in self.children:
            c.extend(tokens)

    def end(self, output: list[int]) -> None:
        for c in self.children:
            c.end(output)

    def draft(self, k: int) -> Draft | None:
        best: Draft | None = None
        for c in self.children:
            d = c.draft(k)
            if d is None:
                continue
            if self.select == "first":
                return d
            if best is None or d.score > best.score:
                best = d
        return best

    def propose(self, k: int) -> Draft | None:
        return self.draft(k)

    def feedback(self, drafted: int, accepted: int) -> None:
        """Feedback goes to the child named in the Draft; the engine calls it there."""

    def sources(self) -> list[DraftSource]:
        return [leaf for c in self.children for leaf in c.sources()]
