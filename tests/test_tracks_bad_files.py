"""Run folders and workloads that are not what we wrote: one clear line or a skipped folder, never a crash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli

from epyc_agent.errors import EpycAgentError
from epyc_agent.tracks.workloads import load_workload


def test_a_workload_that_is_a_folder(tmp_path: Path) -> None:
    folder = tmp_path / "w.yaml"
    folder.mkdir()
    with pytest.raises(EpycAgentError, match="cannot read the workload"):
        load_workload(str(folder))


def test_a_foreign_status_json_is_skipped(root: Path) -> None:
    """A status.json whose request is not a mapping: `track runs` and `track status` do not crash."""
    run = root / "benchmarks" / "runs" / "2026-01-01_000000-t8-x"
    run.mkdir(parents=True)
    (run / "status.json").write_text(json.dumps({"run_id": run.name, "state": "interrupted", "request": 5}))
    r = run_cli("track", "runs", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == []
    r = run_cli("track", "status", run.name)
    assert r.returncode == 2 and "no run" in r.stderr and "Traceback" not in r.stderr
