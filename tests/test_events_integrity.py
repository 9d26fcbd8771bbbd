"""The audit log under faults: partial lines, short writes and planted files never cost another event."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_cli

from epyc_agent.events.reader import ReadStats, read_events
from epyc_agent.events.schema import encode_event, make_event
from epyc_agent.events.writer import AuditLog, ShardError


def read(log_dir: Path) -> tuple[list[dict], ReadStats]:
    stats = ReadStats()
    return list(read_events(log_dir, stats)), stats


def summary(log_dir: Path) -> dict:
    r = run_cli("log", "analyze", "--summary", "--json", env={"EPYC_AGENT_LOG_DIR": str(log_dir)})
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def write_events(log_dir: Path, *msgs: str) -> Path:
    with AuditLog(log_dir, "s", "main") as log:
        for m in msgs:
            log.observe(m, 1)
    return log_dir / "agent_audit-main.log"


def test_partial_last_line_then_new_event(log_dir: Path) -> None:
    """A line cut short (disk full, kill -9) stays one corrupt line with file:line; the next event reads back whole."""
    shard = write_events(log_dir, "first", "second")
    raw = shard.read_bytes()
    shard.write_bytes(raw[:-30])  # the second line lost its tail and its newline
    write_events(log_dir, "third")
    evs, stats = read(log_dir)
    assert [e["msg"] for e in evs] == ["first", "third"]
    assert [(c.location(), c.error) for c in stats.corrupt] == [(f"{shard}:2", "not an event")]
    s = summary(log_dir)
    assert (s["events"], s["corrupt"]) == (2, 1)
    assert s["corrupt_lines"] == [f"{shard}:2: not an event"]


def test_whole_last_line_gets_no_extra_newline(log_dir: Path) -> None:
    """The legitimate twin: appending to an intact shard adds exactly one line and no blank one."""
    shard = write_events(log_dir, "first")
    write_events(log_dir, "second")
    raw = shard.read_bytes()
    assert raw.count(b"\n") == 2 and b"\n\n" not in raw
    evs, stats = read(log_dir)
    assert [e["msg"] for e in evs] == ["first", "second"] and stats.corrupt_count == 0


def test_glued_line_from_an_old_writer_is_reported(log_dir: Path) -> None:
    """A partial line with an event appended onto it (no newline repair) is corrupt in the reader and in analyze."""
    shard = write_events(log_dir, "first", "second")
    shard.write_bytes(shard.read_bytes()[:-30])
    glued = encode_event(make_event("OBSERVE", "glued", session="s", agent="main"))
    with open(shard, "ab") as f:  # what a writer without the repair does
        f.write(glued)
    evs, stats = read(log_dir)
    assert [e["msg"] for e in evs] == ["first"]
    assert stats.corrupt[0].location() == f"{shard}:2"
    assert stats.corrupt[0].error.startswith("partial event with another glued on")
    s = summary(log_dir)
    assert (s["events"], s["corrupt"]) == (1, 1)
    assert "glued" in s["corrupt_lines"][0] and s["corrupt_lines"][0].startswith(f"{shard}:2:")


def test_nested_event_shaped_data_is_not_glued(log_dir: Path) -> None:
    """The legitimate twin: an event whose data holds an event-shaped object reads as one good event."""
    inner = make_event("OBSERVE", "inner", session="s", agent="main")
    with AuditLog(log_dir, "s", "main") as log:
        log.event("OBSERVE", "outer", data={"copy": inner})
    evs, stats = read(log_dir)
    assert [e["msg"] for e in evs] == ["outer"] and stats.corrupt_count == 0
    assert summary(log_dir)["corrupt"] == 0


SHORT_WRITE = """
import resource, signal, sys
from epyc_agent.events.writer import AuditLog
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit is short, then EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), resource.RLIM_INFINITY))
try:
    AuditLog(sys.argv[1], "s", "main").observe("cut", "x" * 500)
except OSError as e:
    print("raised", e.errno)
"""


def test_short_write_is_reported_and_not_merged(log_dir: Path) -> None:
    """A real short write (the file size limit, as on a full disk) raises, and the next event is not glued to it."""
    shard = write_events(log_dir, "first")
    size = shard.stat().st_size
    r = subprocess.run(
        [sys.executable, "-c", SHORT_WRITE, str(log_dir), str(size + 40)], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[0] == "raised"
    assert shard.stat().st_size == size + 40  # 40 bytes of the event made it to disk
    write_events(log_dir, "after")
    evs, stats = read(log_dir)
    assert [e["msg"] for e in evs] == ["first", "after"]
    assert [c.location() for c in stats.corrupt] == [f"{shard}:2"]


def test_symlinked_shard_is_refused(tmp_path: Path, log_dir: Path) -> None:
    """A shard name planted as a symlink to a file outside the log dir is not followed; nothing is written there."""
    outside = tmp_path / "outside.txt"
    outside.write_text("keep\n")
    log_dir.mkdir(parents=True)
    (log_dir / "agent_audit-main.log").symlink_to(outside)
    with pytest.raises(ShardError, match="symlink"), AuditLog(log_dir, "s", "main") as log:
        log.observe("x", 1)
    assert outside.read_text() == "keep\n"


def test_fifo_shard_is_refused_without_hanging(log_dir: Path) -> None:
    """A FIFO at a shard's name is refused at once (no reader would otherwise block the hook)."""
    log_dir.mkdir(parents=True)
    os.mkfifo(log_dir / "agent_audit-main.log")
    with pytest.raises(ShardError, match="not a regular file"), AuditLog(log_dir, "s", "main") as log:
        log.observe("x", 1)
