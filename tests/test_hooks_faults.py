"""The hook under attack and under faults: nothing the agent can write decides a verdict, and a
writing call whose audit event cannot be written is denied. Each attack has its legitimate twin."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
from pathlib import Path
from typing import Any

from conftest import BIN
from test_hooks_events import SESSION, base, bash, events, hook

from epyc_agent.hooks.payload import MAX_STDIN
from epyc_agent.hooks.state import state_path

CMD = "pytest tests/test_x.py"


def decision(out: dict | None) -> str:
    return "allow" if out is None else out["hookSpecificOutput"].get("permissionDecision", "allow")


def write_call(tmp_path: Path, target: Path, content: str = "x", use_id: str = "w1") -> dict[str, Any]:
    return base(
        tmp_path,
        "PreToolUse",
        tool_name="Write",
        tool_use_id=use_id,
        tool_input={"file_path": str(target), "content": content},
    )


def read_call(tmp_path: Path, target: Path, **extra: Any) -> dict[str, Any]:
    return base(
        tmp_path, "PreToolUse", tool_name="Read", tool_use_id="r1", tool_input={"file_path": str(target), **extra}
    )


def fail_three_times(tmp_path: Path) -> None:
    for i in range(3):
        _, out = hook(bash(tmp_path, CMD, use_id=f"f{i}"))
        assert decision(out) == "allow", f"attempt {i + 1} denied"
        hook(bash(tmp_path, CMD, "PostToolUseFailure", use_id=f"f{i}", error="Exit code 1\nFAILED", is_interrupt=False))


# -- the retry state ---------------------------------------------------------------------------


def test_deleting_the_state_file_does_not_reset_the_retry_count(tmp_path: Path, log_dir: Path) -> None:
    """3 failures, the state file removed: the 4th attempt is still denied (counts rebuilt from the log)."""
    fail_three_times(tmp_path)
    state = Path(state_path(str(log_dir), SESSION))
    state.unlink()
    _, out = hook(bash(tmp_path, CMD, use_id="f3"))
    assert decision(out) == "deny" and "[retry]" in out["hookSpecificOutput"]["permissionDecisionReason"]
    assert state.exists()  # rebuilt and saved: the next call reads it without scanning the log


def test_deleting_the_state_after_a_success_keeps_the_success(tmp_path: Path, log_dir: Path) -> None:
    """The legitimate twin: a success that reset the count is replayed too, so the rebuilt state allows."""
    fail_three_times(tmp_path)
    hook(bash(tmp_path, CMD, "PostToolUse", use_id="ok", tool_response={"stdout": "1 passed"}))
    Path(state_path(str(log_dir), SESSION)).unlink()
    _, out = hook(bash(tmp_path, CMD, use_id="f4"))
    assert decision(out) == "allow"


def test_state_deleted_by_the_failing_command_itself(tmp_path: Path, log_dir: Path) -> None:
    """`rm state; false` as the 3rd failure: the rebuild counts it once, not twice and not zero times."""
    for i in range(3):
        hook(bash(tmp_path, CMD, use_id=f"f{i}"))
        if i == 2:
            Path(state_path(str(log_dir), SESSION)).unlink()
        hook(bash(tmp_path, CMD, "PostToolUseFailure", use_id=f"f{i}", error="Exit code 1", is_interrupt=False))
    data = json.loads(Path(state_path(str(log_dir), SESSION)).read_text())["data"]
    assert data["failures"] == {CMD: 3}
    _, out = hook(bash(tmp_path, CMD, use_id="f3"))
    assert decision(out) == "deny"


def test_forged_state_file_is_not_trusted(tmp_path: Path, log_dir: Path) -> None:
    """A state file rewritten by the agent (old unsigned format, or a made-up MAC) is rebuilt from the log."""
    fail_three_times(tmp_path)
    state = Path(state_path(str(log_dir), SESSION))
    forged = [
        json.dumps({"failures": {}, "recent_failures": []}),
        json.dumps({"mac": "0" * 64, "data": {"failures": {}, "recent_failures": []}}),
    ]
    for text in forged:
        state.write_text(text)
        _, out = hook(bash(tmp_path, CMD, use_id="f3"))
        assert decision(out) == "deny", text


def test_signed_state_is_read_without_the_log(tmp_path: Path, log_dir: Path) -> None:
    """The legitimate twin: the hook's own signed state is trusted as is (the log is not re-read)."""
    fail_three_times(tmp_path)
    for shard in log_dir.glob("agent_audit-*.log"):
        shard.write_bytes(b"")  # were the log read, the counts would be gone
    _, out = hook(bash(tmp_path, CMD, use_id="f3"))
    assert decision(out) == "deny"


def test_secret_is_private_and_outside_the_root(tmp_path: Path, root: Path) -> None:
    """The key lives in the user's state folder, mode 0600, even when XDG_STATE_HOME points under the root."""
    hook(bash(tmp_path, CMD), env={"XDG_STATE_HOME": str(root / "state")})
    key = tmp_path / "home" / ".local" / "state" / "epyc-agent" / "hook-secret"
    assert key.stat().st_mode & 0o777 == 0o600 and key.stat().st_size == 32
    assert not (root / "state" / "epyc-agent").exists()
    elsewhere = tmp_path / "xdg"
    hook(bash(tmp_path, CMD, use_id="x2"), env={"XDG_STATE_HOME": str(elsewhere)})
    assert (elsewhere / "epyc-agent" / "hook-secret").stat().st_mode & 0o777 == 0o600


# -- the bashlex tables ------------------------------------------------------------------------

WRITES_ETC = "x=1; echo $x > /etc/epyc-agent-test"  # needs the full parse (a variable, a redirection)


def test_forged_bashlex_tables_are_rebuilt(tmp_path: Path, log_dir: Path) -> None:
    """Tables the agent rewrote (unsigned, or with a made-up MAC) are never used: rebuilt, the verdict stands."""
    _, out = hook(bash(tmp_path, WRITES_ETC))
    assert decision(out) == "deny"
    cache = log_dir / ".state" / "bashlex-tables.json"
    data = json.loads(cache.read_bytes())["data"]
    data["action"] = {}
    for forged in (json.dumps(data), json.dumps({"mac": "0" * 64, "data": data}, separators=(",", ":"))):
        cache.write_text(forged)
        _, out = hook(bash(tmp_path, WRITES_ETC, use_id="again"))
        assert decision(out) == "deny"
        assert json.loads(cache.read_bytes())["data"]["action"]  # rewritten with the real tables


def test_signed_bashlex_tables_are_used(tmp_path: Path, log_dir: Path) -> None:
    """The legitimate twin: the hook's own signed cache is read, not rebuilt (the file stays byte-identical)."""
    hook(bash(tmp_path, WRITES_ETC))
    cache = log_dir / ".state" / "bashlex-tables.json"
    before = (cache.read_bytes(), cache.stat().st_mtime_ns)
    _, out = hook(bash(tmp_path, WRITES_ETC, use_id="again"))
    assert decision(out) == "deny"
    assert (cache.read_bytes(), cache.stat().st_mtime_ns) == before


# -- planted symlinks --------------------------------------------------------------------------


def test_symlinked_shard_writes_nothing_outside(tmp_path: Path, root: Path, log_dir: Path) -> None:
    """A shard symlinked out of the log dir: nothing is appended there, a Write is denied, a Read passes."""
    hook(base(tmp_path, "SessionStart", source="startup"))
    outside = tmp_path / "outside.log"
    outside.write_text("keep\n")
    shard = log_dir / "agent_audit-main.log"
    shard.unlink()
    shard.symlink_to(outside)
    r, out = hook(write_call(tmp_path, root / "notes.md"))
    assert decision(out) == "deny"
    reason = out["hookSpecificOutput"]["permissionDecisionReason"]
    assert "cannot write its audit log" in reason and "symlink" in reason
    assert "cannot write the audit log" in r.stderr
    r, out = hook(read_call(tmp_path, root / "notes.md"))
    assert decision(out) == "allow"
    assert outside.read_text() == "keep\n"


def test_symlinked_backup_folder_keeps_backups_in(tmp_path: Path, root: Path, log_dir: Path) -> None:
    """A backup folder symlinked out of the root gets no copy; the edit has no undo plan instead."""
    f = root / "cfg.txt"
    f.write_text("secret\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "backups" / "edits").mkdir(parents=True)
    (root / "backups" / "edits" / SESSION).symlink_to(outside)
    edit = {"file_path": str(f), "old_string": "secret", "new_string": "x", "replace_all": False}
    _, out = hook(base(tmp_path, "PreToolUse", tool_name="Edit", tool_use_id="e1", tool_input=edit))
    assert decision(out) == "allow"
    assert list(outside.iterdir()) == []
    assert events(log_dir, cat="ROLLBACK")[0]["undo"].startswith("(no undo plan")


def test_backup_folder_under_the_root_is_used(tmp_path: Path, root: Path, log_dir: Path) -> None:
    """The legitimate twin: a real folder (made on first use) holds the backup; the undo restores it."""
    f = root / "cfg.txt"
    f.write_text("original\n")
    edit = {"file_path": str(f), "old_string": "original", "new_string": "x", "replace_all": False}
    hook(base(tmp_path, "PreToolUse", tool_name="Edit", tool_use_id="e1", tool_input=edit))
    undo = events(log_dir, cat="ROLLBACK")[0]["undo"]
    assert undo.startswith(f"cp {root / 'backups' / 'edits' / SESSION}/")
    f.write_text("changed\n")
    subprocess.run(undo, shell=True, check=True)
    assert f.read_text() == "original\n"


# -- an audit log that cannot be written ---------------------------------------------------------


def test_log_dir_that_cannot_exist_denies_writes(tmp_path: Path, root: Path) -> None:
    """A log dir whose parent is a regular file (fails for root too): Write inside and outside the root
    and Bash are denied with the fix named; Read still passes."""
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    env = {"EPYC_AGENT_LOG_DIR": str(blocker / "logs")}
    for call in (write_call(tmp_path, root / "in.md"), write_call(tmp_path, Path("/etc/epyc-x")), bash(tmp_path, "ls")):
        _, out = hook(call, env=env)
        assert decision(out) == "deny", call["tool_name"]
        reason = out["hookSpecificOutput"]["permissionDecisionReason"]
        assert "cannot write its audit log" in reason and "Fix: make" in reason and "\n" not in reason
    _, out = hook(read_call(tmp_path, root / "in.md"), env=env)
    assert decision(out) == "allow"


def _size_limit(limit: int) -> Any:
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past the limit a write is short, then EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    return apply


def test_full_disk_denies_writes(tmp_path: Path, root: Path, log_dir: Path) -> None:
    """A log that can grow no more (the file size limit: a full disk, for root too) denies a Write; a Read passes."""
    hook(base(tmp_path, "SessionStart", source="startup"))
    hook(bash(tmp_path, "ls"))  # the state and the parse tables exist: only the shard must grow
    limit = (log_dir / "agent_audit-main.log").stat().st_size
    for call, expected in ((write_call(tmp_path, root / "in.md"), "deny"), (read_call(tmp_path, root / "x"), "allow")):
        r = subprocess.run(
            [str(BIN), "hook"],
            input=json.dumps(call).encode(),
            capture_output=True,
            timeout=60,
            preexec_fn=_size_limit(limit),
        )
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout) if r.stdout.strip() else None
        assert decision(out) == expected, call["tool_name"]
        assert b"cannot write the audit log" in r.stderr
        if expected == "deny":
            assert "Fix: free space" in out["hookSpecificOutput"]["permissionDecisionReason"]


def test_writable_log_allows_writes(tmp_path: Path, root: Path, log_dir: Path) -> None:
    """The legitimate twin: with a healthy log the same Write inside the root is allowed and recorded."""
    _, out = hook(write_call(tmp_path, root / "in.md"))
    assert decision(out) == "allow"
    assert events(log_dir, cat="FILE_MODIFY", path=str(root / "in.md"))


# -- the payload size cap ------------------------------------------------------------------------


def test_oversized_payload_denied_for_write_allowed_for_read(tmp_path: Path, root: Path, log_dir: Path) -> None:
    """Over the cap a Write cannot be checked or recorded: denied; a Read of the same size passes."""
    big = "x" * (MAX_STDIN + 1024)
    _, out = hook(write_call(tmp_path, root / "big.txt", big))
    assert decision(out) == "deny"
    assert f"{MAX_STDIN >> 20} MiB" in out["hookSpecificOutput"]["permissionDecisionReason"]
    _, out = hook(read_call(tmp_path, root / "big.txt", note=big))
    assert decision(out) == "allow"
    assert any("payload" in e["msg"] for e in events(log_dir, level="ERROR"))


def test_payload_under_the_cap_is_checked(tmp_path: Path, root: Path) -> None:
    """The legitimate twin: a big Write under the cap is evaluated normally (inside the root: allowed)."""
    _, out = hook(write_call(tmp_path, root / "big.txt", "x" * (MAX_STDIN // 2)))
    assert decision(out) == "allow"
    assert os.path.getsize(root / "logs" / "agent_audit-main.log") < MAX_STDIN // 4  # content is not logged


def test_log_dir_symlinked_out_of_the_root_denies_writes(tmp_path: Path, root: Path, log_dir: Path) -> None:
    """`<root>/logs` replaced by a symlink to a folder outside the root: the hook's own events are not
    written there, and a Write is denied with the fix named."""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    log_dir.symlink_to(outside)
    _, out = hook(write_call(tmp_path, root / "in.md"))
    assert decision(out) == "deny"
    assert "outside the root" in out["hookSpecificOutput"]["permissionDecisionReason"]
    assert not any("FILE_MODIFY" in p.read_text() for p in outside.glob("agent_audit-*.log"))
