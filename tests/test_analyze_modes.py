"""The analyze modes on a small mixed log: v1 shards, the legacy file's old formats, a corrupt line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from analyze_logs import T0, LogBuilder, key
from conftest import run_cli

from epyc_agent.analyze import aggregate, listing
from epyc_agent.analyze.filters import Query, parse_time
from epyc_agent.analyze.scan import TS
from epyc_agent.errors import EpycAgentError

NO_FILTERS = {"since": None, "until": None, "agent": None, "session": None, "level": None}


def build(log_dir: Path) -> dict[str, str]:
    """Two agents, three sessions, the old toolkit's formats in agent_audit.log, one corrupt line."""
    b = LogBuilder(log_dir)
    w = {}
    w["start"] = b.event("a", "s1", "SESSION_START", "tune draft", 0, details="new_session=s1")
    b.event("a", "s1", "CMD_INTENT", "make", 1, cmd="make")
    w["make"] = b.cmd("a", "s1", "make", 0, 2, "ok")
    w["fail"] = b.cmd("a", "s1", "./bench --pid 4242", 3, 3, "segfault")
    b.modify("a", "s1", "src/k.c", 4)
    w["rb1"] = b.event(
        "a",
        "s1",
        "ROLLBACK",
        "edit src/k.c",
        5,
        action="edit src/k.c",
        undo="git checkout src/k.c",
        details="undo_with: git checkout src/k.c",
    )
    w["warn"] = b.event("a", "s1", "WARNING", "disk 90%", 6, level="WARN")
    w["end"] = b.event("a", "s1", "SESSION_END", "done", 7)
    b.event("b", "s2", "SESSION_START", "scan models", 1.5)
    w["b_err"] = b.event("b", "s2", "ERROR", "model missing", 2.5, level="ERROR")
    b.modify("b", "s2", "src/k.c", 3.5)
    w["rb2"] = b.event(
        "b",
        "s2",
        "ROLLBACK",
        "rm cache",
        4.5,
        action="rm cache",
        undo="mkdir -p cache",
        details="undo_with: mkdir -p cache",
    )
    w["corrupt"] = b.raw("agent_audit-b.log", '{"ts":"2026-01-10T00:00:09Z","session":"s2","msg":"cut off')
    # the old toolkit: ts with an offset and no agent, "timestamp"-keyed, bracketed
    w["old_cmd"] = b.raw(
        "agent_audit.log",
        '{"ts":"2026-01-10T01:00:08+01:00","session":"s3","level":"INFO",'
        '"cat":"CMD_RESULT","msg":"make check","details":"exit=2; 3 failed"}',
    )
    w["old_warn"] = b.raw(
        "agent_audit.log",
        '{"timestamp":"2026-01-10T00:00:09Z","session":"s3","level":"WARN","cat":"WARNING","msg":"old warning"}',
    )
    w["old_rb"] = b.raw("agent_audit.log", "[2026-01-10T00:00:10+00:00] ROLLBACK: tweak sysctl")
    return w


def test_summary_whole_dict(log_dir: Path) -> None:
    """Counts from every shard and old format; the corrupt line is counted with file:line."""
    w = build(log_dir)
    assert aggregate.summary(str(log_dir), Query()) == {
        "log_dir": str(log_dir),
        "files": 3,
        "lines": 16,
        "events": 15,
        "legacy_lines": 3,
        "corrupt": 1,
        "corrupt_lines": [f"{w['corrupt']}: not an event"],
        "first": key(T0),
        "last": key(T0 + 10),
        "sessions": 4,
        "commands": 3,
        "failed_commands": 2,
        "files_modified": 2,
        "rollbacks": 3,
        "errors": 2,
        "warnings": 2,
        "levels": {"INFO": 11, "ERROR": 2, "WARN": 2},
        "categories": {
            "ROLLBACK": 3,
            "CMD_RESULT": 3,
            "SESSION_START": 2,
            "FILE_MODIFY": 2,
            "WARNING": 2,
            "CMD_INTENT": 1,
            "SESSION_END": 1,
            "ERROR": 1,
        },
        "agents": {"a": 8, "b": 4, "legacy": 3},
        "filters": NO_FILTERS,
    }


def test_sessions_rows(log_dir: Path) -> None:
    """One row per session with purpose, end, commands and failures; legacy lines without a session too."""
    build(log_dir)
    rows = {r["session"]: r for r in aggregate.sessions(str(log_dir), Query())["sessions"]}
    assert rows["s1"] == {
        "session": "s1",
        "agents": ["a"],
        "first": key(T0),
        "last": key(T0 + 7),
        "events": 8,
        "errors": 1,
        "warnings": 1,
        "commands": 2,
        "failed": 1,
        "files_modified": 1,
        "rollbacks": 1,
        "purpose": "tune draft",
        "ended": True,
        "end_summary": "done",
    }
    assert (rows["s3"]["failed"], rows["s3"]["agents"], rows["none"]["rollbacks"]) == (1, ["legacy"], 1)
    assert list(rows) == ["s1", "s2", "s3", "none"]


def test_errors_include_failed_legacy_commands(log_dir: Path) -> None:
    """Errors, warnings, and failed commands whatever their level, oldest first, with file:line."""
    w = build(log_dir)
    d = listing.errors(str(log_dir), Query())
    assert d["total"] == 5
    assert [e["where"] for e in d["events"]] == [w["b_err"], w["fail"], w["warn"], w["old_cmd"], w["old_warn"]]
    assert d["by_category"] == {"CMD_RESULT": 2, "ERROR": 1, "WARNING": 2}
    assert d["corrupt"] == 1
    d = listing.errors(str(log_dir), Query(), limit=2)
    assert [e["where"] for e in d["events"]] == [w["old_cmd"], w["old_warn"]]


def test_filters_agent_session_level_and_time(log_dir: Path) -> None:
    """--agent, --session, --level and ISO --since/--until select exactly."""
    build(log_dir)
    d = str(log_dir)
    assert aggregate.summary(d, Query(agent="b"))["events"] == 4
    assert aggregate.summary(d, Query(session="s3"))["events"] == 2
    assert aggregate.summary(d, Query(levels=frozenset({b"WARN"})))["categories"] == {"WARNING": 2}
    q = Query(since=parse_time("2026-01-10T00:00:03Z"), until=parse_time("2026-01-10T01:00:07+01:00"))
    assert [e["msg"] for e in listing.tail(d, 100, q)["events"]] == [
        "./bench --pid 4242",
        "src/k.c",
        "src/k.c",
        "rm cache",
        "edit src/k.c",
        "disk 90%",
        "done",
    ]


def test_relative_time_filters(log_dir: Path) -> None:
    """`--since 2h` counts back from now; a date alone means midnight UTC."""
    b = LogBuilder(log_dir)
    now = time.time()
    for hours in (30, 5, 1, 0.1):
        b.event("a", "s", "OBSERVE", f"{hours}h ago", -hours * 3600, base=now)
    got = listing.tail(str(log_dir), 10, Query(since=parse_time("2h")))
    assert [e["msg"] for e in got["events"]] == ["1h ago", "0.1h ago"]
    got = listing.tail(str(log_dir), 10, Query(until=parse_time("1d")))
    assert [e["msg"] for e in got["events"]] == ["30h ago"]
    assert parse_time("2026-01-10") == "2026-01-10T00:00:00.000000Z"
    with pytest.raises(EpycAgentError, match="cannot read the time 'yesterday'"):
        parse_time("yesterday")


def test_session_mode_merges_agents_in_time_order(log_dir: Path) -> None:
    """--session ID: every event of the session from every shard, in time order, with totals."""
    b = LogBuilder(log_dir)
    b.event("a", "shared", "OBSERVE", "a1", 0)
    b.event("b", "shared", "OBSERVE", "b1", 1)
    b.event("a", "shared", "OBSERVE", "a2", 2)
    b.event("a", "other", "OBSERVE", "x", 1.5)
    d = listing.session(str(log_dir), Query(session="shared"))
    assert [e["msg"] for e in d["events"]] == ["a1", "b1", "a2"]
    assert (d["agents"], d["events"][1]["where"]) == (["a", "b"], f"{log_dir}/agent_audit-b.log:1")


def test_tail_and_timeline_read_backwards_with_line_numbers_from_the_end(log_dir: Path) -> None:
    """The last N events across shards, merged, with exact file:line counted from the end
    (-1 is the last line), whatever the chunk size."""
    b = LogBuilder(log_dir)
    for n in range(3000):
        b.event("a", "s", "OBSERVE", f"a{n}", n, details="x" * 100)
    b.event("b", "s", "OBSERVE", "b-late", 2998.5)
    d = listing.tail(str(log_dir), 3, Query())
    assert [(e["msg"], e["where"]) for e in d["events"]] == [
        ("a2998", f"{log_dir}/agent_audit-a.log:-2"),
        ("b-late", f"{log_dir}/agent_audit-b.log:-1"),
        ("a2999", f"{log_dir}/agent_audit-a.log:-1"),
    ]
    lines = (log_dir / "agent_audit-a.log").read_bytes().splitlines()
    deep = listing.tail(str(log_dir), 2500, Query(agent="a"))["events"][0]  # several chunks back
    assert deep["msg"] == "a500" and deep["where"].endswith(":-2500")
    assert b'"msg":"a500"' in lines[-2500]
    t = listing.timeline(str(log_dir), 3, Query())
    assert [e["gap_s"] for e in t["events"]] == [None, 0.5, 0.5]
    assert (t["span_s"], t["sessions"]) == (1.0, ["s"])


def test_commands_and_files(log_dir: Path) -> None:
    """Commands grouped by normalised form with failures; files with their actions."""
    build(log_dir)
    d = aggregate.commands(str(log_dir), Query())
    assert [(c["cmd"], c["count"], c["failed"], c["last_exit"]) for c in d["commands"]] == [
        ("./bench --pid <N>", 1, 1, 3),
        ("make", 1, 0, 0),
        ("make check", 1, 1, 2),
    ]
    f = aggregate.files(str(log_dir), Query())
    assert f["files"] == [{"path": "src/k.c", "count": 2, "actions": {"edit": 2}, "sessions": 2, "last": key(T0 + 4)}]


def test_cli_json_modes_and_usage_errors(log_dir: Path) -> None:
    """The CLI prints the same data as JSON; two modes at once and bad filters are one-line errors."""
    build(log_dir)
    r = run_cli("log", "analyze", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["events"] == 15
    r = run_cli("log", "analyze", "--errors", "--json", "--agent", "legacy")
    assert [e["msg"] for e in json.loads(r.stdout)["events"]] == ["make check", "old warning"]
    r = run_cli("log", "analyze", "--errors", "--loops")
    assert r.returncode == 2 and "choose one mode" in r.stderr
    r = run_cli("log", "analyze", "--since", "soon")
    assert (r.returncode, r.stderr.count("\n")) == (2, 1) and "cannot read the time 'soon'" in r.stderr
    r = run_cli("log", "analyze", "--session", "nope")
    assert r.returncode == 2 and "no events for session nope" in r.stderr and "Traceback" not in r.stderr


def test_human_output_plain_when_not_a_tty(log_dir: Path) -> None:
    """Aligned text without ANSI codes on a pipe; colored on a terminal unless NO_COLOR is set."""
    import os
    import pty
    import subprocess

    from conftest import BIN

    build(log_dir)
    r = run_cli("log", "analyze", "--sessions")
    assert "\x1b[" not in r.stdout
    header = r.stdout.splitlines()[0]
    assert header.split() == [
        "SESSION",
        "AGENTS",
        "FIRST",
        "LAST",
        "EVENTS",
        "CMDS",
        "FAILED",
        "ERRORS",
        "ENDED",
        "PURPOSE",
    ]
    assert r.stdout.splitlines()[1].index("a ") == header.index("AGENTS")

    def on_tty(env: dict[str, str]) -> str:
        main, sub = pty.openpty()
        p = subprocess.run(
            [str(BIN), "log", "analyze", "--summary"],
            stdout=sub,
            stderr=subprocess.PIPE,
            env={**os.environ, **env},
            timeout=60,
        )
        os.close(sub)
        out = b""
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        os.close(main)
        assert p.returncode == 0
        return out.decode()

    assert "\x1b[" in on_tty({"TERM": "xterm"})
    assert "\x1b[" not in on_tty({"NO_COLOR": "1", "TERM": "xterm"})


def test_worker_processes_give_the_same_answers(log_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Large logs are scanned in forked workers; the results equal the in-process scan."""
    from epyc_agent.analyze import loops, scan

    build(log_dir)
    d = str(log_dir)

    def everything() -> list[object]:
        return [
            aggregate.summary(d, Query()),
            aggregate.sessions(d, Query(agent="a")),
            aggregate.commands(d, Query()),
            aggregate.files(d, Query()),
            listing.errors(d, Query()),
            listing.session(d, Query(session="s1")),
            loops.find_loops(d, Query(), loops.thresholds(repeat=2)),
        ]

    serial = everything()
    monkeypatch.setattr(scan, "PARALLEL_BYTES", 0)
    calls: list[int] = []
    real_pool = __import__("multiprocessing").get_context("fork").Pool

    def counting_pool(n: int) -> object:
        calls.append(n)
        return real_pool(n)

    monkeypatch.setattr("multiprocessing.context.ForkContext.Pool", lambda self, n: counting_pool(n))
    assert everything() == serial
    assert calls == [3] * 7  # one worker per shard


def test_tail_agrees_with_a_full_read(tmp_path: Path) -> None:
    """On a generated mixed log (v1, old formats, corrupt lines, 5 shards), --tail N is the last
    N events of a full read in the same order, each `file:-K` the same line as the full read's."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    from gen_log import generate

    d = tmp_path / "logs"
    generate(str(d), 30_000, 5, seed=3)
    every = listing.collect_part  # the full read, shard by shard
    full = sorted(
        (i for p in sorted(d.glob("agent_audit*.log")) for i in every(str(p), Query())[0]),
        key=lambda i: i[TS],
    )
    totals = {str(p): len(p.read_bytes().splitlines()) for p in d.glob("agent_audit*.log")}
    for n in (1, 20, 5000):
        got = listing.tail(str(d), n, Query())["events"]
        want = [listing.render_event(i) for i in full[-n:]]
        assert [{**e, "where": None} for e in got] == [{**e, "where": None} for e in want]
        for g, w in zip(got, want, strict=True):
            file, line = w["where"].rsplit(":", 1)
            assert g["where"] == f"{file}:{int(line) - totals[file] - 1}"


@pytest.mark.parametrize(
    ("fast", "slow"),
    [
        (["--tail", "7"], ["--tail=7"]),
        (["--tail", "7", "--json"], ["--json", "--tail=7"]),
        (["--commands", "--limit", "2"], ["--commands", "--limit=2"]),
        (["--json", "--commands"], ["--commands", "--json", "--limit=50"]),
    ],
)
def test_fast_tail_and_commands_print_what_click_prints(log_dir: Path, fast: list[str], slow: list[str]) -> None:
    """`log analyze --tail N` / `--commands` skip click (the `--opt=value` form goes through
    it): same output, and click is never imported on the fast path."""
    build(log_dir)
    env = {"EPYC_AGENT_LOG_DIR": str(log_dir)}
    a, b = run_cli("log", "analyze", *fast, env=env), run_cli("log", "analyze", *slow, env=env)
    assert (a.returncode, a.stdout, a.stderr) == (b.returncode, b.stdout, b.stderr)
    assert a.stdout.strip()
    probe = (
        "import sys; from epyc_agent.__main__ import main; rc = main(sys.argv[1:]); "
        "sys.stdout.flush(); assert 'click' not in sys.modules, 'click imported'; sys.exit(rc)"
    )
    r = subprocess.run(
        [sys.executable, "-c", probe, "log", "analyze", *fast], env={**os.environ, **env}, capture_output=True
    )
    assert r.returncode == 0, r.stderr
