"""A real `track run 8` on the default model (tiny settings), then `track rerun` and `report`: the run
folder holds typed numbers, the model is marked tested, the audit log has the run, and the report is
rebuilt from all runs each time."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli

pytestmark = pytest.mark.slow


def _events(log_dir: Path) -> list[dict]:
    return [json.loads(x) for f in sorted(log_dir.glob("agent_audit-*.log")) for x in f.read_text().splitlines()]


def _typed(rec: dict) -> None:
    for k in ("n_prompt", "n_generated", "steps"):
        assert isinstance(rec[k], int) and not isinstance(rec[k], bool), k
    for k in ("ttft_s", "prefill_tps", "decode_tps", "wall_s", "peak_rss_mb"):
        assert isinstance(rec[k], float) and rec[k] > 0, k


def test_run_rerun_report(default_model: Path, root: Path, log_dir: Path) -> None:
    """Run, rerun and report on the real model; the report is regenerated, never appended to."""
    r = run_cli(
        "track",
        "run",
        "8",
        "-m",
        str(default_model),
        "--prompts",
        "1",
        "--reps",
        "1",
        "--max-tokens",
        "16",
        "--json",
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    run_dir = Path(out["run_dir"])
    assert run_dir.parent == root / "benchmarks" / "runs" and run_dir.name == out["run_id"]
    assert out["run_id"].endswith("-t8-gemma-3-270m-q4_k_m")
    assert {"config.json", "output.jsonl", "summary.json", "summary.md"} <= {p.name for p in run_dir.iterdir()}

    conf = json.loads((run_dir / "config.json").read_text())
    assert conf["model"]["sha256"] == "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
    assert conf["backend"]["backend"] == "embedded" and conf["backend"]["llama_cpp_python"] == "0.3.36"
    assert "CPU" in conf["backend"]["llama_cpp_system_info"]
    assert conf["host"]["ram_gb"] > 0 and conf["threads"] >= 1 and len(conf["workload"]["sha256"]) == 64
    assert conf["request"]["track"] == "8" and conf["workload"]["prompt_ids"] == ["sum-01"]

    recs = [json.loads(x) for x in (run_dir / "output.jsonl").read_text().splitlines()]
    assert [(x["config"], x["prompt_id"], x["rep"]) for x in recs] == [
        ("baseline", "sum-01", 0),
        ("default", "sum-01", 0),
    ]
    for rec in recs:
        _typed(rec)
    method = recs[1]
    assert method["drafted"] >= method["accepted"] >= 0 and isinstance(method["agreement"]["identical"], bool)
    base_s, method_s = out["summary"]
    assert base_s["speedup"] is None and method_s["speedup"] == pytest.approx(
        method_s["decode_tps"]["median"] / base_s["decode_tps"]["median"], rel=0.01
    )

    tested = json.loads((log_dir / "tested_models.json").read_text())["tested"]
    assert tested[-1]["method"] == "prompt_lookup" and tested[-1]["run_id"] == out["run_id"]
    assert isinstance(tested[-1]["metrics"]["decode_tps"], float)
    assert tested[-1]["result_tps"] == tested[-1]["metrics"]["decode_tps"]  # the lab's column, as a number
    ev = _events(log_dir)
    task = f"track 8 run {out['run_id']}"
    assert [e["cat"] for e in ev if e["msg"] == task] == ["TASK_START", "TASK_END"]
    obs = [e for e in ev if e["cat"] == "OBSERVE" and e["msg"].startswith("track8.")]
    assert {e["msg"] for e in obs} == {"track8.baseline.decode_tps", "track8.default.decode_tps"}
    assert all(e["data"]["run_id"] == out["run_id"] for e in obs)

    report = root / "research" / "research_report.md"
    first = report.read_text()
    assert (root / "research" / "research_report_speedup.png").stat().st_size > 1000
    assert out["run_id"] in first and "from 1 run(s)" in first

    r = run_cli("track", "rerun", out["run_id"], "--json", timeout=600)
    assert r.returncode == 0, r.stderr
    again = json.loads(r.stdout)
    conf2 = json.loads((Path(again["run_dir"]) / "config.json").read_text())
    assert again["run_id"] != out["run_id"]
    assert (conf2["model"]["sha256"], conf2["workload"]["sha256"], conf2["configs"]) == (
        conf["model"]["sha256"],
        conf["workload"]["sha256"],
        conf["configs"],
    )

    second = report.read_text()
    assert "from 2 run(s)" in second and out["run_id"] in second and again["run_id"] in second
    for header in ("## Executive summary", "## Per track", "## Per model", "## All runs"):
        assert second.count(header) == 1, header
    all_runs = second.split("## All runs", 1)[1]
    assert sum(line.startswith("| 20") for line in all_runs.splitlines()) == 4  # 2 runs x (baseline + method)

    r = run_cli("report")
    assert r.returncode == 0 and r.stdout.strip() == str(report)
    strip = lambda text: [x for x in text.splitlines() if not x.startswith("Regenerated ")]  # noqa: E731
    assert strip(report.read_text()) == strip(second)
    assert not (root.parent / "home" / ".cache").exists() and not (root.parent / "home" / ".config").exists()
