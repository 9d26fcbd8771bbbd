"""`log ship` and `log analyze --engine clickhouse` against a real ClickHouse server (Debian's
18.16.1, unpacked by `make clickhouse`): several log folders shipped as separate hosts, re-runs,
a shipper killed mid-batch, rotation and --follow; counts and analyzer answers compared with the
local analyzers on the same events."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from analyze_logs import LogBuilder
from clickhouse_server import Server, server_bin
from conftest import BIN, run_cli

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from gen_log import generate  # noqa: E402

MODES = ("--summary", "--errors", "--commands", "--sessions", "--loops")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One real server for the module, stopped however the module ends."""
    binary = server_bin()
    if binary is None:
        pytest.skip("no ClickHouse server: run `make clickhouse` (or set EPYC_AGENT_CLICKHOUSE_BIN)")
    with Server(binary, tmp_path_factory.mktemp("clickhouse")) as s:
        yield s


@pytest.fixture
def db(server: Server, request: pytest.FixtureRequest) -> str:
    """A fresh database per test: the URL `log ship --to` takes."""
    name = "t_" + request.node.name.replace("[", "_").replace("]", "").replace("-", "_")
    server.query(f"DROP DATABASE IF EXISTS {name}")
    return f"{server.url}/{name}"


def env_for(log_dir: Path) -> dict[str, str]:
    return {"EPYC_AGENT_LOG_DIR": str(log_dir)}


def ship(url: str, log_dir: Path, host: str, *extra: str) -> dict[str, Any]:
    r = run_cli("log", "ship", "--to", url, "--host", host, "--json", *extra, env=env_for(log_dir), timeout=600)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)  # type: ignore[no-any-return]


def analyze(log_dir: Path, *args: str) -> dict[str, Any]:
    r = run_cli("log", "analyze", *args, "--json", env=env_for(log_dir), timeout=600)
    assert r.returncode in (0, 1), r.stderr
    return json.loads(r.stdout)  # type: ignore[no-any-return]


def retry_storms_only(local: dict[str, Any]) -> dict[str, Any]:
    """The local --loops answer limited to the pattern the server answers."""
    found = [f for f in local["findings"] if f["pattern"] == "retry_storm"]
    by = {"retry_storm": len(found)} if found else {}
    return {**local, "findings": found, "count": len(found), "by_pattern": by, "patterns": ["retry_storm"]}


def assert_same_answers(url: str, log_dir: Path, host: str, *filters: str) -> None:
    """Every mode the server answers equals the local analyzer on that host's folder."""
    for mode in MODES:
        local = analyze(log_dir, mode, "--limit", "0", *filters)
        fleet = analyze(log_dir, mode, "--limit", "0", *filters, "--engine", "clickhouse", "--url", url, "--host", host)
        if mode == "--summary":
            assert fleet.pop("log_dir") == url
            local.pop("log_dir")
        if mode == "--loops":
            local = retry_storms_only(local)
        assert fleet == local, mode


def table_counts(server: Server, url: str, host: str | None = None) -> dict[str, int]:
    """Rows as stored (raw), as read (FINAL), distinct keys, and distinct (shard, line) pairs."""
    table = url.rsplit("/", 1)[1] + ".epyc_events"
    where = f"WHERE host = '{host}'" if host else ""
    raw = int(server.query(f"SELECT count() FROM {table} {where}"))
    final = int(server.query(f"SELECT count() FROM {table} FINAL {where}"))
    keys = int(server.query(f"SELECT uniqExact(host, shard, offset, hash) FROM {table} {where}"))
    lines = int(server.query(f"SELECT uniqExact(host, shard, inode, line) FROM {table} FINAL {where}"))
    return {"raw": raw, "final": final, "keys": keys, "lines": lines}


def line_count(log_dir: Path) -> int:
    """Whole lines in the folder's shards (what a ship must store)."""
    return sum(p.read_bytes().count(b"\n") for p in log_dir.glob("agent_audit*.log"))


def odd_lines(d: Path) -> None:
    """Shapes the generator does not write: a blank line, the legacy file, a v1 head around a broken
    middle, an escape, a command without an exit code."""
    b = LogBuilder(d)
    b.raw("agent_audit.log", "[2026-01-01T00:00:05+01:00] TASK_START: legacy bracketed")
    b.raw("agent_audit.log", '{"timestamp":"2026-01-01T00:00:06Z","level":"warning","message":"old warn"}')
    b.raw("agent_audit.log", "")
    b.raw(
        "agent_audit-odd.log",
        '{"ts":"2026-01-01T00:00:07.000000Z","session":"s1","agent":"odd","level":"ERROR","cat":"ERROR",'
        '"msg":"bro"ken","details":"","v":1}',
    )
    b.raw("agent_audit-odd.log", '{"ts":"2026-01-01T00:00:08+01:00","session":"s1","cat":"ERROR","msg":"é \\u00e9"}')
    b.cmd("odd", "s1", "make", 2, 9.0)
    b.cmd("odd", "s1", "make", 2, 10.0)
    b.cmd("odd", "s1", "make", 2, 11.0)
    b.event("odd", "s1", "CMD_RESULT", "pytest", 12.0, cmd="pytest")


# --- without a server --------------------------------------------------------------------------


def test_bad_url_is_one_line(tmp_path: Path) -> None:
    """A URL that is not http(s)://HOST names the form to use (exit 2, no traceback)."""
    r = run_cli("log", "ship", "--to", "clickhouse://x", env=env_for(tmp_path / "logs"))
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "epyc-agent: not a ClickHouse HTTP URL: 'clickhouse://x' (use http://HOST:8123 or http://HOST:8123/DATABASE)"
    ]


def test_unreachable_server_is_one_line(tmp_path: Path) -> None:
    """Nothing listening: one line naming the server, and no checkpoint is written."""
    from clickhouse_server import free_port

    d = tmp_path / "logs"
    LogBuilder(d).event("a", "s", "DECISION", "x")
    url = f"http://127.0.0.1:{free_port()}/fleet"
    r = run_cli("log", "ship", "--to", url, env=env_for(d))
    assert r.returncode == 2
    assert r.stderr.startswith(f"epyc-agent: cannot reach ClickHouse at {url}: ")
    assert len(r.stderr.strip().splitlines()) == 1
    assert not list(d.glob(".state/ship/*/*.json"))


def test_engine_options_are_checked(tmp_path: Path) -> None:
    """--url without --engine clickhouse, a mode the server does not answer, no --url: exit 2."""
    env = env_for(tmp_path / "logs")
    r = run_cli("log", "analyze", "--url", "http://127.0.0.1:1", env=env)
    assert r.returncode == 2 and "--url and --host go with --engine clickhouse" in r.stderr
    r = run_cli("log", "analyze", "--files", "--engine", "clickhouse", "--url", "http://127.0.0.1:1", env=env)
    assert r.returncode == 2
    assert "--files is not answered by --engine clickhouse" in r.stderr
    r = run_cli("log", "analyze", "--engine", "clickhouse", env=env)
    assert r.returncode == 2 and "needs the server" in r.stderr


# --- with the real server -------------------------------------------------------------------


@pytest.mark.slow
def test_hosts_ship_and_answer_like_local(server: Server, db: str, tmp_path: Path) -> None:
    """Three folders shipped as three hosts: every line stored once under its host, and every mode
    (with and without filters) equal to the local analyzers; the fleet answers add the hosts up."""
    dirs = {f"h{i}": tmp_path / f"logs{i}" for i in range(3)}
    for i, d in enumerate(dirs.values()):
        generate(str(d), 12_000, 3, seed=i + 1)
    odd_lines(dirs["h0"])
    for host, d in dirs.items():
        out = ship(db, d, host)
        assert out["lines"] == line_count(d)
    for host, d in dirs.items():
        c = table_counts(server, db, host)
        assert c["final"] == c["keys"] == c["lines"] == line_count(d)
        assert_same_answers(db, d, host)
    assert_same_answers(db, dirs["h0"], "h0", "--agent", "agent1", "--level", "ERROR,WARN")
    assert_same_answers(db, dirs["h1"], "h1", "--since", "2026-01-02", "--until", "2026-01-03T12:00:00+01:00")
    fleet = analyze(dirs["h0"], "--summary", "--engine", "clickhouse", "--url", db)
    assert fleet["events"] == sum(analyze(d, "--summary")["events"] for d in dirs.values())
    errors = analyze(dirs["h0"], "--errors", "--limit", "3", "--engine", "clickhouse", "--url", db)
    assert all(e["where"].split(":", 1)[0] in dirs for e in errors["events"])


@pytest.mark.slow
def test_rerun_and_growth_ship_only_new_whole_lines(server: Server, db: str, tmp_path: Path) -> None:
    """A re-run ships nothing; appended lines are shipped once; an unfinished last line waits until
    its newline is written, and is then shipped whole."""
    d = tmp_path / "logs"
    generate(str(d), 3_000, 2, seed=5)
    n = line_count(d)
    assert ship(db, d, "a")["lines"] == n
    assert ship(db, d, "a")["lines"] == 0
    b = LogBuilder(d)
    b.cmd("agent0", "s9", "make", 1, 9e6)
    shard = d / "agent_audit-agent0.log"
    with open(shard, "a") as f:
        f.write('{"ts":"2026-05-01T00:00:00.000000Z","session":"s9","agent":"agent0","level":"INFO","cat":"DEC')
    out = ship(db, d, "a")
    assert (out["lines"], out["events"]) == (1, 1)
    with open(shard, "a") as f:
        f.write('ISION","msg":"late","details":"","v":1}\n')
    assert ship(db, d, "a")["events"] == 1
    c = table_counts(server, db)
    assert c["raw"] == c["final"] == line_count(d) == n + 2
    assert_same_answers(db, d, "a")


@pytest.mark.slow
def test_sigkill_mid_batch_neither_duplicates_nor_loses(server: Server, db: str, tmp_path: Path) -> None:
    """The shipper SIGKILLed after its first batches, then re-run: every line stored exactly once
    (FINAL) and the answers equal the local ones; with every checkpoint lost too, a re-run re-sends
    everything and the keys still collapse it to one row per line."""
    d = tmp_path / "logs"
    generate(str(d), 200_000, 4, seed=9)
    total = line_count(d)
    env = {**os.environ, **env_for(d)}
    p = subprocess.Popen([str(BIN), "log", "ship", "--to", db, "--host", "k"], env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not list(d.glob(".state/ship/*/*.json")) and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.02)
    time.sleep(0.3)  # into the next batches: rows inserted whose checkpoint is not written yet
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)
    assert p.returncode == -signal.SIGKILL, "the shipper finished before it could be killed"
    before = table_counts(server, db)
    assert 0 < before["final"] < total
    out = ship(db, d, "k")
    after = table_counts(server, db)
    resent = before["raw"] + out["lines"] - total  # lines the second run sent again
    duplicates, lost = after["final"] - after["lines"], total - after["lines"]
    print(
        f"\ncrash test: {total} lines, {before['raw']} stored at the kill, {resent} re-sent, "
        f"{after['raw'] - after['final']} duplicate rows collapsed, duplicates {duplicates}, lost {lost}"
    )
    assert (duplicates, lost) == (0, 0)
    assert after["final"] == after["keys"] == total
    assert_same_answers(db, d, "k")
    # the worst crash: every row inserted, no checkpoint written (all of them lost): all re-sent
    for cp in d.glob(".state/ship/*/*.json"):
        cp.unlink()
    assert ship(db, d, "k")["lines"] == total
    again = table_counts(server, db)
    assert again["final"] == again["lines"] == total  # (raw: what background merges have not collapsed yet)
    server.query(f"OPTIMIZE TABLE {db.rsplit('/', 1)[1]}.epyc_events FINAL")
    assert table_counts(server, db)["raw"] == total  # the duplicates are gone from storage too
    print(
        f"checkpoints lost: {total} lines re-sent, duplicates {again['final'] - again['lines']}, "
        f"lost {total - again['lines']}"
    )
    assert_same_answers(db, d, "k")


@pytest.mark.slow
def test_rotated_shard_is_finished_then_restarted(server: Server, db: str, tmp_path: Path) -> None:
    """A shard renamed away (logrotate's .1) and recreated: the old file's unshipped tail and the new
    file are both shipped, each line once; a rotated file that is gone is reported, not hidden."""
    d = tmp_path / "logs"
    b = LogBuilder(d)
    for i in range(5):
        b.cmd("a", "s", f"step {i}", 0, float(i))
    ship(db, d, "r")
    for i in range(5, 8):
        b.cmd("a", "s", f"step {i}", 0, float(i))
    shard = d / "agent_audit-a.log"
    shard.rename(d / "agent_audit-a.log.1")
    b.counts.clear()
    for i in range(8, 10):
        b.cmd("a", "s", f"step {i}", 0, float(i))
    out = ship(db, d, "r")
    assert out["lines"] == 5 and out["notes"] == []
    c = table_counts(server, db)
    assert c["raw"] == c["final"] == 10
    shard.rename(d / "gone")
    b.cmd("a", "s", "step 10", 0, 10.0)  # a new file before the old inode is freed: no inode reuse
    (d / "gone").unlink()
    (d / "agent_audit-a.log.1").unlink()
    out = ship(db, d, "r")
    assert out["lines"] == 1
    assert len(out["notes"]) == 1 and "was rotated" in out["notes"][0]


@pytest.mark.slow
def test_follow_ships_growth_and_stops_on_sigterm(server: Server, db: str, tmp_path: Path) -> None:
    """--follow ships what is there, then each new line within seconds; SIGTERM ends it with exit 0
    and a checkpoint that a one-shot run continues from (nothing more to ship)."""
    d = tmp_path / "logs"
    b = LogBuilder(d)
    b.event("a", "s", "DECISION", "first")
    env = {**os.environ, **env_for(d)}
    p = subprocess.Popen(
        [str(BIN), "log", "ship", "--to", db, "--host", "f", "--follow", "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def stored() -> int:
            try:
                return table_counts(server, db)["final"]
            except OSError:  # the table is not created yet
                return 0

        def wait_for(n: int) -> None:
            end = time.monotonic() + 30
            while stored() < n and time.monotonic() < end:
                time.sleep(0.1)
            assert stored() == n

        wait_for(1)
        for i in range(3):
            b.event("a", "s", "DECISION", f"more {i}")
        LogBuilder(d).event("b", "s", "DECISION", "a new shard")
        wait_for(5)
    finally:
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    rounds = [json.loads(x) for x in out.splitlines()]
    assert sum(r["lines"] for r in rounds) == 5
    assert ship(db, d, "f")["lines"] == 0
