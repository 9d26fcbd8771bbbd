"""The research report, regenerated from every run folder (never edited row by row).

`<root>/research/research_report.md` with its PNGs next to it (`plots`). Every figure carries its
run's verdict, the decode t/s CV, the absolute tokens/s behind a ratio, the per-rep ratio spread
and the settings it depends on (max_tokens, threads, backend, build); only conclusive figures are
ever called "best" (`evidence`).
"""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING, Any

from .evidence import SETTINGS, Row, Run, best, conclusive, load_runs, model_name, rows, sweeps

if TYPE_CHECKING:
    from ..config import Config

REPORT_NAME = "research_report.md"


def md_table(headers: list[str], rows_: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        return "-" if v is None else str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows_]
    return "\n".join(lines)


def fmt_spread(d: dict[str, Any]) -> str:
    return f"{d['median']:.1f} [{d['min']:.1f}-{d['max']:.1f}]"


def fmt_cv(v: float | None) -> str | None:
    return None if v is None else f"{v:.1%}"


def fmt_speedup(s: dict[str, Any]) -> str | None:
    """'1.12x', with the per-rep ratio range when output.jsonl gave one: '1.12x [0.90-1.41]'."""
    if s["speedup"] is None:
        return None
    rs = s.get("ratio_spread")
    return f"{s['speedup']}x" + (f" [{rs['min']:.2f}-{rs['max']:.2f}]" if rs else "")


METRIC_COLUMNS = ["decode t/s median [min-max]", "decode CV", "prefill t/s", "TTFT s", "peak RSS MB", "acceptance",
                  "accepted/step", "speedup [per-rep ratios]", "identical"]  # fmt: skip


def metric_cells(s: dict[str, Any]) -> list[Any]:
    """One configuration's figures, in METRIC_COLUMNS order (None renders as '-')."""
    return [
        fmt_spread(s["decode_tps"]),
        fmt_cv(s.get("cv")),
        s["prefill_tps"],
        s["ttft_s"],
        s["peak_rss_mb"],
        s["acceptance_rate"],
        s["mean_accepted_per_step"],
        fmt_speedup(s),
        f"{s['identical_outputs']}/{s['prompts']}" if s["identical_outputs"] is not None else None,
    ]


def fmt_settings(st: dict[str, Any]) -> str:
    return f"max_tokens {st['max_tokens']}, threads {st['threads']}, {st['backend']}, build {st['build'] or '-'}"


def setting_cells(st: dict[str, Any]) -> list[Any]:
    return [st[k] for k in SETTINGS]


def fig(r: Row) -> str:
    """A speedup with everything needed to judge it: ratio spread, absolute t/s, CVs, reps,
    verdict, settings and run id."""
    return (
        f"{fmt_speedup(r) or '-'} ({fmt_spread(r['decode_tps'])} vs {fmt_spread(r['base']['decode_tps'])} t/s; "
        f"CV {fmt_cv(r['cv']) or '-'} vs {fmt_cv(r['base']['cv']) or '-'}; {r['reps']} reps; "
        f"**{r['run_verdict']}**; {fmt_settings(r['settings'])}; run {r['run']})"
    )


def _intro(runs: list[Run], runs_at: str) -> list[str]:
    from ..roles.policies import CV_LIMIT, MIN_REPS

    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return [
        "# Research report",
        "",
        f"Regenerated {now} from {len(runs)} run(s) in `{runs_at}` by `epyc-agent report`. "
        "Every figure names its run id, reps, verdict and decode t/s CV; spreads are min-max of the per-rep "
        "decode tokens/s; a speedup's bracket is the min-max of its per-rep ratios (method over baseline decode "
        "t/s of each rep and prompt, so the baseline's spread and prompt-to-prompt differences are in it).",
        "",
        f"A run is **conclusive** with at least {MIN_REPS} repetitions and every decode CV at most "
        f"{CV_LIMIT:.0%}; **inconclusive** (fewer reps), **unstable** (higher CV) and interrupted runs are "
        "shown but never counted as best. Figures compare only at equal max_tokens, threads, backend and build "
        "(the build is its version and a digest over every recorded binary's sha256).",
        "",
    ]


def _summary(runs: list[Run], rows_: list[Row]) -> list[str]:
    """The executive summary: the best conclusive figure (or why there is none) and the caveats."""
    from ..roles.policies import MIN_REPS

    if not runs:
        return ["No runs yet: `epyc-agent track run 8 --model M` measures one.", ""]
    verdicts: dict[str, int] = {}
    for run in runs:
        verdicts[run["verdict"]] = verdicts.get(run["verdict"], 0) + 1
    out = [
        f"- {len(runs)} run(s) over {len({model_name(r) for r in runs})} model(s) and "
        f"{len({r['config']['track']['id'] for r in runs})} track(s): "
        + ", ".join(f"{n} {v}" for v, n in sorted(verdicts.items()))
        + "."
    ]
    top = best(rows_)
    if top:
        out.append(
            f"- Best conclusive speedup: track {top['track']['id']} ({top['track']['name']}) `{top['config']}` on "
            f"{top['model']}, workload {top['workload']}: {fig(top)}."
        )
        higher = [r for r in rows_ if r["speedup"] is not None and r["speedup"] > top["speedup"]]
        if higher:
            out.append(
                f"- {len(higher)} higher figure(s) are not conclusive and not counted "
                f"(e.g. {fmt_speedup(higher[0])} in run {higher[0]['run']}, {higher[0]['run_verdict']})."
            )
    elif rows_:
        out.append(
            f"- **No conclusive run yet**: no speedup here is a result. Rerun with `--reps {MIN_REPS}` or more on a "
            "quiet host (`epyc-agent system health --profile batch`)."
        )
    out += _mixed(runs)
    slower = [r for r in rows_ if r["speedup"] is not None and r["speedup"] < 1.0]
    if slower:
        n = sum(1 for r in slower if conclusive(r))
        out.append(f"- {len(slower)} configuration(s) were slower than the baseline ({n} of them conclusive).")
    diverged = [r for r in rows_ if r.get("identical_outputs") is not None and r["identical_outputs"] < r["prompts"]]
    if diverged:
        out.append(f"- {len(diverged)} configuration(s) changed the output on some prompts (column identical below).")
    return [*out, ""]


def _mixed(runs: list[Run]) -> list[str]:
    """Which settings differ between runs: figures from different settings do not compare."""
    differ = []
    for k in SETTINGS:
        vals = sorted({r["settings"][k] for r in runs}, key=lambda v: (str(type(v)), v if v is not None else 0))
        if len(vals) > 1:
            differ.append(f"{k} ({', '.join(str(v) for v in vals)})")
    if not differ:
        return []
    return [f"- Runs differ in {'; '.join(differ)}: compare figures only at equal settings (columns below)."]


def _per_track(rows_: list[Row]) -> list[str]:
    from .spec import load_tracks

    trows = []
    for tid, t in load_tracks().items():
        mine = [r for r in rows_ if r["track"]["id"] == tid]
        b = best(mine)
        runs = {r["run"] for r in mine}
        good = {r["run"] for r in mine if conclusive(r)}
        none = "no conclusive run" if mine else None
        trows.append(
            [
                tid,
                t.name,
                t.status,
                len(runs),
                len(good),
                fig(b) if b else none,
                f"`{b['config']}` on {b['model']}" if b else None,
                b["acceptance_rate"] if b else None,
                *(setting_cells(b["settings"]) if b else [None] * len(SETTINGS)),
                t.expected_gain,
            ]
        )
    headers = ["track", "name", "status", "runs", "conclusive", "best conclusive speedup", "best config",
               "acceptance", *SETTINGS, "lab's expected gain"]  # fmt: skip
    return ["## Per track", "", md_table(headers, trows), ""]


def _per_model(runs: list[Run], rows_: list[Row]) -> list[str]:
    mrows = []
    for m in sorted({model_name(r) for r in runs}):
        mruns = [r for r in runs if model_name(r) == m]
        last = mruns[-1]
        b0 = last["summary"][0]
        b = best([r for r in rows_ if r["model"] == m])
        mrows.append(
            [
                m,
                mruns[0]["config"]["model"].get("arch"),
                len(mruns),
                ", ".join(str(t) for t in sorted({r["config"]["track"]["id"] for r in mruns})),
                f"{fmt_spread(b0['decode_tps'])} (CV {fmt_cv(b0.get('cv')) or '-'}; {b0['reps']} reps; "
                f"{last['verdict']}; {fmt_settings(last['settings'])}; run {last['id']})",
                fig(b) if b else "no conclusive run",
            ]
        )
    headers = ["model", "arch", "runs", "tracks", "baseline decode t/s (latest)", "best conclusive speedup"]
    out = ["## Per model", "", md_table(headers, mrows) if mrows else "No models measured yet.", ""]
    out += ["## Best configuration per model", ""]
    for m in sorted({r["model"] for r in rows_}):
        b = best([r for r in rows_ if r["model"] == m])
        if not b:
            out.append(f"- **{m}**: no conclusive run, so no best configuration.")
            continue
        out.append(
            f"- **{m}**: track {b['track']['id']} `{b['config']}` on {b['workload']}: {fig(b)}; "
            f"acceptance {b['acceptance_rate']}, accepted/step {b['mean_accepted_per_step']}, "
            f"identical outputs {b['identical_outputs']}/{b['prompts']}."
        )
    return [*out, ""]


def _chart(names: dict[str, Any]) -> list[str]:
    if not names["speedup"]:
        return []
    return [
        "## Speedup chart",
        "",
        f"![speedup per run and configuration]({names['speedup']})",
        "",
        "Bars are median decode speedups (method median over baseline median), labelled with the absolute "
        "t/s; whiskers span the per-rep ratios; hatched bars are not conclusive. Each label carries the run id, "
        "reps, verdict and the CVs.",
        "",
    ]


def _sweeps(sweeps_: list[dict[str, Any]], names: list[str]) -> list[str]:
    out = ["## Parameter sweeps", ""]
    if not sweeps_:
        return [*out, "No sweeps yet: `--param pl_k=4,8,16` sweeps one parameter within one run.", ""]
    for sw, name in zip(sweeps_, names, strict=True):
        p = sw["param"]
        out += [
            f"### Track {sw['track']['id']} ({sw['track']['name']}): {p} on {sw['model']}, {sw['workload']}",
            "",
            f"{fmt_settings(sw['settings'])}" + "".join(f", {k}={v}" for k, v in sw["fixed"].items()) + ".",
            "",
            f"![{p} sweep]({name})",
            "",
        ]
        vary = sw["varying"]
        srows = [
            [
                r["params"][p],
                *([", ".join(f"{k}={s['others'].get(k)}" for k in vary)] if vary else []),
                fmt_speedup(r),
                fmt_spread(r["decode_tps"]),
                fmt_spread(r["base"]["decode_tps"]),
                r["acceptance_rate"],
                r["agree_frac"],
                r["run_verdict"],
                f"{fmt_cv(r['cv']) or '-'} / {fmt_cv(r['base']['cv']) or '-'}",
                r["reps"],
                r["run"],
            ]
            for s in sw["series"]
            for r in s["rows"]
        ]
        headers = [p, *(["series"] if vary else []), "speedup [per-rep ratios]", "decode t/s", "baseline t/s",
                   "acceptance", "agreement", "verdict", "CV (method / baseline)", "reps", "run"]  # fmt: skip
        out += [md_table(headers, srows), ""]
    return out


def _over_time(over_time: dict[int, str], rows_: list[Row]) -> list[str]:
    if not over_time:
        return []
    out = ["## Tracks over time", ""]
    for tid, name in over_time.items():
        mine = [r for r in rows_ if r["track"]["id"] == tid]
        out += [
            f"### Track {tid} ({mine[0]['track']['name']})",
            "",
            f"![track {tid} speedup over time]({name})",
            "",
            f"{len(mine)} configuration(s) from {len({r['run'] for r in mine})} run(s), "
            f"{sum(1 for r in mine if conclusive(r))} conclusive (filled markers); whiskers are per-rep ratios.",
            "",
        ]
    return out


def _all_runs(runs: list[Run]) -> list[str]:
    arows = []
    for run in runs:
        c = run["config"]
        for s in run["summary"]:
            arows.append(
                [
                    run["id"],
                    c["track"]["id"],
                    model_name(run),
                    f"{c['workload']['name']} ({c['workload']['prompts']}p)",
                    s["config"],
                    s["reps"],
                    run["verdict"],
                    *setting_cells(run["settings"]),
                    *metric_cells(s),
                ]
            )
    headers = ["run", "track", "model", "workload", "config", "reps", "verdict", *SETTINGS, *METRIC_COLUMNS]
    return ["## All runs", "", md_table(headers, arows) if arows else "No runs yet.", ""]


def render(runs: list[Run], names: dict[str, Any], runs_at: str = "benchmarks/runs/") -> str:
    """The whole report from the loaded runs and the names of the figures drawn for them."""
    rows_ = rows(runs)
    out = _intro(runs, runs_at) + ["## Executive summary", "", *_summary(runs, rows_)]
    out += _per_track(rows_) + _per_model(runs, rows_) + _chart(names)
    out += _sweeps(sweeps(rows_), names["sweeps"]) + _over_time(names["over_time"], rows_) + _all_runs(runs)
    return "\n".join(out)


def generate_report(cfg: Config) -> str:
    """Rebuild the report and its figures from all runs; returns the report's path."""
    from ..fileio import write_text_atomic
    from ..storage import is_under
    from .plots import draw_all
    from .results import runs_dir

    runs = load_runs(cfg)
    rows_ = rows(runs)
    out_dir = os.path.join(cfg.root, "research")
    os.makedirs(out_dir, exist_ok=True)
    names = draw_all(rows_, sweeps(rows_), out_dir, cfg.cache_dir)
    where = runs_dir(cfg)
    where = os.path.relpath(where, cfg.root) if is_under(where, cfg.root) else where
    path = os.path.join(out_dir, REPORT_NAME)
    write_text_atomic(path, render(runs, names, where + "/"))
    data = {
        "runs": [{"id": r["id"], "verdict": r["verdict"], "reason": r["reason"], **r["settings"]} for r in runs],
        "rows": rows_,
        "plots": names,
    }
    write_text_atomic(os.path.join(out_dir, "research_report.json"), json.dumps(data, indent=1, default=str))
    return path
