"""`log ship` throughput: a generated 1,000,000-event log (5 shards, ~1% old formats) shipped to a
real ClickHouse server (`make clickhouse`), as the CLI runs it; then a re-run (nothing to ship) and
the stored row count. `python benchmarks/bench_ship.py [EVENTS]` prints one JSON line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from clickhouse_server import Server, server_bin  # noqa: E402
from gen_log import generate  # noqa: E402

CLI = Path(sys.executable).parent / "epyc-agent"


def ship(url: str, log_dir: str) -> tuple[dict[str, object], float]:
    env = {**os.environ, "EPYC_AGENT_LOG_DIR": log_dir, "EPYC_AGENT_ROOT": log_dir}
    t0 = time.perf_counter()
    r = subprocess.run(
        [str(CLI), "log", "ship", "--to", url, "--host", "bench", "--json"], env=env, capture_output=True, text=True
    )
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(r.stderr)
    return json.loads(r.stdout), wall


def main(argv: list[str]) -> int:
    events = int(argv[0]) if argv else 1_000_000
    binary = server_bin()
    if binary is None:
        raise SystemExit("no ClickHouse server: run `make clickhouse`")
    with tempfile.TemporaryDirectory() as tmp:
        log_dir = os.path.join(tmp, "logs")
        info = generate(log_dir, events, 5)
        with Server(binary, Path(tmp) / "server") as s:
            first, wall = ship(f"{s.url}/bench", log_dir)
            again, wall2 = ship(f"{s.url}/bench", log_dir)
            stored = int(s.query("SELECT count() FROM bench.epyc_events FINAL"))
    print(
        json.dumps(
            {
                "lines": info["lines"],
                "events": first["events"],
                "wall_s": round(wall, 2),
                "events_per_s": round(int(first["events"]) / wall),  # type: ignore[call-overload]
                "rerun_lines": again["lines"],
                "rerun_wall_s": round(wall2, 2),
                "stored_rows": stored,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
