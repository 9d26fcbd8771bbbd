"""`models scan`: one entry per model (split sets grouped), typed values, broken files listed
with their reason, HF folders as sources, SSM/MoE flags, reuse of unchanged entries, ids."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from conftest import run_cli
from gguf_factory import tokens, write_gguf

from epyc_agent.config import load_config
from epyc_agent.models.inventory import ModelNotFound, load_inventory, resolve_model, scan


@pytest.fixture
def tree(root: Path) -> Path:
    """A models folder with one of each kind of thing the scanner meets."""
    m = root / "models"
    m.mkdir()
    write_gguf(m / "llama-a.gguf", vocab=tokens(1000))
    write_gguf(m / "moe.gguf", "qwen3moe", expert_count=8, expert_used_count=2)
    write_gguf(m / "mamba.gguf", "mamba", ssm=True)
    write_gguf(m / "hybrid.gguf", "newarch", ssm=True)
    write_gguf(m / "big.gguf", n_tensors=4, split_max_tensors=2)
    broken = write_gguf(m / "broken.gguf")
    broken.write_bytes(broken.read_bytes()[:-10])
    (m / "notes.gguf").write_text("not a model")
    (m / "weights.safetensors").write_bytes(b"\0" * 64)
    (m / "README.md").write_text("ignored")
    write_gguf(m / "incoming.gguf.part")
    hf = root / "hf" / "org-model"
    hf.mkdir(parents=True)
    (hf / "config.json").write_text(
        json.dumps(
            {"model_type": "qwen2", "vocab_size": 151936, "max_position_embeddings": 32768, "num_hidden_layers": 24}
        )
    )
    (hf / "model.safetensors").write_bytes(b"\0" * 100)
    return m


def _by_id(inv) -> dict:  # noqa: ANN001
    return {e["id"]: e for e in inv.models}


def test_scan_lists_every_kind_once(tree: Path) -> None:
    """Each model is one entry; temp files and docs are skipped; broken ones carry a reason."""
    inv = scan(load_config())
    m = _by_id(inv)
    assert sorted(m) == ["big", "broken", "hybrid", "llama-a", "mamba", "moe", "notes", "org-model", "weights"]
    assert m["big"]["shards"] == [str(tree / "big-00001-of-00002.gguf"), str(tree / "big-00002-of-00002.gguf")]
    assert m["big"]["param_count"] == 4 * 32
    assert m["big"]["size_bytes"] == sum(os.path.getsize(p) for p in m["big"]["shards"])
    assert m["broken"]["error"].startswith("truncated: tensor data needs")
    assert m["notes"]["error"].startswith("not a GGUF file")
    assert m["weights"]["kind"] == "other" and "convert" in m["weights"]["error"]
    assert m["org-model"]["kind"] == "hf_source" and m["org-model"]["vocab_size"] == 151936
    assert inv.counts() == {"gguf": 5, "hf_source": 1, "errors": 3}


def test_entries_are_typed(tree: Path) -> None:
    """Numbers are numbers in the written file; flags are booleans."""
    scan(load_config())
    data = json.loads(Path(load_config().log_dir, "model_inventory.json").read_text())
    a = next(e for e in data["models"] if e["id"] == "llama-a")
    assert a["vocab_size"] == 1000 and a["context_length"] == 4096 and a["block_count"] == 2
    assert a["bos_id"] == 1 and a["eos_id"] == 2 and a["file_type"] == 15 and a["quantization"] == "Q4_K_M"
    assert a["tokenizer_model"] == "llama" and a["arch"] == "llama" and a["is_moe"] is False
    assert isinstance(a["mtime"], float) and isinstance(a["size_bytes"], int) and a["sha256"] is None
    assert data["counts"]["gguf"] == 5


def test_ssm_and_moe_flags(tree: Path) -> None:
    """mamba by architecture, an unknown arch by its ssm keys; MoE by expert_count."""
    m = _by_id(scan(load_config()))
    assert m["mamba"]["ssm_or_hybrid"] and "mamba is SSM/hybrid" in m["mamba"]["ssm_reason"]
    assert m["hybrid"]["ssm_or_hybrid"] and "newarch.ssm." in m["hybrid"]["ssm_reason"]
    assert not m["llama-a"]["ssm_or_hybrid"]
    assert m["moe"]["is_moe"] and (m["moe"]["expert_count"], m["moe"]["expert_used_count"]) == (8, 2)


def test_rescan_reuses_unchanged_files(tree: Path) -> None:
    """A file rewritten with the same size and mtime keeps its entry until --rescan."""
    cfg = load_config()
    scan(cfg)
    p = tree / "llama-a.gguf"
    st = p.stat()
    data = p.read_bytes().replace(b"llama-a", b"llama-b")  # general.name, same length
    p.write_bytes(data)
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert _by_id(scan(cfg))["llama-a"]["name"] == "llama-a"
    assert _by_id(scan(cfg, reuse=False))["llama-a"]["name"] == "llama-b"


def test_hash_option(tree: Path) -> None:
    """--hash adds the sha256 of the whole file (of the concatenated shards for a split set)."""
    m = _by_id(scan(load_config(), hash=True))
    assert m["llama-a"]["sha256"] == hashlib.sha256((tree / "llama-a.gguf").read_bytes()).hexdigest()
    both = b"".join(Path(p).read_bytes() for p in m["big"]["shards"])
    assert m["big"]["sha256"] == hashlib.sha256(both).hexdigest()


def test_missing_shard_is_an_error(root: Path) -> None:
    """A split set with a shard missing is one entry saying which shards are there."""
    (root / "models").mkdir()
    write_gguf(root / "models" / "s.gguf", n_tensors=3, split_max_tensors=1)
    (root / "models" / "s-00002-of-00003.gguf").unlink()
    (e,) = scan(load_config()).models
    assert e["id"] == "s" and e["error"] == "incomplete split set: have shard(s) 1, 3 of 3"


def test_duplicate_stems_get_path_ids(root: Path) -> None:
    """Two files with the same stem in different folders get distinct ids."""
    for sub in ("models/a", "models/b"):
        (root / sub).mkdir(parents=True)
        write_gguf(root / sub / "same.gguf")
    assert [e["id"] for e in scan(load_config()).models] == ["models/a/same", "models/b/same"]


def test_resolve_by_id_name_and_path(tree: Path) -> None:
    """Ids are case-insensitive; a path outside the inventory is read directly; unknown names fail."""
    cfg = load_config()
    assert resolve_model(cfg, "LLAMA-A")["path"] == str(tree / "llama-a.gguf")  # scans on first use
    assert resolve_model(cfg, str(tree / "big-00002-of-00002.gguf"))["id"] == "big"
    outside = write_gguf(Path("elsewhere.gguf"))
    assert resolve_model(cfg, str(outside))["vocab_size"] == 256
    with pytest.raises(ModelNotFound, match="no model 'nope'"):
        resolve_model(cfg, "nope")


def test_cli_scan_text_and_json(tree: Path) -> None:
    """The CLI prints a table plus the unreadable files; --json is the inventory."""
    r = run_cli("models", "scan")
    assert r.returncode == 0, r.stderr
    assert "llama-a" in r.stdout and "3 unreadable" in r.stdout and "truncated" in r.stdout
    r = run_cli("models", "scan", "--json")
    data = json.loads(r.stdout)
    assert data["counts"] == {"gguf": 5, "hf_source": 1, "errors": 3}
    assert load_inventory(load_config()) is not None


def test_cli_unknown_model_is_one_line(tree: Path) -> None:
    """An unknown model name: exit 2, one line naming it and the fix."""
    r = run_cli("models", "show", "nope")
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "no model 'nope'" in r.stderr and "models scan" in r.stderr


def test_hub_cache_and_lmstudio_folders(root: Path) -> None:
    """A hub-cache snapshot is named org/name; LM Studio's folder is scanned too; blobs are skipped."""
    snap = root / "hf" / "models--Qwen--Qwen2.5-0.5B" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (snap / "config.json").write_text(json.dumps({"model_type": "qwen2", "eos_token_id": [151643, 151645]}))
    blobs = root / "hf" / "models--Qwen--Qwen2.5-0.5B" / "blobs"
    blobs.mkdir()
    write_gguf(blobs / "deadbeef.gguf")
    lm = root / "lmstudio" / "models" / "pub"
    lm.mkdir(parents=True)
    write_gguf(lm / "lm.gguf")
    m = _by_id(scan(load_config()))
    assert sorted(m) == ["Qwen/Qwen2.5-0.5B", "lm"]
    assert m["Qwen/Qwen2.5-0.5B"]["kind"] == "hf_source" and m["Qwen/Qwen2.5-0.5B"]["eos_id"] == 151643
