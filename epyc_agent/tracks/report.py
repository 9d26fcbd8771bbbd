"""The research report, regenerated from every run folder (never edited row by row).

`<root>/research/research_report.md` plus `research_report_speedup.png` next to it. Each figure
states its run id, its reps and its spread (min-max of the per-rep medians).
"""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING, Any

from ..sessions import read_json

if TYPE_CHECKING:
    from ..config import Config

REPORT_NAME = "research_report.md"
CHART_NAME = "research_report_speedup.png"


def md_table(headers: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        return "-" if v is None else str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def fmt_spread(d: dict[str, Any]) -> str:
    return f"{d['median']:.1f} [{d['min']:.1f}-{d['max']:.1f}]"


METRIC_COLUMNS = ["decode t/s median [min-max]", "prefill t/s", "TTFT s", "peak RSS MB", "acceptance",
                  "accepted/step", "speedup", "identical"]  # fmt: skip


def metric_cells(s: dict[str, Any]) -> list[Any]:
    """One configuration's figures, in METRIC_COLUMNS order (None renders as '-')."""
    return [
        fmt_spread(s["decode_tps"]),
        s["prefill_tps"],
        s["ttft_s"],
        s["peak_rss_mb"],
        s["acceptance_rate"],
        s["mean_accepted_per_step"],
        f"{s['speedup']}x" if s["speedup"] is not None else None,
        f"{s['identical_outputs']}/{s['prompts']}" if s["identical_outputs"] is not None else None,
    ]


def load_runs(cfg: Config) -> list[dict[str, Any]]:
    """Every complete run folder (config.json + summary.json), oldest first; broken ones are skipped."""
    from .results import runs_dir

    base = runs_dir(cfg)
    try:
        names = sorted(n for n in os.listdir(base) if not n.startswith("."))
    except FileNotFoundError:
        return []
    runs = []
    for name in names:
        try:
            conf = read_json(os.path.join(base, name, "config.json"))
            summ = read_json(os.path.join(base, name, "summary.json"))
        except Exception:  # noqa: BLE001 - one unreadable run must not hide the others
            continue
        if isinstance(conf, dict) and isinstance(summ, dict) and summ.get("summary"):
            runs.append(
                {"id": conf["run_id"], "dir": os.path.join(base, name), "config": conf, "summary": summ["summary"]}
            )
    return runs


def _model(run: dict[str, Any]) -> str:
    return os.path.basename(run["config"]["model"]["path"])


def _rows(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per method configuration of every run, with its run's baseline."""
    out = []
    for run in runs:
        base = run["summary"][0]
        for s in run["summary"][1:]:
            out.append(
                {
                    "run": run["id"],
                    "track": run["config"]["track"],
                    "model": _model(run),
                    "workload": run["config"]["workload"]["name"],
                    "base": base,
                    **s,
                }
            )
    return out


def _fig(r: dict[str, Any]) -> str:
    """A speedup figure with its provenance: value, run id, reps, spread."""
    sp = f"{r['speedup']}x" if r["speedup"] is not None else "-"
    return (
        f"{sp} ({fmt_spread(r['decode_tps'])} vs {fmt_spread(r['base']['decode_tps'])} t/s, "
        f"{r['reps']} reps, run {r['run']})"
    )


def _best(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    ranked = [r for r in rows if r["speedup"] is not None]
    return max(ranked, key=lambda r: r["speedup"]) if ranked else None


def chart(rows: list[dict[str, Any]], path: str, cache_dir: str) -> bool:
    """Speedup per configuration with min-max error bars; False when there is nothing to draw."""
    rows = [r for r in rows if r["speedup"] is not None][-30:]
    if not rows:
        return False
    os.environ.setdefault("MPLCONFIGDIR", os.path.join(cache_dir, "matplotlib"))
    os.makedirs(os.environ["MPLCONFIGDIR"], exist_ok=True)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"t{r['track']['id']} {r['config']}\n{r['model'][:28]}\n{r['run'][:17]} ({r['reps']} reps)" for r in rows]
    base_med = [r["base"]["decode_tps"]["median"] or 1e-9 for r in rows]
    lo = [max(r["speedup"] - r["decode_tps"]["min"] / b, 0) for r, b in zip(rows, base_med, strict=True)]
    hi = [max(r["decode_tps"]["max"] / b - r["speedup"], 0) for r, b in zip(rows, base_med, strict=True)]
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(rows)), 4.8))
    ax.bar(range(len(rows)), [r["speedup"] for r in rows], yerr=[lo, hi], capsize=4, color="#4878a8")
    ax.axhline(1.0, color="grey", linestyle="--", linewidth=1)
    ax.set_xticks(range(len(rows)), labels, fontsize=7)
    ax.set_ylabel("decode speedup over greedy baseline (x)")
    ax.set_title("Speedup per run and configuration (bars: median; whiskers: min-max over reps)", fontsize=9)
    fig.tight_layout()
    tmp = f"{path}.{os.getpid()}.tmp.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)
    return True


def render(runs: list[dict[str, Any]], has_chart: bool, runs_at: str = "benchmarks/runs/") -> str:
    from .spec import load_tracks

    rows = _rows(runs)
    tracks = load_tracks()
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    out = [
        "# Research report",
        "",
        f"Regenerated {now} from {len(runs)} run(s) in `{runs_at}` by `epyc-agent report`. "
        "Every figure names its run id and reps; spreads are min-max of the per-rep decode tokens/s.",
        "",
        "## Executive summary",
        "",
    ]
    best = _best(rows)
    if not runs:
        out += ["No runs yet: `epyc-agent track run 8 --model M` measures one.", ""]
    else:
        models = sorted({_model(r) for r in runs})
        out.append(
            f"- {len(runs)} run(s) over {len(models)} model(s) and "
            f"{len({r['config']['track']['id'] for r in runs})} track(s)."
        )
        if best:
            out.append(
                f"- Best speedup: track {best['track']['id']} ({best['track']['name']}) "
                f"`{best['config']}` on {best['model']}, workload {best['workload']}: {_fig(best)}."
            )
        slower = [r for r in rows if r["speedup"] is not None and r["speedup"] < 1.0]
        if slower:
            out.append(f"- {len(slower)} configuration(s) were slower than the baseline.")
        diverged = [r for r in rows if r.get("identical_outputs") is not None and r["identical_outputs"] < r["prompts"]]
        if diverged:
            out.append(f"- {len(diverged)} configuration(s) changed the output on some prompts (see agreement below).")
        out.append("")
    out += ["## Per track", ""]
    trows = []
    for tid, t in tracks.items():
        mine = [r for r in rows if r["track"]["id"] == tid]
        b = _best(mine)
        trows.append(
            [
                tid,
                t.name,
                t.status,
                len({r["run"] for r in mine}),
                _fig(b) if b else "-",
                f"`{b['config']}` on {b['model']}" if b else "-",
                b["acceptance_rate"] if b else "-",
                t.expected_gain,
            ]
        )
    out += [
        md_table(
            ["track", "name", "status", "runs", "best speedup", "best config", "acceptance", "lab's expected gain"],
            trows,
        ),
        "",
    ]
    out += ["## Per model", ""]
    mrows = []
    for m in sorted({_model(r) for r in runs}):
        mruns = [r for r in runs if _model(r) == m]
        last = mruns[-1]
        b = _best([r for r in rows if r["model"] == m])
        mrows.append(
            [
                m,
                mruns[0]["config"]["model"].get("arch"),
                len(mruns),
                ", ".join(str(t) for t in sorted({r["config"]["track"]["id"] for r in mruns})),
                f"{fmt_spread(last['summary'][0]['decode_tps'])} (run {last['id']}, {last['summary'][0]['reps']} reps)",
                _fig(b) if b else "-",
            ]
        )
    out += [
        md_table(["model", "arch", "runs", "tracks", "baseline decode t/s (latest)", "best speedup"], mrows)
        if mrows
        else "No models measured yet.",
        "",
    ]
    out += ["## Best configuration per model", ""]
    for m in sorted({r["model"] for r in rows}):
        b = _best([r for r in rows if r["model"] == m])
        if b:
            out.append(
                f"- **{m}**: track {b['track']['id']} `{b['config']}` on {b['workload']}: {_fig(b)}; "
                f"acceptance {b['acceptance_rate']}, accepted/step {b['mean_accepted_per_step']}, "
                f"identical outputs {b['identical_outputs']}/{b['prompts']}."
            )
    out.append("")
    if has_chart:
        out += [
            "## Speedup chart",
            "",
            f"![speedup per run and configuration]({CHART_NAME})",
            "",
            "Bars are median decode speedups; whiskers span the min-max over reps; each label carries "
            "the run id and its reps.",
            "",
        ]
    out += ["## All runs", ""]
    arows = []
    for run in runs:
        c = run["config"]
        for s in run["summary"]:
            arows.append(
                [
                    run["id"],
                    c["track"]["id"],
                    _model(run),
                    f"{c['workload']['name']} ({c['workload']['prompts']}p)",
                    s["config"],
                    s["reps"],
                    *metric_cells(s),
                    c["backend"]["backend"],
                ]
            )
    out += [
        md_table(
            [
                "run",
                "track",
                "model",
                "workload",
                "config",
                "reps",
                *METRIC_COLUMNS,
                "backend",
            ],
            arows,
        )
        if arows
        else "No runs yet.",
        "",
    ]
    return "\n".join(out)


def generate_report(cfg: Config) -> str:
    """Rebuild the report (and its chart) from all runs; returns the report's path."""
    from ..fileio import write_text_atomic

    runs = load_runs(cfg)
    out_dir = os.path.join(cfg.root, "research")
    os.makedirs(out_dir, exist_ok=True)
    has_chart = chart(_rows(runs), os.path.join(out_dir, CHART_NAME), cfg.cache_dir)
    path = os.path.join(out_dir, REPORT_NAME)
    from .results import runs_dir

    where = runs_dir(cfg)
    where = os.path.relpath(where, cfg.root) if where.startswith(cfg.root.rstrip("/") + "/") else where
    write_text_atomic(path, render(runs, has_chart, where + "/"))
    write_text_atomic(
        os.path.join(out_dir, "research_report.json"),
        json.dumps({"runs": [r["id"] for r in runs], "rows": _rows(runs)}, indent=1, default=str),
    )
    return path
