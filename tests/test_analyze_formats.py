"""The old toolkit's formats on the analyzers' fast path give the careful path's answers.

A mixed log (benchmarks/gen_log.py: agent_log.sh's lines, `timestamp`-keyed and bracketed
lines, v1 lines, in the same shards) plus every odd line we could think of is analyzed by the
real CLI twice: as it is, and with EPYC_AGENT_CAREFUL_READ=1 (every line that is not our v1
line read by the reader's parse + upgrade). The two outputs must be equal, byte for byte.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_cli

from epyc_agent.analyze import scan
from epyc_agent.analyze.filters import Query
from epyc_agent.events.reader import ReadStats, _iso_key, parse_line, ts_key
from epyc_agent.events.writer import AuditLog

GEN = Path(__file__).resolve().parent.parent / "benchmarks" / "gen_log.py"
EVENTS = 20_000

# Lines the fast path must recognise, or leave to the careful path, exactly as that path reads them.
ODD = [
    # agent_log.sh's shape with every kind of time it can meet
    '{"ts":"2026-01-01T10:00:00+0100","session":"ses_e","level":"WARN","cat":"EARLYOOM_KILL",'
    '"msg":"earlyoom killed llama (pid 7)","details":"pid=7 uid=0 cmd=llama"}',
    '{"ts":"2026-01-01T10:00:01","session":"ses_e","level":"INFO","cat":"OBSERVE","msg":"no offset","details":""}',
    '{"ts":"2026-01-01T10:00:02-00:00","session":"ses_e","level":"INFO","cat":"OBSERVE","msg":"m","details":"d"}',
    '{"ts":"2026-01-01T10:00:03+05:45","session":"ses_e","level":"INFO","cat":"OBSERVE","msg":"m","details":"d"}',
    '{"ts":"2026-01-01T10:00:04.5Z","session":"ses_e","level":"INFO","cat":"OBSERVE","msg":"m","details":"d"}',
    '{"ts":"2026-01-01T10:00:05.123456Z","session":"ses_e","level":"INFO","cat":"OBSERVE","msg":"m","details":""}',
    '{"ts":"2026-02-30T10:00:05.123456Z","session":"ses_e","level":"INFO","cat":"OBSERVE","msg":"our shape",'
    '"details":"an impossible date"}',
    '{"ts":"2026-01-01T10:00:06.1234567+01:00","session":"ses_e","level":"INFO","cat":"OBSERVE","msg":"7 digits",'
    '"details":""}',
    '{"ts":"2026-01-01T10:00:07,25+01:00","session":"ses_e","level":"INFO","cat":"OBSERVE","msg":"comma","details":""}',
    '{"ts":"2026-01-01 10:00:08+01:00","session":"ses_e","level":"INFO","cat":"OBSERVE","msg":"space","details":""}',
    '{"ts":"2024-02-29T10:00:09+01:00","session":"ses_e","level":"INFO","cat":"OBSERVE","msg":"leap","details":""}',
    '{"ts":"2025-02-29T10:00:09+01:00","session":"ses_e","level":"INFO","cat":"OBSERVE","msg":"no leap","details":""}',
    '{"ts":"2026-01-01T24:00:00+01:00","session":"ses_e","level":"INFO","cat":"OBSERVE","msg":"24h","details":""}',
    '{"ts":"2026-01-01T10:00:10+24:00","session":"ses_e","level":"INFO","cat":"OBSERVE","msg":"+24","details":""}',
    '{"ts":"0001-01-01T00:10:00+01:00","session":"ses_e","level":"INFO","cat":"OBSERVE","msg":"year 0","details":""}',
    '{"ts":"2026-01-01T10:00:60+01:00","session":"ses_e","level":"INFO","cat":"OBSERVE","msg":"60 s","details":""}',
    # exit codes in details
    '{"ts":"2026-01-01T10:01:00+01:00","session":"ses_e","level":"INFO","cat":"CMD_RESULT"'
    ',"msg":"a","details":"exit=00; ok"}',
    '{"ts":"2026-01-01T10:01:01+01:00","session":"ses_e","level":"INFO","cat":"CMD_RESULT"'
    ',"msg":"b","details":"exit=-1"}',
    '{"ts":"2026-01-01T10:01:02+01:00","session":"ses_e","level":"INFO","cat":"CMD_RESULT"'
    ',"msg":"c","details":"exit=٣; x"}',
    '{"ts":"2026-01-01T10:01:03+01:00","session":"ses_e","level":"INFO","cat":"CMD_RESULT"'
    ',"msg":"d","details":"exit=1٣"}',
    '{"ts":"2026-01-01T10:01:04+01:00","session":"ses_e","level":"INFO","cat":"CMD_RESULT"'
    ',"msg":"e","details":"exit=; x"}',
    '{"ts":"2026-01-01T10:01:05+01:00","session":"ses_e","level":"INFO","cat":"CMD_RESULT"'
    ',"msg":"f","details":"ok exit=3"}',
    '{"ts":"2026-01-01T10:01:06+01:00","session":"ses_e","level":"INFO","cat":"CMD_RESULT"'
    ',"msg":"g","details":"exit=7"}',
    '{"timestamp":"2026-01-01T10:01:07+01:00","session":"ses_e","level":"INFO","cat":"CMD_RESULT","msg":"h",'
    '"details":"exit=4; older"}',
    '{"timestamp":"2026-01-01T10:01:08+01:00","session":"ses_e","level":"ERROR","cat":"CMD_RESULT","msg":"i"}',
    # what agent_log.sh did not escape, and what other writers escaped
    '{"ts":"2026-01-01T10:02:00+01:00","session":"ses_e","level":"INFO","cat":"CMD_INTENT","msg":"grep "x" y",'
    '"details":""}',
    '{"ts":"2026-01-01T10:02:01+01:00","session":"ses_e","level":"INFO","cat":"CMD_RESULT","msg":"make \\"all\\"",'
    '"details":"exit=2; quoted"}',
    '{"ts":"2026-01-01T10:02:02+01:00","session":"ses_e","level":"INFO","cat":"FILE_MODIFY","msg":"C:\\\\tmp\\\\k.c",'
    '"details":"action=delete; gone"}',
    '{"ts":"2026-01-01T10:02:03+01:00","session":"ses_é","level":"WARN","cat":"WARNING","msg":"Qwen3 — ünï",'
    '"details":"ß"}',
    '{"ts":"2026-01-01T10:02:04+01:00","session":"ses_e","level":"INFO","cat":"OBSERVE","msg":"a\ttab","details":""}',
    '{"ts":"2026-01-01T10:02:05+01:00","session":"ses_e","level":"WARNING","cat":"WARNING","msg":"w","details":""}',
    '{"ts":"2026-01-01T10:02:06+01:00","session":"ses_e","cat":"ERROR","msg":"no level","details":""}',
    '{"ts":"2026-01-01T10:02:07+01:00","session":"ses_e","level":"INFO","category":"DECISION","msg":"cat key"}',
    '{"ts":"2026-01-01T10:02:08+01:00","session":"ses_e","agent":"other","level":"ERROR","cat":"ERROR","msg":"agent",'
    '"details":""}',
    '{"ts":"2026-01-01T10:02:09+01:00","session":"ses_e","level":"INFO","cat":"OBSERVE","msg":"m","details":"d","v":1}',
    '{"ts":"2026-01-01T10:02:10+01:00","ts":"2026-01-01T11:02:10+01:00","session":"ses_e","level":"INFO",'
    '"cat":"OBSERVE","msg":"twice","details":""}',
    '{"ts":"2026-01-01T10:02:11+01:00", "session":"ses_e","level":"INFO","cat":"OBSERVE","msg":"space","details":""}',
    '{"ts":"2026-01-01T10:02:12+01:00","session":"ses_e","level":"INFO","cat":"SESSION_START","msg":"edge purpose",'
    '"details":"new_session=ses_e"}',
    '{"ts":"2026-01-01T10:02:13+01:00","session":"ses_e","level":"INFO","cat":"ROLLBACK","msg":"edit k.c",'
    '"details":"undo_with: git checkout k.c"}',
    '{"ts":"2026-01-01T10:02:14+01:00","session":"ses_e","level":"INFO","cat":"SESSION_END","msg":"Session complete",'
    '"details":"all done"}',
    # bracketed lines
    "[2026-01-01T10:03:00+01:00] ERROR: boom",
    "[2026-01-01T10:03:01+01:00] WARNING: careful",
    "[2026-01-01T10:03:02+01:00] CMD_RESULT: make",
    "[2026-01-01T10:03:03+01:00] TASK-END: a dash ends the name",
    "[2026-01-01T10:03:04+01:00] task_end: lower case",
    "[ 2026-01-01T10:03:05+01:00] TASK_END: a space inside",
    "[2026-01-01T10:03:06+01:00]TASK_END:no spaces",
    "[2026-01-01T10:03:07+01:00] TASK_END: trailing spaces   ",
    "[2026-01-01T10:03:08+01:00] TASK_END",
    "[2026-13-01T10:03:09+01:00] TASK_END: month 13",
    '[2026-01-01T10:03:10+01:00] TASK_END: x{"ts":"2026-01-01T09:03:10.000000Z","session":"g","agent":"a",'
    '"level":"INFO","cat":"OBSERVE","msg":"glued","details":"","v":1}',
    "[2026-01-01T10:03:11+01:00] SESSION_START: bracketed purpose",
    # not events
    "",
    "   ",
    "garbage",
    '{"ts":"2026-01-01T10:04:00+01:00","session":"ses_e","level":"INFO","cat":"OBSERVE","msg":"cut',
    '{"ts":"2026-01-01T10:04:01+01:00","session":"ses_e","level":"INFO","cat":"OBSERVE","msg":"cut'
    '{"ts":"2026-01-01T09:04:02.000000Z","session":"ses_e","agent":"agent1","level":"INFO","cat":"OBSERVE",'
    '"msg":"glued","details":"","v":1}',
]
RAW_ODD = [
    b'{"ts":"2026-01-01T10:05:00+01:00","session":"ses_e","level":"INFO","cat":"OBSERVE","msg":"\xff","details":""}\n',
    b'{"ts":"2026-01-01T10:05:01+01:00","session":"ses_e","level":"INFO","cat":"OBSERVE","msg":"\xed\xa0\x80",'
    b'"details":"lone surrogate"}\n',
    b'{"ts":"2026-01-01T10:05:02+01:00","session":"ses_e","level":"INFO","cat":"OBSERVE","msg":"crlf","details":""}\r\n',
    b"[2026-01-01T10:05:03+01:00] TASK_END: \xff\xfe\n",
]
LAST = (
    '{"ts":"2026-01-01T10:06:00+01:00","session":"ses_e","level":"INFO","cat":"TASK_END"'
    ',"msg":"no newline","details":""}'
)


def build(log_dir: Path) -> None:
    """A generated mixed log, the odd lines in the legacy file and in a shard, one shard ending mid-line."""
    subprocess.run(
        [sys.executable, str(GEN), str(log_dir), str(EVENTS), "5", "--format", "mixed"], check=True, capture_output=True
    )
    odd = "".join(line + "\n" for line in ODD).encode() + b"".join(RAW_ODD)
    (log_dir / "agent_audit.log").write_bytes(odd)
    with open(log_dir / "agent_audit-agent1.log", "ab") as f:
        f.write(odd + LAST.encode())
    with AuditLog(log_dir, session="ses_chain", agent="agent3") as log:  # chained v1 lines (seq, hash) among old ones
        for n in range(4):
            log.cmd_result("make -j2", 2, f"error {n}")
        log.file_modify("src/k.c", "edit", "fix")
        log.error("build failed", "twice")


MODES = [
    ["--summary"],
    ["--sessions"],
    ["--errors", "--limit", "0"],
    ["--commands", "--limit", "0"],
    ["--files", "--limit", "0"],
    ["--loops"],
    ["--rollbacks"],
    ["--rollbacks", "--script"],
    ["--session", "ses_agent2_0002"],
    ["--session", "ses_e"],
    ["--session", "none"],
    ["--session", "ses_chain"],
    ["--tail", "300"],
    ["--timeline", "300"],
    ["--summary", "--level", "WARN,ERROR", "--since", "2026-01-01T10:00:00+01:00"],
    ["--sessions", "--agent", "agent1", "--until", "2026-01-02"],
    ["--errors", "--since", "2026-01-02", "--agent", "agent3", "--level", "ERROR", "--limit", "0"],
    ["--commands", "--session", "ses_e", "--limit", "0"],
    ["--loops", "--agent", "agent2", "--retry-storm", "2"],
    ["--files", "--level", "INFO", "--agent", "legacy"],
    ["--tail", "50", "--level", "WARN", "--session", "ses_é"],
]


@pytest.fixture(scope="module")
def mixed_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("formats") / "root"
    build(root / "logs")
    return root


def analyze(root: Path, args: list[str], careful: bool) -> subprocess.CompletedProcess[str]:
    env = {"EPYC_AGENT_ROOT": str(root), "EPYC_AGENT_CAREFUL_READ": "1" if careful else "0"}
    return run_cli("log", "analyze", *args, *([] if "--script" in args else ["--json"]), env=env)


@pytest.mark.parametrize("args", MODES, ids=" ".join)
def test_fast_path_answers_as_the_careful_path(mixed_log: Path, args: list[str]) -> None:
    """Every mode, with and without filters, prints the same with the fast path as with the careful one."""
    fast, slow = analyze(mixed_log, args, False), analyze(mixed_log, args, True)
    assert fast.returncode == slow.returncode and fast.returncode in (0, 1), fast.stderr
    if "--script" in args:  # its header says when it was generated
        fast.stdout, slow.stdout = (
            "\n".join(x for x in r.stdout.splitlines() if not x.startswith("# Undo script generated"))
            for r in (fast, slow)
        )
    assert fast.stdout == slow.stdout
    assert fast.stdout.count("\n") > 3


def test_the_generated_log_is_what_the_modes_look_at(mixed_log: Path) -> None:
    """The comparison is not vacuous: the log has the old formats, odd lines and corrupt lines, seen as such."""
    s = json.loads(analyze(mixed_log, ["--summary"], False).stdout)
    assert s["legacy_lines"] > EVENTS // 3 and s["corrupt"] >= 15
    assert {"EARLYOOM_KILL", "TASK", "TASK_END", "CMD_RESULT"} <= set(s["categories"])
    errors = {x.split(": ", 1)[1] for x in s["corrupt_lines"]}
    assert {"not an event", "incomplete last line"} <= errors or any("bad timestamp" in e for e in errors)
    tail = json.loads(analyze(mixed_log, ["--tail", "300"], False).stdout)["events"]
    assert {"+01:00" in e["ts"] for e in tail} == {True, False}  # old lines keep their own ts in the event


def test_old_lines_take_the_fast_path(mixed_log: Path) -> None:
    """agent_log.sh's lines become items from their head, not from a parsed event (which the careful path builds)."""
    path = str(mixed_log / "logs" / "agent_audit-agent0.log")
    lines = Path(path).read_bytes().splitlines(keepends=True)
    old = [ln for ln in lines if not ln.endswith(scan.V1_TAIL)]
    items = scan.parse_lines(old, 1, path, "agent0", ReadStats(), Query())
    assert len(items) > 1000 and sum(it[scan.RAW].__class__ is bytes for it in items) >= len(items) - 2
    it = next(i for i in items if i[scan.RAW].startswith(b'{"ts"') and i[scan.CAT] == b"CMD_RESULT")
    assert scan.event(it) == parse_line(it[scan.RAW], "agent0")
    assert scan.exit_code(it) == scan.event(it).get("exit_code")


def test_ts_key_fast_shapes_equal_the_definition() -> None:
    """The cached conversion of the old toolkit's times gives the ISO parser's key, valid or not."""
    rng = random.Random(19)
    offsets = ["", "Z", "+01:00", "-05:00", "+05:30", "+0100", "-0930", "+23:59", "+24:00", "-00:00", "+01:60"]
    fracs = ["", ".5", ".123", ".123456", ".1234567"]
    seen = 0
    for _ in range(20_000):
        y = rng.choice([1, 2, 1999, 2000, 2024, 2025, 2026, 2100, 9999])
        mo, d = rng.randint(0, 13), rng.choice([1, 15, 28, 29, 30, 31, 32])
        h, mi, s = rng.choice([0, 1, 12, 23, 24]), rng.choice([0, 30, 59, 60]), rng.choice([0, 7, 59, 60])
        frac, offset = rng.choice(fracs), rng.choice(offsets)
        if (frac, offset) == (".123456", "Z"):
            continue  # our own key's shape, taken as the key unparsed
        ts = f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}{frac}{offset}"
        assert ts_key(ts) == _iso_key(ts), ts
        seen += ts_key(ts) is not None
    assert 2000 < seen < 17_000  # both valid and invalid times were compared
