"""`epyc-agent hooks install|uninstall|doctor` on real settings files."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import run_cli

OTHER = {
    "model": "opus",
    "env": {"FOO": "1"},
    "permissions": {"allow": ["Bash(ls:*)"], "deny": ["Read(.env)"]},
    "hooks": {
        "PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "other-guard"}]}],
        "Stop": [{"hooks": [{"type": "command", "command": "notify-send done"}]}],
    },
}


def settings(proj: Path) -> dict:
    return json.loads((proj / ".claude" / "settings.json").read_text())


def write(proj: Path, data: object) -> None:
    (proj / ".claude").mkdir(parents=True, exist_ok=True)
    (proj / ".claude" / "settings.json").write_text(data if isinstance(data, str) else json.dumps(data))


def test_install_merges_keeps_others_and_is_idempotent(tmp_path: Path, root: Path) -> None:
    """Install adds our hooks, env, allowWrite and deny rules, keeps everything else, backs up, and is idempotent."""
    proj = tmp_path / "proj"
    write(proj, OTHER)
    r = run_cli("hooks", "install", "--project", str(proj))
    assert r.returncode == 0, r.stderr
    s = settings(proj)
    assert s["model"] == "opus" and s["env"]["FOO"] == "1" and s["env"]["EPYC_AGENT_ROOT"] == str(root)
    assert s["env"]["TMPDIR"] == str(root / "tmp") and s["env"]["EPYC_AGENT_LOG_DIR"] == str(root / "logs")
    commands = {e: [h["command"] for g in s["hooks"][e] for h in g["hooks"]] for e in s["hooks"]}
    assert "other-guard" in commands["PreToolUse"] and "notify-send done" in commands["Stop"]
    for event in (
        "SessionStart",
        "UserPromptSubmit",
        "PreToolUse",
        "PostToolUse",
        "PostToolUseFailure",
        "PreCompact",
        "Stop",
        "SubagentStop",
        "SessionEnd",
        "Notification",
    ):
        assert sum(c.endswith("epyc-agent hook") for c in commands[event]) == 1, event
    assert s["sandbox"]["filesystem"]["allowWrite"] == [str(root)]
    assert "Edit(//etc/**)" in s["permissions"]["deny"] and "Read(.env)" in s["permissions"]["deny"]
    assert len(list((proj / ".claude").glob("settings.json.bak-*"))) == 1
    before = (proj / ".claude" / "settings.json").read_text()
    r = run_cli("hooks", "install", "--project", str(proj))
    assert "nothing changed" in r.stdout
    assert (proj / ".claude" / "settings.json").read_text() == before


def test_uninstall_removes_exactly_ours(tmp_path: Path) -> None:
    """Uninstall restores the user's settings exactly."""
    proj = tmp_path / "proj"
    write(proj, OTHER)
    run_cli("hooks", "install", "--project", str(proj))
    r = run_cli("hooks", "uninstall", "--project", str(proj))
    assert r.returncode == 0, r.stderr
    assert settings(proj) == OTHER


def test_invalid_json_refused_untouched(tmp_path: Path) -> None:
    """A settings file that is not JSON is refused with a clear one-line error and left as it was."""
    proj = tmp_path / "proj"
    write(proj, '{"hooks": {,}')
    r = run_cli("hooks", "install", "--project", str(proj))
    assert r.returncode == 2 and "invalid JSON" in r.stderr and "nothing was changed" in r.stderr
    assert "Traceback" not in r.stderr
    assert (proj / ".claude" / "settings.json").read_text() == '{"hooks": {,}'


def test_doctor(tmp_path: Path) -> None:
    """Doctor fails before install and passes after, including the dry payloads through the hook."""
    proj = tmp_path / "proj"
    proj.mkdir()
    r = run_cli("hooks", "doctor", "--project", str(proj))
    assert r.returncode == 1
    run_cli("hooks", "install", "--project", str(proj))
    r = run_cli("hooks", "doctor", "--project", str(proj), "--json")
    rows = {row["check"]: row for row in json.loads(r.stdout)}
    assert r.returncode == 0, rows
    assert rows["dry run (write to /etc)"]["status"] == "PASS" and "denied" in rows["dry run (write to /etc)"]["detail"]


def test_user_settings(tmp_path: Path) -> None:
    """--user writes ~/.claude/settings.json (HOME is the test's)."""
    r = run_cli("hooks", "install", "--user")
    assert r.returncode == 0, r.stderr
    assert "hooks" in json.loads((tmp_path / "home" / ".claude" / "settings.json").read_text())
