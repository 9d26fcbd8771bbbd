"""Wall time of the whole `epyc-agent hook` process, as Claude Code runs it per tool call.

Target: median <= 35 ms on a PreToolUse payload of an everyday Bash command (the
old bash logger took ~50 ms to log one line). Also measured and reported without a
target: a write-ish command that needs the full bashlex parse, a denied write, a
Write of a new file (rollback plan), PostToolUse, and bare `python -c pass` for scale.
Runs with compiled bytecode and EPYC_AGENT_LOG_DIR set, as the installed hooks do.
Cases are interleaved so that load from other processes hits them alike; the CPU
time (user + sys) of each process is reported too. `--priority` runs the benchmark
(and so the hook processes) at nice -15, approximating an idle machine while other
jobs load this one (root only; the JSON records the priority used).
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
BIN = Path(sys.executable).parent / "epyc-agent"
RUNS = 40
TARGET_MS = 35.0


def payload(event: str, cwd: str, **fields: object) -> bytes:
    return json.dumps(
        {
            "session_id": "bench-0001",
            "transcript_path": "",
            "cwd": cwd,
            "hook_event_name": event,
            "permission_mode": "default",
            **fields,
        }
    ).encode()


def bash(cwd: str, command: str) -> bytes:
    return payload(
        "PreToolUse",
        cwd,
        tool_name="Bash",
        tool_use_id="toolu_bench",
        tool_input={"command": command, "description": "bench"},
    )


def measure(cases: dict[str, tuple[list[str], bytes]], env: dict[str, str], runs: int = RUNS) -> dict:
    """Interleaved: each round runs every case once, so load from other processes hits all alike."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    cpu: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, (argv, stdin) in cases.items():
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t = time.perf_counter()
            r = subprocess.run(argv, input=stdin, capture_output=True, env=env)
            times[name].append((time.perf_counter() - t) * 1000)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu[name].append((after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * 1000)
            if r.returncode != 0:
                raise SystemExit(f"{name} failed: {r.stderr.decode()[:300]}")
    out = {}
    for name, ts in times.items():
        ts.sort()
        out[name] = {
            "median_ms": round(statistics.median(ts), 1),
            "p90_ms": round(ts[int(len(ts) * 0.9) - 1], 1),
            "min_ms": round(ts[0], 1),
            "cpu_median_ms": round(statistics.median(cpu[name]), 1),
            "runs": runs,
        }
    return out


def main(argv: list[str]) -> int:
    if argv[:1] == ["--priority"]:  # approximate an idle machine when others' jobs load it (needs root)
        os.nice(-15)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "epyc_agent")], check=True)
    (HERE / "results").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=HERE / "results", prefix="hooks-") as tmp:
        root = os.path.join(tmp, "root")
        home = os.path.join(tmp, "home")
        os.makedirs(os.path.join(root, "models"))
        os.makedirs(home)
        env = {
            **os.environ,
            "EPYC_AGENT_ROOT": root,
            "EPYC_AGENT_LOG_DIR": os.path.join(root, "logs"),
            "HOME": home,
            "CLAUDE_PROJECT_DIR": root,
        }
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        hook = [str(BIN), "hook"]
        subprocess.run(
            hook, input=payload("SessionStart", root, source="startup"), env=env, check=True, capture_output=True
        )
        cases = {
            "python -c pass (startup floor)": ([sys.executable, "-c", "pass"], b""),
            "python -c 'import json' (floor + stdlib json)": ([sys.executable, "-c", "import json"], b""),
            "PreToolUse Bash `git status` (fast path)": (hook, bash(root, "git status")),
            "PreToolUse Bash `pytest -q 2>&1 | tail -5` (fast path)": (hook, bash(root, "pytest -q 2>&1 | tail -5")),
            "PreToolUse Bash `cp a.gguf models/` (full parse)": (hook, bash(root, "cp a.gguf models/ && ls models")),
            "PreToolUse Bash `echo x > /etc/passwd` (denied)": (hook, bash(root, "echo x > /etc/passwd")),
            "PreToolUse Write new file (rollback plan)": (
                hook,
                payload(
                    "PreToolUse",
                    root,
                    tool_name="Write",
                    tool_use_id="w",
                    tool_input={"file_path": os.path.join(root, "notes.md"), "content": "x"},
                ),
            ),
            "PostToolUse Bash": (
                hook,
                payload(
                    "PostToolUse",
                    root,
                    tool_name="Bash",
                    tool_use_id="p",
                    tool_input={"command": "git status"},
                    tool_response={"stdout": "clean", "stderr": ""},
                    duration_ms=12,
                ),
            ),
        }
        for argv, stdin in cases.values():  # warm-up: page cache, bytecode, the bashlex table cache
            subprocess.run(argv, input=stdin, capture_output=True, env=env)
        load_before = os.getloadavg()[0]
        results = measure(cases, env)
    floor = results["python -c pass (startup floor)"]["median_ms"]
    headline = results["PreToolUse Bash `git status` (fast path)"]["median_ms"]
    ok = headline <= TARGET_MS
    width = max(map(len, results))
    print(f"{'case':<{width}}  median    p90    min  over floor  cpu   (ms, {RUNS} interleaved runs each)")
    for name, r in results.items():
        r["over_floor_ms"] = round(r["median_ms"] - floor, 1)
        print(
            f"{name:<{width}}  {r['median_ms']:6.1f} {r['p90_ms']:6.1f} {r['min_ms']:6.1f}  "
            f"{r['over_floor_ms']:+9.1f}  {r['cpu_median_ms']:5.1f}"
        )
    load = os.getloadavg()[0]
    print(f"load average (1 min) {load_before:.1f} -> {load:.1f} on {os.cpu_count()} CPUs")
    print(f"target: PreToolUse fast path median <= {TARGET_MS} ms: {headline} ms -> {'PASS' if ok else 'MISS'}")
    out = {
        "target_ms": TARGET_MS,
        "headline_median_ms": headline,
        "pass": ok,
        "cases": results,
        "priority": os.getpriority(os.PRIO_PROCESS, 0),
        "python": sys.version.split()[0],
        "load1_before": load_before,
        "load1_after": load,
    }
    (HERE / "results" / "hooks.json").write_text(json.dumps(out, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
