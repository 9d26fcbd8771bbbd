"""Named speculative methods (what `track run 1|6|8` and benchmarks ask for) and their parameters."""

from __future__ import annotations

from typing import Any

from epyc_agent.errors import EpycAgentError
from epyc_agent.inference.sources.base import DraftSource

_PL = {"pl_k": 64, "ngram_max": 12, "ngram_min": 2}
_SUFFIX = {
    "suffix_k": 64,
    "max_depth": 64,
    "max_spec_factor": 1.0,
    "max_spec_offset": 0.0,
    "min_token_prob": 0.1,
    "max_cached_tokens": 100_000,
    "use_global": True,
    "repoint_numbers": True,
}
_DRAFT = {"draft_k": 8}
_COMMON = {"adaptive": True}

METHODS: dict[str, dict[str, Any]] = {
    "prompt_lookup": {
        "track": 8,
        "description": "copy the continuation of the latest earlier match of the last n tokens (n-gram index)",
        "params": {**_PL, **_COMMON},
    },
    "suffix": {
        "track": 6,
        "description": "SuffixDecoding: per-request + persistent global index of past responses, "
        "counts, adaptive draft length",
        "params": {**_SUFFIX, **_COMMON},
    },
    "draft_model": {
        "track": 1,
        "description": "a second model with the same tokenizer drafts draft_k tokens greedily",
        "params": {**_DRAFT, **_COMMON},
    },
    "stack": {
        "track": None,
        "description": "prompt lookup, then suffix, then the draft model (if given); select=first (lab order) or score",
        "params": {**_PL, **_SUFFIX, **_DRAFT, **_COMMON, "select": "first"},
    },
}


def _coerce(name: str, value: Any, default: Any) -> Any:
    """Values from `--param k=v` arrive as strings: convert to the default's type."""
    if not isinstance(value, str) or isinstance(default, str):
        return value
    try:
        if isinstance(default, bool):
            low = value.strip().lower()
            if low not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise ValueError(value)
            return low in ("1", "true", "yes", "on")
        return type(default)(value)
    except ValueError:
        raise EpycAgentError(
            f"parameter {name}={value!r} is not a valid {type(default).__name__}", hint=f"e.g. {name}={default}"
        ) from None


def resolve_params(method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Defaults overlaid with `params`, type-checked; unknown methods or keys are user errors."""
    spec = METHODS.get(method)
    if spec is None:
        raise EpycAgentError(f"unknown speculative method {method!r}", hint=f"choose one of {', '.join(METHODS)}")
    defaults: dict[str, Any] = spec["params"]
    out = dict(defaults)
    for key, value in (params or {}).items():
        if key not in defaults:
            raise EpycAgentError(
                f"method {method} has no parameter {key!r}", hint=f"known: {', '.join(sorted(defaults))}"
            )
        out[key] = _coerce(key, value, defaults[key])
    if "select" in out and out["select"] not in ("first", "score"):
        raise EpycAgentError(f"select={out['select']!r} is not valid", hint="use select=first or select=score")
    return out


def make_sources(
    method: str, params: dict[str, Any] | None = None, *, draft_llm: Any = None, store_dir: str | None = None
) -> list[DraftSource]:
    """Build the draft sources of a method, in the order the engine should consult them.

    `store_dir` (e.g. <root>/cache/suffix) makes the suffix method's global index persist across
    runs and sessions; without it the index lives as long as the returned source. "stack" returns
    one `Stack` (carrying `select`) whose children keep their own names for attribution.
    """
    from epyc_agent.inference.sources.draft_model import DraftModelSource
    from epyc_agent.inference.sources.prompt_lookup import PromptLookup
    from epyc_agent.inference.sources.suffix import SuffixDecoding

    p = resolve_params(method, params)
    adaptive = p["adaptive"]

    def pl() -> DraftSource:
        return PromptLookup(k=p["pl_k"], ngram_max=p["ngram_max"], ngram_min=p["ngram_min"], adaptive=adaptive)

    def suffix() -> DraftSource:
        return SuffixDecoding(
            k=p["suffix_k"],
            max_depth=p["max_depth"],
            max_spec_factor=p["max_spec_factor"],
            max_spec_offset=p["max_spec_offset"],
            min_token_prob=p["min_token_prob"],
            max_cached_tokens=p["max_cached_tokens"],
            use_global=p["use_global"],
            repoint_numbers=p["repoint_numbers"],
            store_dir=store_dir,
            adaptive=adaptive,
        )

    def draft() -> DraftSource:
        if draft_llm is None:
            raise EpycAgentError(
                "method draft_model needs a draft model",
                hint="pass a draft model with the same tokenizer as the target",
            )
        return DraftModelSource(draft_llm, k=p["draft_k"], adaptive=adaptive)

    if method == "prompt_lookup":
        return [pl()]
    if method == "suffix":
        return [suffix()]
    if method == "draft_model":
        return [draft()]
    from epyc_agent.inference.sources.stack import Stack

    children = [pl(), suffix(), *([draft()] if draft_llm is not None else [])]
    return [Stack(children, select=p["select"])]
