"""How a past run's request is rebuilt: for `track rerun` (a new run of the same configuration) and
`track resume` (the same run, finished). The run itself goes through `roles.pipeline.run`."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ..errors import EpycAgentError

if TYPE_CHECKING:
    from ..config import Config
    from .plan import RunRequest


def rerun_request(cfg: Config, run_id: str) -> RunRequest:
    """The request of a past run with its resolved model paths; refuses if the prompts changed."""
    from .plan import RunRequest
    from .results import load_run

    conf = load_run(cfg, run_id)
    req = RunRequest(**conf["request"])
    req.model = conf["model"]["path"]
    if conf.get("draft"):
        req.draft = conf["draft"]["path"]
    req.threads = conf.get("threads") or req.threads
    req.backend = conf.get("backend", {}).get("backend", req.backend)  # not "auto": the same backend again
    check_unchanged(cfg, conf, req, "a rerun")
    return req


def resume_request(cfg: Config, run_id: str) -> RunRequest:
    """The request of an interrupted (or failed) run, as it was given: config.json's once measuring
    began, else the one a detached run was started with. Refuses a done or still running run, and
    one whose prompts or model files changed since."""
    from .journal import CONFIG, check_resumable, run_path
    from .plan import RunRequest
    from .results import load_run

    run_dir = run_path(cfg, run_id)
    status = check_resumable(run_id, run_dir)
    if not os.path.isfile(os.path.join(run_dir, CONFIG)):
        return RunRequest(**status["request"])
    conf = load_run(cfg, run_dir)
    req = RunRequest(**conf["request"])
    check_unchanged(cfg, conf, req, "the resumed part")
    return req


def check_unchanged(cfg: Config, conf: dict[str, Any], req: RunRequest, what: str) -> None:
    """The workload's prompts and the model files are those the run in `conf` measured."""
    from .results import file_sha256
    from .workloads import load_workload, suite_dirs

    wl = load_workload(req.workload, suite_dirs(cfg)).head(req.prompts)
    if wl.sha256 != conf["workload"]["sha256"]:
        raise EpycAgentError(
            f"workload {wl.name} changed since run {conf['run_id']} "
            f"(sha256 {wl.sha256[:12]} != {conf['workload']['sha256'][:12]})",
            hint=f"{what} would measure different prompts; restore the workload file or start a new run",
        )
    for role in ("model", "draft"):
        m = conf.get(role)
        if m and os.path.isfile(m["path"]) and m.get("sha256") and file_sha256(cfg, m["path"]) != m["sha256"]:
            raise EpycAgentError(
                f"{role} {m['path']} changed since run {conf['run_id']} (sha256 differs)",
                hint=f"{what} would measure a different model file",
            )
