"""The hook events around the tool calls, under the real CLI: rejected calls get an outcome,
a crashing PreToolUse hook blocks, subagents, cwd and settings changes are logged."""

from __future__ import annotations

import json

import pytest
from claude_code.harness import Lab
from claude_code.scripted_api import text, tool

pytestmark = pytest.mark.slow


def test_calls_the_cli_rejects_are_closed_by_the_batch(lab: Lab) -> None:
    """Without an approval surface (`-p`, default permission mode) a call needing approval is
    refused by the CLI, and one with invalid input never reaches PreToolUse: PostToolBatch gives
    both an outcome, and the unanswered prompt is a DECISION."""
    needs = tool("Bash", command=f"touch {lab.root}/approved.txt", description="needs approval")
    bad = tool("Write", file_path=str(lab.root / "x.txt"))  # no content: the CLI's validation
    run = lab.run([[needs], [bad], [text("Done.")]], skip_permissions=False)
    assert "needs approval" in run.api.result_text(needs["id"])
    assert "InputValidationError" in run.api.result_text(bad["id"])
    assert not (lab.root / "approved.txt").exists()
    (asked,) = run.of("OBSERVE", hook="PermissionRequest")
    assert asked["cmd"] == needs["input"]["command"]
    (refused,) = run.of("DECISION", hook="PostToolBatch", tool_use_id=needs["id"])
    assert refused["data"]["decision"] == "deny" and refused["data"]["by"] == "user"
    (closed,) = run.of("CMD_RESULT", tool_use_id=needs["id"])
    assert closed["data"]["outcome"] == "denied by permission"
    (rejected,) = run.of("CMD_RESULT", tool_use_id=bad["id"])
    assert rejected["data"]["outcome"] == "rejected" and "InputValidationError" in rejected["details"]


def test_outcome_ok_and_failed_on_results(lab: Lab) -> None:
    """Calls that ran carry their outcome too, so every intent of the log has one."""
    ok, bad = tool("Bash", command="true", description="ok"), tool("Bash", command="false", description="no")
    run = lab.run([[ok], [bad], [text("Done.")]])
    assert [r["data"]["outcome"] for r in run.of("CMD_RESULT")] == ["ok", "failed"]
    intents = {e["data"]["tool_use_id"] for e in run.of("CMD_INTENT")}
    assert intents == {e["data"]["tool_use_id"] for e in run.of("CMD_RESULT")}


def test_a_crashing_pretooluse_hook_blocks_the_call(lab: Lab) -> None:
    """`hooks install` sets onFailure: block for PreToolUse (fail_closed is the default): a hook
    that cannot even start its interpreter stops the call instead of letting it through."""
    settings = json.loads((lab.project / ".claude" / "settings.json").read_text())
    (pre,) = [h for g in settings["hooks"]["PreToolUse"] for h in g["hooks"]]
    assert pre["onFailure"] == "block"
    marker = lab.root / "ran.txt"
    call = tool("Bash", command=f"touch {marker}", description="should not run")
    run = lab.run([[call], [text("Stopped.")]], env={"PYTHONHOME": "/nonexistent-python-home"})
    assert not marker.exists(), run.api.result_text(call["id"])


def test_subagent_start_logged_and_told_the_rules(lab: Lab) -> None:
    """SubagentStart lands on the subagent's own shard, and the subagent is told the root."""
    agent = tool("Agent", description="look", prompt="Say hi.", subagent_type="general-purpose")
    run = lab.run([[agent], [text("hi")], [text("Done.")]])
    (start,) = run.of("OBSERVE", hook="SubagentStart")
    assert start["agent"].startswith("general-purpose-")
    sub = json.dumps(run.api.agent_requests[1]["messages"])
    assert "guarded like the main agent's" in sub and str(lab.root) in sub


def test_cwd_change_and_instructions_logged(lab: Lab) -> None:
    """CwdChanged records where relative paths now resolve from; CLAUDE.md loading is logged."""
    (lab.project / "CLAUDE.md").write_text("# rules\n")
    (lab.project / "sub").mkdir()
    run = lab.run([[tool("Bash", command="cd sub", description="move")], [text("Done.")]])
    (moved,) = run.of("OBSERVE", hook="CwdChanged")
    assert moved["data"]["new_cwd"].endswith("/sub")
    assert any(e["path"].endswith("CLAUDE.md") for e in run.of("OBSERVE", hook="InstructionsLoaded"))


def test_settings_rewrite_by_a_program_is_refused_at_config_change(lab: Lab) -> None:
    """A program the parser cannot see (python) strips our hooks from the settings: the CLI's
    ConfigChange is refused and logged, and the next call is still guarded."""
    path = lab.project / ".claude" / "settings.json"
    script = f"import json; p='{path}'; s=json.load(open(p)); s['hooks']={{}}; open(p,'w').write(json.dumps(s))"
    strip = tool("Bash", command=f'python3 -c "{script}" && sleep 3', description="strip")
    escape = tool("Write", file_path=str(lab.outside / "after.txt"), content="x")
    run = lab.run([[strip], [escape], [text("Done.")]])
    assert json.loads(path.read_text())["hooks"] == {}
    (change,) = run.of("WARNING", hook="ConfigChange")
    assert change["data"]["decision"] == "block" and "PreToolUse" in change["data"]["dropped"]
    assert "epyc-agent guard refused this call" in run.api.result_text(escape["id"])
    assert not (lab.outside / "after.txt").exists()


def test_tool_names_read_from_the_installed_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    """`agents install` maps role tools to what this CLI reports: Edit, never a MultiEdit it lacks."""
    from claude_code.harness import claude_bin

    from epyc_agent.hooks.install import cli_tools

    monkeypatch.setenv("EPYC_AGENT_CLAUDE_BIN", str(claude_bin()))
    tools = cli_tools()
    assert tools and {"Bash", "Edit", "Write", "Read"} <= set(tools)
    assert not {"MultiEdit", "TodoWrite"} & set(tools)


def test_doctor_reports_events_registered_and_handled(lab: Lab) -> None:
    """`hooks doctor` names the CLI version, the events registered and handled, and warns that
    this CLI ignores TMPDIR in a project's env block."""
    import subprocess

    from claude_code.harness import EPYC, claude_bin

    env = lab.env(EPYC_AGENT_CLAUDE_BIN=str(claude_bin()))
    out = subprocess.run(
        [str(EPYC), "hooks", "doctor", "--project", str(lab.project)], env=env, capture_output=True, text=True
    )
    assert "24 of the 33 events of 2.1.328 registered, 24 handled" in out.stdout, out.stdout + out.stderr
    assert "not registered: WorktreeCreate" in out.stdout
    assert "ignores" in out.stdout and "TMPDIR" in out.stdout


def test_a_worktree_outside_the_root_is_refused(lab: Lab) -> None:
    """EnterWorktree is a writing tool: a tree outside the root is denied before git runs."""
    outside = "/var/tmp/epyc-agent-worktree"
    call = tool("EnterWorktree", path=outside)
    run = lab.run([[call], [text("Stopped.")]])
    assert f"EnterWorktree at {outside}: outside the storage root" in run.api.result_text(call["id"])
    (denied,) = run.of("DECISION", tool_use_id=call["id"])
    assert denied["data"]["decision"] == "deny"
