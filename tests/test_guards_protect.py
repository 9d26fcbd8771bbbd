"""Protected files through the real hook: attack and legitimate twin side by side."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli

SID = "9a1c0d2e-0000-4c1e-9a55-0d2e8f7b6a11"


def pre(tmp_path: Path, tool: str, **tool_input: str) -> dict:
    """The hook's answer to one PreToolUse call in project tmp_path/project."""
    project = tmp_path / "project"
    (project / ".claude").mkdir(parents=True, exist_ok=True)
    payload = {
        "session_id": SID,
        "cwd": str(project),
        "hook_event_name": "PreToolUse",
        "tool_name": tool,
        "tool_use_id": "toolu_p1",
        "tool_input": tool_input,
    }
    r = run_cli("hook", input=json.dumps(payload), env={"CLAUDE_PROJECT_DIR": str(project)})
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["hookSpecificOutput"] if r.stdout.strip() else {}


def denied(answer: dict) -> bool:
    return answer.get("permissionDecision") == "deny" and "is protected" in answer.get("permissionDecisionReason", "")


@pytest.mark.parametrize(
    ("tool", "attack", "twin"),
    [
        (
            "Write",
            {"file_path": "{P}/.claude/settings.json", "content": "{}"},
            {"file_path": "{P}/x.json", "content": "{}"},
        ),
        ("Write", {"file_path": "{P}/.claude/settings.local.json", "content": "{}"}, None),
        (
            "Write",
            {"file_path": "{H}/.claude/settings.json", "content": "{}"},
            {"file_path": "{H}/.claude/plan.md", "content": "p"},
        ),
        ("Write", {"file_path": "{P}/epyc-agent.yaml", "content": "guards: {storage: off}"}, None),
        (
            "Write",
            {"file_path": "{R}/sub/epyc-agent.yaml", "content": "x"},
            {"file_path": "{R}/sub/other.yaml", "content": "x"},
        ),
        ("Write", {"file_path": "{H}/.config/epyc-agent/config.yaml", "content": "x"}, None),
        ("Edit", {"file_path": "{R}/logs/agent_audit-main.log", "old_string": "a", "new_string": "b"}, None),
        (
            "Write",
            {"file_path": "{R}/logs/.state/hook-x.json", "content": "{}"},
            {"file_path": "{R}/logs/notes.md", "content": "n"},
        ),
        ("Write", {"file_path": "{P}/.claude/agents/sysadmin.md", "content": "x"}, None),
        ("Bash", {"command": "sed -i s/a/b/ {P}/.claude/settings.json"}, {"command": "sed -i s/a/b/ {P}/notes.txt"}),
        ("Bash", {"command": "echo '{{}}' > {P}/.claude/settings.json"}, {"command": "echo '{{}}' > {P}/other.json"}),
        ("Bash", {"command": "tee {R}/logs/agent_audit-main.log < /dev/null"}, None),
        ("Bash", {"command": "truncate -s0 {R}/logs/agent_audit-main.log"}, {"command": "truncate -s0 {R}/data.bin"}),
        ("Bash", {"command": "mv {P}/.claude/settings.json {P}/old.json"}, None),
        ("Bash", {"command": "rm {R}/logs/.state/hook-x.json"}, {"command": "rm {R}/scratch.txt"}),
        ("Bash", {"command": "cp /dev/null {R}/logs/sessions/cc-x.json"}, None),
        ("Bash", {"command": "rm -rf {R}/logs"}, {"command": "rm -rf {R}/old-logs"}),
        (
            "Bash",
            {"command": "epyc-agent hooks uninstall --project {P}"},
            {"command": "epyc-agent hooks doctor --project {P}"},
        ),
        ("Bash", {"command": "cd {P} && .venv/bin/epyc-agent --root {R} hooks install"}, None),
        ("Bash", {"command": "python3 -m epyc_agent agents install"}, {"command": "python3 -m epyc_agent agents list"}),
    ],
)
def test_protected_file_attack_denied_twin_allowed(tmp_path: Path, tool: str, attack: dict, twin: dict | None) -> None:
    """Each write to a protected file is refused with the reason; the same write elsewhere is not."""
    where = {"P": str(tmp_path / "project"), "H": str(tmp_path / "home"), "R": str(tmp_path / "root")}

    def fill(ti: dict) -> dict:
        return {k: v.format(**where) if k != "content" else v for k, v in ti.items()}

    assert denied(pre(tmp_path, tool, **fill(attack))), attack
    if twin is not None:
        assert pre(tmp_path, tool, **fill(twin)).get("permissionDecision") != "deny", twin


def test_protect_off_in_the_config_lifts_it(tmp_path: Path) -> None:
    """`guards.protect: off`, in a config file a person controls, is the one switch."""
    cfg = tmp_path / "home" / ".config" / "epyc-agent" / "config.yaml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text("guards: {protect: off}\n")
    assert not denied(pre(tmp_path, "Write", file_path=str(tmp_path / "project" / ".claude" / "settings.json")))


def test_hook_never_loads_a_config_from_its_cwd(tmp_path: Path) -> None:
    """A planted ./epyc-agent.yaml with the guards off changes nothing for the hook."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "epyc-agent.yaml").write_text("guards: {storage: off}\n")
    r = run_cli(
        "hook",
        input=json.dumps(
            {
                "session_id": SID,
                "cwd": str(project),
                "hook_event_name": "PreToolUse",
                "tool_name": "Write",
                "tool_use_id": "t",
                "tool_input": {"file_path": "/etc/escape.conf", "content": "x"},
            }
        ),
        cwd=project,
    )
    assert json.loads(r.stdout)["hookSpecificOutput"]["permissionDecision"] == "deny"
