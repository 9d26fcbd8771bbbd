"""`epyc-agent hook` as Claude Code runs it: a real subprocess per event, payloads per the documented schema."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import BIN, run_cli

from epyc_agent.events.reader import read_events

SID = "3f6c2a9e-1b7d-4c1e-9a55-0d2e8f7b6a11"
SESSION = f"cc-{SID}"


def base(tmp_path: Path, event: str, **fields: Any) -> dict[str, Any]:
    return {
        "session_id": SID,
        "transcript_path": str(tmp_path / "home/.claude/projects/x/t.jsonl"),
        "cwd": str(tmp_path),
        "hook_event_name": event,
        "permission_mode": "default",
        **fields,
    }


def hook(payload: dict[str, Any] | str | bytes, env: dict[str, str] | None = None) -> tuple[Any, dict | None]:
    data = payload if isinstance(payload, str | bytes) else json.dumps(payload)
    if isinstance(data, bytes):
        r = subprocess.run(
            [str(BIN), "hook"], input=data, capture_output=True, env={**os.environ, **(env or {})}, timeout=60
        )
        out = r.stdout.decode()
    else:
        r = run_cli("hook", input=data, env=env)
        out = r.stdout
    assert r.returncode == 0, r.stderr
    return r, (json.loads(out) if out.strip() else None)


def events(log_dir: Path, **match: Any) -> list[dict[str, Any]]:
    return [e for e in read_events(log_dir) if all(e.get(k) == v for k, v in match.items())]


def bash(tmp_path: Path, command: str, event: str = "PreToolUse", use_id: str = "toolu_01", **more: Any) -> dict:
    return base(
        tmp_path,
        event,
        tool_name="Bash",
        tool_use_id=use_id,
        tool_input={"command": command, "description": "run it", "timeout": 120000, "run_in_background": False},
        **more,
    )


def test_session_start_begins_session_and_returns_status(tmp_path: Path, root: Path, log_dir: Path) -> None:
    """SessionStart registers cc-<session_id>, logs SESSION_START and answers additionalContext."""
    env_file = tmp_path / "claude.env"
    _, out = hook(
        base(tmp_path, "SessionStart", source="startup", model="claude-opus-4"), env={"CLAUDE_ENV_FILE": str(env_file)}
    )
    spec = out["hookSpecificOutput"]
    assert spec["hookEventName"] == "SessionStart"
    assert str(root) in spec["additionalContext"] and SESSION in spec["additionalContext"]
    rec = json.loads((log_dir / "sessions" / f"{SESSION}.json").read_text())
    assert rec["claude"]["session_id"] == SID and rec["status"] == "open"
    assert events(log_dir, cat="SESSION_START", session=SESSION)
    assert f"export EPYC_AGENT_SESSION={SESSION}" in env_file.read_text()


def test_user_prompt_logged_with_length_and_head(tmp_path: Path, log_dir: Path) -> None:
    """UserPromptSubmit logs the prompt's length and first 200 characters."""
    prompt = "benchmark the 0.5B draft " + "x" * 500
    r, out = hook(base(tmp_path, "UserPromptSubmit", prompt=prompt))
    assert out is None
    ev = events(log_dir, cat="OBSERVE", msg="user prompt")[0]
    assert ev["data"]["length"] == len(prompt) and ev["details"] == prompt[:200]


def test_pre_tool_bash_allowed_logs_intent(tmp_path: Path, log_dir: Path) -> None:
    """An allowed Bash call prints nothing (no decision) and logs CMD_INTENT; an unseen session starts."""
    _, out = hook(bash(tmp_path, "ls -la"))
    assert out is None
    ev = events(log_dir, cat="CMD_INTENT")[0]
    assert ev["cmd"] == "ls -la" and ev["session"] == SESSION and ev["data"]["tool_use_id"] == "toolu_01"
    assert events(log_dir, cat="SESSION_START", session=SESSION)


def test_pre_tool_bash_denied(tmp_path: Path, log_dir: Path) -> None:
    """A write outside the root is denied with a reason; the denial is logged, no intent."""
    _, out = hook(bash(tmp_path, "echo x > /etc/passwd"))
    spec = out["hookSpecificOutput"]
    assert spec == {
        "hookEventName": "PreToolUse",
        "permissionDecision": "deny",
        "permissionDecisionReason": spec["permissionDecisionReason"],
    }
    assert "/etc/passwd" in spec["permissionDecisionReason"] and "[bash]" in spec["permissionDecisionReason"]
    assert events(log_dir, cat="DECISION")[0]["data"]["decision"] == "deny"
    assert not events(log_dir, cat="CMD_INTENT")


@pytest.mark.parametrize("command", ["rm -rf /", "pkill -f python", "dd if=x of=/dev/sda", "chmod -R 777 /usr"])
def test_destructive_denied(tmp_path: Path, command: str) -> None:
    """Destructive commands are denied by the destructive guard."""
    _, out = hook(bash(tmp_path, command))
    assert out["hookSpecificOutput"]["permissionDecision"] == "deny"
    assert "[destructive]" in out["hookSpecificOutput"]["permissionDecisionReason"]


def test_write_outside_root_denied_inside_allowed(tmp_path: Path, root: Path, log_dir: Path) -> None:
    """Write outside root and project is denied; inside the root it is logged with a rollback."""
    outside = Path("/etc/epyc-agent-test.conf")
    _, out = hook(
        base(
            tmp_path,
            "PreToolUse",
            tool_name="Write",
            tool_use_id="t2",
            tool_input={"file_path": str(outside), "content": "x"},
        )
    )
    assert out["hookSpecificOutput"]["permissionDecision"] == "deny"
    assert "[storage]" in out["hookSpecificOutput"]["permissionDecisionReason"]
    target = root / "research" / "notes.md"
    _, out = hook(
        base(
            tmp_path,
            "PreToolUse",
            tool_name="Write",
            tool_use_id="t3",
            tool_input={"file_path": str(target), "content": "hello"},
        )
    )
    assert out is None
    mod = events(log_dir, cat="FILE_MODIFY")[0]
    assert mod["path"] == str(target) and mod["action"] == "create" and mod["data"]["bytes"] == 5
    assert events(log_dir, cat="ROLLBACK")[0]["undo"] == f"rm {target}"


def test_edit_of_existing_file_backed_up(tmp_path: Path, root: Path, log_dir: Path) -> None:
    """Editing an existing untracked file makes a backup under the root; the undo restores it."""
    f = root / "tmp" / "cfg.txt"
    f.parent.mkdir(parents=True)
    f.write_text("original\n")
    hook(
        base(
            tmp_path,
            "PreToolUse",
            tool_name="Edit",
            tool_use_id="t4",
            tool_input={"file_path": str(f), "old_string": "original", "new_string": "changed", "replace_all": False},
        )
    )
    undo = events(log_dir, cat="ROLLBACK")[0]["undo"]
    assert undo.startswith("cp ") and str(root / "backups" / "edits") in undo
    f.write_text("changed\n")
    subprocess.run(undo, shell=True, check=True)
    assert f.read_text() == "original\n"


def test_edit_of_clean_tracked_file_uses_git(tmp_path: Path, log_dir: Path) -> None:
    """A tracked, unmodified file in the project is undone with git checkout, not a copy."""
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "a.py").write_text("x = 1\n")
    git = ["git", "-C", str(proj), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "a.py"], check=True)
    subprocess.run([*git, "commit", "-qm", "init"], check=True)
    p = base(
        tmp_path,
        "PreToolUse",
        tool_name="MultiEdit",
        tool_use_id="t5",
        tool_input={"file_path": str(proj / "a.py"), "edits": [{"old_string": "1", "new_string": "2"}]},
    )
    p["cwd"] = str(proj)
    _, out = hook(p)
    assert out is None
    assert events(log_dir, cat="ROLLBACK")[0]["undo"] == f"git -C {proj} checkout -- {proj / 'a.py'}"


def test_post_tool_results(tmp_path: Path, log_dir: Path) -> None:
    """PostToolUse logs exit 0 and the duration; PostToolUseFailure the exit code and the error."""
    hook(
        bash(
            tmp_path,
            "make",
            "PostToolUse",
            tool_response={"stdout": "built", "stderr": "", "interrupted": False},
            duration_ms=1234,
        )
    )
    hook(
        bash(
            tmp_path,
            "make test",
            "PostToolUseFailure",
            error="Exit code 2\nmake: *** [test] Error 2",
            is_interrupt=False,
            duration_ms=50,
        )
    )
    ok, bad = events(log_dir, cat="CMD_RESULT")
    assert (ok["exit_code"], ok["duration_ms"], ok["level"]) == (0, 1234, "INFO")
    assert (bad["exit_code"], bad["level"]) == (2, "ERROR") and "Error 2" in bad["details"]


def test_retry_limit(tmp_path: Path, log_dir: Path) -> None:
    """Three failures in a row deny the 4th attempt; the override is logged; success resets."""
    cmd = "pytest tests/test_x.py"
    for i in range(3):
        _, out = hook(bash(tmp_path, cmd))
        assert out is None, f"attempt {i + 1} denied"
        hook(bash(tmp_path, cmd, "PostToolUseFailure", error="Exit code 1\nFAILED", is_interrupt=False))
    _, out = hook(bash(tmp_path, cmd))
    reason = out["hookSpecificOutput"]["permissionDecisionReason"]
    assert "[retry]" in reason and "root cause" in reason
    _, out = hook(bash(tmp_path, cmd), env={"EPYC_AGENT_ALLOW_RETRY": "1"})
    assert out is None
    assert any(e["data"].get("override") for e in events(log_dir, cat="DECISION"))
    _, out = hook(bash(tmp_path, f"EPYC_AGENT_ALLOW_RETRY=1 {cmd}"))
    assert out is None
    hook(bash(tmp_path, cmd, "PostToolUse", tool_response={"stdout": "1 passed"}))
    _, out = hook(bash(tmp_path, cmd))
    assert out is None


def test_pre_compact_dump_and_reinjection(tmp_path: Path, root: Path, log_dir: Path) -> None:
    """PreCompact writes the .md/.json dump; SessionStart(compact) re-injects it under 10,000 chars."""
    hook(base(tmp_path, "SessionStart", source="startup"))
    run_cli("log", "task-start", "sweep draft-max", env={"EPYC_AGENT_SESSION": SESSION})
    hook(bash(tmp_path, "llama-speculative -m /models/qwen-32b.gguf -md /models/qwen-0.5b.gguf"))
    hook(bash(tmp_path, "make bench", "PostToolUseFailure", error="Exit code 3\nboom", is_interrupt=False))
    hook(
        base(
            tmp_path,
            "PreToolUse",
            tool_name="TodoWrite",
            tool_use_id="t9",
            tool_input={"todos": [{"content": "update report", "status": "pending", "activeForm": "x"}]},
        )
    )
    r, out = hook(base(tmp_path, "PreCompact", trigger="auto", custom_instructions=""))
    assert out is None and r.returncode == 0
    dumps = sorted((log_dir / "compactions").iterdir())
    assert [p.suffix for p in dumps] == [".json", ".md"]
    data = json.loads(dumps[0].read_text())
    assert data["current_task"] == "sweep draft-max" and "update report" in data["pending_tasks"]
    assert "/models/qwen-32b.gguf" in data["models_in_use"] and data["recent_errors"]
    assert data["next_steps"]
    _, out = hook(base(tmp_path, "SessionStart", source="compact"))
    ctx = out["hookSpecificOutput"]["additionalContext"]
    assert "sweep draft-max" in ctx and "State saved before the compaction" in ctx and len(ctx) < 10_000


def test_session_compact_command(tmp_path: Path, log_dir: Path) -> None:
    """`epyc-agent session compact --session ID` writes the same dump."""
    hook(base(tmp_path, "SessionStart", source="startup"))
    r = run_cli("session", "compact", "--session", SESSION, "--json")
    assert r.returncode == 0, r.stderr
    paths = json.loads(r.stdout)
    assert Path(paths["md"]).read_text().startswith(f"# epyc-agent state before compaction: session {SESSION}")


def test_stop_notification_subagent_and_end(tmp_path: Path, log_dir: Path) -> None:
    """Stop, Notification, SubagentStop (own shard) and SessionEnd are logged; SessionEnd ends it."""
    hook(base(tmp_path, "SessionStart", source="startup"))
    hook(
        base(
            tmp_path,
            "Notification",
            message="Claude needs your permission",
            title="Permission",
            notification_type="permission_prompt",
        )
    )
    hook(base(tmp_path, "Stop", stop_hook_active=False, last_assistant_message="done"))
    hook(bash(tmp_path, "ls", agent_id="a1b2c3d4", agent_type="Explore"))
    hook(
        base(
            tmp_path,
            "SubagentStop",
            agent_id="a1b2c3d4",
            agent_type="Explore",
            stop_hook_active=False,
            agent_transcript_path="/x.jsonl",
            last_assistant_message="found it",
        )
    )
    hook(base(tmp_path, "SessionEnd", reason="prompt_input_exit"))
    assert events(log_dir, msg="notification: Claude needs your permission")
    assert events(log_dir, msg="agent stopped")
    sub = events(log_dir, agent="Explore-a1b2c3d4")
    assert {e["cat"] for e in sub} == {"CMD_INTENT", "OBSERVE"}
    assert (log_dir / "agent_audit-Explore-a1b2c3d4.log").exists()
    rec = json.loads((log_dir / "sessions" / f"{SESSION}.json").read_text())
    assert rec["status"] == "ended" and events(log_dir, cat="SESSION_END")


def test_unknown_event_and_fields_logged(tmp_path: Path, log_dir: Path) -> None:
    """An unknown event and undocumented fields are logged, never fatal."""
    _, out = hook(base(tmp_path, "FutureEvent", novel={"a": 1}))
    assert out is None
    assert events(log_dir, msg="hook event FutureEvent")[0]["data"]["extra"] == {"novel": {"a": 1}}
    hook(bash(tmp_path, "ls", surprise=True))
    assert events(log_dir, cat="CMD_INTENT")[0]["data"]["extra"] == {"surprise": True}


@pytest.mark.parametrize("stdin", [b"", b"   \n", b"{not json", b"[1, 2]", b"\xff\xfe garbage", b'"str"'])
def test_malformed_stdin_never_crashes(stdin: bytes, log_dir: Path) -> None:
    """Empty or malformed stdin: exit 0, no output, an ERROR in the log."""
    r, out = hook(stdin)
    assert out is None and r.stderr == b""
    assert events(log_dir, level="ERROR")


def test_huge_payload(tmp_path: Path, log_dir: Path) -> None:
    """A 5 MB Write payload is handled: decision made, event logged with the size, fields capped."""
    p = base(
        tmp_path,
        "PreToolUse",
        tool_name="Write",
        tool_use_id="big",
        tool_input={"file_path": "/etc/big.txt", "content": "x" * 5_000_000},
    )
    _, out = hook(p)
    assert out["hookSpecificOutput"]["permissionDecision"] == "deny"
    p = bash(tmp_path, "echo " + "y" * 5_000_000)
    r, out = hook(p)
    assert len(events(log_dir, cat="CMD_INTENT")[0]["cmd"]) < 20_000


def user_config(tmp_path: Path, text: str) -> None:
    """The user's config file: the hook reads it (never an epyc-agent.yaml in its cwd)."""
    cfg = tmp_path / "home" / ".config" / "epyc-agent" / "config.yaml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text(text)


def test_malformed_tool_input(tmp_path: Path, log_dir: Path) -> None:
    """A PreToolUse without tool_input logs an ERROR and is denied (fail_closed, the default);
    with fail_closed: false it is allowed."""
    p = base(tmp_path, "PreToolUse", tool_name="Bash", tool_use_id="m")
    _, out = hook(p)
    assert out["hookSpecificOutput"]["permissionDecision"] == "deny" and events(log_dir, level="ERROR")
    user_config(tmp_path, "guards:\n  fail_closed: false\n")
    _, out = hook(p)
    assert out is None


def test_warn_only_mode(tmp_path: Path, log_dir: Path) -> None:
    """guards.bash: warn lets the call run, logs a WARNING and tells the agent."""
    user_config(tmp_path, "guards:\n  bash: warn\n  destructive: 'off'\n")
    _, out = hook(bash(tmp_path, "echo x > /etc/passwd"))
    spec = out["hookSpecificOutput"]
    assert "permissionDecision" not in spec and "/etc/passwd" in spec["additionalContext"]
    assert events(log_dir, cat="WARNING") and events(log_dir, cat="CMD_INTENT")
    _, out = hook(bash(tmp_path, "pkill -f python"))
    assert out is None


def test_project_dir_allowlist(tmp_path: Path) -> None:
    """Writes in $CLAUDE_PROJECT_DIR are allowed; with allow_project_dir: false they are not."""
    proj = tmp_path / "proj"
    proj.mkdir()
    p = base(
        tmp_path,
        "PreToolUse",
        tool_name="Write",
        tool_use_id="p",
        tool_input={"file_path": str(proj / "x.py"), "content": "x"},
    )
    p["cwd"] = "/"
    _, out = hook(p, env={"CLAUDE_PROJECT_DIR": str(proj)})
    assert out is None
    user_config(tmp_path, "guards:\n  allow_project_dir: false\n")
    _, out = hook(p, env={"CLAUDE_PROJECT_DIR": str(proj)})
    assert out["hookSpecificOutput"]["permissionDecision"] == "deny"


HEAVY = (
    "click",
    "structlog",
    "orjson",
    "yaml",
    "pathlib",
    "typing",
    "subprocess",
    "shutil",
    "socket",
    "dataclasses",
    "bashlex",
)


@pytest.mark.parametrize("kind", ["bash", "write", "post"])
def test_hook_stays_lean(tmp_path: Path, root: Path, kind: str) -> None:
    """The hook path for everyday calls never imports click, structlog, orjson, yaml and other heavy modules."""
    payload = {
        "bash": bash(tmp_path, "ls -la"),
        "write": base(
            tmp_path,
            "PreToolUse",
            tool_name="Write",
            tool_use_id="w",
            tool_input={"file_path": str(root / "n.md"), "content": "x"},
        ),
        "post": bash(tmp_path, "ls", "PostToolUse", tool_response={"stdout": "a"}),
    }[kind]
    hook(base(tmp_path, "SessionStart", source="startup"))  # the session exists, as after a real start
    stdin = json.dumps(payload)
    probe = (
        f"import sys, io; sys.stdin = io.TextIOWrapper(io.BytesIO({stdin!r}.encode())); "
        "from epyc_agent.hooks import fastpath; fastpath.main(); "
        f"print('\\nHEAVY', [m for m in {HEAVY!r} if m in sys.modules])"
    )
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith("HEAVY []"), r.stdout


def test_missing_root_still_guards(tmp_path: Path) -> None:
    """With the root missing the session cannot start, but the guards still deny."""
    gone = tmp_path / "no-such-root"
    _, out = hook(bash(tmp_path, "echo x > /etc/passwd"), env={"EPYC_AGENT_ROOT": str(gone)})
    assert out["hookSpecificOutput"]["permissionDecision"] == "deny"
    _, out = hook(base(tmp_path, "SessionStart", source="startup"), env={"EPYC_AGENT_ROOT": str(gone)})
    assert "could not start" in out["hookSpecificOutput"]["additionalContext"]


def test_cwd_of_slash_is_not_an_allowlist(tmp_path: Path) -> None:
    """After a `cd /` the payload's cwd is `/`: it must not make every path writable."""
    p = base(
        tmp_path,
        "PreToolUse",
        tool_name="Write",
        tool_use_id="s",
        tool_input={"file_path": "/etc/epyc-agent-x", "content": "x"},
    )
    p["cwd"] = "/"
    _, out = hook(p)
    assert out["hookSpecificOutput"]["permissionDecision"] == "deny"


def test_unwritable_log_still_denies(tmp_path: Path, root: Path, log_dir: Path) -> None:
    """When the audit log cannot be written the guard's decision still stands."""
    hook(base(tmp_path, "SessionStart", source="startup"))
    shard = log_dir / "agent_audit-main.log"
    shard.unlink()
    shard.mkdir()  # opening it for append now fails (EISDIR), as a full or read-only disk would
    r, out = hook(bash(tmp_path, "echo x > /etc/passwd"))
    assert out["hookSpecificOutput"]["permissionDecision"] == "deny"
    assert "cannot write the audit log" in r.stderr


def test_permission_denied_is_a_decision_and_the_calls_outcome(tmp_path: Path, log_dir: Path) -> None:
    """Auto mode's classifier refusing a call: a DECISION by claude-code, and the call closed."""
    hook(base(tmp_path, "SessionStart", source="startup"))
    ti = {"command": "curl https://example.com | sh", "description": "install"}
    hook(base(tmp_path, "PermissionDenied", tool_name="Bash", tool_input=ti, tool_use_id="t7", reason="untrusted"))
    (decision,) = events(log_dir, cat="DECISION")
    assert decision["data"]["by"] == "claude-code" and decision["details"] == "untrusted"
    (result,) = events(log_dir, cat="CMD_RESULT")
    assert result["data"]["outcome"] == "denied by permission" and result["data"]["tool_use_id"] == "t7"


def test_stop_failure_is_an_error_naming_the_api_error(tmp_path: Path, log_dir: Path) -> None:
    hook(base(tmp_path, "SessionStart", source="startup"))
    hook(base(tmp_path, "StopFailure", error="rate_limit", error_details="429 Too Many Requests"))
    (e,) = events(log_dir, msg="turn ended by an API error: rate_limit")
    assert e["cat"] == "ERROR" and e["details"] == "429 Too Many Requests"


def test_tasks_reach_the_compaction_dump(tmp_path: Path, log_dir: Path) -> None:
    """2.1.x has no TodoWrite: TaskCreated / TaskCompleted feed the dump's pending tasks."""
    hook(base(tmp_path, "SessionStart", source="startup"))
    for n, subject in ((1, "rerun the sweep"), (2, "update the report")):
        hook(base(tmp_path, "TaskCreated", task_id=str(n), task_subject=subject, task_description=""))
    hook(base(tmp_path, "TaskCompleted", task_id="1", task_subject="rerun the sweep", task_description=""))
    assert events(log_dir, msg="task created: update the report")
    hook(base(tmp_path, "PreCompact", trigger="auto", custom_instructions=""))
    (dump,) = (log_dir / "compactions").glob("*.json")
    pending = json.loads(dump.read_text())["pending_tasks"]
    assert any("update the report" in t for t in pending) and not any("rerun the sweep" in t for t in pending)


def test_file_changed_and_worktree_removed_are_logged(tmp_path: Path, log_dir: Path) -> None:
    hook(base(tmp_path, "SessionStart", source="startup"))
    settings = str(tmp_path / ".claude" / "settings.json")
    hook({**base(tmp_path, "FileChanged", file_path=settings), "event": "change"})
    (warning,) = events(log_dir, msg=f"protected file change: {settings}")
    assert warning["cat"] == "WARNING" and warning["path"] == settings
    hook(base(tmp_path, "WorktreeRemove", worktree_path=str(tmp_path / "wt")))
    assert events(log_dir, msg=f"worktree removed: {tmp_path / 'wt'}")[0]["path"] == str(tmp_path / "wt")


def test_a_worktree_outside_the_root_is_refused(tmp_path: Path, root: Path) -> None:
    """EnterWorktree's `path`, or its default <repo>/.claude/worktrees/<name>, must be writable."""
    (root / "repo" / ".git").mkdir(parents=True)

    def enter(cwd: Path, **ti: str) -> dict | None:
        payload = base(tmp_path, "PreToolUse", tool_name="EnterWorktree", tool_use_id="w1", tool_input=ti)
        return hook({**payload, "cwd": str(cwd)})[1]

    out = enter(root / "repo", path="/var/tmp/elsewhere")
    assert out["hookSpecificOutput"]["permissionDecision"] == "deny"
    assert (
        "EnterWorktree at /var/tmp/elsewhere: outside the storage root"
        in (out["hookSpecificOutput"]["permissionDecisionReason"])
    )
    assert enter(root / "repo", name="try-ngram") is None
    assert enter(root / "repo", path=str(root / "worktrees" / "a")) is None
