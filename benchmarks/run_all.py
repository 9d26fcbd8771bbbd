"""Run every benchmarks/bench_*.py (or those named on the command line) one after another.

Each benchmark prints its own table and writes benchmarks/results/<name>.json; this
runner only sequences them (never in parallel: they measure time on a 2-core box)
and exits non-zero if any benchmark failed to run or missed a target.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    names = argv or sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
    failed = []
    for name in names:
        script = HERE / f"bench_{name}.py"
        print(f"\n=== {script.name}", flush=True)
        t = time.monotonic()
        rc = subprocess.call([sys.executable, str(script)])
        print(f"=== {script.name}: exit {rc} in {time.monotonic() - t:.1f} s", flush=True)
        if rc:
            failed.append(name)
    if failed:
        print(f"\nmissed targets or failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
