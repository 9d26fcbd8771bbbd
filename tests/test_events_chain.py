"""The hash chain: every event chained to the one before it in its shard, and `log verify` naming
the first line where a shard was edited, cut, reordered or added to."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from conftest import BIN, run_cli

from epyc_agent.events.writer import AuditLog

SHARD = "agent_audit-main.log"


def write(log_dir: Path, n: int, agent: str = "main") -> Path:
    """n chained events on one shard, written as the library writes them."""
    with AuditLog(log_dir, "ses_1", agent) as log:
        for i in range(n):
            log.observe("step", i)
    return log_dir / f"agent_audit-{agent}.log"


def verify(*args: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    r = run_cli("log", "verify", "--json", *args, env=env)
    assert r.returncode in (0, 1), r.stderr
    return r.returncode, json.loads(r.stdout)


def only(res: dict[str, Any]) -> dict[str, Any]:
    (v,) = res["shards"]
    return v


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def test_an_untouched_log_verifies(log_dir: Path) -> None:
    """Events written by the library carry seq 1..n and verify as intact (exit 0)."""
    path = write(log_dir, 5)
    assert [json.loads(x)["seq"] for x in lines(path)] == [1, 2, 3, 4, 5]
    assert all(x.endswith(b'","v":1}\n') for x in lines(path))
    code, res = verify()
    assert code == 0
    assert res == {
        "log_dir": str(log_dir),
        "shards": [
            {
                "shard": str(path),
                "status": "intact",
                "lines": 5,
                "chained": 5,
                "unchained": 0,
                "first_chained_line": 1,
                "problem": None,
                "notes": [],
            }
        ],
        "counts": {"intact": 1, "unchained": 0, "tampered": 0, "empty": 0},
    }


def test_an_edited_line_is_named(log_dir: Path) -> None:
    """One changed byte in line 3's data: line 3 is named as edited (exit 1); text output says so too."""
    path = write(log_dir, 6)
    ls = lines(path)
    ls[2] = ls[2].replace(b'"value":2', b'"value":7')
    path.write_bytes(b"".join(ls))
    code, res = verify()
    assert code == 1
    v = only(res)
    assert (v["status"], v["problem"], v["chained"]) == (
        "tampered",
        {"line": 3, "kind": "edited", "message": "its hash does not match its content"},
        2,
    )
    r = run_cli("log", "verify")
    assert r.returncode == 1
    assert "TAMPERED" in r.stdout and "line 3: edited" in r.stdout, r.stdout
    assert r.stdout.rstrip().endswith("1 shard(s): 0 intact, 0 unchained, 1 tampered")


def test_a_deleted_line_is_named(log_dir: Path) -> None:
    """Line 4 removed: the line now at 4 is named, and event #4 as the one missing."""
    path = write(log_dir, 8)
    ls = lines(path)
    path.write_bytes(b"".join(ls[:3] + ls[4:]))
    code, res = verify()
    assert code == 1
    assert only(res)["problem"] == {
        "line": 4,
        "kind": "deleted",
        "message": "event #4 is missing before it (deleted, or the shard cut here)",
    }
    assert only(res)["lines"] == 7


def test_a_shard_cut_in_the_middle_is_named(log_dir: Path) -> None:
    """Bytes cut from inside line 3 to inside line 6 (a truncation mid-file): line 3 is named."""
    path = write(log_dir, 9)
    data = path.read_bytes()
    ls = lines(path)
    start = sum(map(len, ls[:2])) + 40
    end = sum(map(len, ls[:5])) + 60
    path.write_bytes(data[:start] + data[end:])
    code, res = verify()
    assert code == 1
    assert only(res)["problem"] == {
        "line": 3,
        "kind": "deleted",
        "message": "event #3-#5 is missing before it (deleted, or the shard cut here)",
    }


def test_reordered_lines_are_named(log_dir: Path) -> None:
    """Lines 4 and 5 swapped: line 4 is named as reordered, with where the missing event went."""
    path = write(log_dir, 7)
    ls = lines(path)
    ls[3], ls[4] = ls[4], ls[3]
    path.write_bytes(b"".join(ls))
    code, res = verify()
    assert code == 1
    assert only(res)["problem"] == {
        "line": 4,
        "kind": "reordered",
        "message": "event #4 should come before it but is at line 5 (lines moved)",
    }


def test_a_copied_line_is_named(log_dir: Path) -> None:
    """Line 2 appended again at the end: the copy is out of order."""
    path = write(log_dir, 4)
    ls = lines(path)
    path.write_bytes(b"".join([*ls, ls[1]]))
    code, res = verify()
    assert code == 1
    assert only(res)["problem"] == {
        "line": 5,
        "kind": "reordered",
        "message": "it holds event #2 after #4 (lines moved or copied)",
    }


def test_deleting_the_first_lines_is_seen(log_dir: Path) -> None:
    """The chain's first two lines removed: it now begins at event #3, which is named."""
    path = write(log_dir, 5)
    path.write_bytes(b"".join(lines(path)[2:]))
    code, res = verify()
    assert code == 1
    assert only(res)["problem"] == {
        "line": 1,
        "kind": "deleted",
        "message": "the chain begins at event #3: the 2 chained events before it are gone",
    }


def test_an_unchained_event_inside_the_chain_is_an_insertion(log_dir: Path) -> None:
    """A well-formed v1 event without a hash, slipped between chained lines, is named as inserted."""
    path = write(log_dir, 4)
    ls = lines(path)
    forged = json.loads(ls[1])
    del forged["seq"], forged["hash"]
    forged["msg"] = "forged"
    path.write_bytes(b"".join([*ls[:2], json.dumps(forged, separators=(",", ":")).encode() + b"\n", *ls[2:]]))
    code, res = verify()
    assert code == 1
    assert only(res)["problem"]["line"] == 3
    assert only(res)["problem"]["kind"] == "inserted"


def test_a_lost_last_line_is_a_crash_not_tampering(log_dir: Path) -> None:
    """A last line cut short (a writer killed mid-write) is a note with exit 0; the next event
    chains to the line before it, and the shard still verifies, the partial line noted."""
    path = write(log_dir, 5)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 30])
    code, res = verify()
    assert code == 0
    v = only(res)
    assert (v["status"], v["chained"], v["problem"]) == ("intact", 4, None)
    assert v["notes"] == ["line 5 is unfinished (a write cut short by a crash); every event before it verifies"]
    r = run_cli("log", "verify")
    assert r.returncode == 0 and "line 5 is unfinished" in r.stdout, r.stdout

    write(log_dir, 2)  # the writer ends the partial line and chains on from line 4
    ls = lines(path)
    assert len(ls) == 7 and json.loads(ls[5])["seq"] == 5 and json.loads(ls[6])["seq"] == 6
    code, res = verify()
    assert code == 0
    v = only(res)
    assert (v["status"], v["chained"], v["lines"]) == ("intact", 6, 7)
    assert v["notes"] == ["line 5 is unreadable (an interrupted write); the chain steps over it"]


def _old_toolkit_lines() -> bytes:
    """The old agent_log.sh's own shapes: `ts` with an offset and no `v`, `timestamp`-keyed, bracketed."""
    return (
        b'{"ts":"2025-12-01T12:32:28+01:00","session":"s0","level":"INFO","cat":"TASK_START","msg":"old",'
        b'"details":""}\n'
        b'{"timestamp":"2025-12-01T12:33:00Z","cat":"OBSERVE","message":"older"}\n'
        b"[2025-12-01T12:34:49+01:00] TASK_END: done\n"
    )


def test_old_shards_verify_as_unchained_and_may_become_chained(log_dir: Path) -> None:
    """A shard in the old formats is unchained (exit 0); once our writer appends to it, the chain
    starts there and the shard verifies as intact, the older lines noted as predating it."""
    log_dir.mkdir(parents=True)
    legacy = log_dir / "agent_audit.log"
    legacy.write_bytes(_old_toolkit_lines())
    shard = log_dir / SHARD
    shard.write_bytes(_old_toolkit_lines())
    code, res = verify()
    assert code == 0
    assert [(v["shard"], v["status"], v["unchained"]) for v in res["shards"]] == [
        (str(legacy), "unchained", 3),
        (str(shard), "unchained", 3),
    ]
    write(log_dir, 3)
    code, res = verify(str(shard))
    assert code == 0
    v = only(res)
    assert (v["status"], v["first_chained_line"], v["chained"], v["unchained"]) == ("intact", 4, 3, 3)
    assert v["notes"] == ["lines 1-3 predate the chain (unchained)"]
    r = run_cli("log", "verify")
    assert r.returncode == 0
    assert "UNCHAINED" in r.stdout and "INTACT" in r.stdout and "1 intact, 1 unchained, 0 tampered" in r.stdout


_WRITER = """
import sys
from epyc_agent.events.writer import AuditLog
log_dir, who, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
with AuditLog(log_dir, "ses_" + who, "shared") as log:
    for i in range(n):
        log.observe(who, i)
        if i % 50 == 0:  # a fresh descriptor now and then: a new process's first write
            log.close()
"""


def test_concurrent_writers_make_one_valid_chain(log_dir: Path) -> None:
    """Four real processes appending to one shard at once still produce one chain, seq 1..n."""
    log_dir.mkdir(parents=True)
    n, procs = 400, 4
    ps = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(log_dir), f"w{k}", str(n)], stderr=subprocess.PIPE)
        for k in range(procs)
    ]
    for p in ps:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    path = log_dir / "agent_audit-shared.log"
    evs = [json.loads(x) for x in lines(path)]
    assert [e["seq"] for e in evs] == list(range(1, n * procs + 1))
    sessions = [e["session"] for e in evs]
    assert len({s for a, s in zip(sessions, sessions[1:], strict=False) if a != s}) > 1, "the writers never interleaved"
    code, res = verify()
    assert code == 0
    assert (only(res)["status"], only(res)["chained"]) == ("intact", n * procs)


def test_forked_writers_sharing_one_log_make_one_chain(log_dir: Path) -> None:
    """An AuditLog opened before a fork is used by parent and children at once (a shared descriptor
    would share its lock too): each process writes on its own descriptor, and the chain holds."""
    log = AuditLog(log_dir, "ses_fork", "main")
    log.observe("parent", -1)
    children = []
    for k in range(3):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            try:
                for i in range(300):
                    log.observe(f"child{k}", i)
            finally:
                os._exit(0)
        children.append(pid)
    for i in range(300):
        log.observe("parent", i)
    for pid in children:
        assert os.waitpid(pid, 0)[1] == 0
    log.close()
    assert [json.loads(x)["seq"] for x in lines(log_dir / SHARD)] == list(range(1, 1202))
    code, res = verify()
    assert code == 0 and only(res)["status"] == "intact"


def test_the_hook_writes_chained_lines(tmp_path: Path, root: Path, log_dir: Path) -> None:
    """The real `epyc-agent hook`, as Claude Code runs it, writes chained events that verify."""
    payload = {
        "session_id": "3f6c2a9e-1b7d-4c1e-9a55-0d2e8f7b6a11",
        "transcript_path": "",
        "cwd": str(tmp_path),
        "permission_mode": "default",
    }
    for event, more in [
        ("SessionStart", {"source": "startup"}),
        ("PreToolUse", {"tool_name": "Bash", "tool_use_id": "t1", "tool_input": {"command": "ls"}}),
        ("PostToolUse", {"tool_name": "Bash", "tool_use_id": "t1", "tool_input": {"command": "ls"}}),
    ]:
        r = subprocess.run(
            [str(BIN), "hook"],
            input=json.dumps({**payload, "hook_event_name": event, **more}).encode(),
            capture_output=True,
            timeout=60,
        )
        assert r.returncode == 0, r.stderr
    (shard,) = sorted(log_dir.glob("agent_audit-*.log"))
    evs = [json.loads(x) for x in lines(shard)]
    assert {"SESSION_START", "CMD_INTENT", "CMD_RESULT"} <= {e["cat"] for e in evs}
    assert [e["seq"] for e in evs] == list(range(1, len(evs) + 1))
    code, res = verify()
    assert code == 0 and only(res)["status"] == "intact"


def test_the_shell_library_writes_chained_events(tmp_path: Path, log_dir: Path) -> None:
    """`agent_*` from the shell library: with a key the bash fast path steps aside, so every event is chained."""
    script = 'eval "$("$BIN" shell-init)"; agent_task_start "build" "why"; agent_cmd_result make 0; agent_warn "w"'
    env = {**os.environ, "BIN": str(BIN), "EPYC_AGENT_SESSION": "ses_20261203_120000_abcdef"}
    r = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert [json.loads(x)["seq"] for x in lines(log_dir / SHARD)] == [1, 2, 3]
    assert only(verify()[1])["status"] == "intact"


def test_another_key_is_suspected_when_nothing_verifies(tmp_path: Path, log_dir: Path) -> None:
    """Verified with a key that did not write the shard, the first line fails and the message says
    the key may be the cause."""
    write(log_dir, 2)
    other = tmp_path / "other-home"
    key = other / ".local" / "state" / "epyc-agent" / "hook-secret"
    r = run_cli("log", "verify", env={"HOME": str(other)})
    assert r.returncode == 2 and "no usable secret key" in r.stderr  # never a new key minted to check with
    assert not key.exists()
    key.parent.mkdir(parents=True)
    key.write_bytes(os.urandom(32))
    key.chmod(0o600)
    code, res = verify(env={"HOME": str(other)})
    assert code == 1
    assert only(res)["lines"] == 2
    assert only(res)["problem"] == {
        "line": 1,
        "kind": "edited",
        "message": "its hash does not match its content (or this is not the key that wrote it: run verify as "
        "the writer's user)",
    }


def test_a_log_dir_without_shards_says_so(log_dir: Path) -> None:
    """Nothing logged yet: verify says there is nothing to check, exit 0."""
    r = run_cli("log", "verify")
    assert (r.returncode, r.stdout) == (0, f"no shards in {log_dir}\n")


def test_a_missing_shard_is_a_usage_error(tmp_path: Path) -> None:
    """A SHARD that does not exist: one line naming it, exit 2."""
    r = run_cli("log", "verify", str(tmp_path / "nope.log"))
    assert r.returncode == 2
    assert r.stderr.startswith("epyc-agent: ") and "nope.log" in r.stderr and "Traceback" not in r.stderr


def test_a_held_lock_fails_the_write_and_the_hook_denies(tmp_path: Path, log_dir: Path) -> None:
    """A process sitting on the shard's lock cannot stall the hook: the write gives up after the
    wait and a writing call, which could then not be recorded, is denied."""
    write(log_dir, 1)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl,sys,time; f=open(sys.argv[1]); fcntl.flock(f, fcntl.LOCK_EX); "
            "print('locked', flush=True); time.sleep(60)",
            str(log_dir / SHARD),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        payload = {
            "session_id": "s",
            "transcript_path": "",
            "cwd": str(tmp_path),
            "hook_event_name": "PreToolUse",
            "tool_name": "Bash",
            "tool_use_id": "t",
            "tool_input": {"command": "ls"},
        }
        t = time.monotonic()
        r = subprocess.run(
            [str(BIN), "hook"],
            input=json.dumps(payload).encode(),
            capture_output=True,
            timeout=60,
            env={**os.environ, "EPYC_AGENT_ID": "main"},
        )
        took = time.monotonic() - t
    finally:
        holder.kill()
        holder.wait()
    assert r.returncode == 0
    out = json.loads(r.stdout)["hookSpecificOutput"]
    assert out["permissionDecision"] == "deny"
    assert "stayed locked" in out["permissionDecisionReason"], out
    assert f"Fix: stop the process holding a lock on {log_dir / SHARD}" in out["permissionDecisionReason"], out
    assert took < 20, took


def test_the_analyzers_read_chained_lines_on_their_fast_path(log_dir: Path) -> None:
    """Chained lines keep the v1 head and tail: the analyzers count them all, none legacy or corrupt."""
    write(log_dir, 50)
    r = run_cli("log", "analyze", "--summary", "--json")
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert (s["events"], s["corrupt"], s["legacy_lines"], s["categories"]) == (50, 0, 0, {"OBSERVE": 50})
