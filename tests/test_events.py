"""The audit log: schema, writer, reader, legacy formats, concurrency."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from epyc_agent.events import schema
from epyc_agent.events.reader import ReadStats, read_events, read_records, ts_key
from epyc_agent.events.writer import AuditLog


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_bytes().splitlines()]


def test_event_fields_in_order_with_ts_first(tmp_path: Path) -> None:
    """ts first, then session, agent, level, cat, msg, details, typed fields, the chain's seq and hash, v."""
    log = AuditLog(tmp_path, "ses_1", "bench")
    log.cmd_result("make -j2", 2, "failed", duration_ms=12.5)
    (ev,) = lines(tmp_path / "agent_audit-bench.log")
    assert list(ev) == [
        "ts",
        "session",
        "agent",
        "level",
        "cat",
        "msg",
        "details",
        "cmd",
        "exit_code",
        "duration_ms",
        "seq",
        "hash",
        "v",
    ]
    assert ev["ts"].endswith("Z") and len(ev["ts"]) == 27
    assert (ev["level"], ev["cat"], ev["exit_code"], ev["duration_ms"]) == ("ERROR", "CMD_RESULT", 2, 12.5)
    assert ev["details"] == "exit=2; failed"


def test_every_old_function_as_a_method(tmp_path: Path) -> None:
    """The old toolkit's functions write the old categories and details conventions."""
    log = AuditLog(tmp_path, "s", "a")
    log.task_start("t", "why")
    log.task_end("t")
    log.cmd_intent("ls", "look")
    log.file_modify("/x", "edit", "fix")
    log.decision("d", "r")
    log.warn("w", "c")
    log.error("e", "c")
    log.observe("tps", "12.5")
    log.rollback("edit x", "git checkout x")
    evs = lines(tmp_path / "agent_audit-a.log")
    assert [e["cat"] for e in evs] == [
        "TASK_START",
        "TASK_END",
        "CMD_INTENT",
        "FILE_MODIFY",
        "DECISION",
        "WARNING",
        "ERROR",
        "OBSERVE",
        "ROLLBACK",
    ]
    assert evs[1]["details"] == "outcome=success"
    assert evs[3]["details"] == "action=edit; fix" and evs[3]["path"] == "/x"
    assert [e["level"] for e in evs[5:7]] == ["WARN", "ERROR"]
    assert evs[7]["data"] == {"what": "tps", "value": 12.5}
    assert evs[8]["undo"] == "git checkout x" and evs[8]["details"] == "undo_with: git checkout x"


def test_shard_name_is_sanitized(tmp_path: Path) -> None:
    AuditLog(tmp_path / "logs", "s", "../evil agent/x").observe("a", 1)
    assert [p.name for p in (tmp_path / "logs").iterdir()] == ["agent_audit-evil_agent_x.log"]


def test_long_fields_are_truncated_with_a_marker_never_dropped(tmp_path: Path) -> None:
    log = AuditLog(tmp_path, "s", "a")
    log.event("OBSERVE", "x" * 100_000, data={"blob": "y" * 200_000})
    (ev,) = lines(tmp_path / "agent_audit-a.log")
    assert ev["msg"].startswith("x" * schema.MAX_FIELD_CHARS)
    assert ev["msg"].endswith(f"…[truncated {100_000 - schema.MAX_FIELD_CHARS} chars]")
    assert ev["data"]["_truncated"] is True and ev["data"]["_bytes"] > 200_000


nasty = st.one_of(
    st.text(),
    st.text(alphabet=st.characters(codec="utf-8")),
    st.sampled_from(
        [
            '"quoted"',
            "new\nline",
            "\r\n\t\x00\x1b[31m",
            "\udcff\udc80 bad utf-8",
            "💥" * 50,
            "\\",
            "{not json}",
            "\u2028\u2029",
        ]
    ),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(msg=nasty, details=nasty, cmd=nasty)
def test_property_any_text_round_trips(tmp_path: Path, msg: str, details: str, cmd: str) -> None:
    """Any string (quotes, newlines, control chars, invalid UTF-8) gives one valid line that reads back exactly."""
    d = tmp_path / f"rt{os.urandom(4).hex()}"
    for lean in (False, True):
        schema.set_lean(lean)
        try:
            AuditLog(d, "s", "a").event("OBSERVE", msg, details=details, cmd=cmd)
        finally:
            schema.set_lean(False)
    raw = (d / "agent_audit-a.log").read_bytes()
    assert raw.count(b"\n") == 2  # one line per event, whatever the content
    stats = ReadStats()
    evs = list(read_events(d, stats))
    assert stats.corrupt_count == 0 and len(evs) == 2
    for ev in evs:
        assert (ev["msg"], ev["details"], ev["cmd"]) == (msg, details, cmd)


def test_structlog_logger_writes_v1_events(tmp_path: Path) -> None:
    log = AuditLog(tmp_path, "ses", "lib")
    slog = log.logger(track=8)
    slog.info("swept", cat="OBSERVE", k=16)
    slog.warning("slow")
    a, b = lines(tmp_path / "agent_audit-lib.log")
    assert (a["cat"], a["msg"], a["level"], a["data"]) == ("OBSERVE", "swept", "INFO", {"track": 8, "k": 16})
    assert (b["level"], b["session"]) == ("WARN", "ses")


def test_reader_merges_shards_by_parsed_time_across_offsets(tmp_path: Path) -> None:
    """Mixed UTC offsets sort by real time, not by string (the old toolkit's lexical sort)."""
    (tmp_path / "agent_audit-a.log").write_text(
        '{"ts":"2025-12-15T17:00:00+01:00","session":"s","level":"INFO","cat":"OBSERVE","msg":"a1"}\n'  # 16:00Z
        '{"ts":"2025-12-15T18:30:00+01:00","session":"s","level":"INFO","cat":"OBSERVE","msg":"a2"}\n'
    )  # 17:30Z
    (tmp_path / "agent_audit-b.log").write_text(
        '{"ts":"2025-12-15T16:30:00Z","session":"s","level":"INFO","cat":"OBSERVE","msg":"b1"}\n'
        '{"ts":"2025-12-15T12:00:00-05:00","session":"s","level":"INFO","cat":"OBSERVE","msg":"b2"}\n'
    )  # 17:00Z
    assert [e["msg"] for e in read_events(tmp_path)] == ["a1", "b1", "b2", "a2"]


def test_reader_reads_all_legacy_formats(tmp_path: Path) -> None:
    """Old JSON lines, `timestamp`-keyed lines and bracketed lines all become v1-shaped events."""
    (tmp_path / "agent_audit.log").write_text(
        "[2025-12-15T17:12:49+01:00] TASK_END: built llama.cpp\n"
        '{"timestamp":"2025-12-15T17:13:00+01:00","session":"ses_old","level":"INFO","cat":"TASK_START",'
        '"msg":"old json","details":"x"}\n'
    )
    (tmp_path / "agent_audit-worker.log").write_text(
        '{"ts":"2025-12-15T17:14:00+01:00","session":"ses_20251215_171249_4242","level":"INFO",'
        '"cat":"CMD_RESULT","msg":"make","details":"exit=2; failed"}\n'
        '{"ts":"2025-12-15T17:15:00+01:00","session":"earlyoom","level":"WARN","cat":"EARLYOOM_KILL",'
        '"msg":"killed llama-server"}\n'
    )
    stats = ReadStats()
    evs = list(read_events(tmp_path, stats))
    assert [e["cat"] for e in evs] == ["TASK_END", "TASK_START", "CMD_RESULT", "EARLYOOM_KILL"]
    assert evs[0]["msg"] == "built llama.cpp" and evs[0]["agent"] == "legacy"
    assert evs[1]["ts"] == "2025-12-15T17:13:00+01:00" and evs[1]["session"] == "ses_old"
    assert evs[2]["agent"] == "worker" and evs[2]["exit_code"] == 2 and evs[2]["cmd"] == "make"
    assert evs[3]["level"] == "WARN"
    assert stats.legacy_lines == 4 and stats.corrupt_count == 0


def test_corrupt_lines_are_counted_with_location_never_fatal(tmp_path: Path) -> None:
    log = AuditLog(tmp_path, "s", "a")
    log.observe("ok1", 1)
    with open(log.path, "ab") as f:
        f.write(b'{"ts":"2025-01-01T00:00:00Z","msg":"unterminated\n')
        f.write(b"garbage line\n")
        f.write(b'{"ts":"not a time","cat":"OBSERVE"}\n')
    log.observe("ok2", 2)
    with open(log.path, "ab") as f:
        f.write(b'{"ts":"2025-01-01T00:00:00Z","cat":"OBS')  # a partial last line
    stats = ReadStats()
    evs = list(read_events(tmp_path, stats))
    assert [e["msg"] for e in evs] == ["ok1", "ok2"]
    assert stats.corrupt_count == 4
    assert [(c.line, c.error) for c in stats.corrupt] == [
        (2, "not an event"),
        (3, "not an event"),
        (4, "bad timestamp 'not a time'"),
        (6, "incomplete last line"),
    ]
    assert stats.corrupt[0].location().endswith("agent_audit-a.log:2")


def test_reader_fixes_slightly_late_lines_and_is_stable(tmp_path: Path) -> None:
    """A line appended slightly out of order within a shard is put in place; ties keep file order."""
    p = tmp_path / "agent_audit-a.log"
    rows = [
        ("2025-01-01T00:00:02.000000Z", "b"),
        ("2025-01-01T00:00:01.000000Z", "a"),
        ("2025-01-01T00:00:03.000000Z", "c1"),
        ("2025-01-01T00:00:03.000000Z", "c2"),
    ]
    p.write_text(
        "".join(json.dumps(schema.make_event("OBSERVE", m, session="s", agent="a", ts=t)) + "\n" for t, m in rows)
    )
    assert [e["msg"] for e in read_events(tmp_path)] == ["a", "b", "c1", "c2"]
    recs = list(read_records(tmp_path))
    assert [r.line for r in recs] == [2, 1, 3, 4] and recs[0].file == str(p)


def test_batch_fast_path_checks_every_key(tmp_path: Path) -> None:
    """Own v1 lines are keyed without re-parsing their time, but a wrong-shaped `ts` hidden in a batch
    of good lines still goes the careful way: offset times re-keyed, unreadable ones reported."""
    good = [schema.make_event("OBSERVE", f"m{i}", session="s", agent="a") for i in range(100)]
    odd = {
        10: "2025-01-01T01:00:00.000000+01:00",  # valid, other shape: re-keyed
        20: "2025-01-01T00:00:00.00000Z|",  # 27 chars with a separator in it
        30: "2025-01-01T00:00:0x.000000Z",  # our length, not a time
        40: 5,  # not a string
    }
    for i, ts in odd.items():
        good[i] = {**good[i], "ts": ts}
    (tmp_path / "agent_audit-a.log").write_text("".join(json.dumps(e) + "\n" for e in good))
    stats = ReadStats()
    recs = list(read_records(tmp_path, stats))
    assert [c.line for c in stats.corrupt] == [21, 31, 41]
    assert len(recs) == 97 and recs[0].event["msg"] == "m10" and recs[0].key == "2025-01-01T00:00:00.000000Z"
    assert all(r.key == r.event["ts"] for r in recs[1:])


def test_ts_key_normalizes() -> None:
    assert ts_key("2025-12-15T17:12:49+01:00") == "2025-12-15T16:12:49.000000Z"
    assert ts_key("2025-12-15T16:12:49") == "2025-12-15T16:12:49.000000Z"
    assert ts_key("2025-12-15T16:12:49.123456Z") == "2025-12-15T16:12:49.123456Z"
    assert ts_key("yesterday") is None and ts_key(5) is None


def _writer(args: tuple[str, int, int]) -> None:
    log_dir, worker, n = args
    log = AuditLog(log_dir, f"ses_{worker}", "shared")
    for i in range(n):
        log.event("OBSERVE", f"w{worker}-{i}", details="x" * (i % 300), data={"i": i, "w": worker})
    log.close()


def test_concurrent_processes_never_interleave(tmp_path: Path) -> None:
    """8 processes x 10,000 events to one shard: 80,000 valid lines, none lost, none corrupt."""
    with multiprocessing.get_context("fork").Pool(8) as pool:
        pool.map(_writer, [(str(tmp_path), w, 10_000) for w in range(8)])
    raw = (tmp_path / "agent_audit-shared.log").read_bytes().splitlines()
    assert len(raw) == 80_000
    seen = set()
    for line in raw:
        ev = json.loads(line)
        seen.add((ev["data"]["w"], ev["data"]["i"]))
    assert len(seen) == 80_000
    stats = ReadStats()
    assert sum(1 for _ in read_events(tmp_path, stats)) == 80_000 and stats.corrupt_count == 0


def test_unknown_fields_are_a_programming_error() -> None:
    with pytest.raises(TypeError):
        schema.make_event("OBSERVE", "x", session="s", agent="a", bogus=1)
