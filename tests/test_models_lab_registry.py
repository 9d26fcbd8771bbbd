"""The lab's own model registry (epyc-orchestrator's orchestration/model_registry.yaml), read as it
is: roles with forbids and validated methods, draft pairings, runtime quirks, deprecated models,
command templates; a hybrid model the lab allows a method on; an unrecognised file refused."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import run_cli
from gguf_factory import tokens, write_gguf

from epyc_agent.config import load_config
from epyc_agent.errors import ConfigError, EpycAgentError
from epyc_agent.models.inventory import resolve_model, scan
from epyc_agent.models.registry import SSM_RULE, decide, load_registry, parse_registry

REAL_ENV = "EPYC_AGENT_LAB_REGISTRY"
VOCAB = tokens(1000)

# the real file's shapes, role for role (frontdoor and qwen35_q4km share one model file and disagree
# on prompt lookup, as in the lab's file)
LAB_REGISTRY = r"""
runtime_defaults:
  model_base_path: /mnt/raid0/llm/lmstudio/models
  threads: 96
roles:
  frontdoor:
    tier: A
    description: Root LM — Qwen3.5-35B-A3B MoE hybrid
    model:
      name: Qwen3.5-35B-A3B-UD-Q4_K_M
      path: unsloth/Qwen3.5-35B-A3B-GGUF/Qwen3.5-35B-A3B-UD-Q4_K_M.gguf
      quant: Q4_K_M
      architecture: qwen35moe
    acceleration:
      type: moe_expert_reduction
      experts: 6
      override_key: qwen35moe.expert_used_count
      lookup: false  # DISABLED: --lookup segfaults on Qwen3.5 SSM+MoE hybrids
  qwen35_q4km:
    tier: C
    description: Qwen3.5-35B-A3B Q4_K_M
    model:
      name: Qwen3.5-35B-A3B-UD-Q4_K_M
      path: unsloth/Qwen3.5-35B-A3B-GGUF/Qwen3.5-35B-A3B-UD-Q4_K_M.gguf
      architecture: qwen35moe
    acceleration:
      type: moe_expert_reduction
      experts: 8
      override_key: qwen35moe.expert_used_count
    constraints:
      forbid:
      - eagle
      reason: SSM checkpoint/restore enabled. Eagle unsupported for hybrid.
  ingest_long_context:
    tier: B
    description: Large document ingestion - SSM+MoE hybrid
    model:
      name: Qwen3-Next-80B-A3B-Instruct
      path: lmstudio-community/Qwen3-Next-80B-A3B-Instruct-GGUF/Qwen3-Next-80B-A3B-Instruct-Q4_K_M.gguf
      architecture: ssm_moe_hybrid
    acceleration:
      type: moe_expert_reduction
      experts: 4
      override_key: qwen3next.expert_used_count
    constraints:
      forbid:
      - speculative_decoding
      - eagle
      reason: SSM incompatible with external draft (state can't fork). Prompt lookup
        works via auto freeze-recurrent (validated 2026-03-10).
  coder_escalation:
    tier: B
    description: Coding escalation target - dense coder with spec decode + prompt lookup
    model:
      name: Qwen2.5-Coder-32B-Instruct
      path: lmstudio-community/Qwen2.5-Coder-32B-Instruct-GGUF/Qwen2.5-Coder-32B-Instruct-Q4_K_M.gguf
      architecture: dense
    acceleration:
      type: speculative_decoding
      draft_role: draft_qwen2_5_coder_0_5b
      k: 24
      lookup: true
  worker_vision:
    tier: C
    model:
      name: Qwen2.5-VL-7B-Instruct
      path: lmstudio-community/Qwen2.5-VL-7B-Instruct-GGUF/Qwen2.5-VL-7B-Instruct-Q4_K_M.gguf
      mmproj_path: lmstudio-community/Qwen2.5-VL-7B-Instruct-GGUF/mmproj-model-f16.gguf
      architecture: dense
    acceleration:
      type: baseline
      disallowed:
        - speculative_decoding
        - prompt_lookup
      reason: VL models with mmproj not supported by llama-speculative binary
  thinking_qwen3_30b_a3b_thinking_2507:
    tier: C
    forbidden_configs:
    - speculative_decoding  # Missing BOS token in GGUF prevents spec decode
    model:
      name: Qwen3-30B-A3B-Thinking-2507-Q4_K_S
      path: unsloth/Qwen3-30B-A3B-Thinking-2507-GGUF/Qwen3-30B-A3B-Thinking-2507-Q4_K_S.gguf
      architecture: moe
    acceleration:
      type: moe_expert_reduction
      experts: 4
      override_key: qwen3moe.expert_used_count
  thinking_reasoning:
    tier: B
    deprecated: true
    deprecated_date: 2026-03-06
    deprecated_reason: "GGUF deleted from disk — model weights no longer available"
    model:
      name: Qwen3-Next-80B-A3B-Thinking
      path: unsloth/Qwen3-Next-80B-A3B-Thinking-GGUF/Qwen3-Next-80B-A3B-Thinking-Q4_K_S.gguf
      architecture: ssm_moe_hybrid
    acceleration:
      type: speculative_decoding
      draft_role: draft_qwen2_5_coder_0_5b
      k: 8
    constraints:
      forbid:
      - eagle
  draft_qwen2_5_coder_0_5b:
    tier: D
    description: Draft model - Qwen2.5-Coder-0.5B-Q4_K_M
    model:
      name: Qwen2.5-Coder-0.5B-Q4_K_M
      path: lmstudio-community/Qwen2.5-Coder-0.5B-GGUF/Qwen2.5-Coder-0.5B-Q4_K_M.gguf
      architecture: dense
    compatible_targets:
    - qwen2.5
    - qwen2-
  draft_qwen35_0_8b_q8_0:
    tier: D
    model:
      name: Qwen3.5-0.8B-Q8_0
      path: unsloth/Qwen3.5-0.8B-GGUF/Qwen3.5-0.8B-Q8_0.gguf
      architecture: dense
    compatible_targets:
    - qwen3.5-35b-a3b
    - qwen3.5-9b
command_templates:
  speculative_decoding: "numactl --interleave=all \\\n  /mnt/raid0/llm/llama.cpp/build/bin/llama-speculative\
    \ \\\n  -m {model_path} \\\n  -md {draft_path} \\\n  --draft-max {k} \\\n  -t\
    \ {threads}\n"
  moe_expert_reduction: "llama-completion -m {model_path} --override-kv {override_key}=int:{experts} -t {threads}\n"
  prompt_lookup: "llama-lookup -m {model_path} --draft-max {k} -t {threads}\n"
  baseline: "llama-completion -m {model_path} -t {threads}\n"
  vision: "llama-mtmd-cli -m {model_path} --mmproj {mmproj_path} -t {threads}\n"
runtime_quirks:
  qwen3_next_80b:
    description: Qwen3-Next-80B-A3B-Instruct (SSM+MoE hybrid)
    quirks:
    - issue: SSM models incompatible with all speculation methods
      workaround: Only MoE expert reduction available, no spec decode
      discovered: 2025-12-15
  qwen2_vs_qwen2_5:
    description: Qwen2 and Qwen2.5 tokenizer incompatibility
    quirks:
    - issue: Qwen2 drafts crash with Qwen2.5 targets (vocab mismatch)
      workaround: Use Qwen2.5 drafts only (draft_qwen25, draft_qwen25_coder)
      discovered: 2026-01-09
  general_llama_speculative:
    description: llama-speculative binary general quirks
    quirks:
    - issue: "May print 'decode: n_tokens == 0' errors"
      workaround: Usually non-fatal, generation still completes
deprecated_models:
  - model: Meta-Llama-3-70B-Instruct-Q4_K_M
    path_was: /mnt/raid0/llm/lmstudio/models/lmstudio-community/Meta-Llama-3-70B-Instruct-GGUF/
    size_gb: 40
    reason: "Very poor quality, superseded by Llama 3.1-70B (86.3%)"
    deleted: 2026-01-18
  - model: Qwen3-Coder-30B-A3B-Instruct-GGUF (lmstudio-community duplicate)
    path_was: /mnt/raid0/llm/lmstudio/models/lmstudio-community/Qwen3-Coder-30B-A3B-Instruct-GGUF/
    reason: "Duplicate - unsloth version retained for production"
    deleted: 2026-01-18
"""

# (file under <root>/models, arch, SSM/hybrid, expert count): the lab's models as tiny GGUFs
MODELS = [
    ("Qwen3.5-35B-A3B-UD-Q4_K_M.gguf", "qwen35moe", True, 8),
    ("Qwen3.5-0.8B-Q8_0.gguf", "qwen35", True, None),
    ("Qwen3-Next-80B-A3B-Instruct-Q4_K_M.gguf", "qwen3next", True, 8),
    ("Qwen3-Next-80B-A3B-Thinking-Q4_K_S.gguf", "qwen3next", True, 8),
    ("Qwen2.5-Coder-32B-Instruct-Q4_K_M.gguf", "qwen2", False, None),
    ("Qwen2.5-Coder-0.5B-Q4_K_M.gguf", "qwen2", False, None),
    ("Qwen2.5-VL-7B-Instruct-Q4_K_M.gguf", "qwen2vl", False, None),
    ("Qwen3-30B-A3B-Thinking-2507-Q4_K_S.gguf", "qwen3moe", False, 8),
    ("lmstudio-community/Meta-Llama-3-70B-Instruct-GGUF/Meta-Llama-3-70B-Instruct-Q8_0.gguf", "llama", False, None),
    (
        "lmstudio-community/Qwen3-Coder-30B-A3B-Instruct-GGUF/Qwen3-Coder-30B-A3B-Instruct-Q4_K_M.gguf",
        "qwen3moe",
        False,
        8,
    ),
    ("unsloth/Qwen3-Coder-30B-A3B-Instruct-GGUF/Qwen3-Coder-30B-A3B-Instruct-Q4_K_M.gguf", "qwen3moe", False, 8),
]


@pytest.fixture
def lab(root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The lab-shaped registry named in the environment, and its models under <root>/models."""
    reg = tmp_path / "model_registry.yaml"
    reg.write_text(LAB_REGISTRY)
    monkeypatch.setenv("EPYC_AGENT_MODEL_REGISTRY", str(reg))
    for name, arch, ssm, experts in MODELS:
        path = root / "models" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        big = "-32B" in name or "35B" in name or "80B" in name
        write_gguf(
            path, arch, vocab=VOCAB, ssm=ssm, expert_count=experts, expert_used_count=experts, n_tensors=4 if big else 1
        )
    scan(load_config())
    return reg


def _decisions(model: str) -> dict:
    cfg = load_config()
    return decide(resolve_model(cfg, model), load_registry(cfg))


def test_counts_of_what_the_file_holds(lab: Path) -> None:
    """Roles, forbids (all three places the lab writes them), pairings, quirks, deprecations, templates."""
    f = parse_registry(str(lab))
    assert f["format"] == "lab" and f["warnings"] == []
    assert f["counts"] == {
        "roles": 9,
        "deprecated_roles": 1,
        "forbids": 7,  # constraints.forbid 4, forbidden_configs 1, acceleration.disallowed 2
        "unmapped_forbids": 0,
        "allows": 9,  # what live roles run (6) or leave out of a forbid list (3)
        "pairings": 2,
        "pairings_live": 1,  # thinking_reasoning's is in a deprecated role
        "runtime_quirks": 3,
        "deprecated_models": 2,
        "command_templates": 5,
    }


def test_hybrid_allowed_method_overrides_the_header_rule(lab: Path) -> None:
    """Qwen3-Next: the lab validated prompt lookup (left out of its forbid list), so it is allowed
    despite the SSM/hybrid header rule, and the rule that decided is named; its draft stays forbidden."""
    d = _decisions("Qwen3-Next-80B-A3B-Instruct-Q4_K_M")
    rule = f"{lab}: roles.ingest_long_context constraints.forbid"
    assert d["prompt_lookup"].allowed and d["prompt_lookup"].rule == rule
    assert d["prompt_lookup"].reason.endswith("overrides the SSM/hybrid header rule")
    assert not d["draft_model"].allowed and d["draft_model"].rule == rule
    assert d["draft_model"].reason.startswith("SSM incompatible with external draft")
    assert d["moe_reduction"].allowed and d["moe_reduction"].reason == "the lab runs it with 4 experts"
    assert not d["cas_spec"].allowed and d["cas_spec"].rule == SSM_RULE  # the lab never speaks of it


def test_forbid_beats_allow_between_two_roles_of_one_model(lab: Path) -> None:
    """Qwen3.5-35B: qwen35_q4km allows a draft (it forbids only eagle); frontdoor's lookup: false
    forbids prompt lookup although qwen35_q4km's list leaves it out."""
    d = _decisions("Qwen3.5-35B-A3B-UD-Q4_K_M")
    assert d["draft_model"].allowed and d["draft_model"].rule == f"{lab}: roles.qwen35_q4km constraints.forbid"
    assert not d["prompt_lookup"].allowed and d["prompt_lookup"].rule == f"{lab}: roles.frontdoor acceleration.lookup"
    assert not d["eagle"].allowed and "Eagle unsupported for hybrid" in d["eagle"].reason


@pytest.mark.parametrize(
    "model, field, reason",
    [
        ("Qwen2.5-VL-7B-Instruct-Q4_K_M", "worker_vision acceleration.disallowed", "VL models with mmproj"),
        (
            "Qwen3-30B-A3B-Thinking-2507-Q4_K_S",
            "thinking_qwen3_30b_a3b_thinking_2507 forbidden_configs",
            "the lab forbids speculative_decoding on this model",
        ),
    ],
)
def test_lab_forbid_strings_map_to_our_methods(lab: Path, model: str, field: str, reason: str) -> None:
    """speculative_decoding forbids draft_model, wherever the lab writes it."""
    d = _decisions(model)["draft_model"]
    assert not d.allowed and d.rule == f"{lab}: roles.{field}" and d.reason.startswith(reason)


def test_env_registry_takes_precedence_over_the_shipped_one(lab: Path, tmp_path: Path) -> None:
    """The shipped file forbids prompt lookup on Qwen3-Next; the lab's file, named first, allows it.
    Without the lab's file the shipped rule decides again."""
    assert _decisions("Qwen3-Next-80B-A3B-Instruct-Q4_K_M")["prompt_lookup"].allowed
    r = run_cli("models", "show", "Qwen3-Next-80B-A3B-Instruct-Q4_K_M", "--json", env={"EPYC_AGENT_MODEL_REGISTRY": ""})
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)["decisions"]["prompt_lookup"]
    assert not d["allowed"] and d["rule"].endswith(
        "research/model_registry.yaml: models[2] (*qwen3-next*) forbidden_methods"
    )


@pytest.mark.parametrize(
    "text, found",
    [
        ("version: 1\nrules: []\n", "found rules, version"),
        ("- match: x\n", "found a list"),
        ("{}\n", "found an empty mapping"),
    ],
)
def test_unrecognised_file_is_an_error_not_an_empty_registry(tmp_path: Path, text: str, found: str) -> None:
    """Neither `models:` nor the lab's sections: exit 2 naming the file and what was expected."""
    bad = tmp_path / "reg.yaml"
    bad.write_text(text)
    with pytest.raises(ConfigError, match=f"not a model registry: expected a `models:` list .* {found}"):
        parse_registry(str(bad))
    r = run_cli("models", "registry", env={"EPYC_AGENT_MODEL_REGISTRY": str(bad)})
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith(f"epyc-agent: {bad}: not a model registry: expected a `models:` list")
    assert (
        "`roles`/`runtime_quirks`/`deprecated_models`/`command_templates`" in r.stderr
        and len(r.stderr.splitlines()) == 1
    )


@pytest.mark.parametrize(
    "text, message",
    [
        ("roles:\n  x: 3\n", r"roles\.x: expected a mapping with a `model:` mapping"),
        (
            "roles:\n  x:\n    model: {path: a.gguf}\n    acceleration: {type: speculative_decoding, k: many}\n",
            r"roles\.x\.acceleration\.k must be a positive integer",
        ),
        (
            "roles:\n  x:\n    model: {path: a.gguf}\n    constraints: {forbid: eagle}\n",
            r"roles\.x\.constraints\.forbid must be a list",
        ),
        ("models: []\nroles: {}\n", "mixes epyc-agent's `models:` list with the lab's"),
    ],
)
def test_malformed_lab_entries_name_the_role(tmp_path: Path, text: str, message: str) -> None:
    """A lab entry of the wrong shape names the file, the role and the field."""
    bad = tmp_path / "reg.yaml"
    bad.write_text(text)
    with pytest.raises(ConfigError, match=message):
        parse_registry(str(bad))


def test_duplicate_role_is_a_warning_with_its_lines(tmp_path: Path) -> None:
    """YAML keeps the last of two same-named roles; `models registry` says so, with the lines."""
    reg = tmp_path / "reg.yaml"
    reg.write_text("roles:\n  a:\n    model: {path: x.gguf}\n  a:\n    model: {path: y.gguf}\n")
    r = run_cli("models", "registry", "--json", env={"EPYC_AGENT_MODEL_REGISTRY": str(reg)})
    assert r.returncode == 0, r.stderr
    first = json.loads(r.stdout)["files"][0]
    assert first["warnings"] == [f"{reg}: roles.a is given 2 times (lines 2, 4); YAML keeps only the last"]
    assert first["counts"]["roles"] == 1


def test_compat_shows_pairings_rule_and_default_draft(lab: Path) -> None:
    """compat: draft_model's rule, the registry's pairing with k, the paired draft first."""
    r = run_cli("models", "compat", "Qwen2.5-Coder-32B-Instruct-Q4_K_M", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["draft_model"] == {
        "allowed": True,
        "reason": "the lab runs it with draft draft_qwen2_5_coder_0_5b, k=24",
        "rule": f"{lab}: roles.coder_escalation acceleration",
    }
    assert out["pairings"][0] == {
        "draft_role": "draft_qwen2_5_coder_0_5b",
        "k": 24,
        "path": "lmstudio-community/Qwen2.5-Coder-0.5B-GGUF/Qwen2.5-Coder-0.5B-Q4_K_M.gguf",
        "where": f"{lab}: roles.coder_escalation acceleration.draft_role",
        "kind": "draft_role",
        "draft": "Qwen2.5-Coder-0.5B-Q4_K_M",
        "draft_path": str(Path(load_config().root) / "models" / "Qwen2.5-Coder-0.5B-Q4_K_M.gguf"),
    }
    assert out["default_draft"] == "Qwen2.5-Coder-0.5B-Q4_K_M"
    assert out["drafts"][0]["id"] == "Qwen2.5-Coder-0.5B-Q4_K_M" and out["drafts"][0]["pairing"]["k"] == 24
    r = run_cli("models", "compat", "Qwen2.5-Coder-32B-Instruct-Q4_K_M")
    lines = r.stdout.splitlines()
    assert lines[1] == (
        "# draft_model on Qwen2.5-Coder-32B-Instruct-Q4_K_M: allowed, the lab runs it with draft "
        f"draft_qwen2_5_coder_0_5b, k=24 [rule: {lab}: roles.coder_escalation acceleration]"
    )
    assert lines[2].startswith("# default --draft for `track run 1`: Qwen2.5-Coder-0.5B-Q4_K_M")


def test_compat_lifts_the_ssm_rule_for_a_paired_hybrid_draft(lab: Path) -> None:
    """Qwen3.5-0.8B (itself hybrid) drafts for Qwen3.5-35B: its draft role names the target among
    compatible_targets; another hybrid without a pairing is still refused by the header rule."""
    r = run_cli("models", "compat", "Qwen3.5-35B-A3B-UD-Q4_K_M", "--json")
    assert r.returncode == 0, r.stderr
    rows = {d["id"]: d for d in json.loads(r.stdout)["drafts"]}
    ok = rows["Qwen3.5-0.8B-Q8_0"]
    assert ok["ok"] and ok["reason"].endswith("compatible_targets]; its SSM/hybrid rule lifted")
    assert ok["pairing"]["kind"] == "compatible_targets"
    other = rows["Qwen3-Next-80B-A3B-Instruct-Q4_K_M"]
    assert not other["ok"] and other["reason"].endswith(f"[rule: {SSM_RULE}]")
    r = run_cli("models", "compat", "Qwen3-Next-80B-A3B-Instruct-Q4_K_M")
    assert r.returncode == 1  # the lab forbids its draft: nothing can draft for it
    assert "refused, SSM incompatible with external draft (state can't fork)." in r.stdout
    assert f"[rule: {lab}: roles.ingest_long_context constraints.forbid]" in r.stdout


def test_untested_leaves_out_deprecated_models(lab: Path) -> None:
    """deprecated_models (by file stem or the publisher's folder) and models of deprecated roles
    only are not listed; the retained copy of a duplicate is."""
    r = run_cli("models", "untested", "--json")
    assert r.returncode == 0, r.stderr
    ids = {x["id"] for x in json.loads(r.stdout)}
    assert "models/unsloth/Qwen3-Coder-30B-A3B-Instruct-GGUF/Qwen3-Coder-30B-A3B-Instruct-Q4_K_M" in ids
    assert not {i for i in ids if "lmstudio-community" in i or "Thinking-Q4_K_S" in i or "Llama" in i}
    assert len(ids) == len(MODELS) - 3
    r = run_cli("models", "untested")
    notes = [line for line in r.stdout.splitlines() if line.startswith("# not listed, deprecated:")]
    assert len(notes) == 3
    assert any(
        "Meta-Llama-3-70B-Instruct-Q8_0: Very poor quality, superseded by Llama 3.1-70B (86.3%) (deleted 2026-01-18) "
        f"[rule: {lab}: deprecated_models[1]]" in n
        for n in notes
    )
    assert any("GGUF deleted from disk" in n and "roles.thinking_reasoning deprecated]" in n for n in notes)


def test_show_quirks_and_filled_templates(lab: Path, root: Path) -> None:
    """show: the runtime quirks naming the model, and the templates for what it may run with its
    path, draft, k, override key and experts filled in; machine values left as placeholders."""
    r = run_cli("models", "show", "Qwen2.5-Coder-32B-Instruct-Q4_K_M", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert [q["key"] for q in out["quirks"]] == ["qwen2_vs_qwen2_5"]
    assert out["quirks"][0]["items"][0]["discovered"] == "2026-01-09"
    tpl = {t["name"]: t for t in out["command_templates"]}
    assert list(tpl) == ["speculative_decoding", "prompt_lookup", "baseline"]  # dense: no MoE; no mmproj
    models = root / "models"
    assert tpl["speculative_decoding"]["command"] == (
        "numactl --interleave=all \\\n  /mnt/raid0/llm/llama.cpp/build/bin/llama-speculative \\\n"
        f"  -m {models}/Qwen2.5-Coder-32B-Instruct-Q4_K_M.gguf \\\n  -md {models}/Qwen2.5-Coder-0.5B-Q4_K_M.gguf \\\n"
        "  --draft-max 24 \\\n  -t {threads}"
    )
    assert [q["key"] for q in tpl["speculative_decoding"]["tool_quirks"]] == ["general_llama_speculative"]
    vl = json.loads(run_cli("models", "show", "Qwen2.5-VL-7B-Instruct-Q4_K_M", "--json").stdout)
    assert [t["name"] for t in vl["command_templates"]] == ["baseline", "vision"]
    assert (
        "--mmproj lmstudio-community/Qwen2.5-VL-7B-Instruct-GGUF/mmproj-model-f16.gguf"
        in vl["command_templates"][1]["command"]
    )
    nxt = run_cli("models", "show", "Qwen3-Next-80B-A3B-Instruct-Q4_K_M")
    assert "--override-kv qwen3next.expert_used_count=int:4" in nxt.stdout
    assert "quirks: Qwen3-Next-80B-A3B-Instruct (SSM+MoE hybrid)" in nxt.stdout
    assert "- SSM models incompatible with all speculation methods -> Only MoE expert reduction available" in nxt.stdout
    row = next(line for line in nxt.stdout.splitlines() if line.startswith("prompt_lookup "))
    assert " yes " in row and row.endswith("roles.ingest_long_context constraints.forbid")


def test_session_start_suggests_what_the_registry_allows(lab: Path) -> None:
    """session start: a hybrid the lab validates prompt lookup on gets track 8; deprecated ones are absent."""
    r = run_cli("session", "start")
    assert r.returncode == 0, r.stderr
    prio = [line for line in r.stdout.splitlines() if line.startswith("# priority")]
    nxt = "Qwen3-Next-80B-A3B-Instruct-Q4_K_M"
    assert any(p.endswith(f"test untested model {nxt}: epyc-agent track run 8 --model {nxt}") for p in prio)
    assert not [p for p in prio if "Llama" in p or "could not evaluate" in p]


def test_session_start_keeps_the_priority_when_the_registry_is_broken(lab: Path, tmp_path: Path) -> None:
    """An unreadable registry costs the suggestions their registry facts, never the untested list."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules: []\n")
    r = run_cli("session", "start", env={"EPYC_AGENT_MODEL_REGISTRY": str(bad)})
    assert r.returncode == 0, r.stderr
    prio = [line for line in r.stdout.splitlines() if line.startswith("# priority")]
    assert prio[0].startswith("# priority 1: test untested model ")
    assert any(
        "model registry not applied (deprecations, allowed and forbidden methods): " in p
        and "not a model registry" in p
        for p in prio
    )


def _plan(track: str, model: str, *params: str):  # noqa: ANN202 - a RunPlan
    from epyc_agent.tracks.plan import RunRequest, prepare_run

    return prepare_run(load_config(), RunRequest(track=track, model=model, params=list(params)))


def test_track_run_takes_the_registry_draft_and_its_k(lab: Path) -> None:
    """track 1 without --draft: the lab's draft_role pairing and its k, both recorded with their rule;
    an explicit --param draft_k wins over the registry's k."""
    plan = _plan("1", "Qwen2.5-Coder-32B-Instruct-Q4_K_M")
    rule = f"{lab}: roles.coder_escalation acceleration.draft_role"
    assert plan.draft is not None and Path(plan.draft["path"]).name == "Qwen2.5-Coder-0.5B-Q4_K_M.gguf"
    assert plan.request.draft == plan.draft["path"] and plan.request.draft_from == rule
    assert [c["params"]["draft_k"] for c in plan.configs] == [24]
    assert plan.decisions == [
        "track 1 (draft_model) on Qwen2.5-Coder-32B-Instruct-Q4_K_M.gguf: allowed, the lab runs it with draft "
        f"draft_qwen2_5_coder_0_5b, k=24 [rule: {lab}: roles.coder_escalation acceleration]",
        "draft Qwen2.5-Coder-0.5B-Q4_K_M.gguf: registry pairing: draft_role draft_qwen2_5_coder_0_5b, k=24 "
        f"[rule: {rule}]",
        f"draft_k=24 from the registry pairing [rule: {rule}]",
    ]
    plan = _plan("1", "Qwen2.5-Coder-32B-Instruct-Q4_K_M", "draft_k=8")
    assert [c["params"]["draft_k"] for c in plan.configs] == [8] and len(plan.decisions) == 2


def test_track_run_on_a_hybrid_the_lab_allows(lab: Path) -> None:
    """Qwen3.5-35B (hybrid): track 1 runs with the hybrid 0.8B draft its role pairs, and prompt
    lookup on Qwen3-Next is allowed; each plan says which rule lifted the header rule."""
    plan = _plan("1", "Qwen3.5-35B-A3B-UD-Q4_K_M")
    assert plan.draft is not None and plan.draft["id"] == "Qwen3.5-0.8B-Q8_0"
    assert plan.decisions[0].endswith(
        f"overrides the SSM/hybrid header rule [rule: {lab}: roles.qwen35_q4km constraints.forbid]"
    )
    assert plan.decisions[1].endswith(f"[rule: {lab}: roles.draft_qwen35_0_8b_q8_0 compatible_targets]")
    plan = _plan("8", "Qwen3-Next-80B-A3B-Instruct-Q4_K_M")
    assert plan.decisions == [
        "track 8 (prompt_lookup) on Qwen3-Next-80B-A3B-Instruct-Q4_K_M.gguf: allowed, the lab's forbid list for it "
        "names only speculative_decoding, eagle; overrides the SSM/hybrid header rule "
        f"[rule: {lab}: roles.ingest_long_context constraints.forbid]"
    ]


def test_track_run_refusal_names_the_rule(lab: Path, root: Path) -> None:
    """The CLI refuses track 1 on Qwen3-Next with the lab's reason and rule; a paired draft missing
    from the inventory is named in the hint."""
    with pytest.raises(EpycAgentError, match=r"refused: SSM incompatible .* constraints\.forbid\]$"):
        _plan("1", "Qwen3-Next-80B-A3B-Instruct-Q4_K_M")
    r = run_cli("track", "run", "1", "--model", "Qwen3-Next-80B-A3B-Instruct-Q4_K_M")
    if "other llama.cpp process(es)" in r.stderr:  # the sysadmin gate runs first: a benchmark of someone else's
        pytest.skip("another llama.cpp process is running on this machine")
    assert r.returncode == 2, r.stdout + r.stderr
    assert (
        "track 1 (External draft model) refused: SSM incompatible with external draft (state can't fork)." in r.stderr
    )
    assert f"[rule: {lab}: roles.ingest_long_context constraints.forbid]" in r.stderr
    (root / "models" / "Qwen2.5-Coder-0.5B-Q4_K_M.gguf").unlink()
    scan(load_config())
    r = run_cli("track", "run", "1", "--model", "Qwen2.5-Coder-32B-Instruct-Q4_K_M")
    assert r.returncode == 2 and "needs a draft model (pass --draft PATH; the model registry pairs it with " in r.stderr
    assert "draft_qwen2_5_coder_0_5b, none in the inventory)" in r.stderr


@pytest.mark.slow
def test_real_run_uses_the_registry_pairing(default_model: Path, root: Path, tmp_path: Path) -> None:
    """A real `track run 1` on gemma-3-270m with no --draft: the registry pairs it with a draft
    (gemma again, under its own name); the run's config.json records the draft, its rule and k."""
    models = root / "models"
    models.mkdir()
    (models / "gemma-target.gguf").symlink_to(default_model)
    (models / "gemma-draft.gguf").symlink_to(default_model)
    reg = tmp_path / "model_registry.yaml"
    reg.write_text(
        "roles:\n"
        "  target:\n    model: {name: gemma-target, path: google/gemma-target.gguf, architecture: dense}\n"
        "    acceleration: {type: speculative_decoding, draft_role: draft, k: 4}\n"
        "  draft:\n    model: {name: gemma-draft, path: google/gemma-draft.gguf, architecture: dense}\n"
    )
    env = {"EPYC_AGENT_MODEL_REGISTRY": str(reg)}
    args = ("--prompts", "1", "--reps", "1", "--max-tokens", "8", "--json")
    r = run_cli("track", "run", "1", "-m", "gemma-target", *args, env=env, timeout=900)
    assert r.returncode == 0, r.stderr
    conf = json.loads((Path(json.loads(r.stdout)["run_dir"]) / "config.json").read_text())
    assert conf["draft"]["path"] == str(models / "gemma-draft.gguf")
    assert conf["request"]["draft_from"] == f"{reg}: roles.target acceleration.draft_role"
    assert [c["params"]["draft_k"] for c in conf["configs"]] == [4]
    assert (
        conf["decisions"][-1]
        == f"draft_k=4 from the registry pairing [rule: {reg}: roles.target acceleration.draft_role]"
    )


@pytest.mark.skipif(
    not os.environ.get(REAL_ENV), reason=f"set {REAL_ENV} to the lab's orchestration/model_registry.yaml"
)
def test_the_real_lab_registry() -> None:
    """The lab's real registry: what it holds, counted, and its one duplicate role named."""
    path = os.environ[REAL_ENV]
    r = run_cli("models", "registry", "--json", env={"EPYC_AGENT_MODEL_REGISTRY": path})
    assert r.returncode == 0, r.stderr
    f = json.loads(r.stdout)["files"][0]
    assert f["path"] == path and f["format"] == "lab"
    assert f["counts"] == {
        "roles": 116,
        "deprecated_roles": 26,
        "forbids": 50,  # 51 in the text: one more in the first of two roles named qwen35_2b_q4km
        "unmapped_forbids": 0,
        "allows": 80,
        "pairings": 20,
        "pairings_live": 18,
        "runtime_quirks": 23,
        "deprecated_models": 22,
        "command_templates": 7,
    }
    assert f["warnings"] == [
        f"{path}: roles.qwen35_2b_q4km is given 2 times (lines 1261, 1320); YAML keeps only the last"
    ]
