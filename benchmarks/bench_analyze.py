"""Every `epyc-agent log analyze` mode on 1,000,000-event logs in 5 shards, in each log format.

Formats (benchmarks/gen_log.py --format): v1 (ours), old (the old toolkit's shards as
agent_log.sh writes them: UTC offsets, no `v`, `timestamp`-keyed and bracketed lines) and
mixed (both writers in the same shards). Targets (issues #3, #19): each mode <= 2 s wall and
<= 200 MB peak RSS in every format, as a real `epyc-agent log analyze ... --json` process (its
worker processes included: the rusage of the waited-for process covers the children it
reaped). For scale: the old bash analyzer took ~20 s for `--errors` on 2,000 lines.
Each mode runs RUNS times: the best wall time and the worst peak memory are reported.
Usage: bench_analyze.py [EVENTS] [--format v1,old,mixed] [--runs N]   (default 1,000,000, all, 2)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
BIN = Path(sys.executable).parent / "epyc-agent"
TARGET_S = 2.0
TARGET_MB = 200.0
RUNS = 2  # best wall time of 2 (the box is shared), worst peak memory
FORMATS = ("v1", "old", "mixed")
MODES = [
    ["--summary"],
    ["--loops"],
    ["--errors"],
    ["--sessions"],
    ["--session", "ses_agent2_0050"],
    ["--timeline", "100"],
    ["--commands"],
    ["--files"],
    ["--rollbacks"],
    ["--rollbacks", "--script"],
    ["--tail", "100"],
    ["--errors", "--since", "2026-01-05", "--agent", "agent3", "--level", "ERROR"],
]


def run(args: list[str], env: dict[str, str]) -> dict[str, object]:
    argv = [str(BIN), "log", "analyze", *args]
    if "--script" not in args:
        argv.append("--json")
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        p = subprocess.Popen(argv, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(p.pid, 0)  # its own rusage, incl. the workers it reaped
        wall = time.perf_counter() - t
        p.returncode = rc = os.waitstatus_to_exitcode(status)
        size = out.tell()
        err.seek(0)
        if rc not in (0, 1):
            raise SystemExit(f"{' '.join(args)} failed ({rc}): {err.read().decode()[:300]}")
    rss_kb = usage.ru_maxrss
    cpu = usage.ru_utime + usage.ru_stime  # incl. workers: with 2 idle cores, wall ~ cpu / 2
    return {
        "mode": " ".join(args),
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "peak_mb": round(rss_kb / 1024, 1),
        "output_bytes": size,
        "exit": rc,
    }


def bench_format(fmt: str, events: int, runs: int) -> dict[str, object]:
    """Generate a log in `fmt` and time every mode on it."""
    with tempfile.TemporaryDirectory(dir=HERE / "results", prefix="analyze-") as tmp:
        log_dir = os.path.join(tmp, "root", "logs")
        t = time.perf_counter()
        # in a child process: a child's peak RSS starts at its parent's, so the parent stays small
        gen = subprocess.run(
            [sys.executable, str(HERE / "gen_log.py"), log_dir, str(events), "5", "--format", fmt],
            check=True,
            capture_output=True,
            text=True,
        )
        info = json.loads(gen.stdout)
        size_mb = sum(f.stat().st_size for f in Path(log_dir).iterdir()) / 2**20
        print(
            f"{fmt}: generated {info['lines']:,} lines ({size_mb:.0f} MB, {info['legacy']:,} old-format, "
            f"{info['corrupt']} corrupt, {info['storms']} retry storms) in {time.perf_counter() - t:.1f} s"
        )
        env = {**os.environ, "EPYC_AGENT_ROOT": os.path.join(tmp, "root"), "EPYC_AGENT_LOG_DIR": log_dir, "HOME": tmp}
        rows = []
        for args in MODES:
            done = [run(args, env) for _ in range(runs)]
            r = min(done, key=lambda x: x["wall_s"])  # type: ignore[arg-type,return-value]
            r["peak_mb"] = max(x["peak_mb"] for x in done)  # type: ignore[type-var]
            r["ok"] = r["wall_s"] <= TARGET_S and r["peak_mb"] <= TARGET_MB  # type: ignore[operator]
            rows.append(r)
            print(
                f"  {r['mode']:<62} {r['wall_s']:>6.2f} s wall {r['cpu_s']:>6.2f} s cpu {r['peak_mb']:>7.1f} MB  "
                f"{'ok' if r['ok'] else 'MISSED'}",
                flush=True,
            )
    return {"lines": info["lines"], "old_format_lines": info["legacy"], "log_mb": round(size_mb, 1), "modes": rows}


def table(results: dict[str, dict[str, object]]) -> str:
    """Modes down, formats across: wall seconds and peak MB."""
    fmts = list(results)
    head = f"{'mode':<62}" + "".join(f" {f + ' s':>9} {'MB':>6}" for f in fmts)
    lines = [head, "-" * len(head)]
    for j, args in enumerate(MODES):
        cells = [results[f]["modes"][j] for f in fmts]  # type: ignore[index]
        row = f"{' '.join(args):<62}" + "".join(f" {c['wall_s']:>9.2f} {c['peak_mb']:>6.1f}" for c in cells)
        lines.append(row)
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    import argparse

    ap = argparse.ArgumentParser(description="Time every log analyze mode on generated 1M-event logs.")
    ap.add_argument("events", nargs="?", type=int, default=1_000_000)
    ap.add_argument("--format", default=",".join(FORMATS), help="comma-separated: v1,old,mixed")
    ap.add_argument("--runs", type=int, default=RUNS)
    a = ap.parse_args(argv)
    fmts = [f for f in a.format.split(",") if f]
    if not fmts or any(f not in FORMATS for f in fmts):
        ap.error(f"--format takes a comma-separated list of {', '.join(FORMATS)}")
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "epyc_agent")], check=True)
    (HERE / "results").mkdir(exist_ok=True)
    results = {f: bench_format(f, a.events, a.runs) for f in fmts}
    load = os.getloadavg()[0]
    missed = [f"{f} {r['mode']}" for f, res in results.items() for r in res["modes"] if not r["ok"]]  # type: ignore[attr-defined]
    print()
    print(table(results))
    print(
        f"targets: <= {TARGET_S} s, <= {TARGET_MB} MB per mode and format; load average {load:.1f}; "
        f"{'all met' if not missed else 'missed: ' + ', '.join(missed)}"
    )
    result = {
        "events": a.events,
        "shards": 5,
        "target_s": TARGET_S,
        "target_mb": TARGET_MB,
        "load_avg": round(load, 2),
        "formats": results,
        "all_met": not missed,
    }
    (HERE / "results" / "analyze.json").write_text(json.dumps(result, indent=2) + "\n")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
