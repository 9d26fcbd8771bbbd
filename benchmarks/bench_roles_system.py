"""Roles and host tooling: how long the checks an agent runs often take, as whole processes.

Targets (issue #8, chosen so a check is cheap enough to run before every batch):
`system health` (session profile) median <= 500 ms; `system health --profile batch` (imports
llama-cpp-python) <= 1.0 s; `agents validate` <= 500 ms; `storage cleanup` dry run over 20,000
files <= 2.0 s. Also reports in-process health time and `session start` with the health provider.
Prints a table, writes benchmarks/results/roles_system.json, exits 1 on a miss.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent / "epyc-agent"


def wall(argv: list[str], env: dict[str, str], runs: int = 7) -> float:
    """Median wall time in ms of a whole process (exit code ignored: health may WARN/FAIL here)."""
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([str(BIN), *argv], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main() -> int:
    with tempfile.TemporaryDirectory() as d:
        root = Path(d) / "root"
        root.mkdir()
        env = {**os.environ, "EPYC_AGENT_ROOT": str(root), "HOME": d}
        env.pop("EPYC_AGENT_LOG_DIR", None)
        old = time.time() - 30 * 86400
        for i in range(20_000):
            p = root / "tmp" / f"d{i % 100}" / f"f{i}"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(b"x")
            os.utime(p, (old, old))
        os.environ["EPYC_AGENT_ROOT"] = str(root)
        from epyc_agent.config import load_config
        from epyc_agent.system.health import run_health

        cfg = load_config()
        t = time.perf_counter()
        for _ in range(5):
            run_health(cfg, "session")
        inproc = (time.perf_counter() - t) / 5 * 1000
        rows = [
            ("system health (session), process", wall(["system", "health"], env), 500.0),
            ("system health --profile batch, process", wall(["system", "health", "--profile", "batch"], env), 1000.0),
            ("agents validate, process", wall(["agents", "validate"], env), 500.0),
            ("storage cleanup dry run, 20k files", wall(["storage", "cleanup", "--json"], env, runs=3), 2000.0),
            ("session start (incl. health provider)", wall(["session", "start"], env, runs=5), None),
            ("run_health(session), in process", inproc, None),
        ]
    results, missed = {}, []
    print(f"{'measure':44} {'median ms':>10} {'target ms':>10}")
    for name, ms, target in rows:
        ok = target is None or ms <= target
        print(f"{name:44} {ms:10.1f} {target if target else '-':>10} {'' if ok else 'MISSED'}")
        results[name] = {"median_ms": round(ms, 1), "target_ms": target, "ok": ok}
        if not ok:
            missed.append(name)
    out = HERE / "results" / "roles_system.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
