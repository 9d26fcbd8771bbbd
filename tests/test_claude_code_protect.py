"""An agent cannot switch off its own guards (real Claude Code CLI, scripted model).

Each attack is denied with a reason naming the file, is logged, and the next session's guards
still hold; a bad config fails closed for writing tools.
"""

from __future__ import annotations

import json

import pytest
from claude_code.harness import Lab
from claude_code.scripted_api import text, tool

pytestmark = pytest.mark.slow


def _outside_write_denied(lab: Lab) -> str:
    """Run one session that tries to write outside the root; return what the model was told."""
    call = tool("Write", file_path=str(lab.outside / "escape.txt"), content="x")
    run = lab.run([[call], [text("ok")]])
    assert not (lab.outside / "escape.txt").exists()
    return run.api.result_text(call["id"])


def test_settings_rewrite_denied_and_next_session_still_guarded(lab: Lab) -> None:
    """Writing the project's settings without our hooks is refused; the guards hold next time."""
    settings = lab.project / ".claude" / "settings.json"
    before = settings.read_text()
    call = tool("Write", file_path=str(settings), content=json.dumps({"hooks": {}}))
    run = lab.run([[call], [text("ok")]])
    said = run.api.result_text(call["id"])
    assert "is protected" in said and "hooks install" in said, said
    assert settings.read_text() == before
    assert run.of("DECISION", tool_use_id=call["id"])
    assert "epyc-agent guard refused" in _outside_write_denied(lab)


def test_sed_in_place_on_settings_denied(lab: Lab) -> None:
    """`sed -i` on the settings file is a write the Bash guard places and refuses."""
    settings = lab.project / ".claude" / "settings.json"
    before = settings.read_text()
    call = tool("Bash", command=f"sed -i 's/PreToolUse/Nothing/' {settings}", description="edit")
    run = lab.run([[call], [text("ok")]])
    said = run.api.result_text(call["id"])
    assert "is protected" in said, said
    assert settings.read_text() == before


def test_planted_config_is_refused_and_ignored(lab: Lab) -> None:
    """Writing ./epyc-agent.yaml is refused; one planted anyway (by a process the parser cannot
    see) is never loaded by the hook, so the storage guard stays on."""
    planted = lab.project / "epyc-agent.yaml"
    call = tool("Write", file_path=str(planted), content="guards: {storage: off}\n")
    run = lab.run([[call], [text("ok")]])
    assert "is protected" in run.api.result_text(call["id"])
    assert not planted.exists()
    planted.write_text("guards: {storage: off, bash: off}\n")
    assert "epyc-agent guard refused" in _outside_write_denied(lab)


def test_invalid_config_fails_closed_for_writing_tools(lab: Lab) -> None:
    """A config the hook cannot load denies Write and Bash with the reason; Read still works;
    the failure is logged under the root."""
    (lab.home / ".config" / "epyc-agent" / "config.yaml").write_text(f"root: {lab.root}\nguards: {{storag: off}}\n")
    (lab.root / "notes.txt").write_text("readable")
    write = tool("Write", file_path=str(lab.outside / "x.txt"), content="x")
    bash = tool("Bash", command="echo hi", description="hi")
    read = tool("Read", file_path=str(lab.root / "notes.txt"))
    run = lab.run([[write], [bash], [read], [text("ok")]], env={"EPYC_AGENT_ROOT": str(lab.root)})
    for c in (write, bash):
        said = run.api.result_text(c["id"])
        assert "config cannot be loaded" in said and "storag" in said, said
    assert "readable" in run.api.result_text(read["id"])
    assert not (lab.outside / "x.txt").exists()
    errors = [e for e in run.events() if e["cat"] == "ERROR" and "config cannot be loaded" in e["msg"]]
    assert errors
