"""Results where the lab keeps them: RESULTS.md, QUIRKS.md and summary.csv updated in place (copies
built from the real files' structure under tests/data/lab/), never losing a byte outside our rows,
never a duplicate quirk, never a lost update between concurrent runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli
from gguf_factory import write_gguf

from epyc_agent.errors import EpycAgentError
from epyc_agent.tracks.labfiles import (
    QUIRKS_BEGIN,
    RUNS_BEGIN,
    RUNS_END,
    append_quirks,
    run_quirks,
    run_row,
    speed_cells,
    update_summary_csv,
    upsert_run_row,
)

DATA = Path(__file__).parent / "data" / "lab"
LAB_ENV = "EPYC_AGENT_TEST_LAB_RESEARCH"  # the lab's epyc-inference-research checkout (real files)
LAB_FILES = {
    "RESULTS.md": Path("docs/reference/benchmarks/RESULTS.md"),
    "QUIRKS.md": Path("docs/reference/models/QUIRKS.md"),
    "summary.csv": Path("benchmarks/results/reviews/summary.csv"),
}
# The lab's own run (its metadata.json as process_benchmark_results.sh writes it).
LAB_RUN = {
    "run_id": "20251216_190755",
    "timestamp": "2025-12-16T19:07:55+01:00",
    "system": {"hostname": "Beelzebub", "cpu": "AMD EPYC 9655 96-Core Processor", "ram": "1.1Ti"},
    "llama_cpp": {"version": "7404", "commit": "52392291b"},
    "prompt_version": "1",
    "benchmark_version": "1.0",
    "domains_processed": ["thinking", "vl"],
}


def _stats(median: float) -> dict[str, float]:
    return {"median": median, "min": median - 1, "max": median + 1, "stdev": 0.5}


def _config(label: str, kind: str, params: dict[str, Any], tps: float, base: float, divergences: list) -> dict:
    """One configuration's summary, as runner.summarize writes it."""
    return {
        "config": label,
        "kind": kind,
        "params": params,
        "reps": 3,
        "prompts": 4,
        "decode_tps": _stats(tps),
        "prefill_tps": 300.0,
        "ttft_s": 0.05,
        "peak_rss_mb": 512.0,
        "acceptance_rate": None if kind == "baseline" else 0.4,
        "mean_accepted_per_step": None if kind == "baseline" else 1.2,
        "speedup": None if kind == "baseline" else round(tps / base, 3),
        "identical_outputs": None if kind == "baseline" else 4 - len(divergences),
        "agree_frac": None,
        "divergences": divergences,
    }


def _run(run_id: str, track: int, method: str, points: list[tuple[str, dict, float, list]]) -> tuple[dict, list]:
    """A run's config.json (the fields the lab files use) and summary: a 20 t/s baseline, then `points`."""
    conf = {
        "run_id": run_id,
        "created": "2026-02-20T10:15:00Z",
        "started": "2026-02-20T10:15:01Z",
        "track": {"id": track, "name": method, "method": method, "status": "active"},
        "model": {"path": "/models/Qwen2.5-7B.Q4_K_S.gguf", "arch": "qwen2"},
        "draft": {"path": "/models/qwen2_5_coder_0_5b.gguf"} if method == "draft_model" else None,
        "workload": {"name": "general", "version": 1, "prompts": 4},
        "backend": {"backend": "embedded"},
    }
    summary = [_config("baseline", "baseline", {}, 20.0, 20.0, [])]
    summary += [_config(label, "method", params, tps, 20.0, div) for label, params, tps, div in points]
    return conf, summary


def _lab(tmp_path: Path) -> Path:
    """A lab checkout holding copies of the three files at their real paths, and the lab's own run."""
    lab = tmp_path / "epyc-inference-research"
    for name, rel in LAB_FILES.items():
        (lab / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(DATA / name, lab / rel)
    run = lab / "benchmarks" / "results" / "runs" / LAB_RUN["run_id"]
    run.mkdir(parents=True)
    (run / "metadata.json").write_text(json.dumps(LAB_RUN, indent=4))
    assert b"\r\n" in (lab / LAB_FILES["summary.csv"]).read_bytes()  # the real file's CRLF survived the checkout
    return lab


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def _without_section(text: str) -> str:
    """RESULTS.md without our inserted section (heading through end marker and its separator)."""
    start, end = text.index("## epyc-agent track runs"), text.index(RUNS_END) + len(RUNS_END)
    assert text[end : end + 7] == "\n\n---\n\n"
    return text[:start] + text[end + 7 :]


def _rows(text: str) -> list[str]:
    return text.split(RUNS_BEGIN, 1)[1].split(RUNS_END, 1)[0].strip().splitlines()[2:]


def test_results_md_row_goes_into_our_section_only() -> None:
    """The section is added once before the first `##` heading (not one inside a code fence); removing it
    gives back the original bytes; a run's row is replaced, another run's added, in run order."""
    original = (DATA / "RESULTS.md").read_text()
    conf, summary = _run("20260220_101500", 8, "prompt_lookup", [("pl_k=8", {"ngram_min": 3}, 30.0, [])])
    once = upsert_run_row(original, run_row(conf, summary))
    assert _without_section(once) == original
    assert once.index("## epyc-agent track runs") == original.index("## Best Results")
    row = "| 20260220_101500 | 2026-02-20 | 8 prompt_lookup | Qwen2.5-7B.Q4_K_S | general v1 (4p) | "
    assert row + "20.0 [19.0-21.0] | pl_k=8 | 30.0 [29.0-31.0] | 1.5x | 0.4 | 4/4 | 3 | embedded |" in once

    conf["run_id"] = "20260220_090000"  # an earlier run, recorded later: sorted before
    twice = upsert_run_row(once, run_row(conf, summary))
    conf, summary = _run("20260220_101500", 8, "prompt_lookup", [("pl_k=8", {"ngram_min": 3}, 35.0, [])])
    again = upsert_run_row(twice, run_row(conf, summary))
    rows = _rows(again)
    assert [ln.split(" | ")[0] for ln in rows] == ["| 20260220_090000", "| 20260220_101500"]
    assert "| 35.0 [34.0-36.0] | 1.75x |" in rows[1] and "30.0 [29.0-31.0]" in rows[0]
    assert again.count(RUNS_BEGIN) == 1 and _without_section(again) == original


def test_quirks_real_divergences_and_refusals_appended_once() -> None:
    """A divergence above the near-tie margin is a quirk, a near-tie or an unknown margin is not, expert
    reduction never is; re-recording adds nothing; the lab's entries stay byte for byte."""
    original = (DATA / "QUIRKS.md").read_text()
    div = [
        {"prompt_id": "t1_q1_json", "index": 7, "margin": 2.75},
        {"prompt_id": "t2_q1_restate", "index": 3, "margin": 0.02},
        {"prompt_id": "t3", "index": 1, "margin": None},
    ]
    conf, summary = _run("20260220_101500", 8, "prompt_lookup", [("pl_k=8", {}, 30.0, div), ("pl_k=16", {}, 31.0, [])])
    quirks = run_quirks(conf, summary, near_tie=0.5)
    assert [q["key"] for q in quirks] == ["Qwen2.5-7B.Q4_K_S|divergence|prompt_lookup|pl_k=8"]
    assert quirks[0]["symptoms"] == "1/4 prompt(s) differ: prompt t1_q1_json at token 7 (margin 2.75)"
    assert run_quirks(conf, summary, near_tie=3.0) == []
    moe, moe_summary = _run("r", 2, "moe_reduction", [("expert_used_count=4", {"expert_used_count": 4}, 30.0, div)])
    assert run_quirks(moe, moe_summary, near_tie=0.5) == []

    refused = {
        "key": "Qwen3-Next-80B|refused|prompt_lookup|",
        "title": "Qwen3-Next-80B: prompt_lookup refused",
        "issue": "Qwen3-Next-80B.gguf (qwen3next): track 8 (Prompt lookup) refused: SSM/hybrid",
        "symptoms": "refused before loading",
        "workaround": "expert reduction only",
        "discovered": "2026-02-20 (epyc-agent track run)",
    }
    text = append_quirks(original, quirks)
    assert text.startswith(original) and text.count(QUIRKS_BEGIN) == 1
    assert "### Qwen2.5-7B.Q4_K_S: prompt_lookup changes the greedy output\n" in text
    assert "**Discovered**: 2026-02-20 (run 20260220_101500)" in text
    text2 = append_quirks(append_quirks(text, [refused]), [*quirks, refused])
    assert text2.startswith(original) and text2.count("### ") == original.count("### ") + 2
    assert text2.index("Qwen2.5-7B.Q4_K_S: prompt_lookup") < text2.index("Qwen3-Next-80B: prompt_lookup refused")
    assert append_quirks(text2, [*quirks, refused]) == text2


def test_summary_csv_speed_columns_in_place() -> None:
    """The model's row gets avg_tps and its sweep merged into the lab's `k8:29.7` form (best recomputed);
    an expert count is its own `_moe<N>` row; every other line, the CRLF endings and the quality cells
    stay as they were."""
    path = DATA / "summary.csv"
    original = path.read_bytes().decode()
    conf, summary = _run(
        "r1", 1, "draft_model", [("draft_k=8", {"draft_k": 8}, 31.5, []), ("draft_k=32", {"draft_k": 32}, 50.3, [])]
    )
    text = update_summary_csv(original, speed_cells(conf, summary))
    old, new = original.splitlines(keepends=True), text.splitlines(keepends=True)
    assert len(new) == len(old) and all(ln.endswith("\r\n") for ln in new)
    changed = [i for i, (a, b) in enumerate(zip(old, new, strict=True)) if a != b]
    assert changed == [2]
    assert new[2] == (
        "Qwen2.5-7B.Q4_K_S,6/10,4/10,7/10,3/10,5/10,2/11,-,27/61,44%†,20.0,qwen2_5_coder_0_5b,50.3,"
        '"k4:22.8,k8:31.5,k16:39.3,k24:46.6,k32:50.3",19.4,"n3:19.3,n4:19.4,n5:19.2",,\r\n'
    )
    conf, summary = _run("r2", 2, "moe_reduction", [("expert_used_count=4", {"expert_used_count": 4}, 26.0, [])])
    conf["model"]["path"] = "/models/Qwen3.5-35B-A3B-Q4_K_M.gguf"
    text2 = update_summary_csv(text, speed_cells(conf, summary))
    new2 = text2.splitlines(keepends=True)
    assert new2[: len(new) - 1] == new[:-1]  # everything before the updated moe4 row is untouched
    assert new2[-2] == "Qwen3.5-35B-A3B-Q4_K_M_moe4,10/10,9/10,9/10,10/10,10/10,7/11,6/7,,61/68,90%,26.0,,,,,,,\r\n"
    assert new2[-1] == "Qwen3.5-35B-A3B-Q4_K_M,,,,,,,,,,,20.0,,,,,,,\r\n"


def test_summary_csv_without_the_speed_columns(tmp_path: Path) -> None:
    """An older header (the lab's backup_20260116 shape) gains the missing columns; with unnamed extra
    columns in some row it is refused instead of shifting them."""
    rows = "model,thinking,total\nA-Q4,3/10,3/10\n"
    conf, summary = _run("r", 8, "prompt_lookup", [("default", {"ngram_min": 2}, 30.0, [])])
    out = update_summary_csv(rows, speed_cells(conf, summary))
    assert out == (
        "model,thinking,total,avg_tps,lookup_best_tps,lookup_n_results\nA-Q4,3/10,3/10\n"
        "Qwen2.5-7B.Q4_K_S,,,20.0,30.0,n2:30.0\n"
    )
    with pytest.raises(EpycAgentError, match="summary.csv: the header lacks avg_tps"):
        update_summary_csv(rows + "B,1/10,1/10,a note\n", speed_cells(conf, summary))


WRITER = """
import sys
from epyc_agent.tracks.labfiles import _edit, locked, update_summary_csv, upsert_run_row
lab, who = sys.argv[1], sys.argv[2]
for n in range(15):
    with locked(lab):
        _edit(lab + "/RESULTS.md", lambda t: upsert_run_row(t, [f"{who}-{n:02d}", *["x"] * 12]))
        _edit(lab + "/summary.csv", lambda t: update_summary_csv(t, {f"{who}-{n:02d}": {"avg_tps": "1.0"}}))
"""


def test_concurrent_updates_are_all_kept(tmp_path: Path) -> None:
    """Six processes each recording 15 runs into the same files: all 90 rows arrive (the flock serialises
    the read-modify-write), and the lab's content is intact."""
    shutil.copy(DATA / "RESULTS.md", tmp_path / "RESULTS.md")
    shutil.copy(DATA / "summary.csv", tmp_path / "summary.csv")
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), f"p{i}"], stderr=subprocess.PIPE)
        for i in range(6)
    ]
    assert all(p.wait(timeout=120) == 0 for p in procs), [p.stderr.read() for p in procs if p.stderr]
    results = (tmp_path / "RESULTS.md").read_text()
    body = results.split(RUNS_BEGIN, 1)[1].split(RUNS_END, 1)[0]
    assert len(body.strip().splitlines()) == 2 + 90
    csv_lines = (tmp_path / "summary.csv").read_bytes().splitlines(keepends=True)
    original = (DATA / "summary.csv").read_bytes().splitlines(keepends=True)
    assert csv_lines[: len(original)] == original and len(csv_lines) == len(original) + 90
    assert not list(tmp_path.glob("*.tmp"))


def test_lab_layout_without_the_checkout_refuses_before_measuring(tmp_path: Path, root: Path) -> None:
    """`results.layout: lab` with no checkout at lab_research_dir: exit 2 naming the folder, no run folder."""
    (tmp_path / "epyc-agent.yaml").write_text("results:\n  layout: lab\n")
    model = write_gguf(tmp_path / "tiny.gguf", "llama")
    r = run_cli("track", "run", "8", "-m", str(model), "--prompts", "1", "--reps", "1")
    assert r.returncode == 2, r.stderr
    assert f"lab_research_dir {root / 'epyc-inference-research'} does not exist" in r.stderr
    assert not (root / "benchmarks").exists() and not (root / "epyc-inference-research").exists()


@pytest.mark.slow
def test_track_run_with_the_lab_layout(default_model: Path, tmp_path: Path, root: Path) -> None:
    """A real track 8 run on the small model with a v1 suite (found by name in the lab's checkout): the
    lab's run folder and metadata.json, the suite's rubric per prompt, a RESULTS.md row, the model's
    speed cells in summary.csv, a refused method in QUIRKS.md (once), and the lab's content untouched."""
    lab = _lab(tmp_path)
    (lab / "benchmarks" / "prompts" / "v1").mkdir(parents=True)
    shutil.copy(DATA / "prompts" / "v1" / "general.yaml", lab / "benchmarks" / "prompts" / "v1" / "general.yaml")
    (tmp_path / "epyc-agent.yaml").write_text(f"lab_research_dir: {lab}\nresults:\n  layout: lab\n")
    before = {name: (lab / rel).read_bytes() for name, rel in LAB_FILES.items()}

    r = run_cli(
        "track", "run", "8", "-m", str(default_model), "-w", "general", "--reps", "1", "--max-tokens", "16", "--json",
        timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    run_dir = Path(out["run_dir"])
    assert run_dir.parent == lab / "benchmarks" / "results" / "runs" and run_dir.name == out["run_id"]
    assert len(out["run_id"]) == 15 and out["run_id"][8] == "_" and out["run_id"].replace("_", "").isdigit()
    meta = json.loads((run_dir / "metadata.json").read_text())
    assert set(meta) - {"epyc_agent"} == set(LAB_RUN) and set(meta["system"]) == set(LAB_RUN["system"])
    assert meta["run_id"] == out["run_id"] and meta["domains_processed"] == ["general"]
    assert meta["prompt_version"] == "1" and meta["timestamp"][19] in "+-"
    recs = [json.loads(x) for x in (run_dir / "output.jsonl").read_text().splitlines()]
    assert [(x["prompt_id"], x["suite"]["tier"]) for x in recs if x["config"] == "baseline"] == [
        ("t1_q1_json", 1),
        ("t2_q1_restate", 2),
    ]
    assert (
        recs[1]["suite"]["expected"].startswith("The quick brown fox")
        and recs[1]["suite"]["scoring"][0]["weight"] == 100
    )
    conf = json.loads((run_dir / "config.json").read_text())
    assert conf["workload"]["format"] == "lab-v1" and conf["workload"]["suite_inference_params"]["temperature"] == 0.3
    assert not (root / "benchmarks").exists()  # nothing in our own layout

    results = (lab / LAB_FILES["RESULTS.md"]).read_text()
    rows = _rows(results)
    assert len(rows) == 1 and rows[0].startswith(f"| {out['run_id']} | ") and "| gemma-3-270m-q4_k_m |" in rows[0]
    assert _without_section(results).encode() == before["RESULTS.md"]

    base, method = out["summary"]
    csv_new, csv_old = _lines(lab / LAB_FILES["summary.csv"]), before["summary.csv"].splitlines(keepends=True)
    changed = [i for i, (a, b) in enumerate(zip(csv_old, csv_new, strict=True)) if a != b]
    assert len(csv_new) == len(csv_old) and changed == [4]
    n = method["params"]["ngram_min"]
    assert (
        csv_new[4]
        .decode()
        .startswith(f"gemma-3-270m-q4_k_m,-,1/10,-,-,-,-,-,-,1/10,10%†,{base['decode_tps']['median']:.1f},,,,")
    )
    assert f"n{n}:{method['decode_tps']['median']:.1f}" in csv_new[4].decode() and "n5:9.9" in csv_new[4].decode()

    quirks_path = lab / LAB_FILES["QUIRKS.md"]
    real = [d for d in method["divergences"] if d["margin"] is not None and d["margin"] > 0.5]
    assert (quirks_path.read_bytes() == before["QUIRKS.md"]) == (not real)

    mamba = write_gguf(tmp_path / "mamba-tiny.gguf", "mamba", ssm=True)
    for _ in range(2):
        r = run_cli("track", "run", "8", "-m", str(mamba), "-w", "general")
        assert r.returncode == 2 and "refused" in r.stderr, r.stderr
    quirks = quirks_path.read_text()
    assert (
        quirks.startswith(before["QUIRKS.md"].decode()) and quirks.count("### mamba-tiny: prompt_lookup refused") == 1
    )
    assert "**Issue**: mamba-tiny.gguf (mamba): track 8 (Prompt lookup) refused:" in quirks

    r = run_cli("track", "rerun", out["run_id"], "--json", timeout=600)
    assert r.returncode == 0, r.stderr
    again = json.loads(r.stdout)["run_id"]
    results = (lab / LAB_FILES["RESULTS.md"]).read_text()
    assert [row.split(" | ")[0] for row in _rows(results)] == [f"| {out['run_id']}", f"| {again}"]
    assert _without_section(results).encode() == before["RESULTS.md"]
    r = run_cli("track", "runs", "--json")
    assert r.returncode == 0 and [x["run_id"] for x in json.loads(r.stdout)] == [out["run_id"], again]
    report = (root / "research" / "research_report.md").read_text()
    assert f"from 2 run(s) in `{lab / 'benchmarks' / 'results' / 'runs'}/`" in report


@pytest.mark.skipif(not os.environ.get(LAB_ENV), reason=f"set {LAB_ENV} to the lab's research checkout")
def test_the_labs_real_files() -> None:
    """On the lab's real RESULTS.md, QUIRKS.md and summary.csv: every byte outside our rows is kept,
    and a pre-`vl` row of summary.csv is updated in its own layout."""
    lab = Path(os.environ[LAB_ENV])
    results, quirks = (lab / LAB_FILES["RESULTS.md"]).read_text(), (lab / LAB_FILES["QUIRKS.md"]).read_text()
    csv_text = (lab / LAB_FILES["summary.csv"]).read_bytes().decode()
    conf, summary = _run("20260220_101500", 1, "draft_model", [("draft_k=32", {"draft_k": 32}, 50.3, [])])
    assert _without_section(upsert_run_row(results, run_row(conf, summary))) == results
    assert append_quirks(quirks, [{k: "x" for k in ("title", "issue", "symptoms", "workaround", "discovered")}
                                  | {"key": "k"}]).startswith(quirks)  # fmt: skip
    old = csv_text.splitlines(keepends=True)
    new = update_summary_csv(csv_text, speed_cells(conf, summary)).splitlines(keepends=True)
    i = next(n for n, line in enumerate(old) if line.startswith("Qwen2.5-7B.Q4_K_S,"))
    assert [n for n, (a, b) in enumerate(zip(old, new, strict=True)) if a != b] == [i] and len(new) == len(old)
    assert new[i].count(",") == old[i].count(",") + 1 and ",20.0,qwen2_5_coder_0_5b,50.3," in new[i]
    assert "k24:46.6,k32:50.3" in new[i]
