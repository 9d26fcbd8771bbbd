"""Ours against the lab's bash toolkit on the paths its users call in loops (issue #21).

- The shell library: 200 events from a script that sourced it (`agent_log.sh` upstream).
  Target: at most 1.0x.
- `log analyze --tail 20` and `--commands` against `agent_log_analyze.sh` on the same
  generated logs of 2,000 and 20,000 lines. Target: at most 0.5x; and `--tail 20` on a
  1,000,000-event log, timed alone, with `python -c pass` (the interpreter's floor) beside it.

`--shell-only` runs the first part alone (no log generation).

Whole processes, paired and interleaved runs (ours, then upstream's, in alternating order) on
the same box, median of each; prints the ratios ours/upstream.

Upstream's scripts come from `$EPYC_UPSTREAM_DIR` (a checkout of pestopoppa/epyc-root) or a
shallow `git clone` into a temp folder; when neither works the benchmark says so and skips (exit 0).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gen_log import generate

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
BIN = Path(sys.executable).parent / "epyc-agent"
UPSTREAM_GIT = "https://github.com/pestopoppa/epyc-root"
EVENTS = 200
RUNS = int(os.environ.get("BENCH_SHELL_RUNS", "7"))
TARGET = 1.0
ANALYZE_TARGET = 0.5

BODY = """
for i in $(seq 1 {n5}); do
  agent_task_start "step $i" "reasoning for step $i"
  agent_cmd_intent "make -j96 target$i" "build it"
  agent_cmd_result "make -j96 target$i" 0 "ok"
  agent_observe decode_tps 41.7
  agent_task_end "step $i"
done
"""


def upstream_dir(tmp: Path) -> Path | None:
    """A folder holding scripts/utils/agent_log.sh and scripts/lib/env.sh, or None."""
    given = os.environ.get("EPYC_UPSTREAM_DIR")
    if given:
        return Path(given) if (Path(given) / "scripts/utils/agent_log.sh").is_file() else None
    if not shutil.which("git"):
        return None
    dest = tmp / "epyc-root"
    try:
        subprocess.run(
            ["git", "clone", "-q", "--depth", "1", "--filter=blob:none", "--sparse", UPSTREAM_GIT, str(dest)],
            check=True,
            capture_output=True,
            timeout=120,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
        )
        subprocess.run(
            ["git", "-C", str(dest), "sparse-checkout", "set", "scripts/utils", "scripts/lib"],
            check=True,
            capture_output=True,
            timeout=120,
        )
    except (subprocess.SubprocessError, OSError):
        return None
    return dest if (dest / "scripts/utils/agent_log.sh").is_file() else None


def run(script: Path | list[str], env: dict[str, str]) -> float:
    argv = ["bash", str(script)] if isinstance(script, Path) else script
    t = time.perf_counter()
    r = subprocess.run(argv, env=env, capture_output=True)
    elapsed = time.perf_counter() - t
    if r.returncode:
        raise SystemExit(f"{argv} failed (exit {r.returncode}): {r.stderr.decode(errors='replace')[-500:]}")
    return elapsed


def paired(a: tuple, b: tuple) -> tuple[float, float]:
    """Medians of RUNS interleaved runs of two (argv, env) commands, after one warm-up each."""
    run(*a), run(*b)
    ta: list[float] = []
    tb: list[float] = []
    for i in range(RUNS):
        pair = [(a, ta), (b, tb)]
        for cmd, acc in pair if i % 2 == 0 else reversed(pair):
            acc.append(run(*cmd))
    return statistics.median(ta), statistics.median(tb)


def analyze_modes(up: Path, tmp: Path, base: dict[str, str]) -> list[dict]:
    """`--tail 20` and `--commands`, ours vs upstream's, at 2,000 and 20,000 lines; tail at 1M."""
    llm = tmp / "llm"
    (llm / "tmp").mkdir(parents=True)  # upstream's mktemp lands under its LLM root
    rows = []
    for lines in (2_000, 20_000):
        logs = tmp / f"logs-{lines}"
        generate(str(logs), lines, 5)
        ours_env = {**base, "EPYC_AGENT_LOG_DIR": str(logs), "HOME": str(tmp)}
        up_env = {**base, "ORCHESTRATOR_PATHS_LLM_ROOT": str(llm), "ORCHESTRATOR_PATHS_LOG_DIR": str(logs)}
        for mode in (["--tail", "20"], ["--commands"]):
            ours = ([str(BIN), "log", "analyze", *mode], ours_env)
            theirs = (["bash", str(up / "scripts/utils/agent_log_analyze.sh"), *mode], up_env)
            m_ours, m_up = paired(ours, theirs)
            rows.append({"mode": " ".join(mode), "lines": lines, "ours_ms": m_ours * 1e3, "upstream_ms": m_up * 1e3})
    big = tmp / "logs-1m"
    generate(str(big), 1_000_000, 5)
    env = {**base, "EPYC_AGENT_LOG_DIR": str(big), "HOME": str(tmp)}
    m_tail, m_floor = paired(([str(BIN), "log", "analyze", "--tail", "20"], env), ([sys.executable, "-c", "pass"], env))
    rows.append({"mode": "--tail 20", "lines": 1_000_000, "ours_ms": m_tail * 1e3, "floor_ms": m_floor * 1e3})
    return rows


def count_lines(folder: Path) -> int:
    return sum(len(p.read_bytes().splitlines()) for p in folder.rglob("agent_audit*.log"))


def main(argv: list[str]) -> int:
    (HERE / "results").mkdir(exist_ok=True)
    shell_only = "--shell-only" in argv
    with tempfile.TemporaryDirectory(prefix="bench-shell-") as tmp_s:
        tmp = Path(tmp_s)
        up = upstream_dir(tmp)
        if up is None:
            print(
                f"SKIP bench_shell: upstream agent_log.sh not available (set EPYC_UPSTREAM_DIR to a checkout "
                f"of pestopoppa/epyc-root, or allow `git clone {UPSTREAM_GIT}`)"
            )
            return 0
        body = BODY.format(n5=EVENTS // 5)
        ours_root, up_logs = tmp / "ours-root", tmp / "up-logs"
        ours_root.mkdir()
        ours = tmp / "ours.sh"
        ours.write_text(
            f'set -euo pipefail\nsource "{REPO}/scripts/agent_log.sh"\n'
            f'agent_session_start "bench"\n{body}agent_session_end "done"\n'
        )
        upstream = tmp / "upstream.sh"
        upstream.write_text(
            f'set -euo pipefail\nsource "{up}/scripts/utils/agent_log.sh"\n'
            f'agent_session_start "bench"\n{body}agent_session_end "done"\n'
        )
        base = {k: v for k, v in os.environ.items() if not k.startswith(("EPYC_AGENT_", "AGENT_"))}
        env_ours = {**base, "EPYC_AGENT_BIN": str(BIN), "EPYC_AGENT_ROOT": str(ours_root), "HOME": str(tmp)}
        env_up = {**base, "ORCHESTRATOR_PATHS_LOG_DIR": str(up_logs), "HOME": str(tmp)}
        m_ours, m_up = paired((ours, env_ours), (upstream, env_up))
        n_ours, n_up = count_lines(ours_root), count_lines(up_logs)
        rows = [] if shell_only else analyze_modes(up, tmp, base)
    ratio = m_ours / m_up
    ok = ratio <= TARGET
    print(f"shell library, {EVENTS} events + session start/end, whole process, median of {RUNS} paired runs")
    print(f"  ours      {m_ours * 1000:8.1f} ms  ({m_ours / EVENTS * 1e6:6.0f} us/event)  lines written {n_ours}")
    print(f"  upstream  {m_up * 1000:8.1f} ms  ({m_up / EVENTS * 1e6:6.0f} us/event)  lines written {n_up}")
    print(f"  ratio ours/upstream {ratio:.2f}x  (target <= {TARGET:.1f}x)  {'ok' if ok else 'MISSED'}")
    if rows:
        print(f"log analyze, whole process, median of {RUNS} paired runs (target <= {ANALYZE_TARGET:.1f}x upstream)")
    for r in rows:
        if "upstream_ms" in r:
            r["ratio"] = r["ours_ms"] / r["upstream_ms"]
            print(
                f"  {r['mode']:<11} {r['lines']:>9,} lines  ours {r['ours_ms']:6.1f} ms  "
                f"upstream {r['upstream_ms']:6.1f} ms  ratio {r['ratio']:.2f}x"
            )
        else:
            print(
                f"  {r['mode']:<11} {r['lines']:>9,} lines  ours {r['ours_ms']:6.1f} ms  "
                f"(python -c pass {r['floor_ms']:.1f} ms; target < 50 ms)"
            )
    result: dict = {
        "events": EVENTS,
        "runs": RUNS,
        "ours_ms": m_ours * 1000,
        "upstream_ms": m_up * 1000,
        "ratio": ratio,
        "target": TARGET,
        "ok": ok,
        "analyze": rows,
    }
    analyze_ok = all(r["ratio"] <= ANALYZE_TARGET if "ratio" in r else r["ours_ms"] < 50 for r in rows)
    result["analyze_ok"] = analyze_ok
    out = HERE / "results" / ("shell-library.json" if shell_only else "shell.json")
    out.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if ok and analyze_ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
