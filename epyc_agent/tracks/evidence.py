"""What the report may claim from the run folders: each run with its verdict, its settings and the
per-rep spread of every speedup; the rows the tables and plots show; which rows form a sweep.

A figure is only as good as its run: the verdict (conclusive / inconclusive / unstable) comes from
the benchmark-analyst's `analysis.json`, else the verdict stored in summary.json, else the same
rule (`roles.policies.analyze`) applied to the run's output.jsonl. Only conclusive figures may be
called "best". Speedup whiskers come from per-rep ratios (method decode t/s over baseline decode
t/s of the same rep and prompt), so the baseline's own spread is in them.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import TYPE_CHECKING, Any

from ..sessions import read_json
from .journal import read_status, state_of

if TYPE_CHECKING:
    from ..config import Config

Run = dict[str, Any]
Row = dict[str, Any]
SETTINGS = ("max_tokens", "threads", "backend", "build")  # what must match before two figures compare
RECORD_KEYS = {"config", "kind", "rep", "prompt_id", "n_prompt", "n_generated", "prefill_tps", "decode_tps"}


def load_runs(cfg: Config) -> list[Run]:
    """Every complete run folder (config.json + summary.json of our shape), oldest first, each
    with its verdict, settings and per-rep ratios; unreadable or foreign folders are skipped."""
    from .results import runs_dir

    base = runs_dir(cfg)
    try:
        names = sorted(n for n in os.listdir(base) if not n.startswith("."))
    except FileNotFoundError:
        return []
    runs = []
    for name in names:
        try:
            run = _load_run(os.path.join(base, name))
        except Exception:  # noqa: BLE001 - one unreadable run must not hide the others
            continue
        if run:
            runs.append(run)
    return runs


def _load_run(run_dir: str) -> Run | None:
    conf = read_json(os.path.join(run_dir, "config.json"))
    summ = read_json(os.path.join(run_dir, "summary.json"))
    if not (isinstance(conf, dict) and isinstance(summ, dict) and summ.get("summary") and "run_id" in conf):
        return None  # the lab's own run folders (metadata.json only) live here too
    summary = summ["summary"]
    records = _records(os.path.join(run_dir, "output.jsonl"))
    verdict, reason = _verdict(summary, records, read_json(os.path.join(run_dir, "analysis.json")))
    status = read_status(run_dir)  # none: a run of an older version, done when it has a summary
    state = state_of(status) if status else "done"
    if state in ("interrupted", "failed"):  # cut short: never a result ("running": the run reporting itself)
        verdict, reason = state, f"run {state}: not every configuration was measured"
    ratios = rep_ratios(records)
    for s in summary:
        s["ratio_spread"] = _spread(ratios.get(s["config"]))
    return {
        "id": conf["run_id"],
        "dir": run_dir,
        "config": conf,
        "summary": summary,
        "verdict": verdict,
        "reason": reason,
        "date": conf.get("started") or conf.get("created"),
        "settings": settings(conf),
    }


def _records(path: str) -> list[dict[str, Any]]:
    """output.jsonl's generation records; a torn line is skipped (its rep then has no ratio)."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and rec.keys() >= RECORD_KEYS:
            out.append(rec)
    return out


def _verdict(summary: list[dict[str, Any]], records: list[dict[str, Any]], analysis: Any) -> tuple[str, str]:
    """The analyst's verdict (analysis.json); else the same rule applied to output.jsonl, which also
    fills in the CV of a run recorded before CVs were stored; else the verdict in summary.json."""
    from ..roles.policies import analyze, rep_rates

    if records or any("cv" not in s or "verdict" not in s for s in summary):
        judged = analyze(summary, rep_rates(records))  # sets each configuration's cv and verdict
        verdict, reason = judged["verdict"], judged["reason"]
    else:
        verdict, reason = summary[0]["verdict"], ""
    if isinstance(analysis, dict) and analysis.get("verdict"):
        verdict, reason = analysis["verdict"], analysis.get("reason") or reason
    return str(verdict), str(reason)


def rep_ratios(records: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Per method configuration: decode t/s over the baseline's for each (rep, prompt) both measured."""
    base = {(r["rep"], r["prompt_id"]): r["decode_tps"] for r in records if r["kind"] == "baseline"}
    out: dict[str, list[float]] = {}
    for r in records:
        b = base.get((r["rep"], r["prompt_id"]))
        if r["kind"] != "baseline" and b and r["decode_tps"]:
            out.setdefault(r["config"], []).append(r["decode_tps"] / b)
    return out


def _spread(ratios: list[float] | None) -> dict[str, Any] | None:
    return {"min": round(min(ratios), 3), "max": round(max(ratios), 3), "n": len(ratios)} if ratios else None


def settings(conf: dict[str, Any]) -> dict[str, Any]:
    """The settings a figure depends on besides the method: tokens per prompt, threads, backend, build."""
    backend = conf.get("backend") or {}
    return {
        "max_tokens": (conf.get("request") or {}).get("max_tokens"),
        "threads": conf.get("threads"),
        "backend": backend.get("backend"),
        "build": short_build(backend.get("build")),
    }


def short_build(build: list[dict[str, str]] | None) -> str | None:
    """'<version> #<8 hex>': the version line(s) and a digest over every recorded binary's sha256,
    so two runs show the same build only when every binary and library matched."""
    if not build:
        return None
    versions = []
    for b in build:
        v = str(b.get("version") or "?").removeprefix("version: ")
        if v not in versions:
            versions.append(v)
    digest = hashlib.sha256(",".join(sorted(str(b.get("sha256")) for b in build)).encode()).hexdigest()[:8]
    return f"{' / '.join(versions)} #{digest}"


def model_name(run: Run) -> str:
    return os.path.basename(run["config"]["model"]["path"])


def rows(runs: list[Run]) -> list[Row]:
    """One row per method configuration of every run, with its run's baseline, verdict and settings."""
    out = []
    for run in runs:
        base = run["summary"][0]
        for s in run["summary"][1:]:
            out.append(
                {
                    "run": run["id"],
                    "track": run["config"]["track"],
                    "model": model_name(run),
                    "workload": run["config"]["workload"]["name"],
                    "date": run["date"],
                    "run_verdict": run["verdict"],
                    "settings": run["settings"],
                    "base": base,
                    **s,
                }
            )
    return out


def conclusive(row: Row) -> bool:
    return bool(row["run_verdict"] == "conclusive")


def best(rows_: list[Row]) -> Row | None:
    """The highest conclusive speedup; None when no conclusive figure exists."""
    ranked = [r for r in rows_ if r["speedup"] is not None and conclusive(r)]
    return max(ranked, key=lambda r: r["speedup"]) if ranked else None


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def sweeps(rows_: list[Row]) -> list[dict[str, Any]]:
    """Rows that differ in one parameter and nothing else (same track, model, workload, settings;
    the other parameters fixed within a series). One sweep per parameter and setting; each series
    (one combination of the other parameters) must cover at least two values."""
    groups: dict[str, dict[str, Any]] = {}
    for r in rows_:
        if r["speedup"] is None:
            continue
        for p in r["params"]:
            head = (r["track"]["id"], r["model"], r["workload"], r["settings"], p)
            g = groups.setdefault(_key(head), {"param": p, "head": head, "series": {}})
            others = {k: v for k, v in r["params"].items() if k != p}
            g["series"].setdefault(_key(others), {"others": others, "rows": []})["rows"].append(r)
    out = []
    for g in groups.values():
        series = [s for s in g["series"].values() if len({_key(x["params"][g["param"]]) for x in s["rows"]}) >= 2]
        if series:
            _, model, workload, sett, p = g["head"]
            keys = sorted({k for s in series for k in s["others"]})
            varying = [k for k in keys if len({_key(s["others"].get(k)) for s in series}) > 1]
            out.append(
                {
                    "param": p,
                    "track": series[0]["rows"][0]["track"],
                    "model": model,
                    "workload": workload,
                    "settings": sett,
                    "series": series,
                    "varying": varying,  # the other parameters that tell the series apart
                    "fixed": {k: series[0]["others"].get(k) for k in keys if k not in varying},
                }
            )
    return sorted(out, key=lambda s: (s["track"]["id"], s["param"], s["model"], s["workload"], _key(s["settings"])))
