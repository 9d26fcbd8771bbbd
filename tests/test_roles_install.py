"""`agents install`: Claude Code subagent files, idempotent, never touching the user's files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml
from conftest import run_cli

from epyc_agent.roles import ROLES


def _front(path: Path) -> dict:
    text = path.read_text()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_install_writes_claude_subagents(tmp_path: Path) -> None:
    """Each role becomes .claude/agents/<name>.md with name, description and Claude tool names."""
    proj = tmp_path / "proj"
    proj.mkdir()
    r = run_cli("agents", "install", "--project", str(proj), "--json")
    assert r.returncode == 0, r.stderr
    assert sorted(x["status"] for x in json.loads(r.stdout)) == ["created"] * 6
    files = sorted(p.name for p in (proj / ".claude" / "agents").iterdir())
    assert files == sorted(f"{n}.md" for n in ROLES)
    sa = _front(proj / ".claude" / "agents" / "sysadmin.md")
    assert set(sa) == {"name", "description", "tools"}
    assert sa["name"] == "sysadmin" and "health" in sa["description"]
    assert sa["tools"] == "Bash, Read"  # 2.1.x has no Grep or Glob tool
    re_ = _front(proj / ".claude" / "agents" / "research-engineer.md")
    assert re_["tools"] == "Read, Edit, Write, Bash"  # nor MultiEdit
    body = (proj / ".claude" / "agents" / "benchmark-analyst.md").read_text()
    assert "## Guardrails" in body and "`epyc-agent track run`" in body


def test_install_is_idempotent_and_leaves_user_files(tmp_path: Path, root: Path) -> None:
    """A second install changes nothing (same bytes, same mtime); other and same-named user files stay."""
    agents_dir = tmp_path / "proj" / ".claude" / "agents"
    agents_dir.mkdir(parents=True)
    mine = agents_dir / "my-helper.md"
    mine.write_text("---\nname: my-helper\n---\nmine\n")
    clash = agents_dir / "sysadmin.md"
    clash.write_text("---\nname: sysadmin\n---\nthe user's own sysadmin\n")
    r1 = run_cli("agents", "install", "--project", str(tmp_path / "proj"))
    assert r1.returncode == 1 and "sysadmin.md exists and was not generated" in r1.stderr
    assert clash.read_text() == "---\nname: sysadmin\n---\nthe user's own sysadmin\n"
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in agents_dir.iterdir()}
    os.utime(agents_dir / "safety-reviewer.md", ns=(1, 1))  # a rewrite would change this
    before["safety-reviewer.md"] = (before["safety-reviewer.md"][0], 1)
    r2 = run_cli("agents", "install", "--project", str(tmp_path / "proj"), "--json")
    statuses = {Path(x["path"]).name: x["status"] for x in json.loads(r2.stdout)}
    assert statuses.pop("sysadmin.md") == "skipped"
    assert set(statuses.values()) == {"unchanged"}
    after = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in agents_dir.iterdir()}
    assert after == before
    assert not [p for p in agents_dir.iterdir() if p.name.endswith(".tmp")]
    r3 = run_cli("agents", "install", "--project", str(tmp_path / "proj"), "--force")
    assert r3.returncode == 0 and _front(clash)["tools"] == "Bash, Read"
    assert mine.read_text() == "---\nname: my-helper\n---\nmine\n"
    events = [json.loads(x) for x in (root / "logs" / "agent_audit-main.log").read_text().splitlines()]
    assert len([e for e in events if e["cat"] == "FILE_MODIFY"]) == 6  # 5 created, then 1 forced update


def test_missing_project_folder_is_refused(tmp_path: Path) -> None:
    """A mistyped --project is one clear error, and no stray folder is created."""
    r = run_cli("agents", "install", "--project", str(tmp_path / "typo"))
    assert r.returncode == 2 and "does not exist" in r.stderr and r.stderr.count("\n") == 1
    assert not (tmp_path / "typo").exists()
    r2 = run_cli("hooks", "install", "--project", str(tmp_path / "typo"))
    assert r2.returncode == 2 and "does not exist" in r2.stderr
    assert not (tmp_path / "typo").exists()


def test_install_defaults_to_claude_project_dir(tmp_path: Path) -> None:
    """Without --project the subagents go to $CLAUDE_PROJECT_DIR."""
    proj = tmp_path / "cp"
    proj.mkdir()
    r = run_cli("agents", "install", env={"CLAUDE_PROJECT_DIR": str(proj)})
    assert r.returncode == 0, r.stderr
    assert (proj / ".claude" / "agents" / "sysadmin.md").is_file()
