"""Tiny but valid GGUF files written with the gguf package's own writer, for the models tests
and benchmarks/bench_models.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def tokens(n: int, prefix: str = "tok") -> list[str]:
    """A vocabulary of n distinct, realistic-looking token strings."""
    return ["<unk>", "<s>", "</s>", "<pad>", "<mask>"][: min(n, 5)] + [f"{prefix}{i:x}" for i in range(5, n)]


def write_gguf(
    path: str | Path,
    arch: str = "llama",
    *,
    name: str | None = None,
    vocab: list[str] | None = None,
    tokenizer_model: str = "llama",
    pre: str = "default",
    bos: int = 1,
    eos: int = 2,
    expert_count: int | None = None,
    expert_used_count: int | None = None,
    ssm: bool = False,
    file_type: int = 15,
    n_tensors: int = 2,
    split_max_tensors: int = 0,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a GGUF with the given metadata and `n_tensors` small F32 tensors; returns the path
    (of the first shard when split)."""
    import numpy as np
    from gguf import GGUFWriter

    path = Path(path)
    w = GGUFWriter(path, arch, split_max_tensors=split_max_tensors)
    w.add_name(name or path.stem)
    w.add_context_length(4096)
    w.add_block_count(2)
    w.add_embedding_length(8)
    w.add_file_type(file_type)
    w.add_tokenizer_model(tokenizer_model)
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens(256) if vocab is None else vocab)
    w.add_bos_token_id(bos)
    w.add_eos_token_id(eos)
    if expert_count is not None:
        w.add_expert_count(expert_count)
    if expert_used_count is not None:
        w.add_expert_used_count(expert_used_count)
    if ssm:
        w.add_ssm_state_size(16)
        w.add_ssm_conv_kernel(4)
    for k, v in (extra or {}).items():
        if isinstance(v, str):
            w.add_string(k, v)
        else:
            w.add_uint32(k, v)
    for i in range(n_tensors):
        w.add_tensor(f"blk.{i}.weight", np.full((4, 8), i, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    if split_max_tensors:
        n = -(-n_tensors // split_max_tensors)
        return path.with_name(f"{path.stem}-00001-of-{n:05d}.gguf")
    return path
