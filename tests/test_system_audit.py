"""`system audit`: real host facts saved under the root and logged as OBSERVE events."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import run_cli

from epyc_agent.system import audit


def test_audit_saves_json_under_root_and_logs(root: Path) -> None:
    """The audit matches the host, is saved atomically under <root>/system and logged by sysadmin."""
    r = run_cli("system", "audit", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    saved = Path(data.pop("path"))
    assert saved.parent == root / "system" and saved.name.startswith("audit-")
    assert json.loads(saved.read_text()) == data
    assert [p.name for p in saved.parent.iterdir()] == [saved.name]  # no temp file left
    assert data["cpu"]["threads"] == os.cpu_count()
    flags = Path("/proc/cpuinfo").read_text()
    assert data["cpu"]["avx2"] == (" avx2 " in flags)
    assert data["numa"]["count"] == len(list(Path("/sys/devices/system/node").glob("node[0-9]*")))
    assert (data["compilers"]["gcc"] is None) == (shutil.which("gcc") is None)
    assert (data["compilers"]["clang"] is None) == (shutil.which("clang") is None)
    assert "AVX" in data["llama_cpp_system_info"]
    events = [json.loads(x) for x in (root / "logs" / "agent_audit-sysadmin.log").read_text().splitlines()]
    observed = {e["msg"] for e in events if e["cat"] == "OBSERVE"}
    assert {"cpu", "memory", "kernel", "compilers", "llama.cpp build"} <= observed


def test_missing_tool_is_null(monkeypatch: pytest.MonkeyPatch) -> None:
    """A compiler that is not installed is reported as null, not an error."""
    monkeypatch.setenv("PATH", "/nonexistent")
    assert audit.tool_version("gcc") is None


def test_audit_refuses_missing_root(tmp_path: Path) -> None:
    """Without a root there is nowhere to save: exit 2 with one line, nothing created."""
    r = run_cli("system", "audit", env={"EPYC_AGENT_ROOT": str(tmp_path / "gone")})
    assert r.returncode == 2 and "does not exist" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "gone").exists()
