"""Generate a realistic multi-shard audit log fast (bytes written directly, no event objects).

Used by bench_analyze.py; also runnable: `python benchmarks/gen_log.py DIR [EVENTS] [SHARDS]`.
The mix: v1 events of every category from several agents and sessions, ~1% old-toolkit lines
(no agent, a +01:00 offset, `timestamp`-keyed, bracketed), a few corrupt lines, a few injected
retry storms, and one ROLLBACK per ~200 events.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time

START = 1_767_225_600  # 2026-01-01T00:00:00Z
CMDS = [
    "make -j2",
    "git status",
    "pytest -q tests",
    "ls -la /mnt/raid0/llm",
    "llama-bench -m m.gguf -t 96",
    "python scripts/run.py --draft-max 16",
    "cat results.json",
    "git diff --stat",
    "nproc",
    "df -h",
]
FILES = [f"src/mod{i}.py" for i in range(40)]


def _ts(sec: float) -> str:
    s = int(sec)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s)) + f".{int((sec - s) * 1e6):06d}Z"


def _line(rng: random.Random, ts: str, ses: str, agent: str, i: int) -> str:
    r = rng.random()
    base = f'{{"ts":"{ts}","session":"{ses}","agent":"{agent}",'
    if r < 0.25:
        c = rng.choice(CMDS)
        return base + f'"level":"INFO","cat":"CMD_INTENT","msg":"{c}","details":"step {i}","cmd":"{c}","v":1}}'
    if r < 0.50:
        c = rng.choice(CMDS)
        code = 1 if rng.random() < 0.08 else 0
        lvl = "ERROR" if code else "INFO"
        return (
            base + f'"level":"{lvl}","cat":"CMD_RESULT","msg":"{c}","details":"exit={code}; output {i}",'
            f'"cmd":"{c}","exit_code":{code},"duration_ms":{rng.randint(5, 90000)},"v":1}}'
        )
    if r < 0.65:
        p = FILES[(i // 400 + (i // 97) % 3) % len(FILES)]  # agents work on a file for a while
        return (
            base + f'"level":"INFO","cat":"FILE_MODIFY","msg":"{p}","details":"action=edit; fix {i}",'
            f'"path":"{p}","action":"edit","v":1}}'
        )
    if r < 0.78:
        return (
            base + f'"level":"INFO","cat":"OBSERVE","msg":"decode_tps","details":"{i % 97}.5",'
            f'"data":{{"what":"decode_tps","value":{i % 97}.5}},"v":1}}'
        )
    if r < 0.85:
        return base + f'"level":"INFO","cat":"DECISION","msg":"try K={i % 24}","details":"acceptance rises","v":1}}'
    if r < 0.92:
        cat = rng.choice(("TASK_START", "TASK_END"))
        return base + f'"level":"INFO","cat":"{cat}","msg":"task {i % 50}","details":"","v":1}}'
    if r < 0.96:
        return base + f'"level":"WARN","cat":"WARNING","msg":"disk at {80 + i % 15}%","details":"","v":1}}'
    if r < 0.995:
        return base + f'"level":"ERROR","cat":"ERROR","msg":"build failed at step {i % 300}","details":"","v":1}}'
    return (
        base + f'"level":"INFO","cat":"ROLLBACK","msg":"edit src/x{i}.py","details":"undo_with: '
        f'git checkout src/x{i}.py","action":"edit src/x{i}.py","undo":"git checkout src/x{i}.py","v":1}}'
    )


def _legacy(rng: random.Random, sec: float, ses: str, i: int) -> str:
    t = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec + 3600)) + "+01:00"
    k = rng.randrange(3)
    if k == 0:
        return (
            f'{{"ts":"{t}","session":"{ses}","level":"INFO","cat":"CMD_RESULT","msg":"make",'
            f'"details":"exit=2; err {i}"}}'
        )
    if k == 1:
        return f'{{"timestamp":"{t}","session":"{ses}","level":"WARN","cat":"WARNING","msg":"old warning {i}"}}'
    return f"[{t}] TASK_END: legacy task {i}"


def generate(log_dir: str, events: int = 1_000_000, shards: int = 5, seed: int = 7) -> dict[str, int]:
    """Write `events` lines over `shards` shards; returns counts of what was injected."""
    os.makedirs(log_dir, exist_ok=True)
    rng = random.Random(seed)
    per = events // shards
    info = {"lines": 0, "legacy": 0, "corrupt": 0, "storms": 0}
    for s in range(shards):
        agent = f"agent{s}"
        sec = START + s * 0.37
        out: list[str] = []
        ses_n = 0
        ses = ""
        for i in range(per):
            if i % 2000 == 0:
                ses_n += 1
                ses = f"ses_{agent}_{ses_n:04d}"
            sec += rng.uniform(1.0, 9.0)
            ts = _ts(sec)
            if i % 100 == 50:
                out.append(_legacy(rng, sec, ses, i))
                info["legacy"] += 1
            elif i % 200_000 == 1234:
                out.append('{"ts":"' + ts + '","session":"broken","msg":"unterminated')
                info["corrupt"] += 1
            elif i % 20_000 == 777:  # a retry storm: the same failing command 4x in a row
                c = f"cmake --build build-{i}"
                for _ in range(4):
                    sec += 1.0
                    out.append(
                        f'{{"ts":"{_ts(sec)}","session":"{ses}","agent":"{agent}","level":"ERROR",'
                        f'"cat":"CMD_RESULT","msg":"{c}","details":"exit=1","cmd":"{c}","exit_code":1,"v":1}}'
                    )
                info["storms"] += 1
            else:
                out.append(_line(rng, ts, ses, agent, i))
        with open(os.path.join(log_dir, f"agent_audit-{agent}.log"), "w", encoding="utf-8") as f:
            f.write("\n".join(out) + "\n")
        info["lines"] += len(out)
    return info


if __name__ == "__main__":
    a = sys.argv[1:]
    print(json.dumps(generate(a[0], int(a[1]) if len(a) > 1 else 1_000_000, int(a[2]) if len(a) > 2 else 5)))
