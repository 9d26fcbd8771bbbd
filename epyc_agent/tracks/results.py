"""Recording a run: the run folder (config.json, output.jsonl, summary.json, summary.md), the tested
models list, the audit log, and the regenerated research report: all automatic after every run.
The folder itself, and output.jsonl as each record finishes, come from `journal` while it runs.

With `results.layout: lab` the run folder is the lab's `benchmarks/results/runs/<YYYYMMDD_HHMMSS>/`
in `lab_research_dir` (plus the lab's metadata.json), and the lab's result tables are updated too
(`labfiles`)."""

from __future__ import annotations

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
    from .runner import Progress, RunResult


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


def file_sha256(cfg: Config, path: str, progress: Progress | None = None) -> str:
    """A model's sha256, cached by (path, size, mtime) under the cache dir: big GGUFs hash once
    (`progress` hears how far the first time gets)."""
    from ..models.inventory import sha256_files
    from .runner import Hashing

    st = os.stat(path)
    key = f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}"
    cache_path = os.path.join(cfg.cache_dir, "tracks", "sha256.json")
    try:
        cache = read_json(cache_path) or {}
    except EpycAgentError:
        cache = {}
    if key not in cache:
        tell = progress or (lambda _event: None)
        cache[key] = sha256_files([path], lambda n: tell(Hashing(path, n, st.st_size)))
        write_json_atomic(cache_path, cache)
    return str(cache[key])


def _model_info(cfg: Config, entry: dict[str, Any] | None, progress: Progress | None) -> dict[str, Any] | None:
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
    info["sha256"] = entry.get("sha256") or file_sha256(cfg, entry["path"], progress)
    return info


def audit(cfg: Config) -> AuditLog:
    """The audit log of the current session and agent."""
    from ..events.writer import AuditLog
    from ..sessions import agent_id, current_session_id

    return AuditLog(cfg.log_dir, current_session_id(cfg), agent_id())


def task_name(plan: RunPlan) -> str:
    return f"track {plan.track.id} run {plan.run_id}"


def log_start(cfg: Config, plan: RunPlan, note: str = "") -> None:
    """TASK_START before any generation (each segment of a resumed run has its own, `note` says
    what it resumes), so a run is visible in the log while it runs."""
    with audit(cfg) as log:
        log.task_start(
            task_name(plan),
            f"{plan.track.name} ({plan.track.method}) on "
            f"{os.path.basename(plan.model['path'])}, workload {plan.workload.name}, "
            f"{plan.request.reps} reps, {len(plan.configs)} config(s), backend {plan.backend}" + note,
        )


def log_interrupted(cfg: Config, plan: RunPlan, why: str) -> None:
    with audit(cfg) as log:
        log.warn(f"{task_name(plan)} interrupted: {why}", "the run folder keeps what was measured")
        log.task_end(task_name(plan), "interrupted")


def log_failure(cfg: Config, plan: RunPlan, error: BaseException) -> None:
    with audit(cfg) as log:
        log.error(f"{task_name(plan)} failed: {error}", type(error).__name__)
        log.task_end(task_name(plan), "failure")


def config_json(
    cfg: Config,
    plan: RunPlan,
    backend_info: dict[str, Any],
    host: dict[str, Any],
    times: dict[str, Any],
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Everything needed to repeat the run and to know what it measured. Written before the first
    generation (`times`: started, and ended/wall_s None) and again when the run is done."""
    from importlib.metadata import version

    return {
        "run_id": plan.run_id,
        "schema": 1,
        "created": plan.created,
        **times,
        "epyc_agent": version("epyc-agent"),
        "request": plan.request.as_dict(),
        "track": {
            "id": plan.track.id,
            "name": plan.track.name,
            "method": plan.track.method,
            "status": plan.track.status,
        },
        "model": _model_info(cfg, plan.model, progress),
        "draft": _model_info(cfg, plan.draft, progress),
        "backend": {**backend_info, "llama_cpp_bin": plan.llama_cpp_bin},
        "host": host,
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


def write_run(cfg: Config, plan: RunPlan, result: RunResult) -> str:
    """The closing files of the run folder the journal measured into (output.jsonl is there
    already), each written atomically; summary.json last, as its presence marks a complete run."""
    run_dir = os.path.join(runs_dir(cfg), plan.run_id)
    times = {"started": result.started, "ended": result.ended, "wall_s": result.wall_s}
    conf = config_json(cfg, plan, result.backend_info, result.host, times)
    if result.resumed:
        conf["resumed"] = result.resumed
    write_json_atomic(os.path.join(run_dir, "config.json"), conf)
    write_text_atomic(os.path.join(run_dir, "summary.md"), summary_md(conf, result.summary))
    if lab_layout(cfg):
        from .labfiles import metadata_json

        meta = json.dumps(metadata_json(conf), indent=4, ensure_ascii=False)  # the lab's indent
        write_text_atomic(os.path.join(run_dir, "metadata.json"), meta + "\n")
    write_json_atomic(os.path.join(run_dir, "summary.json"), {"run_id": plan.run_id, "summary": result.summary})
    return run_dir


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
