"""Hook latency as the real Claude Code CLI measures it, against the `python -c pass` floor.

Runs the pinned CLI (`make claude-code`) against the scripted Messages API of the tests, with
N Bash calls per run, in three set-ups side by side, interleaved run by run:
- `ours`: `epyc-agent hooks install` (with the kernel-sandbox shell prefix where Landlock is);
- `ours-nokernel`: the same with `--no-kernel-sandbox`;
- `floor`: the same events registered with `python3 -c pass` as the hook command.
Durations are the CLI's own (`--debug-file`: "Hooks: EVENT [...] finished ... (N ms)").
Target: ours / floor <= 2.0 for PreToolUse (the hook pays a Python start like the floor, then
parses and logs). Writes benchmarks/results/claude_code.json.
"""

from __future__ import annotations

import json
import re
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from claude_code.harness import Lab  # noqa: E402
from claude_code.scripted_api import text, tool  # noqa: E402

RUNS = 4
CALLS = 6
TARGET = 2.0
LINE = re.compile(r"Hooks: (\w+)(?::\w+)? \[(.*?)\] finished with status \d+ \((\d+)ms\)")
EVENTS = ("SessionStart", "UserPromptSubmit", "PreToolUse", "PostToolUse", "Stop")


def floor_settings(lab: Lab) -> None:
    """Register `python3 -c pass` for the same events our install uses."""
    hook = {"type": "command", "command": f"{sys.executable} -c pass"}
    settings = {"hooks": {e: [{"matcher": "*", "hooks": [hook]}] for e in EVENTS}}
    (lab.project / ".claude").mkdir(exist_ok=True)
    (lab.project / ".claude" / "settings.json").write_text(json.dumps(settings))


def one_run(kind: str, base: Path) -> dict[str, list[int]]:
    lab = Lab(base)
    if kind == "floor":
        floor_settings(lab)
    else:
        lab.install_hooks(*(["--no-kernel-sandbox"] if kind == "ours-nokernel" else []))
    calls = [[tool("Bash", command=f"echo step-{i}", description="step")] for i in range(CALLS)]
    debug = base / "debug.log"
    run = lab.run([*calls, [text("Done.")]], "Go.", "--debug-file", str(debug))
    assert run.result().get("subtype") == "success", run.proc.stdout[-2000:]
    out: dict[str, list[int]] = {}
    for event, _cmd, ms in LINE.findall(debug.read_text()):
        out.setdefault(event, []).append(int(ms))
    return out


def main() -> int:
    kinds = ("ours", "ours-nokernel", "floor")
    samples: dict[str, dict[str, list[int]]] = {k: {} for k in kinds}
    with tempfile.TemporaryDirectory(prefix="bench-cc-") as tmp:
        for r in range(RUNS):
            for k in kinds:
                for event, ms in one_run(k, Path(tmp) / f"{k}-{r}").items():
                    samples[k].setdefault(event, []).extend(ms)
    medians = {k: {e: statistics.median(v) for e, v in ev.items()} for k, ev in samples.items()}
    print(f"{'event':<18}" + "".join(f"{k:>16}" for k in kinds) + f"{'ours/floor':>12}")
    for e in EVENTS:
        row = [medians[k].get(e) for k in kinds]
        ratio = row[0] / row[2] if row[0] and row[2] else None
        cells = "".join(f"{(f'{v:.0f} ms' if v is not None else '-'):>16}" for v in row)
        print(f"{e:<18}{cells}{(f'{ratio:.2f}x' if ratio else '-'):>12}")
    pre = medians["ours"].get("PreToolUse", 0) / max(medians["floor"].get("PreToolUse", 1), 1)
    result = {"medians_ms": medians, "pre_tool_ratio": pre, "target": TARGET, "runs": RUNS, "calls": CALLS}
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "claude_code.json").write_text(json.dumps(result, indent=2))
    print(f"PreToolUse ours/floor {pre:.2f}x (target <= {TARGET}x): {'met' if pre <= TARGET else 'MISSED'}")
    return 0 if pre <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
