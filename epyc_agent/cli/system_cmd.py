"""`epyc-agent system audit|health`: the sysadmin role's host tooling."""

from __future__ import annotations

import click

from ..output import echo, emit_json, kv, status, table
from . import obj


@click.group()
def system() -> None:
    """Host audit and health checks (the sysadmin role)."""


@system.command("audit")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def system_audit(ctx: click.Context, as_json: bool) -> int:
    """Record CPU, ISA, NUMA, memory, kernel knobs, compilers and the llama.cpp build.

    Saved as <root>/system/audit-<time>.json and logged as OBSERVE events.
    """
    from ..roles import role_log
    from ..system.audit import run_audit

    cfg = obj(ctx).config
    log = role_log(cfg, "sysadmin")
    data, path = run_audit(cfg, log)
    if as_json:
        emit_json({**data, "path": path})
        return 0
    cpu, mem, numa, kern = data["cpu"], data["memory"], data["numa"], data["kernel"]
    echo(
        kv(
            [
                ("cpu", cpu["model"]),
                ("cores/threads", f"{cpu['cores']} / {cpu['threads']}"),
                ("isa", " ".join(cpu["isa"]) or "-"),
                ("amx", cpu["amx"]),
                ("numa nodes", f"{numa['count']} (balancing {numa['balancing']})"),
                ("memory", f"{mem['total_gb']} GB total, {mem['available_gb']} GB available"),
                ("hugepages", f"{mem['hugepages_total']} x {mem['hugepage_size_kb']} kB; THP {mem['thp']}"),
                ("governor", ", ".join(kern["governors"] or []) or "unreadable (no cpufreq)"),
                ("perf_event_paranoid", kern["perf_event_paranoid"]),
                *((name, v or "missing") for name, v in data["compilers"].items()),
                ("llama.cpp", data["llama_cpp_system_info"] or "unavailable"),
                ("saved", path),
            ]
        )
    )
    return 0


@system.command("health")
@click.option(
    "--profile",
    type=click.Choice(["session", "batch"]),
    default="session",
    show_default=True,
    help="session: fit to work; batch: fit to benchmark (adds NUMA, llama.cpp checks).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def system_health(ctx: click.Context, profile: str, as_json: bool) -> int:
    """PASS/WARN/FAIL/SKIP per check with a fix hint; exit 1 on any FAIL.

    A value that cannot be read is SKIP, never FAIL.
    """
    from ..roles import role_log
    from ..system.health import log_results, run_health, summary

    cfg = obj(ctx).config
    checks = run_health(cfg, profile)
    log = role_log(cfg, "sysadmin")
    if log is not None:
        with log:
            log_results(log, checks, profile)
    failed = any(c.status == "FAIL" for c in checks)
    if as_json:
        emit_json(
            {"profile": profile, "ok": not failed, "summary": summary(checks), "checks": [c.as_dict() for c in checks]}
        )
    else:
        rows = [(c.status, c.name, c.detail, c.fix) for c in checks]
        echo(table(rows, ["status", "check", "detail", "fix"], colorize={0: status}))
        echo(" ".join(f"{k}={v}" for k, v in summary(checks).items()))
    return 1 if failed else 0
