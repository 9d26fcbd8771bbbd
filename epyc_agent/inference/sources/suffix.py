"""SuffixDecoding (track 6): a per-request index over prompt + output and a global one over past responses.

The global cache is the lab's "suffix trees from session outputs": responses persist under
`store_dir` (one JSON file per tokenizer, written atomically, merged with concurrent writers),
capped at `max_cached_tokens` with least-recently-used responses evicted first.
"""

from __future__ import annotations

import bisect
import hashlib
import os
from typing import Any

from epyc_agent.inference.sources.base import Draft, DraftSource
from epyc_agent.inference.sources.numbers import NumberPointer, digit_tokens
from epyc_agent.inference.sources.suffix_index import SEP, SuffixIndex

STORE_VERSION = 1


class GlobalSuffixCache:
    """Past responses in one `SuffixIndex`, with LRU eviction and optional persistence."""

    def __init__(self, path: str | None = None, *, max_tokens: int = 100_000) -> None:
        self.path = path
        self.max_tokens = max_tokens
        self.responses: dict[str, dict[str, Any]] = {}  # id -> {"tokens", "used"}, insertion order
        self.clock = 0
        self._stamp: tuple[float, int] | None = None
        self._rebuild()
        if path is not None:
            self._merge(self._read())

    @property
    def n_tokens(self) -> int:
        return sum(len(r["tokens"]) + len(r.get("lead", ())) for r in self.responses.values())

    def _rebuild(self) -> None:
        self.index = SuffixIndex()
        self._ids: list[str] = []
        self._starts: list[int] = []
        for rid, rec in self.responses.items():
            self._append_index(rid, rec)

    def _append_index(self, rid: str, rec: dict[str, Any]) -> None:
        self._ids.append(rid)
        self._starts.append(self.index.n)
        self.index.append([*rec.get("lead", ()), *rec["tokens"], SEP])

    def add(self, tokens: list[int], lead: list[int] | None = None) -> None:
        """Record a response; identical responses are kept (their counts are the signal).

        `lead` is the end of the prompt that preceded it: indexed in front of the response, it lets
        the first tokens of the next similar request be drafted (a response-only index has nothing
        matching a context that still ends in the prompt).
        """
        if not tokens:
            return
        self.clock += 1
        rid = hashlib.sha1(f"{os.getpid()}:{self.clock}:{os.urandom(8).hex()}".encode()).hexdigest()[:16]
        rec = {"tokens": list(tokens), "lead": list(lead or ()), "used": self.clock}
        self.responses[rid] = rec
        self._append_index(rid, rec)
        self._evict()

    def touch(self, positions: Any) -> None:
        """Mark the responses holding these index positions as just used."""
        if positions is None or not len(positions):
            return
        self.clock += 1
        for pos in set(positions[-8:].tolist()):
            rid = self._ids[bisect.bisect_right(self._starts, pos) - 1]
            rec = self.responses.get(rid)
            if rec is not None:
                rec["used"] = self.clock

    def _evict(self) -> None:
        """Drop least-recently-used responses down to 90% of the cap (so rebuilds are rare)."""
        total = self.n_tokens
        if total <= self.max_tokens:
            return
        goal = int(self.max_tokens * 0.9)
        for rid, rec in sorted(self.responses.items(), key=lambda kv: kv[1]["used"]):
            if total <= goal:
                break
            total -= len(rec["tokens"]) + len(rec.get("lead", ()))
            del self.responses[rid]
        self._rebuild()

    def _read(self) -> dict[str, Any]:
        import orjson

        if self.path is None or not os.path.exists(self.path):
            return {}
        try:
            st = os.stat(self.path)
            with open(self.path, "rb") as f:
                data = orjson.loads(f.read())
            self._stamp = (st.st_mtime, st.st_size)
        except (OSError, orjson.JSONDecodeError):
            return {}  # a damaged cache is only lost speed: start afresh, the next save replaces it
        return data if isinstance(data, dict) and data.get("version") == STORE_VERSION else {}

    def _merge(self, data: dict[str, Any]) -> None:
        added = False
        for rid, rec in (data.get("responses") or {}).items():
            if rid not in self.responses and isinstance(rec, dict) and isinstance(rec.get("tokens"), list):
                self.responses[rid] = {
                    "tokens": [int(t) for t in rec["tokens"]],
                    "lead": [int(t) for t in rec.get("lead") or ()],
                    "used": int(rec.get("used", 0)),
                }
                added = True
        self.clock = max(self.clock, int(data.get("clock", 0)))
        if added:
            order = sorted(self.responses.items(), key=lambda kv: kv[1]["used"])
            self.responses = dict(order)
            self._rebuild()
            self._evict()

    def save(self) -> None:
        """Merge in what other processes saved meanwhile, then write atomically (temp + rename)."""
        import orjson

        if self.path is None:
            return
        try:
            st = os.stat(self.path)
            if self._stamp != (st.st_mtime, st.st_size):
                self._merge(self._read())
        except FileNotFoundError:
            pass
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        tmp = f"{self.path}.{os.getpid()}.{os.urandom(3).hex()}.tmp"
        payload = {"version": STORE_VERSION, "clock": self.clock, "responses": self.responses}
        try:
            with open(tmp, "wb") as f:
                f.write(orjson.dumps(payload))
            os.replace(tmp, self.path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        st = os.stat(self.path)
        self._stamp = (st.st_mtime, st.st_size)


class SuffixDecoding(DraftSource):
    """Draft from the better of the per-request and the global index (score = sum of path probs)."""

    name = "suffix"

    def __init__(
        self,
        *,
        k: int = 64,
        max_depth: int = 64,
        max_spec_factor: float = 1.0,
        max_spec_offset: float = 0.0,
        min_token_prob: float = 0.1,
        max_cached_tokens: int = 100_000,
        use_global: bool = True,
        repoint_numbers: bool = True,
        store_dir: str | None = None,
        adaptive: bool = True,
    ) -> None:
        super().__init__(adaptive=adaptive)
        self.k = k
        self.opts = {
            "max_depth": max_depth,
            "max_spec_factor": max_spec_factor,
            "max_spec_offset": max_spec_offset,
            "min_prob": min_token_prob,
        }
        self.max_cached_tokens = max_cached_tokens
        self.use_global = use_global
        self.store_dir = store_dir
        # in memory until attach() learns the tokenizer (and, with store_dir, opens its file)
        self.global_cache = GlobalSuffixCache(None, max_tokens=max_cached_tokens) if use_global else None
        self._fingerprint: str | None = None
        self.local = SuffixIndex()
        self.context: list[int] = []
        self.lead_tokens = max_depth
        self.lead: list[int] = []
        self._last_global: Any = None
        self.repoint_numbers = repoint_numbers
        self.numbers: NumberPointer | None = None

    def attach(self, llm: Any) -> None:
        """Open the global cache for this tokenizer (token ids mean nothing across tokenizers)."""
        if self.repoint_numbers:
            digits = digit_tokens(llm)
            if self.numbers is None or self.numbers.digits != digits:
                self.numbers = NumberPointer(digits)
        if not self.use_global:
            return
        from epyc_agent.inference.model import tokenizer_fingerprint

        fp = tokenizer_fingerprint(llm)
        if fp != self._fingerprint and (self._fingerprint is not None or self.store_dir):
            path = os.path.join(self.store_dir, f"global-{fp}.json") if self.store_dir else None
            self.global_cache = GlobalSuffixCache(path, max_tokens=self.max_cached_tokens)
        self._fingerprint = fp

    def begin(self, prompt: list[int]) -> None:
        super().begin(prompt)
        self.local = SuffixIndex()
        self.context = []
        self.lead = list(prompt[-self.lead_tokens :])
        self.extend(prompt)

    def extend(self, tokens: list[int]) -> None:
        self.context.extend(tokens)
        self.local.append(tokens)

    def propose(self, k: int) -> Draft | None:
        k = min(k, self.k)
        tail = self.context[-self.opts["max_depth"] :]  # type: ignore[index]
        index = self.local
        toks, probs, ends = index.speculate(tail, k=k, **self.opts)
        self._last_global = None
        if self.global_cache is not None:
            gtoks, gprobs, gpos = self.global_cache.index.speculate(tail, k=k, **self.opts)
            if sum(gprobs) > sum(probs):
                index, toks, probs, ends = self.global_cache.index, gtoks, gprobs, gpos
                self._last_global = gpos
        if not toks:
            return None
        if self.numbers is not None:
            toks, probs = self.numbers.repoint(toks, probs, index.arr, int(ends.max()), self.context)
            toks, probs = toks[:k], probs[:k]
        # counts from a handful of past responses are overconfident: recent acceptance caps them
        q, term = self.token_rate(), 1.0
        capped = []
        for p in probs:
            term *= q
            capped.append(min(p, term))
        return Draft(toks, sum(capped), self, capped)

    def feedback(self, drafted: int, accepted: int) -> None:
        super().feedback(drafted, accepted)
        if self.numbers is not None:
            self.numbers.feedback(drafted, accepted)
        if accepted and self._last_global is not None and self.global_cache is not None:
            self.global_cache.touch(self._last_global)

    def end(self, output: list[int]) -> None:
        if self.global_cache is not None:
            self.global_cache.add(output, self.lead)
            self.global_cache.save()
