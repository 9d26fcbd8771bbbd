"""`epyc-agent report` on run folders with mixed settings: verdict and CV beside every figure, an
inconclusive run with the highest speedup never called best, max_tokens/threads/backend/build
columns, whiskers from the per-rep ratios (the baseline's spread included), one plot per sweep and
one per track over time, all regenerated from the runs on disk.

The run folders are written as the runner and the roles pipeline write them (the shapes of a real
`track run 8`): records in output.jsonl, summary.json from the runner's own `summarize` and the
benchmark-analyst's `analyze`, analysis.json beside them."""

from __future__ import annotations

import hashlib
import json
import statistics
from pathlib import Path
from typing import Any

from conftest import run_cli
from PIL import Image

from epyc_agent.roles.policies import analyze, rep_rates
from epyc_agent.tracks.runner import summarize

PL = {"ngram_max": 12, "ngram_min": 2, "adaptive": True}  # prompt lookup's engine defaults, as recorded
TRACKS = {
    2: {"id": 2, "name": "MoE expert reduction", "method": "moe_reduction", "status": "production"},
    6: {"id": 6, "name": "Suffix decoding", "method": "suffix", "status": "active"},
    8: {"id": 8, "name": "Prompt lookup", "method": "prompt_lookup", "status": "active"},
}
BUILD_A = [
    {"path": "/venv/llama_cpp/lib/libllama.so", "version": "llama-cpp-python 0.3.36", "sha256": "a1" * 32},
    {"path": "/venv/llama_cpp/lib/libggml.so", "version": "llama-cpp-python 0.3.36", "sha256": "b2" * 32},
]
BUILD_B = [{"path": "/opt/llama.cpp/bin/llama-lookup", "version": "version: 7404 (52392291b)", "sha256": "c3" * 32}]


def digest(build: list[dict[str, str]]) -> str:
    return hashlib.sha256(",".join(sorted(b["sha256"] for b in build)).encode()).hexdigest()[:8]


def records(configs: dict[str, tuple[dict[str, Any], list[list[float]]]]) -> list[dict[str, Any]]:
    """One record per configuration, rep and prompt with the given decode t/s (rates[rep][prompt])."""
    out = []
    for label, (params, rates) in configs.items():
        for rep, per_prompt in enumerate(rates):
            for i, tps in enumerate(per_prompt):
                method = label != "baseline"
                out.append(
                    {
                        "config": label,
                        "kind": "method" if method else "baseline",
                        "params": params,
                        "prompt_id": f"sum-0{i + 1}",
                        "rep": rep,
                        "n_prompt": 199,
                        "n_generated": 33,
                        "ttft_s": 0.27,
                        "prefill_tps": 740.0,
                        "decode_tps": tps,
                        "wall_s": 0.8,
                        "peak_rss_mb": 436.0,
                        "steps": 20 if method else 32,
                        "drafted": 16 if method and "pl_k" in params else 0,
                        "accepted": 12 if method and "pl_k" in params else 0,
                        "rss_mb": 436.1,
                        "text": "The job wrote temporary index files",
                        "agreement": {"identical": True, "first_divergence": None, "margin": None, "agree_frac": 1.0},
                    }
                )
    return out


def write_run(
    runs: Path,
    run_id: str,
    track: int,
    configs: dict[str, tuple[dict[str, Any], list[list[float]]]],
    *,
    started: str,
    max_tokens: int = 128,
    threads: int = 2,
    build: list[dict[str, str]] = BUILD_A,
    backend: str = "embedded",
    analysed: bool = True,
    status: str | None = None,
) -> None:
    """A run folder as `track run` leaves it; `analysed=False` is a run recorded before the
    benchmark-analyst stored CVs and verdicts (no analysis.json, no cv in summary.json)."""
    d = runs / run_id
    d.mkdir(parents=True)
    recs = records(configs)
    summary = summarize(recs)
    analysis = analyze(summary, rep_rates(recs))
    if not analysed:
        for s in summary:
            del s["cv"], s["cv_flag"], s["verdict"]
    reps = len(next(iter(configs.values()))[1])
    conf = {
        "run_id": run_id,
        "schema": 1,
        "created": started,
        "started": started,
        "ended": started,
        "wall_s": 6.0,
        "epyc_agent": "0.1.0",
        "request": {
            "track": str(track),
            "model": "/models/tiny-a.gguf",
            "draft": None,
            "workload": "summarization",
            "prompts": 2,
            "reps": reps,
            "max_tokens": max_tokens,
            "threads": threads,
            "params": [],
            "backend": "auto",
            "n_ctx": 4096,
            "seed": 0,
        },  # fmt: skip
        "track": TRACKS[track],
        "model": {
            "path": "/models/tiny-a.gguf",
            "name": "tiny a",
            "arch": "qwen3moe" if track == 2 else "gemma3",
            "size_bytes": 1000,
            "sha256": "d4" * 32,
        },  # fmt: skip
        "draft": None,
        "backend": {"backend": backend, "llama_cpp_python": "0.3.36", "build": build, "llama_cpp_bin": None},
        "host": {"hostname": "vm", "cpu": "AMD EPYC", "cpu_count": 2, "usable_cpus": 2, "ram_gb": 25.3},
        "threads": threads,
        "n_ctx": 4096,
        "seed": 0,
        "configs": [{"label": k, "params": v[0]} for k, v in configs.items() if k != "baseline"],
        "workload": {
            "name": "summarization",
            "version": 1,
            "prompts": 2,
            "sha256": "e5" * 32,
            "format": "epyc-agent",
            "prompt_ids": ["sum-01", "sum-02"],
        },  # fmt: skip
    }
    summ: dict[str, Any] = {"run_id": run_id, "summary": summary}
    if status:  # as the journal leaves it (a summary of a run that did not finish: e.g. an older version's)
        (d / "status.json").write_text(json.dumps({"run_id": run_id, "state": status}))
    (d / "config.json").write_text(json.dumps(conf, indent=2))
    (d / "summary.json").write_text(json.dumps(summ, indent=2))
    (d / "output.jsonl").write_text("".join(json.dumps({"run_id": run_id, **r}) + "\n" for r in recs))
    if analysed:
        (d / "analysis.json").write_text(json.dumps({"run_id": run_id, "config_key": "k", **analysis}, indent=2))


def steady(rate: float, reps: int = 3) -> list[list[float]]:
    """Two prompts per rep, within 1% of `rate`: a conclusive measurement."""
    return [[rate * (1 + 0.01 * (r % 3 - 1)), rate * (1 - 0.005 * r)] for r in range(reps)]


A = "2026-01-05_100000-t8-tiny-a"  # conclusive pl_k sweep, max_tokens 128, 2 threads
B = "2026-01-06_100000-t8-tiny-a"  # 2 reps, CV 31%, the highest speedup: inconclusive
C = "2026-01-07_100000-t2-tiny-a"  # expert-count sweep recorded before verdicts were stored
D = "2026-01-08_100000-t6-tiny-a"  # 3 reps but a CV above 10%: unstable
E = "2026-01-09_100000-t8-tiny-a"  # cut short
B_BASE, B_METHOD = [[22.0, 22.0], [14.0, 14.0]], [[30.0, 30.0], [34.0, 34.0]]


def mixed_runs(runs: Path) -> None:
    write_run(runs, A, 8, {"baseline": ({}, steady(20.0)), **{
        f"pl_k={k}": ({"pl_k": k, **PL}, steady(20.0 * f)) for k, f in ((4, 1.2), (8, 1.3), (16, 1.1))
    }}, started="2026-01-05T10:00:00Z")  # fmt: skip
    write_run(runs, B, 8, {"baseline": ({}, B_BASE), "pl_k=8": ({"pl_k": 8, **PL}, B_METHOD)},
              started="2026-01-06T10:00:00Z", max_tokens=32, threads=1, build=BUILD_B, backend="binaries")  # fmt: skip
    write_run(runs, C, 2, {"baseline": ({}, steady(10.0)), **{
        f"expert_used_count={n}": ({"expert_used_count": n}, steady(10.0 * f)) for n, f in ((2, 1.25), (4, 1.1))
    }}, started="2026-01-07T10:00:00Z", analysed=False)  # fmt: skip
    write_run(runs, D, 6, {"baseline": ({}, steady(20.0)), "suffix_k=16": ({"suffix_k": 16},
              [[30.0, 30.0], [20.0, 20.0], [40.0, 40.0]])}, started="2026-01-08T10:00:00Z")  # fmt: skip
    write_run(runs, E, 8, {"baseline": ({}, steady(20.0)), "pl_k=4": ({"pl_k": 4, **PL}, steady(32.0))},
              started="2026-01-09T10:00:00Z", status="interrupted")  # fmt: skip


def report(root: Path) -> str:
    r = run_cli("report")
    assert r.returncode == 0, r.stderr
    path = root / "research" / "research_report.md"
    assert r.stdout.strip() == str(path)
    return path.read_text()


def pngs(root: Path) -> set[str]:
    """Our figures next to the report, each checked to be a whole, valid PNG."""
    names = {p.name for p in (root / "research").glob("research_report_*.png")}
    for n in names:
        with Image.open(root / "research" / n) as im:
            im.verify()
            assert im.format == "PNG" and im.size[0] > 300 and im.size[1] > 300, n
    return names


def table_row(text: str, section: str, *first: str) -> dict[str, str]:
    """The one row of `section`'s table that starts with these cells, as {header: cell}."""
    body = text.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in body.splitlines() if ln.startswith("|")]
    split = lambda ln: [c.strip() for c in ln.strip("|").split(" | ")]  # noqa: E731
    hits = [split(ln) for ln in lines[2:] if split(ln)[: len(first)] == list(first)]
    assert len(hits) == 1, (first, hits)
    return dict(zip(split(lines[0]), hits[0], strict=True))


def test_mixed_runs_report(root: Path) -> None:
    """Best is the conclusive 1.3x, not the inconclusive 1.78x; every figure says its verdict, CV and settings."""
    mixed_runs(root / "benchmarks" / "runs")
    text = report(root)

    best = next(ln for ln in text.splitlines() if ln.startswith("- Best conclusive speedup"))
    assert best.startswith("- Best conclusive speedup: track 8 (Prompt lookup) `pl_k=8` on tiny-a.gguf")
    assert "1.3x [1.30-1.30] (25.9 [25.9-26.0] vs 19.9 [19.9-20.0] t/s; CV 0.2% vs 0.2%; 3 reps; **conclusive**" in best
    assert "max_tokens 128, threads 2, embedded" in best and f"#{digest(BUILD_A)}" in best and f"run {A}" in best
    assert "- 3 higher figure(s) are not conclusive and not counted" in text  # B, D and E
    assert "Runs differ in max_tokens (32, 128); threads (1, 2); backend (binaries, embedded); build (" in text

    row_b = table_row(text, "All runs", B, "8", "tiny-a.gguf", "summarization (2p)", "pl_k=8")
    base_cv = statistics.stdev([22.0, 14.0]) / 18.0
    ratios = [m / b for mr, br in zip(B_METHOD, B_BASE, strict=True) for m, b in zip(mr, br, strict=True)]
    assert (row_b["reps"], row_b["verdict"], row_b["max_tokens"], row_b["threads"], row_b["backend"]) == (
        "2", "inconclusive", "32", "1", "binaries",
    )  # fmt: skip
    assert row_b["build"] == f"7404 (52392291b) #{digest(BUILD_B)}"
    assert row_b["decode CV"] == f"{statistics.stdev([30.0, 34.0]) / 32.0:.1%}"
    assert row_b["decode t/s median [min-max]"] == "32.0 [30.0-34.0]"
    # per-rep ratios 1.36-2.43, not the method's own spread over the baseline median (1.67-1.89)
    assert row_b["speedup [per-rep ratios]"] == f"1.778x [{min(ratios):.2f}-{max(ratios):.2f}]"
    base_b = table_row(text, "All runs", B, "8", "tiny-a.gguf", "summarization (2p)", "baseline")
    assert base_b["decode CV"] == f"{base_cv:.1%}" and base_cv > 0.3
    assert (
        table_row(text, "All runs", D, "6", "tiny-a.gguf", "summarization (2p)", "suffix_k=16")["verdict"] == "unstable"
    )
    assert (
        table_row(text, "All runs", E, "8", "tiny-a.gguf", "summarization (2p)", "pl_k=4")["verdict"] == "interrupted"
    )

    # a run recorded before verdicts were stored is judged by the same rule from its output.jsonl
    row_c = table_row(text, "All runs", C, "2", "tiny-a.gguf", "summarization (2p)", "expert_used_count=2")
    assert (row_c["reps"], row_c["verdict"], row_c["max_tokens"], row_c["backend"]) == (
        "3",
        "conclusive",
        "128",
        "embedded",
    )
    assert row_c["decode CV"].endswith("%") and row_c["speedup [per-rep ratios]"] == "1.25x [1.25-1.25]"

    track8 = table_row(text, "Per track", "8", "Prompt lookup", "active", "3", "1")
    assert track8["best conclusive speedup"].startswith("1.3x [1.30-1.30] (25.9 [")
    assert "**conclusive**" in track8["best conclusive speedup"] and track8["best config"] == "`pl_k=8` on tiny-a.gguf"
    assert (track8["max_tokens"], track8["threads"], track8["build"]) == (
        "128",
        "2",
        f"llama-cpp-python 0.3.36 #{digest(BUILD_A)}",
    )
    assert table_row(text, "Per track", "6", "Suffix decoding", "active", "1", "0")["best conclusive speedup"] == (
        "no conclusive run"
    )
    assert table_row(text, "Per track", "2", "MoE expert reduction", "production", "1", "1")["best config"] == (
        "`expert_used_count=2` on tiny-a.gguf"
    )

    names = pngs(root)
    sweep8 = "research_report_sweep_t8_pl_k_tiny-a_summarization_mt128_th2.png"
    sweep2 = "research_report_sweep_t2_expert_used_count_tiny-a_summarization_mt128_th2.png"
    over = {f"research_report_t{t}_over_time.png" for t in (2, 6, 8)}
    assert names == {"research_report_speedup.png", sweep8, sweep2, *over}
    for n in names:
        assert f"]({n})" in text, n
    sweeps = text.split("## Parameter sweeps", 1)[1].split("\n## ", 1)[0]
    assert sweeps.count("\n### ") == 2
    assert "| 16 | 1.1x [" in sweeps and "| 8 | 1.3x [" in sweeps and "| interrupted |" in sweeps  # E joins at pl_k=4
    assert "adaptive=True, ngram_max=12, ngram_min=2." in sweeps  # the parameters held fixed
    data = json.loads((root / "research" / "research_report.json").read_text())
    assert sorted(data["plots"]["sweeps"]) == sorted([sweep8, sweep2])
    rb = next(r for r in data["rows"] if r["run"] == B)
    assert rb["ratio_spread"] == {"min": round(min(ratios), 3), "max": round(max(ratios), 3), "n": 4}


def test_regenerated_from_the_runs(root: Path) -> None:
    """The report and its figures follow the run folders: a removed run takes its plots with it."""
    runs = root / "benchmarks" / "runs"
    mixed_runs(runs)
    first = report(root)
    strip = lambda text: [x for x in text.splitlines() if not x.startswith("Regenerated ")]  # noqa: E731
    assert strip(report(root)) == strip(first)
    for f in (runs / C).iterdir():
        f.unlink()
    (runs / C).rmdir()
    text = report(root)
    assert C not in text and "from 4 run(s)" in text and text.count("# Research report") == 1
    assert pngs(root) == {
        "research_report_speedup.png",
        "research_report_sweep_t8_pl_k_tiny-a_summarization_mt128_th2.png",
        "research_report_t6_over_time.png",
        "research_report_t8_over_time.png",
    }


def test_no_conclusive_run(root: Path) -> None:
    """With only an inconclusive run the report says no figure is a result and names no best."""
    write_run(root / "benchmarks" / "runs", B, 8, {"baseline": ({}, B_BASE), "pl_k=8": ({"pl_k": 8, **PL}, B_METHOD)},
              started="2026-01-06T10:00:00Z")  # fmt: skip
    text = report(root)
    assert "- **No conclusive run yet**: no speedup here is a result. Rerun with `--reps 3` or more" in text
    assert "Best conclusive speedup" not in text and "Runs differ" not in text
    assert "- **tiny-a.gguf**: no conclusive run, so no best configuration." in text
    assert table_row(text, "Per model", "tiny-a.gguf", "gemma3", "1", "8")["best conclusive speedup"] == (
        "no conclusive run"
    )
    assert "No sweeps yet" in text
    assert pngs(root) == {"research_report_speedup.png", "research_report_t8_over_time.png"}


def test_no_runs(root: Path) -> None:
    """Without runs: no figures, and a stale figure from an earlier report is removed."""
    (root / "research").mkdir()
    (root / "research" / "research_report_t9_over_time.png").write_bytes(b"old")
    text = report(root)
    assert "No runs yet" in text and pngs(root) == set()
