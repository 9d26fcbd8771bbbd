"""Executing a plan: baseline and method generations through a backend, then the statistics.

Numbers are kept as numbers. Per configuration: decode tokens/s per rep (generated tokens after the
first over decode time, summed over the workload's prompts) with median, min and max over reps;
prefill tokens/s and time to first token (medians); peak memory; for speculative methods the
acceptance rate, mean accepted tokens per step and the speedup (method median / baseline median
decode tokens/s); and agreement with the baseline's output per prompt.
"""

from __future__ import annotations

import platform
import socket
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .backends import Record, backend_for

if TYPE_CHECKING:
    from .plan import RunPlan

Progress = Callable[[str], None]


@dataclass
class RunResult:
    records: list[Record]  # one per prompt per rep per configuration (baseline first)
    summary: list[dict[str, Any]]  # one per configuration (baseline first)
    backend_info: dict[str, Any]
    host: dict[str, Any]
    started: str
    ended: str
    wall_s: float
    extra: dict[str, Any] = field(default_factory=dict)


def host_info() -> dict[str, Any]:
    """CPU model, core count and RAM: what a number depends on besides the software."""
    import os

    import psutil

    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return {
        "hostname": socket.gethostname(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "ram_gb": round(psutil.virtual_memory().total / 1e9, 1),
        "os": platform.platform(),
    }


def agreement(base: Record | None, rec: Record) -> dict[str, Any]:
    """Identical to the baseline's output, or where it first diverges and how close to a tie it was."""
    from ..inference.generate import first_divergence

    if base is None:
        return {"identical": None, "first_divergence": None, "margin": None, "agree_frac": None}
    a, b = base["tokens"], rec["tokens"]
    i = first_divergence(a, b)
    if i is None:
        return {"identical": True, "first_divergence": None, "margin": None, "agree_frac": 1.0}
    margins = base.get("margins")
    margin = margins[i] if margins and i < len(margins) else None
    return {
        "identical": False,
        "first_divergence": i,
        "margin": None if margin is None else round(margin, 4),
        "agree_frac": round(i / max(len(a), 1), 4),
    }


def _rep_rates(recs: list[Record]) -> tuple[float, float]:
    """Decode and prefill tokens/s of one rep over all its prompts (token-weighted)."""
    dec_tok = sum(max(r["n_generated"] - 1, 0) for r in recs)
    dec_s = sum((r["n_generated"] - 1) / r["decode_tps"] for r in recs if r["decode_tps"] and r["n_generated"] > 1)
    pre_tok = sum(r["n_prompt"] for r in recs)
    pre_s = sum(r["n_prompt"] / r["prefill_tps"] for r in recs if r["prefill_tps"])
    return (dec_tok / dec_s if dec_s else 0.0), (pre_tok / pre_s if pre_s else 0.0)


def _r(x: float | None, nd: int = 3) -> float | None:
    return None if x is None else round(x, nd)


def summarize(records: list[Record]) -> list[dict[str, Any]]:
    """Per-configuration statistics in record order; speedups relative to the baseline."""
    order: list[str] = []
    by_cfg: dict[str, list[Record]] = {}
    for r in records:
        if r["config"] not in by_cfg:
            order.append(r["config"])
        by_cfg.setdefault(r["config"], []).append(r)
    out = []
    base_median = None
    for label in order:
        recs = by_cfg[label]
        reps = sorted({r["rep"] for r in recs})
        rates = [_rep_rates([r for r in recs if r["rep"] == rep]) for rep in reps]
        dec = [d for d, _ in rates]
        median = statistics.median(dec)
        if recs[0]["kind"] == "baseline":
            base_median = median
        drafted = sum(r.get("drafted") or 0 for r in recs)
        accepted = sum(r.get("accepted") or 0 for r in recs)
        steps = sum(r.get("steps") or 0 for r in recs)
        first = [r for r in recs if r["rep"] == reps[0]]
        agree = [r["agreement"] for r in first if r.get("agreement", {}).get("identical") is not None]
        out.append(
            {
                "config": label,
                "kind": recs[0]["kind"],
                "params": recs[0]["params"],
                "reps": len(reps),
                "prompts": len(first),
                "decode_tps": {
                    "median": _r(median),
                    "min": _r(min(dec)),
                    "max": _r(max(dec)),
                    "stdev": _r(statistics.stdev(dec)) if len(dec) > 1 else 0.0,
                },
                "prefill_tps": _r(statistics.median(p for _, p in rates)),
                "ttft_s": _r(statistics.median(r["ttft_s"] for r in recs), 4),
                "peak_rss_mb": _r(max(r["peak_rss_mb"] for r in recs), 1),
                "acceptance_rate": _r(accepted / drafted, 4) if drafted else None,
                "mean_accepted_per_step": _r(accepted / steps, 3) if drafted and steps else None,
                "speedup": _r(median / base_median, 3) if base_median and recs[0]["kind"] != "baseline" else None,
                "identical_outputs": sum(1 for a in agree if a["identical"]) if agree else None,
                "agree_frac": _r(statistics.mean(a["agree_frac"] for a in agree), 4) if agree else None,
                "divergences": [
                    {
                        "prompt_id": r["prompt_id"],
                        "index": r["agreement"]["first_divergence"],
                        "margin": r["agreement"]["margin"],
                    }
                    for r in first
                    if r.get("agreement", {}).get("identical") is False
                ],
            }
        )
    return out


def execute(plan: RunPlan, progress: Progress | None = None) -> RunResult:
    """Run the baseline and every method configuration; agreement is against the baseline's rep 0."""
    backend = backend_for(plan.backend)
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    t0 = time.perf_counter()
    tick = progress or (lambda _desc: None)
    records: list[Record] = []
    baseline: dict[str, Record] = {}
    for rec in backend.generations(plan, tick):
        if rec["kind"] == "baseline" and rec["rep"] == 0:
            baseline[rec["prompt_id"]] = rec
        rec["agreement"] = agreement(baseline.get(rec["prompt_id"]), rec)
        records.append(rec)
    for rec in records:  # token ids and margins served the comparison; the text stays
        rec.pop("tokens", None)
        rec.pop("margins", None)
    return RunResult(
        records=records,
        summary=summarize(records),
        backend_info=backend.info(plan),
        host=host_info(),
        started=started,
        ended=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        wall_s=round(time.perf_counter() - t0, 3),
    )
