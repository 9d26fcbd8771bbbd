"""Loading GGUF models for the engine: explicit threads, no logits_all, quiet."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import llama_cpp


def default_threads() -> int:
    """Cores this process may run on (affinity-aware), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def load_model(
    path: str | os.PathLike[str],
    *,
    n_ctx: int = 4096,
    n_threads: int | None = None,
    n_batch: int = 512,
    kv_overrides: dict[str, Any] | None = None,
    seed: int = 0,
) -> llama_cpp.Llama:
    """A `Llama` for the low-level engine.

    `logits_all=False` keeps time to first token that of a plain run: the engine asks for logits
    only at the positions it verifies. Both thread counts are set explicitly because
    llama-cpp-python's defaults (half the cores for decode, all for batches) distort comparisons.
    """
    import llama_cpp

    from epyc_agent.errors import EpycAgentError

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise EpycAgentError(f"model file not found: {path}", hint="pass the path of a .gguf file")
    threads = n_threads or default_threads()
    try:
        return llama_cpp.Llama(
            model_path=path,
            n_ctx=n_ctx,
            n_batch=n_batch,
            n_ubatch=n_batch,
            n_threads=threads,
            n_threads_batch=threads,
            kv_overrides=kv_overrides,
            seed=seed,
            logits_all=False,
            verbose=False,
        )
    except ValueError as exc:  # llama-cpp-python reports load failures as ValueError
        raise EpycAgentError(
            f"cannot load model {path}: {exc}", hint="check that the file is a complete GGUF model"
        ) from exc


def system_info() -> str:
    """llama.cpp's build/CPU feature string (AVX2, etc.), for benchmark and track reports."""
    import llama_cpp

    return llama_cpp.llama_print_system_info().decode("utf-8", errors="replace").strip()


def tokenizer_fingerprint(llm: llama_cpp.Llama) -> str:
    """A short hash of the vocabulary: equal fingerprints mean token ids are interchangeable.

    Samples ~1,000 evenly spaced token pieces plus the vocabulary size and special tokens, which
    separates real tokenizers while costing about a millisecond.
    """
    import hashlib

    model = llm._model
    n_vocab = model.n_vocab()
    h = hashlib.sha256(f"{n_vocab}:{model.token_bos()}:{model.token_eos()}".encode())
    for tok in range(0, n_vocab, max(1, n_vocab // 997)):
        h.update(model.token_get_text(tok).encode("utf-8", errors="replace"))
        h.update(b"\0")
    return h.hexdigest()[:16]


def tokenizer_compat(target: llama_cpp.Llama, draft: llama_cpp.Llama) -> str | None:
    """None when `draft` can propose tokens for `target`, else the reason it cannot."""
    nt, nd = target.n_vocab(), draft.n_vocab()
    if nt != nd:
        return f"vocabulary sizes differ ({nt} vs {nd})"
    if tokenizer_fingerprint(target) != tokenizer_fingerprint(draft):
        return "token texts differ (different tokenizers)"
    return None
