"""The whole `track run`: prepare, log the start, execute, record. Also how a rerun is rebuilt."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import EpycAgentError

if TYPE_CHECKING:
    from ..config import Config
    from .plan import RunPlan, RunRequest
    from .runner import Progress, RunResult


def run(cfg: Config, request: RunRequest, progress: Any = None, on_plan: Any = None) -> tuple[RunPlan, RunResult, str]:
    """Validate, measure and record one request; `progress(plan)` may return a per-generation callback."""
    from ..errors import MethodRefused
    from .labfiles import note_refusal, output_paths, refusal
    from .plan import prepare_run
    from .results import lab_layout, log_failure, log_start, record
    from .runner import execute

    try:
        plan = prepare_run(cfg, request)
    except MethodRefused as e:
        note_refusal(cfg, refusal(e))
        raise
    if lab_layout(cfg):
        output_paths(cfg)  # the lab's checkout must exist before anything is measured
    if on_plan:
        on_plan(plan)
    log_start(cfg, plan)
    tick: Progress | None = progress(plan) if progress else None
    try:
        result = execute(plan, tick)
    except BaseException as e:
        log_failure(cfg, plan, e)
        raise
    return plan, result, record(cfg, plan, result)


def rerun_request(cfg: Config, run_id: str) -> RunRequest:
    """The request of a past run with its resolved model paths; refuses if the prompts changed."""
    from .plan import RunRequest
    from .results import load_run
    from .workloads import load_workload, suite_dirs

    conf = load_run(cfg, run_id)
    req = RunRequest(**conf["request"])
    req.model = conf["model"]["path"]
    if conf.get("draft"):
        req.draft = conf["draft"]["path"]
    req.threads = conf.get("threads") or req.threads
    req.backend = conf.get("backend", {}).get("backend", req.backend)  # not "auto": the same backend again
    wl = load_workload(req.workload, suite_dirs(cfg)).head(req.prompts)
    if wl.sha256 != conf["workload"]["sha256"]:
        raise EpycAgentError(
            f"workload {wl.name} changed since run {conf['run_id']} "
            f"(sha256 {wl.sha256[:12]} != {conf['workload']['sha256'][:12]})",
            hint="a rerun would measure different prompts; restore the workload file or start a new run",
        )
    import os

    from .results import file_sha256

    for role in ("model", "draft"):
        m = conf.get(role)
        if m and os.path.isfile(m["path"]) and m.get("sha256") and file_sha256(cfg, m["path"]) != m["sha256"]:
            raise EpycAgentError(
                f"{role} {m['path']} changed since run {conf['run_id']} (sha256 differs)",
                hint="a rerun would measure a different model file",
            )
    return req
