"""The lab's v1 prompt suites as workloads: prompt text run, tier/expected/scoring kept per prompt,
the variants that a text run cannot honour refused by prompt id, and any other file refused naming
both shapes."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import run_cli
from gguf_factory import write_gguf

from epyc_agent.config import load_config
from epyc_agent.errors import EpycAgentError
from epyc_agent.tracks.workloads import LAB_V1, load_workload, suite_dirs

SUITE = Path(__file__).parent / "data" / "lab" / "prompts" / "v1" / "general.yaml"
LAB_SUITES_ENV = "EPYC_AGENT_TEST_LAB_SUITES"  # a folder of the lab's real benchmarks/prompts/v1/*.yaml


def _write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _suite(**prompt: object) -> dict:
    """The lab's suite shape with one prompt carrying `prompt` fields."""
    return {
        "version": 1,
        "domain": "vl",
        "description": "d",
        "prompts": {"t1_q1": {"tier": 1, "name": "n", "prompt": "Describe it.", "expected": "x", **prompt}},
    }


def test_v1_suite_runs_its_prompt_text_and_keeps_the_rubric() -> None:
    """`prompt` is the text; tier, name, expected and scoring are kept per id; reference answers are not."""
    wl = load_workload(str(SUITE))
    assert (wl.name, wl.version, wl.format) == ("general", 1, LAB_V1)
    assert [p["id"] for p in wl.prompts] == ["t1_q1_json", "t2_q1_restate"]
    assert wl.prompts[1]["text"].startswith("Repeat the following sentence exactly")
    assert wl.meta["t1_q1_json"] == {
        "tier": 1,
        "name": "Structured JSON Output",
        "expected": '{"name":"Sarah Chen","role":"Senior Engineer","department":"Platform","start_date":"2024-03-15"}',
        "scoring": [{"criterion": "Valid JSON", "weight": 40}, {"criterion": "All four fields correct", "weight": 60}],
    }
    assert wl.summary()["suite_inference_params"] == {"temperature": 0.3, "max_tokens": 4096, "timeout": 180}
    assert wl.head(1).meta == {"t1_q1_json": wl.meta["t1_q1_json"]} and len(wl.head(1).prompts) == 1


def test_rubric_edits_keep_the_hash_prompt_edits_change_it(tmp_path: Path) -> None:
    """A rerun measures the same prompts when only the scoring changed, and refuses when a prompt did."""
    data = yaml.safe_load(SUITE.read_text())
    data["prompts"]["t1_q1_json"]["expected"] = "something else"
    same = _write(tmp_path / "a.yaml", data)
    data["prompts"]["t1_q1_json"]["prompt"] += " Now."
    other = _write(tmp_path / "b.yaml", data)
    assert load_workload(str(same)).sha256 == load_workload(str(SUITE)).sha256 != load_workload(str(other)).sha256


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_suite(image_path="/mnt/raid0/llm/claude/benchmarks/images/vl/ocrbench/sample_000.png"), "needs an image"),
        (_suite(context_tokens=12000, context_type="code_files"), "needs a 12000-token generated context"),
        (_suite(prompt=None), "prompt 't1_q1' has no `prompt` text"),
        ({**_suite(), "version": "1.0"}, "suite version must be an integer"),
    ],
)
def test_suite_variants_a_text_run_cannot_honour_are_refused(tmp_path: Path, data: dict, message: str) -> None:
    """vl (images) and long_context (generated context) prompts are refused by id, never run without."""
    path = _write(tmp_path / "s.yaml", data)
    with pytest.raises(EpycAgentError, match=message) as e:
        load_workload(str(path))
    assert str(path) in str(e.value)


def test_a_file_of_neither_shape_names_the_file_and_both_shapes(tmp_path: Path) -> None:
    """The lab's judge benchmark (orchestrator_planning.yaml's shape) and a bare list are not workloads."""
    judge = _write(
        tmp_path / "orchestrator_planning.yaml",
        {
            "version": "1.0",
            "benchmark_type": "orchestrator_planning",
            "scoring_method": "claude_as_judge",
            "routing": {"t1_basic": [{"id": "op_r1", "query": "Fix the typo", "expected_routing": ["worker"]}]},
        },
    )
    with pytest.raises(EpycAgentError) as e:
        load_workload(str(judge))
    assert str(e.value) == f"{judge}: not a workload (a `benchmark_type: orchestrator_planning` file)"
    assert "`prompts: [{id, text}]`" in (
        e.value.hint or ""
    ) and "`prompts: {id: {prompt, tier, expected, scoring}}`" in (e.value.hint or "")
    bare = tmp_path / "list.yaml"
    bare.write_text("- a\n- b\n")
    model = write_gguf(tmp_path / "tiny.gguf", "llama")  # refused at the workload, before anything loads
    r = run_cli("track", "run", "8", "-m", str(model), "--workload", str(bare))
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert f"{bare}: not a workload" in r.stderr and "the lab's v1 suite" in r.stderr


def test_a_suite_name_is_found_in_the_labs_checkout(tmp_path: Path) -> None:
    """`--workload general` finds benchmarks/prompts/v1/general.yaml under lab_research_dir; an
    unknown name lists ours and the lab's."""
    lab = tmp_path / "lab"
    (lab / "benchmarks" / "prompts" / "v1").mkdir(parents=True)
    shutil.copy(SUITE, lab / "benchmarks" / "prompts" / "v1" / "general.yaml")
    (tmp_path / "epyc-agent.yaml").write_text(f"lab_research_dir: {lab}\n")
    dirs = suite_dirs(load_config())
    assert load_workload("general", dirs).format == LAB_V1
    assert load_workload("summarization", dirs).format == "epyc-agent"  # ours first
    with pytest.raises(EpycAgentError) as e:
        load_workload("nope", dirs)
    assert "general" in (e.value.hint or "") and "summarization" in (e.value.hint or "")


@pytest.mark.skipif(not os.environ.get(LAB_SUITES_ENV), reason=f"set {LAB_SUITES_ENV} to the lab's prompts/v1 folder")
def test_the_labs_real_suites() -> None:
    """Every text suite loads with its rubric on every prompt; vl, long_context and the judge file are refused."""
    folder = Path(os.environ[LAB_SUITES_ENV])
    loaded, refused = {}, {}
    for path in sorted(folder.glob("*.yaml")):
        try:
            wl = load_workload(str(path))
        except EpycAgentError as e:
            refused[path.stem] = str(e)
            continue
        assert all({"tier", "expected", "scoring"} <= set(wl.meta[p["id"]]) for p in wl.prompts), path
        loaded[path.stem] = len(wl.prompts)
    assert set(refused) == {"vl", "long_context", "orchestrator_planning"}, refused
    assert loaded == {
        "agentic": 10,
        "coder": 10,
        "general": 10,
        "instruction_precision": 11,
        "math": 10,
        "thinking": 10,
        "tool_compliance": 9,
    }
