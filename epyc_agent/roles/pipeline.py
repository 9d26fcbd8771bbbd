"""`track run` as a pipeline of role steps, each logged under its role (its own shard):

  sysadmin preflight -> model-engineer -> safety-reviewer gate -> benchmark-analyst -> research-engineer

A refusal at any step raises `RoleRefusal` (exit 2, its reason on one line) and nothing after it
runs. `gate` is the first three steps (it ends by reserving the run folder, or reclaiming the one a
resumed run measured into), `measure` the last two; `track run --detach` gates in the caller and
measures in a detached `track resume`. A SIGTERM or Ctrl-C while measuring leaves the folder
marked interrupted and every open task ended `interrupted`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import EpycAgentError, RunInterrupted
from . import policies
from .policies import RoleRefusal, Verdict

if TYPE_CHECKING:
    from ..config import Config
    from ..events.writer import AuditLog
    from ..tracks.journal import Journal
    from ..tracks.plan import RunPlan, RunRequest
    from ..tracks.runner import RunResult

STEPS = ("sysadmin", "model-engineer", "safety-reviewer", "benchmark-analyst", "research-engineer")


class _Step:
    """One role's step: TASK_START, the verdict (OBSERVE if allowed, WARNING if refused), TASK_END."""

    def __init__(self, cfg: Config, session: str | None, role: str, title: str, context: str) -> None:
        from ..events.writer import AuditLog

        self.role, self.title = role, f"{role}: {title}"
        self.log: AuditLog = AuditLog(cfg.log_dir, session, agent=role)
        self.log.task_start(self.title, context)
        self.open = True

    def verdict(self, v: Verdict, hint: str | None = None) -> None:
        if v.ok:
            self.log.observe(f"{self.role} allow", v.reason, data=_jsonable(v.data))
            return
        self.log.warn(f"{self.role} refused: {v.reason}", "pipeline stopped")
        self.end("refused", {"reason": v.reason})
        raise RoleRefusal(v, hint)

    def end(self, outcome: str, data: dict[str, Any] | None = None) -> None:
        ok, self.open = outcome == "success", False
        self.log.event(
            "TASK_END",
            self.title,
            details=f"outcome={outcome}",
            level="INFO" if ok else "WARN",
            data={"outcome": outcome, **(data or {})},
        )
        self.log.close()


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    import json

    return json.loads(json.dumps(d, default=str))


def _size(entry: dict[str, Any] | None) -> int:
    if not entry:
        return 0
    size = entry.get("size_bytes")
    if isinstance(size, int) and size > 0:
        return size
    try:
        return os.path.getsize(str(entry.get("path")))
    except OSError:
        return 0


def _resolve(cfg: Config, name: str | None, which: str) -> tuple[dict[str, Any] | None, str | None]:
    """(entry, None) or (None, why): a missing model is the model-engineer's refusal, not a crash."""
    if not name:
        return None, None
    from ..tracks.plan import resolve_entry

    try:
        return resolve_entry(cfg, name, which), None
    except EpycAgentError as e:
        return None, e.render()


def session_events(cfg: Config, session: str | None) -> list[dict[str, Any]]:
    """This session's events from every shard, in time order (for the retry budget)."""
    from ..events.reader import read_events

    if not session or not os.path.isdir(cfg.log_dir):
        return []
    needle = f'"session":"{session}"'.encode()
    return [e for e in read_events(cfg.log_dir, accept=lambda raw: needle in raw) if e.get("session") == session]


def earlier_runs(cfg: Config, plan: RunPlan) -> list[dict[str, Any]]:
    """config.json + summary.json of earlier runs of the same configuration."""
    from ..sessions import read_json
    from ..tracks.results import runs_dir

    base, out = runs_dir(cfg), []
    try:
        names = sorted(n for n in os.listdir(base) if not n.startswith("."))
    except FileNotFoundError:
        return []
    for name in names:
        try:
            conf = read_json(os.path.join(base, name, "config.json"))
            summ = read_json(os.path.join(base, name, "summary.json"))
        except EpycAgentError:
            continue
        if isinstance(conf, dict) and isinstance(summ, dict) and policies.same_config(conf, plan):
            out.append({"run_id": conf.get("run_id", name), "summary": summ.get("summary") or []})
    return out


@dataclass
class Gated:
    """A request every gate has passed, with its run folder claimed."""

    plan: RunPlan
    journal: Journal
    session: str
    key: str  # the configuration key the retry budget counts


def run(
    cfg: Config,
    request: RunRequest,
    progress: Callable[[RunPlan], Any] | None = None,
    on_plan: Callable[[RunPlan], None] | None = None,
    host_changes: Iterable[dict[str, Any]] = (),
    resume: str | None = None,
) -> tuple[RunPlan, RunResult, str]:
    """Run one request through the five roles (into run `resume`'s folder when given); returns
    (plan, result, run_dir) or raises RoleRefusal."""
    from ..tracks.journal import mark_failed

    try:
        gated = gate(cfg, request, host_changes, resume)
    except RoleRefusal as e:
        if resume:
            mark_failed(cfg, resume, e)
        raise
    if on_plan:  # announced only once every gate has passed
        on_plan(gated.plan)
    return measure(cfg, gated, progress)


def gate(
    cfg: Config, request: RunRequest, host_changes: Iterable[dict[str, Any]] = (), resume: str | None = None
) -> Gated:
    """Steps 1-3 (sysadmin, model-engineer, safety-reviewer), then the run folder: a new one, or the
    folder of run `resume`."""
    from ..events.schema import NO_SESSION
    from ..sessions import current_session_id
    from ..storage import guard_for
    from ..system import health, probe
    from ..tracks.journal import reopen, reserve, run_path
    from ..tracks.labfiles import note_refusal, output_paths
    from ..tracks.plan import prepare_run, with_registry_draft
    from ..tracks.report import REPORT_NAME
    from ..tracks.results import lab_layout, runs_dir

    session = current_session_id(cfg) or NO_SESSION  # without a session, the session-less events count
    request = with_registry_draft(cfg, request)  # every role then sees the draft the run will use
    ctx = f"track {request.track} on {request.model}" + (f" + draft {request.draft}" if request.draft else "")

    # 1. sysadmin: batch health, RAM for the model (and draft)
    step = _Step(cfg, session, "sysadmin", "preflight", ctx)
    checks = health.run_health(cfg, "batch")
    health.log_results(step.log, checks, "batch")
    model, model_err = _resolve(cfg, request.model, "target")
    draft, draft_err = _resolve(cfg, request.draft, "draft")
    mem = probe.meminfo() or {}
    pre = policies.sysadmin_preflight(checks, (_size(model) + _size(draft)) or None, mem.get("MemAvailable"))
    step.verdict(
        pre,
        hint="fix the failing checks (`epyc-agent system health --profile batch`)"
        if pre.reason.startswith("health")
        else "free RAM or choose a smaller model",
    )
    step.end("success")

    # 2. model-engineer: present, allowed for the method, draft compatible; then the plan
    step = _Step(cfg, session, "model-engineer", "models", ctx)
    if model_err or draft_err:
        step.verdict(Verdict("model-engineer", False, str(model_err or draft_err)))
    from ..tracks.spec import get_track

    try:
        track = get_track(request.track)
    except EpycAgentError as e:
        step.verdict(Verdict("model-engineer", False, e.render()))
    assert model is not None
    engineer = policies.model_engineer(cfg, track, model, draft)
    if not engineer.ok and (quirks := note_refusal(cfg, engineer.data.get("refused"))):
        step.log.file_modify(quirks, "edit", "refused method recorded as a model quirk")
    step.verdict(engineer)
    try:
        plan = prepare_run(cfg, request)
    except EpycAgentError as e:
        step.verdict(Verdict("model-engineer", False, e.render()))
    if resume:
        plan.run_id = os.path.basename(run_path(cfg, resume))
    step.end("success", {"run_id": plan.run_id, "configs": len(plan.configs)})

    # 3. safety-reviewer: output paths under the root, retry budget, rollback plans
    key = policies.config_key(plan)
    step = _Step(cfg, session, "safety-reviewer", "gate", f"{ctx}; run {plan.run_id}; config {key}")
    paths = [runs_dir(cfg), os.path.join(cfg.root, "research", REPORT_NAME), cfg.cache_dir]
    lab = [cfg.lab_research_dir] if lab_layout(cfg) else []  # configured by the user: an explicit path
    try:
        paths += output_paths(cfg) if lab else []
    except EpycAgentError as e:
        step.verdict(Verdict("safety-reviewer", False, e.render()))
    step.verdict(
        policies.safety_review(
            [
                policies.paths_under_root(guard_for(cfg, lab), paths),
                policies.retry_budget(session_events(cfg, session), key, int(cfg.guards.get("retry_limit", 3))),
                policies.rollback_plan(host_changes),
                policies.pinned_build(cfg, plan),
            ]
        )
    )
    step.end("success")
    journal = reopen(cfg, plan, resume) if resume else reserve(cfg, plan)
    return Gated(plan, journal, session, key)


def measure(
    cfg: Config, gated: Gated, progress: Callable[[RunPlan], Any] | None = None
) -> tuple[RunPlan, RunResult, str]:
    """Steps 4-5 (benchmark-analyst, research-engineer) into the claimed run folder, whose state
    says how it ended: done, failed, or interrupted (then `RunInterrupted` goes on to the caller)."""
    from ..tracks.journal import interruptible
    from ..tracks.results import log_interrupted, log_start

    plan, journal = gated.plan, gated.journal
    kept = f"; resumed with {len(journal.records)} of {journal.total} generations kept" if journal.records else ""
    steps: list[_Step] = []
    with interruptible():
        try:
            log_start(cfg, plan, kept)
            result, run_dir = _measure(cfg, gated, steps, progress, kept)
        except RunInterrupted as e:
            journal.close("interrupted", e)
            why = f"{e}, {len(journal.records)} of {journal.total} generations kept in {journal.run_dir}"
            log_interrupted(cfg, plan, why)
            for step in steps:
                if step.open:  # no config_key: an interruption neither spends nor refills the retry budget
                    step.end("interrupted", {"run_id": plan.run_id})
            e.hint = f"{why}; finish it with `epyc-agent track resume {plan.run_id}`"
            raise
        except BaseException as e:
            journal.close("failed", e)
            raise
        journal.close("done")
    return plan, result, run_dir


def _measure(cfg: Config, gated: Gated, steps: list[_Step], progress: Any, kept: str) -> tuple[RunResult, str]:
    from ..fileio import write_json_atomic
    from ..tracks.results import log_failure, record
    from ..tracks.runner import execute

    plan, key = gated.plan, gated.key
    # 4. benchmark-analyst: execute, CV flags, repetitions, earlier runs of the same configuration
    step = _Step(cfg, gated.session, "benchmark-analyst", "benchmark", f"run {plan.run_id}; config {key}{kept}")
    steps.append(step)
    try:
        result = execute(plan, gated.journal, progress(plan) if progress else None)
    except Exception as e:
        log_failure(cfg, plan, e)
        step.log.error(f"run {plan.run_id} failed: {e}", type(e).__name__)
        step.end("failure", {"config_key": key, "run_id": plan.run_id})
        raise
    analysis = _analyze(step.log, cfg, plan, result)
    step.end("success", {"config_key": key, "run_id": plan.run_id, "verdict": analysis["verdict"]})

    # 5. research-engineer: record the run, regenerate the report, store the analysis
    step = _Step(cfg, gated.session, "research-engineer", "record", f"run {plan.run_id}")
    steps.append(step)
    run_dir = record(cfg, plan, result)
    path = os.path.join(run_dir, "analysis.json")
    write_json_atomic(path, {"run_id": plan.run_id, "config_key": key, **analysis})
    step.log.file_modify(run_dir, "create", f"run {plan.run_id} recorded; report regenerated")
    step.log.observe("run verdict", analysis["verdict"], data={"run_id": plan.run_id, "reason": analysis["reason"]})
    step.end("success", {"run_dir": run_dir})
    return result, run_dir


def _analyze(log: AuditLog, cfg: Config, plan: RunPlan, result: RunResult) -> dict[str, Any]:
    """The benchmark-analyst's judgement, logged and attached to the result."""
    analysis = policies.analyze(result.summary, policies.rep_rates(result.records))
    for s in result.summary:
        if s["cv_flag"]:
            log.warn(
                f"{s['config']}: decode t/s CV {s['cv']:.1%} > {policies.CV_LIMIT:.0%}",
                "unstable measurement: check `epyc-agent system health --profile batch`, rerun",
            )
    earlier = earlier_runs(cfg, plan)
    analysis["earlier_runs"] = [r["run_id"] for r in earlier]
    analysis["comparison"] = policies.compare_earlier(result.summary, earlier)
    analysis["speedups"] = {s["config"]: s["speedup"] for s in result.summary if s["kind"] != "baseline"}
    log.observe("benchmark verdict", f"{analysis['verdict']}: {analysis['reason']}", data=_jsonable(analysis))
    result.extra["analysis"] = analysis
    return analysis
