"""A tiny but real mixture-of-experts GGUF (llama architecture, 8 experts, 4 used, random weights,
byte-fallback SentencePiece vocabulary) that llama.cpp loads and runs: track 2 end to end in seconds."""

from __future__ import annotations

from pathlib import Path


def write_tiny_moe(
    path: str | Path,
    n_expert: int = 8,
    n_used: int = 4,
    n_embd: int = 64,
    n_head: int = 4,
    n_layer: int = 2,
    n_ff: int = 64,
    seed: int = 0,
) -> Path:
    import numpy as np
    from gguf import GGUFWriter, TokenType

    rng = np.random.default_rng(seed)
    toks = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [TokenType.UNKNOWN, TokenType.CONTROL, TokenType.CONTROL] + [TokenType.BYTE] * 256
    words = ["\u2581"] + [chr(c) for c in range(97, 123)] + ["\u2581" + chr(c) for c in range(97, 123)]
    toks += words
    types += [TokenType.NORMAL] * len(words)
    scores = [0.0] * (len(toks) - len(words)) + [-float(i) for i in range(len(words))]
    w = GGUFWriter(str(path), "llama")
    w.add_name("tiny-moe")
    w.add_context_length(512)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_rope_dimension_count(n_embd // n_head)
    w.add_expert_count(n_expert)
    w.add_expert_used_count(n_used)
    w.add_file_type(0)
    w.add_tokenizer_model("llama")
    w.add_token_list(toks)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)

    def rand(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.5).astype(np.float32)

    ones = np.ones(n_embd, np.float32)
    w.add_tensor("token_embd.weight", rand(len(toks), n_embd))
    w.add_tensor("output_norm.weight", ones)
    w.add_tensor("output.weight", rand(len(toks), n_embd))
    for i in range(n_layer):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", ones)
        for t in ("attn_q", "attn_k", "attn_v", "attn_output"):
            w.add_tensor(f"{p}{t}.weight", rand(n_embd, n_embd))
        w.add_tensor(p + "ffn_norm.weight", ones)
        w.add_tensor(p + "ffn_gate_inp.weight", rand(n_expert, n_embd))
        w.add_tensor(p + "ffn_gate_exps.weight", rand(n_expert, n_ff, n_embd))
        w.add_tensor(p + "ffn_up_exps.weight", rand(n_expert, n_ff, n_embd))
        w.add_tensor(p + "ffn_down_exps.weight", rand(n_expert, n_embd, n_ff))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return Path(path)
