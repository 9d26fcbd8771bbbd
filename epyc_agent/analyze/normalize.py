"""Normalise commands and results before comparing them.

Two runs of "the same command" differ in whitespace and in volatile parts: PIDs,
ports and epoch times (numbers of 4+ digits), timestamps, mktemp names, hex
addresses. Those become placeholders. Small numbers stay: `--draft-max 8` and
`--draft-max 16` are different experiments, not a loop.
"""

from __future__ import annotations

import re

_RULES = [
    (re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d(?::\d\d(?:[.,]\d+)?)?(?:Z|[+-]\d\d:?\d\d)?"), "<TS>"),
    (re.compile(r"\b\d{8}[_T-]?\d{6}\b"), "<TS>"),
    (re.compile(r"\b(tmp|temp)([._-]?)[A-Za-z0-9]{6,}\b"), r"\1\2<TMP>"),
    (re.compile(r"\b0x[0-9a-fA-F]+\b"), "<HEX>"),
    (re.compile(r"\b\d{4,}\b"), "<N>"),
    (re.compile(r"\s+"), " "),
]
_CACHE: dict[str, str] = {}
_CACHE_MAX = 50_000


def normalize(text: str, limit: int = 400) -> str:
    """A comparable form of a command or a result summary (cached: agents repeat themselves)."""
    hit = _CACHE.get(text)
    if hit is not None:
        return hit
    s = text[:limit]
    for rx, repl in _RULES:
        s = rx.sub(repl, s)
    s = s.strip()
    if len(_CACHE) >= _CACHE_MAX:
        _CACHE.clear()
    _CACHE[text] = s
    return s


_VOLATILE = re.compile(r"\d{4}-\d\d-\d\d[T ][\d:.,]+(?:Z|[+-]\d\d:?\d\d)?|\b0x[0-9a-fA-F]+\b|\d{4,}")


def result_text(text: str, limit: int = 200) -> str:
    """A cheap comparable form of a result summary (one pass; summaries rarely repeat exactly)."""
    return " ".join(_VOLATILE.sub("#", text[:limit]).split())
