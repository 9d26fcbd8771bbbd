"""The shell library against the lab's `agent_log.sh`: 200 events from a script that sourced it.

Whole processes (`bash script.sh`, sourcing included), paired and interleaved runs (ours, then
upstream's, in alternating order) on the same box, median of each; prints the ratio ours/upstream.
Target (issue #21): at most 1.0x.

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

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
BIN = Path(sys.executable).parent / "epyc-agent"
UPSTREAM_GIT = "https://github.com/pestopoppa/epyc-root"
EVENTS = 200
RUNS = int(os.environ.get("BENCH_SHELL_RUNS", "7"))
TARGET = 1.0

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


def run(script: Path, env: dict[str, str]) -> float:
    t = time.perf_counter()
    r = subprocess.run(["bash", str(script)], env=env, capture_output=True)
    elapsed = time.perf_counter() - t
    if r.returncode:
        raise SystemExit(f"{script.name} failed (exit {r.returncode}): {r.stderr.decode(errors='replace')[-500:]}")
    return elapsed


def count_lines(folder: Path) -> int:
    return sum(len(p.read_bytes().splitlines()) for p in folder.rglob("agent_audit*.log"))


def main(argv: list[str]) -> int:
    (HERE / "results").mkdir(exist_ok=True)
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
        t_ours: list[float] = []
        t_up: list[float] = []
        run(ours, env_ours), run(upstream, env_up)  # warm caches, check both work
        for i in range(RUNS):
            pair = [(ours, env_ours, t_ours), (upstream, env_up, t_up)]
            for script, env, acc in pair if i % 2 == 0 else reversed(pair):
                acc.append(run(script, env))
        n_ours, n_up = count_lines(ours_root), count_lines(up_logs)
    m_ours, m_up = statistics.median(t_ours), statistics.median(t_up)
    ratio = m_ours / m_up
    ok = ratio <= TARGET
    print(f"shell library, {EVENTS} events + session start/end, whole process, median of {RUNS} paired runs")
    print(f"  ours      {m_ours * 1000:8.1f} ms  ({m_ours / EVENTS * 1e6:6.0f} us/event)  lines written {n_ours}")
    print(f"  upstream  {m_up * 1000:8.1f} ms  ({m_up / EVENTS * 1e6:6.0f} us/event)  lines written {n_up}")
    print(f"  ratio ours/upstream {ratio:.2f}x  (target <= {TARGET:.1f}x)  {'ok' if ok else 'MISSED'}")
    result = {
        "events": EVENTS,
        "runs": RUNS,
        "ours_ms": m_ours * 1000,
        "upstream_ms": m_up * 1000,
        "ratio": ratio,
        "target": TARGET,
        "ok": ok,
    }
    (HERE / "results" / "shell.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
