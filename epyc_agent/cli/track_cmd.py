"""`epyc-agent track list|show|run|rerun|resume|runs|status` and `epyc-agent report`: thin adapters
over `epyc_agent.tracks`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from typing import Any

import click

from ..output import echo, emit_json, kv, table
from . import obj


@click.group()
def track() -> None:
    """Research tracks: list them, run one against the greedy baseline, repeat a past run."""


@track.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def track_list(as_json: bool) -> int:
    """Every track of the lab's plan with its method and status."""
    from ..tracks.plan import method_catalog
    from ..tracks.spec import load_tracks

    tracks = load_tracks()
    catalog = method_catalog()
    built = set(catalog) | {"moe_reduction"}
    data = [
        {**t.as_dict(catalog.get(t.method)), "built": t.method in built and t.status != "deprecated"}
        for t in tracks.values()
    ]
    if as_json:
        emit_json(data)
        return 0
    echo(
        table(
            [
                [d["id"], d["name"], d["method"], d["status"], "yes" if d["built"] else "no", d["expected_gain"]]
                for d in data
            ],
            ["id", "name", "method", "status", "built", "lab's expected gain"],
        )
    )
    return 0


@track.command("show")
@click.argument("track_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def track_show(track_id: str, as_json: bool) -> int:
    """One track: method, status, parameters and sweep ranges, expected gain, references."""
    from ..tracks.plan import method_catalog
    from ..tracks.spec import get_track

    t = get_track(track_id)
    d = t.as_dict(method_catalog().get(t.method))
    if as_json:
        emit_json(d)
        return 0
    echo(
        kv(
            [
                ("track", f"{d['id']}: {d['name']}"),
                ("method", d["method"]),
                ("status", d["status"]),
                ("summary", d["summary"]),
                ("speculative", "yes" if d["speculative"] else "no"),
                ("expected gain", d["expected_gain"]),
                ("llama.cpp tool", d["binary"] or "-"),
            ]
        )
    )
    if d["params"]:
        echo("\nparameters:")
        echo(
            table(
                [
                    [n, p["type"], p["default"], ", ".join(map(str, p["sweep"])), p["help"]]
                    for n, p in d["params"].items()
                ],
                ["name", "type", "default", "sweep", "meaning"],
            )
        )
    if d["references"]:
        echo("\nreferences:")
        for r in d["references"]:
            echo(f"- {r}")
    return 0


def _check_request(request: Any) -> None:
    """What the request alone tells, before any gate runs or any event is written: the track
    exists and each --param fits it. The model-engineer's plan checks all of it again."""
    from ..tracks.plan import method_catalog, parse_params
    from ..tracks.spec import get_track

    track = get_track(request.track)
    parse_params(track, request.params, method_catalog().get(track.method, {}))


def _run(ctx: click.Context, request: Any, as_json: bool, resume: str | None = None, detach: bool = False) -> int:
    """Through the roles pipeline (preflight, models, safety gate, analysis, record): never around it,
    so a broken gate fails loudly instead of being skipped."""
    from ..roles.pipeline import run
    from .progress import progress_display

    cfg = obj(ctx).config
    _check_request(request)
    if detach:
        return _detach(ctx, request, as_json)

    def announce(plan: Any) -> None:
        if not as_json:
            click.echo(
                f"# {'resume ' if resume else ''}run {plan.run_id}: track {plan.track.id} ({plan.track.method}) on "
                f"{os.path.basename(plan.model['path'])}, {len(plan.workload.prompts)} prompt(s) x "
                f"{plan.request.reps} reps, {len(plan.configs)} config(s), backend {plan.backend}",
                err=True,
            )
            for line in plan.decisions:
                click.echo(f"# {line}", err=True)

    plan, result, run_dir = run(cfg, request, progress_display(as_json), announce, resume=resume)
    report = os.path.join(cfg.root, "research", "research_report.md")
    if as_json:
        emit_json({"run_id": plan.run_id, "run_dir": run_dir, "report": report, "summary": result.summary})
        return 0
    rows = [
        [
            s["config"],
            f"{s['decode_tps']['median']} [{s['decode_tps']['min']}-{s['decode_tps']['max']}]",
            s["prefill_tps"],
            s["ttft_s"],
            s["peak_rss_mb"],
            s["acceptance_rate"],
            s["mean_accepted_per_step"],
            f"{s['speedup']}x" if s["speedup"] is not None else "-",
            f"{s['identical_outputs']}/{s['prompts']}" if s["identical_outputs"] is not None else "-",
        ]
        for s in result.summary
    ]
    echo(
        table(
            rows,
            [
                "config",
                "decode t/s [min-max]",
                "prefill t/s",
                "TTFT s",
                "peak MB",
                "accept",
                "acc/step",
                "speedup",
                "identical",
            ],
        )
    )
    for s in result.summary:
        for d in s["divergences"]:
            echo(
                f"{s['config']}: prompt {d['prompt_id']} diverges at token {d['index']} "
                f"(baseline top-2 margin {d['margin']})"
            )
    analysis = result.extra.get("analysis")
    if analysis:
        echo(f"verdict: {analysis['verdict']} ({analysis['reason']})")
    echo(f"run dir: {run_dir}")
    echo(f"report:  {report}")
    return 0


@track.command("run")
@click.argument("track_id")
@click.option("--model", "-m", required=True, help="Target model: inventory name or GGUF path.")
@click.option("--draft", "-d", help="Draft model (track 1): inventory name or GGUF path.")
@click.option(
    "--workload",
    "-w",
    default="summarization",
    show_default=True,
    help="Workload name under research/workloads/ or a YAML path.",
)
@click.option("--prompts", type=click.IntRange(min=1), help="Use only the workload's first N prompts.")
@click.option(
    "--reps", type=click.IntRange(min=1), default=3, show_default=True, help="Measured repetitions (after 1 warm-up)."
)
@click.option(
    "--max-tokens", type=click.IntRange(min=1), default=128, show_default=True, help="Tokens generated per prompt."
)
@click.option(
    "--threads",
    type=click.IntRange(1, os.cpu_count() or 1),
    help="Threads, at most this machine's CPUs (default: the CPUs this process may use).",
)
@click.option(
    "--param", "params", multiple=True, metavar="K=V[,V2]", help="Method parameter; a comma list sweeps it. Repeatable."
)
@click.option(
    "--backend",
    type=click.Choice(["auto", "embedded", "binaries"]),
    default="auto",
    show_default=True,
    help="auto = binaries when llama_cpp_bin is configured, else embedded llama-cpp-python.",
)
@click.option("--n-ctx", type=click.IntRange(min=2), default=4096, show_default=True, help="Context size (tokens).")
@click.option(
    "--detach",
    is_flag=True,
    help="Return once the gates pass, with the run id; the run goes on in its own process "
    "(output in <run folder>/run.log; follow it with `track status RUN_ID`).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def track_run(
    ctx: click.Context,
    track_id: str,
    model: str,
    draft: str | None,
    workload: str,
    prompts: int | None,
    reps: int,
    max_tokens: int,
    threads: int | None,
    params: tuple[str, ...],
    backend: str,
    n_ctx: int,
    detach: bool,
    as_json: bool,
) -> int:
    """Run the greedy baseline and track TRACK_ID's method on the same prompts; record and report.
    SIGTERM or Ctrl-C leaves the run folder marked interrupted (exit 143/130): `track resume` it."""
    from ..tracks.plan import RunRequest

    if max_tokens >= n_ctx:
        raise click.BadParameter(
            f"{max_tokens} leaves no room for the prompt in --n-ctx {n_ctx}", param_hint="'--max-tokens'"
        )

    req = RunRequest(
        track=track_id,
        model=model,
        draft=draft,
        workload=workload,
        prompts=prompts,
        reps=reps,
        max_tokens=max_tokens,
        threads=threads,
        params=list(params),
        backend=backend,
        n_ctx=n_ctx,
    )
    return _run(ctx, req, as_json, detach=detach)


def _detach(ctx: click.Context, request: Any, as_json: bool) -> int:
    """Gate here (a refusal is this command's own exit 2), then measure in a detached
    `track resume` of the reserved folder, which goes through the gates again as any resume does."""
    from ..roles.pipeline import gate
    from ..tracks.journal import LOG, detach, release

    root = obj(ctx)
    gated = gate(root.config, request)
    release(gated.journal)
    argv = [sys.executable, "-m", "epyc_agent"]
    for flag, value in (("--config", root.config_file), ("--root", root.root)):
        argv += [flag, os.path.abspath(value)] if value else []
    run_id, run_dir = gated.plan.run_id, gated.journal.run_dir
    pid = detach(run_dir, [*argv, "track", "resume", run_id])
    data = {"run_id": run_id, "run_dir": run_dir, "state": "running", "pid": pid, "log": os.path.join(run_dir, LOG)}
    if as_json:
        emit_json(data)
        return 0
    echo(kv([("run", run_id), ("pid", pid), ("log", data["log"]), ("follow", f"epyc-agent track status {run_id}")]))
    return 0


@track.command("resume")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def track_resume(ctx: click.Context, run_id: str, as_json: bool) -> int:
    """Finish an interrupted (or failed) run in its own folder: its complete reps are kept, the rest
    is measured (the model files and prompts must be unchanged), then summary and report as for any run."""
    from ..tracks.pipeline import resume_request

    return _run(ctx, resume_request(obj(ctx).config, run_id), as_json, resume=run_id)


@track.command("status")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def track_status(ctx: click.Context, run_id: str, as_json: bool) -> int:
    """A run's state (running, interrupted, done, failed), generations done of total, and whether
    the process measuring it is alive."""
    from ..errors import EpycAgentError
    from ..tracks.journal import progress_of, run_path

    p = progress_of(run_path(obj(ctx).config, run_id))
    if p is None:
        raise EpycAgentError(f"no run {run_id!r}", hint="see `epyc-agent track runs`")
    if as_json:
        emit_json(p)
        return 0
    alive = {True: "alive", False: "gone", None: "not started yet"}[p["pid_alive"]]
    nxt = {
        "interrupted": f"epyc-agent track resume {p['run_id']}",
        "failed": f"epyc-agent track resume {p['run_id']} (once the error is fixed)",
        "running": f"tail {p['log']}" if p["log"] else f"epyc-agent track status {p['run_id']}",
        "done": os.path.join(p["dir"], "summary.md"),
    }
    rows = [
        ("run", p["run_id"]),
        ("state", p["state"]),
        ("generations", f"{p['done']}/{p['total']}"),
        ("pid", f"{p['pid']} ({alive})" if p["pid"] else alive),
        ("started", p["started"] or "-"),
        ("updated", p["updated"] or "-"),
        ("error", p["error"] or "-"),
        ("dir", p["dir"]),
        ("next", nxt.get(p["state"], "-")),
    ]
    echo(kv(rows))
    return 0


@track.command("rerun")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def track_rerun(ctx: click.Context, run_id: str, as_json: bool) -> int:
    """Repeat a past run from its config.json (same model file, prompts, parameters, threads)."""
    from ..tracks.pipeline import rerun_request

    return _run(ctx, rerun_request(obj(ctx).config, run_id), as_json)


@track.command("runs")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def track_runs(ctx: click.Context, as_json: bool) -> int:
    """Recorded runs and runs in progress, interrupted or failed, oldest first."""
    from ..tracks.journal import list_progress
    from ..tracks.report import load_runs

    runs = load_runs(obj(ctx).config)
    data = [
        {
            "run_id": r["id"],
            "track": r["config"]["track"]["id"],
            "model": r["config"]["model"]["path"],
            "workload": r["config"]["workload"]["name"],
            "configs": len(r["summary"]) - 1,
            "best_speedup": max((s["speedup"] for s in r["summary"] if s["speedup"] is not None), default=None),
            "dir": r["dir"],
        }
        for r in runs
    ]
    progress = {p["dir"]: p for p in list_progress(obj(ctx).config)}
    for d in data:  # a folder with a summary: its state is the journal's (done, unless cut short after it)
        p = progress.get(d["dir"]) or {}
        d.update({"state": p.get("state", "done"), **{k: p.get(k) for k in ("done", "total")}})
    listed = {d["dir"] for d in data}
    data += [_unfinished(p) for p in progress.values() if p["state"] != "done" and p["dir"] not in listed]
    data.sort(key=lambda d: d["run_id"])
    if as_json:
        emit_json(data)
        return 0
    echo(
        table(
            [
                [
                    d["run_id"],
                    d["track"],
                    os.path.basename(d["model"]),
                    d["workload"],
                    d["state"],
                    f"{d['done']}/{d['total']}" if d["total"] is not None else "-",
                    d["best_speedup"] if d["best_speedup"] is not None else "-",
                ]
                for d in data
            ],
            ["run", "track", "model", "workload", "state", "generations", "best speedup"],
        )
        if data
        else "no runs yet"
    )
    return 0


def _unfinished(p: dict[str, Any]) -> dict[str, Any]:
    """A `track runs` row for a run without a summary yet."""
    what = p["what"]
    keys = ("run_id", "state", "done", "total", "dir")
    return {**{k: p[k] for k in keys}, **what, "configs": None, "best_speedup": None}


@click.command("report")
@click.option("--open", "open_it", is_flag=True, help="Open the report (xdg-open) after regenerating it.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def report(ctx: click.Context, open_it: bool, as_json: bool) -> int:
    """Regenerate <root>/research/research_report.md from every recorded run."""
    from ..tracks.report import generate_report, load_runs

    cfg = obj(ctx).config
    path = generate_report(cfg)
    if as_json:
        emit_json({"report": path, "runs": len(load_runs(cfg))})
        return 0
    opener = shutil.which("xdg-open") if open_it else None
    if opener:
        subprocess.Popen([opener, path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    echo(path)
    return 0
