"""The roles' policies as code: what each role refuses, and why.

The Markdown files in agents/ describe the same rules for agents; these
functions enforce them for `track run`. Each policy takes plain data and
returns a `Verdict`; the pipeline gathers the data and logs the verdicts, so
every rule is testable on its own.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import EpycAgentError, MethodRefused

if TYPE_CHECKING:
    from ..config import Config
    from ..storage import StorageGuard
    from ..system.health import Check

RAM_FACTOR = 1.2  # model bytes x this must be available (weights + KV cache + runtime)
CV_LIMIT = 0.10  # coefficient of variation above this: the measurement is unstable
MIN_REPS = 3  # fewer repetitions: no conclusion
REPRODUCED_PCT = 10.0  # an earlier run of the same configuration within this: reproduced
GB = 1e9


@dataclass
class Verdict:
    """One role's answer: allow (ok) or refuse, with the reason and what it looked at."""

    role: str
    ok: bool
    reason: str
    data: dict[str, Any] = field(default_factory=dict)


class RoleRefusal(EpycAgentError):
    """A role refused: the pipeline stops, the CLI prints the reason and exits 2."""

    def __init__(self, verdict: Verdict, hint: str | None = None) -> None:
        super().__init__(f"refused by {verdict.role}: {verdict.reason}", hint=hint)
        self.verdict = verdict


# --- sysadmin -------------------------------------------------------------------------------


def sysadmin_preflight(checks: list[Check], need_bytes: int | None, available_bytes: int | None) -> Verdict:
    """Refuse on any batch health FAIL, or when available RAM < model bytes x RAM_FACTOR.
    An unreadable amount of RAM is not a refusal (the health check reports it as SKIP)."""
    failed = [c for c in checks if c.status == "FAIL"]
    data: dict[str, Any] = {
        "health": {c.name: c.status for c in checks},
        "need_bytes": need_bytes,
        "available_bytes": available_bytes,
    }
    if failed:
        reasons = "; ".join(f"{c.name}: {c.detail}" + (f" (fix: {c.fix})" if c.fix else "") for c in failed)
        return Verdict("sysadmin", False, f"health check failed: {reasons}", data)
    if need_bytes and available_bytes is not None:
        want = need_bytes * RAM_FACTOR
        if available_bytes < want:
            return Verdict(
                "sysadmin",
                False,
                f"not enough free RAM: the model needs {want / GB:.2f} GB ({need_bytes / GB:.2f} GB "
                f"x {RAM_FACTOR}), {available_bytes / GB:.2f} GB available",
                data,
            )
    warned = [c.name for c in checks if c.status == "WARN"]
    extra = f"; warnings: {', '.join(warned)}" if warned else ""
    ram = f"{available_bytes / GB:.1f} GB RAM available" if available_bytes is not None else "RAM unreadable"
    return Verdict("sysadmin", True, f"host healthy for a batch run ({ram}){extra}", data)


# --- model-engineer ---------------------------------------------------------------------------


def model_engineer(cfg: Config, track: Any, model: dict[str, Any], draft: dict[str, Any] | None) -> Verdict:
    """Model and draft present; the method not forbidden for the model (SSM/hybrid, registry);
    the draft tokenizer-compatible (models.compat.check_draft). Uses the track planner's own
    rule function, so the pipeline and `prepare_run` can never disagree."""
    from ..tracks.plan import check_constraints

    data = {
        "model": model.get("path"),
        "draft": draft.get("path") if draft else None,
        "arch": model.get("arch"),
        "method": track.method,
    }
    for role_name, entry in (("target", model), ("draft", draft)):
        if entry is not None and not os.path.isfile(str(entry.get("path"))):
            return Verdict("model-engineer", False, f"{role_name} model not found: {entry.get('path')}", data)
    try:
        check_constraints(track, model, draft, cfg)
    except MethodRefused as e:  # the details let the pipeline record the refusal as a model quirk
        from ..tracks.labfiles import refusal

        return Verdict("model-engineer", False, e.render(), {**data, "refused": refusal(e)})
    except EpycAgentError as e:
        return Verdict("model-engineer", False, e.render(), data)
    what = os.path.basename(str(model["path"])) + (f" + draft {os.path.basename(str(draft['path']))}" if draft else "")
    return Verdict("model-engineer", True, f"{what} present and allowed for {track.method}", data)


# --- safety-reviewer --------------------------------------------------------------------------


def paths_under_root(guard: StorageGuard, paths: Iterable[str]) -> Verdict:
    """Every path the run writes must resolve under the root (the storage guard's rule)."""
    bad = [v for v in (guard.check(p) for p in paths) if not v.allowed]
    if bad:
        return Verdict(
            "safety-reviewer",
            False,
            "; ".join(f"{v.path}: {v.reason}" for v in bad),
            {"refused_paths": [v.path for v in bad]},
        )
    return Verdict("safety-reviewer", True, "all output paths under the storage root")


def consecutive_failures(events: Iterable[dict[str, Any]], key: str) -> int:
    """Failed runs of configuration `key` since its last success or the last DECISION (any agent):
    a logged decision is the new diagnosis that reopens the budget."""
    n = 0
    for ev in events:
        cat = ev.get("cat")
        if cat == "DECISION":
            n = 0
        elif cat == "TASK_END":
            data = ev.get("data") or {}
            if data.get("config_key") == key:
                n = n + 1 if data.get("outcome") == "failure" else 0
    return n


def retry_budget(events: Iterable[dict[str, Any]], key: str, limit: int = 3) -> Verdict:
    """No more than `limit` consecutive failed runs of one configuration without a DECISION."""
    n = consecutive_failures(events, key)
    data = {"config_key": key, "consecutive_failures": n, "limit": limit}
    if n >= limit:
        return Verdict(
            "safety-reviewer",
            False,
            f"this configuration failed {n} times in a row in this session; a retry needs a new "
            'diagnosis logged first (epyc-agent log decision "<diagnosis>" "<why it changes>")',
            data,
        )
    return Verdict("safety-reviewer", True, f"retry budget ok ({n}/{limit} consecutive failures)", data)


def rollback_plan(host_changes: Iterable[dict[str, Any]]) -> Verdict:
    """Every host change (sysctl, governor, THP, packages) needs an undo command."""
    changes = list(host_changes)
    missing = [c.get("action") or "?" for c in changes if not str(c.get("undo") or "").strip()]
    if missing:
        return Verdict(
            "safety-reviewer",
            False,
            f"host change without a rollback plan: {', '.join(missing)}",
            {"host_changes": changes},
        )
    return Verdict(
        "safety-reviewer",
        True,
        f"{len(changes)} host change(s), each with a rollback" if changes else "no host changes",
        {"host_changes": changes},
    )


def pinned_build(cfg: Config, plan: Any) -> Verdict:
    """The llama.cpp build the run would measure is the one pinned in the config (if any)."""
    from ..system.builds import build_for, pin_problem

    build = build_for(plan)
    why = pin_problem(cfg, build)
    data = {"build": build}
    if why:
        return Verdict(
            "safety-reviewer",
            False,
            f"not the pinned llama.cpp build: {why}; build the pinned one, or a person updates measurement "
            "in the epyc-agent config",
            data,
        )
    pinned = cfg.measurement.get("llama_cpp_sha256") or cfg.measurement.get("llama_cpp_version")
    return Verdict(
        "safety-reviewer", True, "the pinned llama.cpp build" if pinned else "no llama.cpp build pinned", data
    )


def safety_review(verdicts: list[Verdict]) -> Verdict:
    """The gate: the first refusal, else one allow naming every check."""
    for v in verdicts:
        if not v.ok:
            return v
    merged: dict[str, Any] = {}
    for v in verdicts:
        merged.update(v.data)
    return Verdict("safety-reviewer", True, "; ".join(v.reason for v in verdicts), merged)


# --- benchmark-analyst ------------------------------------------------------------------------


def cv(values: list[float]) -> float | None:
    """Coefficient of variation (sample stdev / mean); None for fewer than 2 values."""
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if len(vals) < 2:
        return None
    mean = statistics.fmean(vals)
    return statistics.stdev(vals) / mean if mean else None


def rep_rates(records: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Decode tokens/s per repetition, per configuration (the runner's own rep formula)."""
    from ..tracks.runner import _rep_rates

    by: dict[str, dict[int, list[dict[str, Any]]]] = {}
    for r in records:
        by.setdefault(r["config"], {}).setdefault(r["rep"], []).append(r)
    return {label: [_rep_rates(reps[k])[0] for k in sorted(reps)] for label, reps in by.items()}


def analyze(summary: list[dict[str, Any]], rates: dict[str, list[float]]) -> dict[str, Any]:
    """Annotate each configuration with its CV and flags; an overall verdict.

    `inconclusive` with fewer than MIN_REPS repetitions; `unstable` when any configuration's CV
    exceeds CV_LIMIT; otherwise `conclusive`. Flags are added to `summary` in place so they are
    stored with the results."""
    flagged, reps_seen = [], []
    for s in summary:
        c = cv(rates.get(s["config"], []))
        s["cv"] = None if c is None else round(c, 4)
        s["cv_flag"] = c is not None and c > CV_LIMIT
        reps_seen.append(s["reps"])
        if s["cv_flag"]:
            flagged.append(s["config"])
    min_reps = min(reps_seen) if reps_seen else 0
    if min_reps < MIN_REPS:
        verdict, why = "inconclusive", f"{min_reps} repetition(s) < {MIN_REPS}: no conclusion"
    elif flagged:
        verdict, why = "unstable", f"CV above {CV_LIMIT:.0%} for {', '.join(flagged)}"
    else:
        verdict, why = "conclusive", f"{min_reps} repetitions, every CV <= {CV_LIMIT:.0%}"
    for s in summary:
        s["verdict"] = verdict
    return {"verdict": verdict, "reason": why, "cv_flagged": flagged, "min_reps": min_reps}


def config_key(plan: Any) -> str:
    """What makes two runs 'the same configuration' (not the repetitions or the run id)."""
    ident = {
        "track": plan.track.id,
        "model": plan.model.get("path"),
        "draft": plan.draft.get("path") if plan.draft else None,
        "workload": plan.workload.sha256,
        "configs": plan.configs,
        "max_tokens": plan.request.max_tokens,
        "backend": plan.backend,
        "n_ctx": plan.request.n_ctx,
        "seed": plan.request.seed,
    }
    return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:16]


def same_config(conf: dict[str, Any], plan: Any) -> bool:
    """Whether an earlier run's config.json measured the same configuration as `plan`."""
    req = conf.get("request") or {}
    return (
        conf.get("track", {}).get("id") == plan.track.id
        and (conf.get("model") or {}).get("path") == plan.model.get("path")
        and ((conf.get("draft") or {}).get("path") if conf.get("draft") else None)
        == (plan.draft.get("path") if plan.draft else None)
        and (conf.get("workload") or {}).get("sha256") == plan.workload.sha256
        and conf.get("configs") == plan.configs
        and req.get("max_tokens") == plan.request.max_tokens
        and (conf.get("backend") or {}).get("backend", plan.backend) == plan.backend
    )


def compare_earlier(summary: list[dict[str, Any]], earlier: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per configuration: this run's median decode t/s against the earlier runs' (their summaries)."""
    out = []
    for s in summary:
        prev = [
            e["decode_tps"]["median"]
            for run in earlier
            for e in run.get("summary", [])
            if e.get("config") == s["config"] and (e.get("decode_tps") or {}).get("median")
        ]
        now = s["decode_tps"]["median"]
        if not prev or not now:
            continue
        ref = statistics.median(prev)
        delta = 100.0 * (now - ref) / ref
        out.append(
            {
                "config": s["config"],
                "now": now,
                "earlier_median": round(ref, 3),
                "earlier_runs": len(prev),
                "delta_pct": round(delta, 1),
                "reproduced": abs(delta) <= REPRODUCED_PCT,
            }
        )
    return out
