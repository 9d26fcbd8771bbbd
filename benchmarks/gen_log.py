"""Generate a realistic multi-shard audit log fast (bytes written directly, no event objects).

Used by bench_analyze.py; also runnable:
`python benchmarks/gen_log.py DIR [EVENTS] [SHARDS] [--format v1|old|mixed]`.
* v1 (default): v1 events of every category from several agents and sessions, ~1% old-toolkit
  lines (no agent, a +01:00 offset, `timestamp`-keyed, bracketed), a few corrupt lines, a few
  injected retry storms, and one ROLLBACK per ~200 events.
* old: the old toolkit's own shards, as `agent_log.sh` writes them (`ts` with the writer's UTC
  offset, to the second or the microsecond, no `agent`, no `v`, facts only in `details`), with
  ~3% `timestamp`-keyed and ~3% bracketed lines from its older versions, lines an unescaped quote
  broke, and retry storms (`exit=1` at level INFO, as `agent_cmd_result` logs them).
* mixed: both writers appending to the same shards, in runs of 1 to 400 lines.
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
FORMATS = ("v1", "old", "mixed")


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


# The old toolkit's writers: each shard's clock (UTC offset, microseconds or not) as `date -Iseconds`
# or `date +%FT%T.%6N%:z` printed it; shard 4's offset changes halfway (daylight saving time).
OLD_CLOCKS = [("+01:00", False), ("-05:00", False), ("Z", True), ("+05:30", False), ("+01:00", True)]
DST = "+02:00"


def _old_ts(sec: float, offset: str, micro: bool) -> str:
    shift = 0 if offset == "Z" else (1 if offset[0] == "+" else -1) * (int(offset[1:3]) * 3600 + int(offset[4:]) * 60)
    local = sec + shift
    s = int(local)
    frac = f".{int((local - s) * 1e6):06d}" if micro else ""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s)) + frac + offset


def _old_line(rng: random.Random, ts: str, ses: str, i: int) -> str:
    """One line as agent_log.sh's `_agent_log` writes it (`ts` first, facts in `details`)."""
    r = rng.random()
    if r < 0.25:
        lvl, cat, msg, det = "INFO", "CMD_INTENT", rng.choice(CMDS), f"step {i}"
    elif r < 0.50:
        lvl, cat, msg = "INFO", "CMD_RESULT", rng.choice(CMDS)  # agent_cmd_result logs INFO whatever the exit
        det = f"exit={1 if rng.random() < 0.08 else 0}; output {i}"
    elif r < 0.65:
        lvl, cat, msg, det = (
            "INFO",
            "FILE_MODIFY",
            FILES[(i // 400 + (i // 97) % 3) % len(FILES)],
            f"action=edit; fix {i}",
        )
    elif r < 0.78:
        lvl, cat, msg, det = "INFO", "OBSERVE", "decode_tps", f"{i % 97}.5"
    elif r < 0.85:
        lvl, cat, msg, det = "INFO", "DECISION", f"try K={i % 24}", "acceptance rises"
    elif r < 0.92:
        lvl, cat, msg = "INFO", rng.choice(("TASK_START", "TASK_END")), f"task {i % 50}"
        det = "outcome=success" if cat == "TASK_END" else "next step"
    elif r < 0.96:
        lvl, cat, msg, det = "WARN", "WARNING", f"disk at {80 + i % 15}%", ""
    elif r < 0.995:
        lvl, cat, msg, det = "ERROR", "ERROR", f"build failed at step {i % 300}", ""
    else:
        lvl, cat, msg, det = "INFO", "ROLLBACK", f"edit src/x{i}.py", f"undo_with: git checkout src/x{i}.py"
    if i % 100 in (20, 21, 22):  # a still older writer: `timestamp`-keyed, no details
        return f'{{"timestamp":"{ts}","session":"{ses}","level":"{lvl}","cat":"{cat}","msg":"{msg}"}}'
    if i % 100 in (60, 61, 62):  # the pre-2026 bracketed lines
        return f"[{ts}] {cat}: {msg}"
    return f'{{"ts":"{ts}","session":"{ses}","level":"{lvl}","cat":"{cat}","msg":"{msg}","details":"{det}"}}'


class _Shard:
    """One shard's writer state: its clock, its session, and what was injected."""

    def __init__(self, s: int, per: int, info: dict[str, int]) -> None:
        self.agent, self.per, self.info = f"agent{s}", per, info
        self.sec = START + s * 0.37
        self.offset, self.micro = OLD_CLOCKS[s % len(OLD_CLOCKS)]
        self.dst = s % len(OLD_CLOCKS) == len(OLD_CLOCKS) - 1
        self.ses = ""

    def old_ts(self, i: int) -> str:
        offset = DST if self.dst and i >= self.per // 2 else self.offset
        return _old_ts(self.sec, offset, self.micro)

    def v1(self, rng: random.Random, i: int) -> list[str]:
        ts = _ts(self.sec)
        if i % 100 == 50:
            self.info["legacy"] += 1
            return [_legacy(rng, self.sec, self.ses, i)]
        if i % 200_000 == 1234:
            self.info["corrupt"] += 1
            return ['{"ts":"' + ts + '","session":"broken","msg":"unterminated']
        if i % 20_000 == 777:  # a retry storm: the same failing command 4x in a row
            self.info["storms"] += 1
            c = f"cmake --build build-{i}"
            out = []
            for _ in range(4):
                self.sec += 1.0
                out.append(
                    f'{{"ts":"{_ts(self.sec)}","session":"{self.ses}","agent":"{self.agent}","level":"ERROR",'
                    f'"cat":"CMD_RESULT","msg":"{c}","details":"exit=1","cmd":"{c}","exit_code":1,"v":1}}'
                )
            return out
        return [_line(rng, ts, self.ses, self.agent, i)]

    def old(self, rng: random.Random, i: int) -> list[str]:
        self.info["legacy"] += 1
        if i % 200_000 == 1234:  # agent_log.sh does not escape: a quote in a message breaks the line
            self.info["corrupt"] += 1
            return [
                f'{{"ts":"{self.old_ts(i)}","session":"{self.ses}","level":"INFO","cat":"CMD_INTENT",'
                f'"msg":"grep "TODO" src","details":""}}'
            ]
        if i % 20_000 == 777:
            self.info["storms"] += 1
            c = f"cmake --build build-{i}"
            out = []
            for _ in range(4):
                self.sec += 1.0
                out.append(
                    f'{{"ts":"{self.old_ts(i)}","session":"{self.ses}","level":"INFO","cat":"CMD_RESULT",'
                    f'"msg":"{c}","details":"exit=1; error: build failed"}}'
                )
            self.info["legacy"] += 3
            return out
        return [_old_line(rng, self.old_ts(i), self.ses, i)]


def generate(log_dir: str, events: int = 1_000_000, shards: int = 5, seed: int = 7, fmt: str = "v1") -> dict[str, int]:
    """Write `events` lines over `shards` shards in format `fmt`; returns counts of what was injected."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    os.makedirs(log_dir, exist_ok=True)
    rng = random.Random(seed)
    per = events // shards
    info = {"lines": 0, "legacy": 0, "corrupt": 0, "storms": 0}
    for s in range(shards):
        sh = _Shard(s, per, info)
        write, run_left = (sh.old if fmt == "old" else sh.v1), 0
        out: list[str] = []
        ses_n = 0
        for i in range(per):
            if i % 2000 == 0:
                ses_n += 1
                sh.ses = f"ses_{sh.agent}_{ses_n:04d}"
            if fmt == "mixed" and run_left == 0:  # the other writer takes over for a while
                write, run_left = (sh.v1 if write == sh.old else sh.old), rng.randint(1, 400)
            run_left -= 1
            sh.sec += rng.uniform(1.0, 9.0)
            out += write(rng, i)
        with open(os.path.join(log_dir, f"agent_audit-{sh.agent}.log"), "w", encoding="utf-8") as f:
            f.write("\n".join(out) + "\n")
        info["lines"] += len(out)
    return info


def main(argv: list[str]) -> None:
    import argparse

    ap = argparse.ArgumentParser(description="Write a generated audit log.")
    ap.add_argument("dir")
    ap.add_argument("events", nargs="?", type=int, default=1_000_000)
    ap.add_argument("shards", nargs="?", type=int, default=5)
    ap.add_argument("--format", choices=FORMATS, default="v1", dest="fmt")
    a = ap.parse_args(argv)
    print(json.dumps(generate(a.dir, a.events, a.shards, fmt=a.fmt)))


if __name__ == "__main__":
    main(sys.argv[1:])
