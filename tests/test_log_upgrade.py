"""`epyc-agent log upgrade`: old shards rewritten as v1 with a backup, the analyzers' answers unchanged,
shards still being written refused."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from conftest import run_cli
from test_analyze_formats import build

ANSWERS = [
    ["--sessions"],
    ["--commands", "--limit", "0"],
    ["--files", "--limit", "0"],
    ["--loops"],
    ["--rollbacks"],
    ["--session", "ses_e"],
]


def _age(log_dir: Path, seconds: float = 3600) -> None:
    t = time.time() - seconds
    for p in log_dir.iterdir():
        os.utime(p, (t, t))


def _events_as_v1(x: object) -> object:
    """A printed event shows its time as written and its `v`: only those may change."""
    if isinstance(x, dict):
        return {k: _events_as_v1(v) for k, v in x.items() if "where" not in x or k not in ("ts", "v")}
    return [_events_as_v1(v) for v in x] if isinstance(x, list) else x


def _answers(root: Path) -> list[object]:
    return [
        _events_as_v1(json.loads(run_cli("log", "analyze", *a, "--json", env={"EPYC_AGENT_ROOT": str(root)}).stdout))
        for a in ANSWERS
    ]


def _upgrade(root: Path, *args: str) -> tuple[int, dict, str]:
    r = run_cli("log", "upgrade", *args, "--json", env={"EPYC_AGENT_ROOT": str(root)})
    return r.returncode, json.loads(r.stdout), r.stderr


def test_upgrade_keeps_every_answer_and_the_original(root: Path, log_dir: Path) -> None:
    """Every old-format event becomes its v1 line; corrupt and odd lines stay; the original is <shard>.orig."""
    build(log_dir)
    _age(log_dir)
    before = {p.name: p.read_bytes() for p in log_dir.iterdir()}
    answers = _answers(root)
    summary = json.loads(run_cli("log", "analyze", "--json").stdout)
    chain = json.loads(run_cli("log", "verify", "--json").stdout)["counts"]

    rc, res, err = _upgrade(root)
    assert (rc, err) == (0, "")
    assert res["counts"] == {"upgraded": 6, "would upgrade": 0, "refused": 0, "v1": 0}
    for row in res["shards"]:
        name = os.path.basename(row["shard"])
        assert Path(row["backup"]).read_bytes() == before[name]
        assert row["lines"] == before[name].count(b"\n") + (not before[name].endswith(b"\n"))
    assert _answers(root) == answers
    after = json.loads(run_cli("log", "analyze", "--json").stdout)
    assert after["legacy_lines"] < summary["legacy_lines"] // 50  # the rest are read as v1 now
    assert {**after, "legacy_lines": 0} == {**summary, "legacy_lines": 0}
    assert json.loads(run_cli("log", "verify", "--json").stdout)["counts"] == chain  # chained lines kept as they were

    rc, res, _ = _upgrade(root)  # nothing left to do, nothing touched
    assert rc == 0 and res["counts"]["v1"] == 6
    assert [p.name for p in sorted(log_dir.iterdir()) if p.suffix == ".orig"] == sorted(f"{n}.orig" for n in before)


def test_dry_run_writes_nothing(root: Path, log_dir: Path) -> None:
    """--dry-run says what it would upgrade and leaves every file as it was."""
    build(log_dir)
    _age(log_dir)
    before = {p.name: p.read_bytes() for p in log_dir.iterdir()}
    rc, res, _ = _upgrade(root, "--dry-run")
    assert rc == 0 and res["counts"]["would upgrade"] == 6
    assert {p.name: p.read_bytes() for p in log_dir.iterdir()} == before


def test_shards_still_written_are_refused(root: Path, log_dir: Path) -> None:
    """A shard written recently, open in another process, or with a backup already there is left alone (exit 2)."""
    build(log_dir)
    _age(log_dir)
    recent, held, backed = (log_dir / f"agent_audit-agent{n}.log" for n in (0, 1, 2))
    os.utime(recent)
    (log_dir / "agent_audit-agent2.log.orig").write_bytes(b"an earlier backup\n")
    before = {p: p.read_bytes() for p in (recent, held, backed)}
    with open(held, "rb"):
        rc, res, err = _upgrade(root)
    assert rc == 2
    reasons = {os.path.basename(r["shard"]): r.get("reason", "") for r in res["shards"] if r["status"] == "refused"}
    assert reasons.keys() == {recent.name, held.name, backed.name}
    assert "less than 300 s" in reasons[recent.name] and reasons[held.name] == "open in another process"
    assert "agent_audit-agent2.log.orig exists" in reasons[backed.name]
    assert err.count("\n") == 3 and f"refused {recent}: written" in err
    assert {p: p.read_bytes() for p in (recent, held, backed)} == before
    assert not (log_dir / "agent_audit-agent0.log.orig").exists()
    rc, res, _ = _upgrade(root, "--idle", "0", str(recent))
    assert rc == 0 and res["shards"][0]["status"] == "upgraded"


def test_human_output_and_bad_shard(root: Path, log_dir: Path) -> None:
    """A table and a summary line; a shard that does not exist is a one-line error."""
    build(log_dir)
    _age(log_dir)
    r = run_cli("log", "upgrade", "--dry-run")
    assert r.returncode == 0 and r.stdout.splitlines()[-1] == "6 shard(s): 6 would be upgraded, 0 already v1, 0 refused"
    r = run_cli("log", "upgrade", str(log_dir / "nope.log"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "no shard" in r.stderr and "Traceback" not in r.stderr


def test_refuses_shipped_shards_and_files_outside_the_log(tmp_path: Path, log_dir: Path) -> None:
    """A shard `log ship` has a checkpoint for is refused (its rewritten lines would be new rows in
    the fleet table); a file outside the log folder is not a shard."""
    log_dir.mkdir(parents=True)
    line = '{"ts":"2025-12-01T12:32:28+01:00","session":"s","level":"INFO","cat":"OBSERVE","msg":"m","details":""}\n'
    (log_dir / "agent_audit-a.log").write_text(line)
    _age(log_dir)
    ship = log_dir / ".state" / "ship" / "d1"
    ship.mkdir(parents=True)
    (ship / "agent_audit-a.log.json").write_text('{"inode": 1, "offset": 0, "line": 0}')
    r = run_cli("log", "upgrade", "--json")
    assert r.returncode == 2, r.stdout
    (row,) = json.loads(r.stdout)["shards"]
    assert row["status"] == "refused" and "already shipped" in row["reason"]
    assert (log_dir / "agent_audit-a.log").read_text() == line
    outside = tmp_path / "other.log"
    outside.write_text(line)
    r = run_cli("log", "upgrade", str(outside))
    assert r.returncode == 2 and "in the log folder" in r.stderr and not (tmp_path / "other.log.orig").exists()
