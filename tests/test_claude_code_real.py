"""The real Claude Code CLI, our hooks installed by `epyc-agent hooks install`, a scripted model.

Each test asserts both what the audit log recorded and what the model was sent back (the
tool_result text after a deny, the context after SessionStart), read from the scripted API.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from claude_code.harness import Lab, claude_version
from claude_code.scripted_api import text, tool, usage

pytestmark = pytest.mark.slow


def test_pinned_cli_is_the_one_under_test() -> None:
    """The harness runs the CLI version pinned in tests/claude_code/package.json (or the named one)."""
    assert claude_version().count(".") == 2


def test_session_start_context_reaches_the_model(lab: Lab) -> None:
    """SessionStart's additionalContext (session id, root, guards) is in what the model is sent."""
    run = lab.run([[text("Nothing to do.")]])
    assert run.proc.returncode == 0, run.proc.stderr
    seen = run.api.seen_text()
    assert "epyc-agent: session cc-" in seen and str(lab.root) in seen
    sid = run.result()["session_id"]
    assert run.of("SESSION_START") and run.of("SESSION_START")[0]["session"] == f"cc-{sid}"
    assert run.of("SESSION_END")


def test_bash_allowed_and_logged_with_exit_code_and_duration(lab: Lab) -> None:
    """An allowed Bash call runs, and its intent and result (exit 0, duration) are logged."""
    call = tool("Bash", command="echo hello-from-bash", description="greet")
    run = lab.run([[call], [text("Done.")]])
    assert run.api.result_text(call["id"]) == "hello-from-bash"
    (intent,) = run.of("CMD_INTENT", tool_use_id=call["id"])
    assert intent["cmd"] == "echo hello-from-bash" and intent["details"] == "greet"
    (result,) = run.of("CMD_RESULT", tool_use_id=call["id"])
    assert result["exit_code"] == 0 and isinstance(result["duration_ms"], (int, float))
    assert result["data"]["hook"] == "PostToolUse"


def test_write_outside_root_denied_with_our_reason(lab: Lab) -> None:
    """The model is told our guard's reason, and nothing is written outside the root."""
    target = lab.outside / "escape.txt"
    call = tool("Write", file_path=str(target), content="x")
    run = lab.run([[call], [text("Understood.")]])
    said = run.api.result_text(call["id"])
    assert "epyc-agent guard refused this call" in said and "[storage]" in said, said
    assert not target.exists()
    (decision,) = run.of("DECISION", tool_use_id=call["id"])
    assert decision["data"]["decision"] == "deny"


def test_write_and_edit_inside_root_allowed_with_rollback_plans(lab: Lab) -> None:
    """Write then Edit under the root run; each is a FILE_MODIFY with an undo plan."""
    target = lab.root / "notes" / "plan.txt"
    write = tool("Write", file_path=str(target), content="draft-max 8\n")
    edit = tool("Edit", file_path=str(target), old_string="draft-max 8", new_string="draft-max 16")
    run = lab.run([[write], [edit], [text("Done.")]])
    assert target.read_text() == "draft-max 16\n", run.api.result_text(edit["id"])
    modifies = run.of("FILE_MODIFY")
    assert [m["action"] for m in modifies] == ["create", "edit"]
    undos = [e["undo"] for e in run.of("ROLLBACK")]
    assert undos[0] == f"rm {target}" and undos[1].startswith("cp ")


def test_rm_rf_outside_root_denied(lab: Lab) -> None:
    """A recursive delete outside the root is refused; the folder is still there."""
    keep = lab.outside / "keep"
    keep.mkdir()
    (keep / "data").write_text("precious")
    call = tool("Bash", command=f"rm -rf {keep}", description="clean")
    run = lab.run([[call], [text("Understood.")]])
    said = run.api.result_text(call["id"])
    assert "epyc-agent guard refused this call" in said, said
    assert (keep / "data").read_text() == "precious"


def test_fourth_identical_failure_denied_and_failures_reach_the_guard(lab: Lab) -> None:
    """This CLI reports a failed Bash call as PostToolUseFailure; three of them deny the fourth."""
    calls = [tool("Bash", command="ls /nonexistent-epyc-dir", description="look") for _ in range(4)]
    run = lab.run([[c] for c in calls] + [[text("I will diagnose.")]])
    for c in calls[:3]:
        assert "No such file" in run.api.result_text(c["id"])
    said = run.api.result_text(calls[3]["id"])
    assert "already failed 3 times" in said, said
    results = run.of("CMD_RESULT")
    assert [r["data"]["hook"] for r in results] == ["PostToolUseFailure"] * 3
    assert all(r["exit_code"] == 2 for r in results)


def test_subagent_call_logged_under_the_subagent(lab: Lab) -> None:
    """A subagent's tool calls go to its own shard, named by its type and id."""
    inner = tool("Bash", command="echo from-subagent", description="inner")
    spawn = tool(
        "Agent",
        description="inner task",
        prompt="Run the inner command.",
        subagent_type="general-purpose",
        run_in_background=False,
    )
    run = lab.run([[spawn], [inner], [text("Inner done.")], [text("All done.")]])
    assert run.proc.returncode == 0, run.proc.stderr
    (intent,) = run.of("CMD_INTENT", tool_use_id=inner["id"])
    assert intent["agent"].startswith("general-purpose-"), intent["agent"]
    assert intent["data"]["agent_type"] == "general-purpose"
    assert run.api.result_text(inner["id"]) == "from-subagent"
    main_calls = run.of("CMD_INTENT", tool_use_id=spawn["id"])
    assert main_calls and main_calls[0]["agent"] == "main"


def test_auto_compaction_dump_written_and_reinjected(lab: Lab) -> None:
    """A full context window makes the CLI compact: PreCompact writes the dump, and the
    SessionStart(compact) context the model gets next holds the saved state."""
    target = lab.root / "results" / "sweep.md"
    first = tool("Write", file_path=str(target), content="k=16: 41.7 t/s\n")
    second = tool("Bash", command="echo step-two", description="second step")
    run = lab.run([[first, usage(990_000)], [second], [text("Done.")]], summary="SCRIPTED-SUMMARY-7")
    assert run.api.compactions == 1
    (dump_event,) = run.of("OBSERVE", hook="PreCompact")
    assert dump_event["data"]["trigger"] == "auto"
    assert str(target) in Path(dump_event["path"]).read_text()
    after = json.dumps(run.api.agent_requests[1]["messages"])
    assert "SCRIPTED-SUMMARY-7" in after and "State saved before the compaction" in after
    assert str(target) in after.split("State saved before the compaction")[1]
    assert run.api.result_text(second["id"]) == "step-two"
    # the forked summariser's SubagentStop is part of the compaction, on the session's shard
    assert not list(lab.log_dir.glob("agent_audit-subagent-*.log"))
    assert run.of("OBSERVE", hook="SubagentStop", compaction=True)
    # PostCompact keeps the CLI's own summary beside the dump
    (post,) = run.of("OBSERVE", hook="PostCompact")
    assert "SCRIPTED-SUMMARY-7" in Path(post["data"]["summary_path"]).read_text()
    assert post["data"]["summary_path"].startswith(dump_event["path"][: -len(".md")])


def test_manual_compact_writes_the_dump(lab: Lab) -> None:
    """`claude -p /compact --resume` fires PreCompact with trigger manual."""
    run = lab.run([[tool("Bash", command="echo before", description="b")], [text("ok")]])
    sid = run.result()["session_id"]
    lab.run([], "/compact", "--resume", sid)
    (dump_event,) = lab_events(lab, "OBSERVE", hook="PreCompact")
    assert dump_event["data"]["trigger"] == "manual" and Path(dump_event["path"]).exists()


def lab_events(lab: Lab, cat: str, **data: object) -> list[dict[str, object]]:
    """Events of every run in this lab so far (runs share the log dir)."""
    from claude_code.harness import Run

    return Run(None, None, lab.log_dir).of(cat, **data)  # type: ignore[arg-type]


def test_garbage_and_huge_tool_input_never_break_the_session(lab: Lab) -> None:
    """A tool input the CLI rejects and a 3 MB Write under the root both leave the session running."""
    bad = tool("Bash", command=["not", "a", "string"])
    huge = tool("Write", file_path=str(lab.root / "big.txt"), content="y" * 3_000_000)
    after = tool("Bash", command="echo still-alive", description="alive")
    run = lab.run([[bad], [huge], [after], [text("Done.")]])
    assert run.result().get("subtype") == "success", run.proc.stdout[-2000:]
    assert run.api.result_text(after["id"]) == "still-alive"
    assert (lab.root / "big.txt").stat().st_size == 3_000_000
    assert not [e for e in run.events() if e["cat"] == "ERROR" and "hook failed" in e["msg"]]
    assert json.dumps(run.of("FILE_MODIFY")).count("big.txt") >= 1


def test_mistake_streak_warning_reaches_the_model(lab: Lab) -> None:
    """Three different failing calls in a row: the model is told so after the third, by
    PostToolUseFailure's additionalContext, as the real CLI delivers it."""
    calls = [tool("Bash", command=f"ls /nonexistent-epyc-{i}", description="look") for i in ("a", "b", "c")]
    run = lab.run([[c] for c in calls] + [[text("I will diagnose.")]])
    assert run.proc.returncode == 0, run.proc.stderr
    seen = run.api.seen_text()
    assert "epyc-agent loop check: your last 3 calls all failed" in seen, seen[-2000:]
    assert seen.count("epyc-agent loop check") == 1
