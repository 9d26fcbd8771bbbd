"""A log line with a lone surrogate escape (`"\\ud800"`, valid JSON that orjson refuses) is read,
analysed and printed by every mode, as text and as JSON, never an internal error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli

LINE = (
    '{"ts":"2026-01-01T00:00:00.000000Z","session":"s1","agent":"a","level":"ERROR","cat":"ERROR",'
    '"msg":"bad \\ud800 byte","details":"","v":1}\n'
)
MODES = [["--errors"], ["--tail", "5"], ["--timeline", "5"], ["--session", "s1"], ["--summary"], ["--commands"]]


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m[0])
def test_lone_surrogate(mode: list[str], log_dir: Path) -> None:
    log_dir.mkdir(parents=True)
    (log_dir / "agent_audit-a.log").write_text(LINE)
    shown = run_cli("log", "analyze", *mode)
    assert shown.returncode == 0, shown.stderr
    data = run_cli("log", "analyze", *mode, "--json")
    assert data.returncode == 0, data.stderr
    json.loads(data.stdout)
    if mode[0] != "--summary" and mode[0] != "--commands":
        assert "\\ud800" in shown.stdout and "\\ud800" in data.stdout
