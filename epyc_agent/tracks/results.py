"""Recording a run: the run folder (config.json, output.jsonl, summary.json, summary.md), the tested
models list, the audit log, and the regenerated research report: all automatic after every run.

With `results.layout: lab` the run folder is the lab's `benchmarks/results/runs/<YYYYMMDD_HHMMSS>/`
in `lab_research_dir` (plus the lab's metadata.json), and the lab's result tables are updated too
(`labfiles`)."""

from __future__ import annotations

import hashlib
import json
import os
import time
from typing import TYPE_CHECKING, Any

from ..errors import EpycAgentError
from ..fileio import write_json_atomic, write_text_atomic
from ..sessions import read_json

if TYPE_CHECKING:
    from ..config import Config
    from ..events.writer import AuditLog
    from .plan import RunPlan
    from .runner import RunResult


def lab_layout(cfg: Config) -> bool:
    return bool(cfg.results["layout"] == "lab")


def runs_dir(cfg: Config) -> str:
    if lab_layout(cfg):
        return os.path.join(cfg.lab_research_dir, "benchmarks", "results", "runs")
    return os.path.join(cfg.root, "benchmarks", "runs")


def new_run_id(cfg: Config, track_id: int, model_stem: str) -> str:
    """Ours: UTC time, track and model; the lab's: local time as its scripts name runs
    (`date +%Y%m%d_%H%M%S`), so our folders sort among theirs."""
    if lab_layout(cfg):
        return time.strftime("%Y%m%d_%H%M%S")
    return f"{time.strftime('%Y-%m-%d_%H%M%S', time.gmtime())}-t{track_id}-{model_stem}"


def file_sha256(cfg: Config, path: str) -> str:
    """A model's sha256, cached by (path, size, mtime) under the cache dir: big GGUFs hash once."""
    st = os.stat(path)
    key = f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}"
    cache_path = os.path.join(cfg.cache_dir, "tracks", "sha256.json")
    try:
        cache = read_json(cache_path) or {}
    except EpycAgentError:
        cache = {}
    if key not in cache:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
        cache[key] = h.hexdigest()
        write_json_atomic(cache_path, cache)
    return str(cache[key])


def _model_info(cfg: Config, entry: dict[str, Any] | None) -> dict[str, Any] | None:
    if entry is None:
        return None
    keep = (
        "path",
        "name",
        "arch",
        "size",
        "size_bytes",
        "file_type",
        "is_moe",
        "expert_count",
        "expert_used_count",
        "ssm_or_hybrid",
        "vocab_hash",
        "params",
    )
    info = {k: entry[k] for k in keep if k in entry}
    info["sha256"] = entry.get("sha256") or file_sha256(cfg, entry["path"])
    return info


def audit(cfg: Config) -> AuditLog:
    """The audit log of the current session and agent."""
    from ..events.writer import AuditLog
    from ..sessions import agent_id, current_session_id

    return AuditLog(cfg.log_dir, current_session_id(cfg), agent_id())


def task_name(plan: RunPlan) -> str:
    return f"track {plan.track.id} run {plan.run_id}"


def log_start(cfg: Config, plan: RunPlan) -> None:
    """TASK_START before any generation, so an interrupted run is visible in the log."""
    with audit(cfg) as log:
        log.task_start(
            task_name(plan),
            f"{plan.track.name} ({plan.track.method}) on "
            f"{os.path.basename(plan.model['path'])}, workload {plan.workload.name}, "
            f"{plan.request.reps} reps, {len(plan.configs)} config(s), backend {plan.backend}",
        )


def log_failure(cfg: Config, plan: RunPlan, error: BaseException) -> None:
    with audit(cfg) as log:
        log.error(f"{task_name(plan)} failed: {error}", type(error).__name__)
        log.task_end(task_name(plan), "failure")


def config_json(cfg: Config, plan: RunPlan, result: RunResult) -> dict[str, Any]:
    """Everything needed to repeat the run and to know what it measured."""
    from importlib.metadata import version

    return {
        "run_id": plan.run_id,
        "schema": 1,
        "created": plan.created,
        "started": result.started,
        "ended": result.ended,
        "wall_s": result.wall_s,
        "epyc_agent": version("epyc-agent"),
        "request": plan.request.as_dict(),
        "track": {
            "id": plan.track.id,
            "name": plan.track.name,
            "method": plan.track.method,
            "status": plan.track.status,
        },
        "model": _model_info(cfg, plan.model),
        "draft": _model_info(cfg, plan.draft),
        "backend": {**result.backend_info, "llama_cpp_bin": plan.llama_cpp_bin},
        "host": result.host,
        "threads": plan.threads,
        "n_ctx": plan.request.n_ctx,
        "seed": plan.request.seed,
        "configs": plan.configs,
        "decisions": plan.decisions,
        "workload": {**plan.workload.summary(), "prompt_ids": [p["id"] for p in plan.workload.prompts]},
    }


def summary_md(conf: dict[str, Any], summary: list[dict[str, Any]]) -> str:
    """The run's own short report."""
    from .report import METRIC_COLUMNS, md_table, metric_cells

    rows = [[s["config"], *metric_cells(s)] for s in summary]
    div = [
        f"- {s['config']}: prompt {d['prompt_id']} diverges at token {d['index']} (baseline top-2 margin {d['margin']})"
        for s in summary
        for d in s["divergences"]
    ]
    m = conf["model"]
    return "\n".join(
        [
            f"# Run {conf['run_id']}",
            "",
            f"Track {conf['track']['id']} ({conf['track']['name']}, method `{conf['track']['method']}`) on "
            f"`{os.path.basename(m['path'])}` ({m.get('arch')}), workload {conf['workload']['name']} "
            f"v{conf['workload']['version']} ({conf['workload']['prompts']} prompts), "
            f"{summary[0]['reps']} reps + 1 warm-up, max_tokens {conf['request']['max_tokens']}, "
            f"{conf['threads']} threads, backend {conf['backend']['backend']}.",
            "",
            md_table(["config", *METRIC_COLUMNS], rows),
            "",
            "Output agreement with the baseline:",
            "",
            *(div or ["- every output identical to the baseline"]),
            "",
            f"Rerun: `epyc-agent track rerun {conf['run_id']}`",
            "",
        ]
    )


def _reserve(base: str, run_id: str) -> str:
    """Claim a free folder name with mkdir (atomic: two concurrent runs never get the same one)."""
    name, n = run_id, 2
    while True:
        try:
            os.mkdir(os.path.join(base, name))
            return name
        except FileExistsError:
            name, n = f"{run_id}-{n}", n + 1


def write_run(cfg: Config, plan: RunPlan, result: RunResult) -> str:
    """The run folder, written into a temp folder and renamed onto its reserved (empty) name: all
    files or none."""
    import shutil

    base = runs_dir(cfg)
    os.makedirs(base, exist_ok=True)
    run_id = plan.run_id = _reserve(base, plan.run_id)
    run_dir = os.path.join(base, run_id)
    conf = config_json(cfg, plan, result)
    tmp = os.path.join(base, f".{run_id}.{os.getpid()}.tmp")
    os.makedirs(tmp)
    try:
        write_json_atomic(os.path.join(tmp, "config.json"), conf)
        write_json_atomic(os.path.join(tmp, "summary.json"), {"run_id": run_id, "summary": result.summary})
        write_text_atomic(os.path.join(tmp, "output.jsonl"), output_jsonl(run_id, plan, result))
        write_text_atomic(os.path.join(tmp, "summary.md"), summary_md(conf, result.summary))
        if lab_layout(cfg):
            from .labfiles import metadata_json

            meta = json.dumps(metadata_json(conf), indent=4, ensure_ascii=False)  # the lab's indent
            write_text_atomic(os.path.join(tmp, "metadata.json"), meta + "\n")
        os.rename(tmp, run_dir)  # onto the empty reserved folder
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if not os.listdir(run_dir):
            os.rmdir(run_dir)
        raise
    return run_dir


def output_jsonl(run_id: str, plan: RunPlan, result: RunResult) -> str:
    """One record per generation; a lab suite's tier, expected answer and scoring ride along."""
    meta = plan.workload.meta
    lines = [
        json.dumps(
            {"run_id": run_id, **r, **({"suite": meta[r["prompt_id"]]} if r["prompt_id"] in meta else {})},
            ensure_ascii=False,
        )
        for r in result.records
    ]
    return "\n".join(lines) + "\n"


def record(cfg: Config, plan: RunPlan, result: RunResult) -> str:
    """Write the run folder, mark the model tested, log the metrics and regenerate the report."""
    from ..models.tested import record_test
    from .labfiles import update_after_run
    from .report import generate_report

    run_dir = write_run(cfg, plan, result)
    methods = [s for s in result.summary if s["kind"] == "method"]
    best = max(methods, key=lambda s: s["decode_tps"]["median"] or 0) if methods else result.summary[0]
    metrics = {
        "decode_tps": best["decode_tps"]["median"],
        "baseline_tps": result.summary[0]["decode_tps"]["median"],
        "speedup": best["speedup"],
        "acceptance_rate": best["acceptance_rate"],
        "config": best["config"],
        "track": plan.track.id,
        "workload": plan.workload.name,
    }
    record_test(cfg, plan.model, plan.track.method, metrics, plan.run_id)
    lab_files = update_after_run(cfg, run_dir) if lab_layout(cfg) else []
    report = generate_report(cfg)
    with audit(cfg) as log:
        for s in result.summary:
            log.observe(
                f"track{plan.track.id}.{s['config']}.decode_tps",
                s["decode_tps"]["median"],
                data={
                    "run_id": plan.run_id,
                    "track": plan.track.id,
                    "model": plan.model["path"],
                    **{
                        k: s[k]
                        for k in (
                            "config",
                            "kind",
                            "reps",
                            "decode_tps",
                            "prefill_tps",
                            "ttft_s",
                            "peak_rss_mb",
                            "acceptance_rate",
                            "mean_accepted_per_step",
                            "speedup",
                            "identical_outputs",
                            "agree_frac",
                        )
                    },
                },
            )
        log.file_modify(report, "edit", f"research report regenerated after {plan.run_id}")
        for path in lab_files:
            log.file_modify(path, "edit", f"lab results updated in place after {plan.run_id}")
        log.task_end(task_name(plan), "success")
    return run_dir


def load_run(cfg: Config, run_id: str) -> dict[str, Any]:
    """A past run's config.json, by id (or by the run folder's path)."""
    path = run_id if os.path.isdir(run_id) else os.path.join(runs_dir(cfg), run_id)
    conf = read_json(os.path.join(path, "config.json"))
    if not isinstance(conf, dict) or "request" not in conf:
        raise EpycAgentError(f"no run {run_id!r} in {runs_dir(cfg)}", hint="see `epyc-agent track runs`")
    return conf
