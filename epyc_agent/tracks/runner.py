"""Executing a plan: baseline and method generations through a backend, then the statistics.

Numbers are kept as numbers. Per configuration: decode tokens/s per rep (generated tokens after the
first over decode time, summed over the workload's prompts) with median, min and max over reps;
prefill tokens/s and time to first token (medians); peak memory; for speculative methods the
acceptance rate, mean accepted tokens per step and the speedup (method median / baseline median
decode tokens/s); and agreement with the baseline's output per prompt.

Each record goes to the run's journal as it finishes (a killed run keeps what it measured), and
progress displays get a `Generated` after each generation and `Hashing` while a model is hashed.
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
    from .journal import Journal
    from .plan import RunPlan


@dataclass(frozen=True)
class Generated:
    """A finished generation: a measured record, or (record None) a configuration's warm-up."""

    label: str
    done: int  # records measured so far, earlier segments of a resumed run included
    total: int
    elapsed_s: float  # since this process began measuring
    record: Record | None = None


@dataclass(frozen=True)
class Hashing:
    """Bytes of a model file hashed so far: a file's first run reads all of it (a minute for 60 GB)."""

    path: str
    done: int
    total: int


Progress = Callable[[Generated | Hashing], None]


@dataclass
class RunResult:
    records: list[Record]  # one per prompt per rep per configuration (baseline first)
    summary: list[dict[str, Any]]  # one per configuration (baseline first)
    backend_info: dict[str, Any]
    host: dict[str, Any]
    started: str
    ended: str
    wall_s: float  # measuring time, over every segment of a resumed run
    resumed: list[str] = field(default_factory=list)  # when each later segment began
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


def execute(plan: RunPlan, journal: Journal, progress: Progress | None = None) -> RunResult:
    """Run the baseline and every method configuration, skipping the reps the journal already has;
    agreement is against the baseline's rep 0."""
    backend = backend_for(plan.backend)
    tick = progress or (lambda _event: None)
    info, host = backend.info(plan), host_info()
    journal.begin(info, host, tick)
    t0 = time.perf_counter()

    def step(label: str, rec: Record | None = None) -> None:
        tick(Generated(label, len(journal.records), journal.total, round(time.perf_counter() - t0, 3), rec))

    baseline = dict(journal.baseline)
    for rec in backend.generations(plan, step, journal.complete_reps()):
        if rec["kind"] == "baseline" and rec["rep"] == 0:
            baseline[rec["prompt_id"]] = rec
        rec["agreement"] = agreement(baseline.get(rec["prompt_id"]), rec)
        journal.append(rec)  # token ids and margins served the comparison; the text stays
        step(rec["config"], rec)
    return RunResult(
        records=journal.ordered(),
        summary=summarize(journal.ordered()),
        backend_info=info,
        host=host,
        started=journal.status["started"],
        ended=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        wall_s=journal.wall_s,
        resumed=list(journal.status.get("resumed", [])),
    )
