"""The header-only GGUF parser: values match the gguf package's own reader, the fingerprint is
the token strings in order, bad files get a reason, and the real model's data is never read."""

from __future__ import annotations

import hashlib
import os
import struct
from pathlib import Path

import pytest
from gguf_factory import tokens, write_gguf

from epyc_agent.models.gguf_header import GGUFError, quantization_name, read_header, tail_hash


def _raw_tokens(vocab: list[str]) -> bytes:
    return b"".join(struct.pack("<Q", len(t.encode())) + t.encode() for t in vocab)


def test_values_match_the_gguf_reader(tmp_path: Path) -> None:
    """Every scalar key reads as gguf.GGUFReader reads it, with its type."""
    from gguf import GGUFReader, GGUFValueType

    p = write_gguf(
        tmp_path / "m.gguf",
        "qwen3moe",
        vocab=tokens(300),
        expert_count=8,
        expert_used_count=2,
        extra={"general.size_label": "30B-A3B"},
    )
    ours = read_header(p)["kv"]
    ref = GGUFReader(p)
    scalars = {
        k: f.contents()
        for k, f in ref.fields.items()
        if not k.startswith("GGUF.") and f.types[0] != GGUFValueType.ARRAY
    }
    assert {k: ours[k] for k in scalars} == scalars
    assert ours["qwen3moe.expert_count"] == 8 and isinstance(ours["qwen3moe.expert_count"], int)
    assert ours["general.size_label"] == "30B-A3B"


def _vocab_hash(vocab: list[str]) -> str:
    return hashlib.sha256(_raw_tokens(vocab[:5]) + hashlib.sha256(_raw_tokens(vocab[5:])).digest()).hexdigest()


def test_vocab_fingerprint_is_the_tokens_in_order(tmp_path: Path) -> None:
    """vocab_hash covers every length-prefixed token string in order; tail hashes cover ids 5..m."""
    vocab = tokens(1000)
    h = read_header(write_gguf(tmp_path / "m.gguf", vocab=vocab))
    assert h["vocab_size"] == 1000
    assert h["vocab_hash"] == _vocab_hash(vocab)
    swapped = vocab[:2] + [vocab[3], vocab[2]] + vocab[4:]
    assert read_header(write_gguf(tmp_path / "s.gguf", vocab=swapped))["vocab_hash"] != h["vocab_hash"]
    assert h["vocab_check_from"] == 1000 - 128
    for m in (872, 900, 1000):
        assert tail_hash(h, m) == hashlib.sha256(_raw_tokens(vocab[5:m])).hexdigest()[:16]
    assert tail_hash(h, 871) is None and tail_hash(h, 1001) is None


def test_long_tokens_fall_back_to_the_exact_walk(tmp_path: Path) -> None:
    """Tokens of 256+ bytes derail the low-byte fast walk; the result equals the exact walk's."""
    vocab = tokens(400)
    vocab[100] = "x" * 300
    vocab[350] = "y" * 70_000
    p = write_gguf(tmp_path / "m.gguf", vocab=vocab)
    h = read_header(p)
    assert h == read_header(p, fast=False)
    assert h["vocab_size"] == 400 and h["vocab_hash"] == _vocab_hash(vocab)
    assert h["kv"]["tokenizer.ggml.eos_token_id"] == 2  # the keys after the tokens parsed right


def test_param_count_and_tensor_types(tmp_path: Path) -> None:
    """Parameters are summed from the tensor infos; the quantization name comes from file_type."""
    h = read_header(write_gguf(tmp_path / "m.gguf", n_tensors=3, file_type=15))
    assert h["param_count"] == 3 * 4 * 8
    assert h["tensor_types"] == {"F32": 3}
    assert quantization_name(15) == "Q4_K_M"
    assert quantization_name(0) == "F32"
    assert quantization_name(None, {"F32": 3, "Q8_0": 5}) == "Q8_0"


@pytest.mark.parametrize("cut, reason", [(-16, "truncated: tensor data needs"), (200, "truncated: header needs")])
def test_truncated_files_name_the_missing_bytes(tmp_path: Path, cut: int, reason: str) -> None:
    """A file cut in its data or in its header is reported as truncated, with byte counts."""
    p = write_gguf(tmp_path / "m.gguf")
    data = p.read_bytes()
    p.write_bytes(data[:cut])
    with pytest.raises(GGUFError, match=reason):
        read_header(p)


def test_not_gguf_and_corrupt(tmp_path: Path) -> None:
    """Wrong magic, an unknown value type and a tiny file each get their own reason."""
    (tmp_path / "t.gguf").write_text("hello world, not a model\n")
    with pytest.raises(GGUFError, match="not a GGUF file: starts with b'hell'"):
        read_header(tmp_path / "t.gguf")
    (tmp_path / "e.gguf").write_bytes(b"GG")
    with pytest.raises(GGUFError, match="only 2 bytes"):
        read_header(tmp_path / "e.gguf")
    p = write_gguf(tmp_path / "c.gguf")
    data = bytearray(p.read_bytes())
    key = b"general.architecture"
    at = data.index(key) + len(key)
    data[at : at + 4] = struct.pack("<I", 77)  # the first key's value type
    p.write_bytes(bytes(data))
    with pytest.raises(GGUFError, match="corrupt: unknown value type 77"):
        read_header(p)


def _rchar() -> int:
    with open("/proc/self/io") as f:
        return int(next(line for line in f if line.startswith("rchar:")).split()[1])


def test_real_model_reads_only_its_header(default_model: Path) -> None:
    """gemma-3-270m (253 MB): the parser's read() calls cover the header (~6.5 MB with its
    262,144-token vocabulary) and nothing near the tensor data."""
    size = os.path.getsize(default_model)
    before = _rchar()
    h = read_header(default_model)
    read = _rchar() - before
    assert h["kv"]["general.architecture"] == "gemma3"
    assert h["vocab_size"] == 262_144 and h["kv"]["gemma3.block_count"] == 18
    assert h["kv"]["tokenizer.ggml.bos_token_id"] == 2 and h["kv"]["tokenizer.ggml.eos_token_id"] == 1
    assert h["tensor_count"] == 236 and h["param_count"] == 268_098_176
    assert h["data_end"] == size
    # really read through read() (not an mmap that /proc/self/io would not count) ...
    assert read >= h["bytes_read"] >= h["header_bytes"] - 2 * 262_144 * 4  # scores/types may be skipped
    # ... and far less than the file: the header, plus at most the last read-ahead chunk
    assert read < 2 * h["header_bytes"] < size / 10
