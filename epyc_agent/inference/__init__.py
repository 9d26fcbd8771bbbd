"""Greedy inference on llama-cpp-python's low-level API: a plain baseline and a speculative engine.

Nothing heavy is imported here; the public names resolve lazily so `import epyc_agent.inference`
stays cheap for the CLI.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "load_model": "model",
    "system_info": "model",
    "tokenizer_compat": "model",
    "GenerationResult": "result",
    "generate_plain": "generate",
    "first_divergence": "generate",
    "generate_speculative": "speculative",
    "make_sources": "methods",
    "METHODS": "methods",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
