"""`log tail --follow` as a real process: appended lines, a partial line, a new shard, rotation."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import time
from pathlib import Path

from analyze_logs import T0, LogBuilder, key
from conftest import BIN, run_cli

from epyc_agent.events.schema import encode_event, make_event


def line(agent: str, msg: str, t: float) -> bytes:
    return encode_event(make_event("OBSERVE", msg, session="s", agent=agent, ts=key(T0 + t)))


def read_events(p: subprocess.Popen[bytes], n: int, timeout: float = 20) -> list[dict]:
    """The next n JSON lines from the follower's stdout."""
    assert p.stdout is not None
    out: list[dict] = []
    buf = b""
    end = time.monotonic() + timeout
    while len(out) < n:
        left = end - time.monotonic()
        assert left > 0, f"timed out; got {out}"
        ready, _, _ = select.select([p.stdout], [], [], left)
        if ready:
            chunk = os.read(p.stdout.fileno(), 65536)
            assert chunk, "follower exited"
            buf += chunk
            *done, buf = buf.split(b"\n")
            out += [json.loads(x) for x in done if x]
    assert not buf
    return out


def test_follow_real_process(log_dir: Path) -> None:
    """New lines are printed as they arrive; partial lines wait; new and rotated shards are read; SIGTERM exits 0."""
    b = LogBuilder(log_dir)
    b.event("a", "s", "OBSERVE", "old", 0)
    shard = log_dir / "agent_audit-a.log"
    zero = line("a", "zero", 0.5)
    with open(shard, "ab") as f:
        f.write(zero[:30])  # being written when the follower starts
    p = subprocess.Popen(
        [str(BIN), "log", "tail", "--follow", "--json", "-n", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert [e["msg"] for e in read_events(p, 1)] == ["old"]
        assert p.stderr is not None and b"following 1 shard(s)" in p.stderr.readline()
        full, half = line("a", "one", 1), line("a", "two", 2)
        with open(shard, "ab") as f:
            f.write(zero[30:] + full + half[:40])
            f.flush()
            assert [(e["msg"], e["where"]) for e in read_events(p, 2)] == [
                ("zero", f"{shard}:2"),
                ("one", f"{shard}:3"),
            ]
            time.sleep(0.3)
            f.write(half[40:])
        assert [(e["msg"], e["where"]) for e in read_events(p, 1)] == [("two", f"{shard}:4")]
        (log_dir / "agent_audit-b.log").write_bytes(b"[2026-01-10T01:00:03+01:00] TASK_END: legacy in a new shard\n")
        assert [(e["msg"], e["agent"]) for e in read_events(p, 1)] == [("legacy in a new shard", "b")]
        with open(shard, "ab") as f:  # written just before rotation: still read from the old file
            f.write(line("a", "last before rotation", 4))
        shard.rename(log_dir / "agent_audit-a.log.1")
        shard.write_bytes(line("a", "first after rotation", 5))
        got = read_events(p, 2)
        assert [(e["msg"], e["where"]) for e in got] == [
            ("last before rotation", f"{shard}:5"),
            ("first after rotation", f"{shard}:1"),
        ]
    finally:
        p.send_signal(signal.SIGTERM)
        rc = p.wait(timeout=10)
    assert rc == 0


def test_tail_without_follow_and_shell_library(log_dir: Path) -> None:
    """`log tail -n`, and the shell library's agent_log_tail / agent_log_session work."""
    b = LogBuilder(log_dir)
    for n in range(5):
        b.event("a", "s_shell", "OBSERVE", f"m{n}", n)
    r = run_cli("log", "tail", "-n", "2")
    assert [ln.split()[-1] for ln in r.stdout.splitlines()] == ["m3", "m4"]
    init = run_cli("shell-init").stdout
    bash = subprocess.run(
        ["bash", "-c", f"{init}\nagent_log_tail 3; echo ---; agent_log_session s_shell"],
        capture_output=True,
        text=True,
        env={**os.environ, "EPYC_AGENT_BIN": str(BIN)},
    )
    assert bash.returncode == 0, bash.stderr
    tail, session = bash.stdout.split("---\n")
    assert [ln.split()[-1] for ln in tail.splitlines()] == ["m2", "m3", "m4"]
    assert "session   s_shell" in session and session.rstrip().endswith("m4")
    bash = subprocess.run(
        ["bash", "-c", f"{init}\nagent_log_session"],
        capture_output=True,
        text=True,
        env={**os.environ, "EPYC_AGENT_BIN": str(BIN), "EPYC_AGENT_SESSION": "s_shell"},
    )
    assert bash.returncode == 0 and bash.stdout.count(" m") == 5
