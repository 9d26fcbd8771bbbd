"""Tested/untested bookkeeping and `session start` putting untested models first."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli
from gguf_factory import write_gguf

from epyc_agent.config import load_config
from epyc_agent.models.tested import load_tested, record_test, untested


@pytest.fixture
def two_models(root: Path) -> Path:
    m = root / "models"
    m.mkdir()
    write_gguf(m / "alpha.gguf")
    write_gguf(m / "beta.gguf", "mamba", ssm=True)
    write_gguf(m / "vocab-only.gguf", n_tensors=0)
    (m / "junk.gguf").write_text("x")
    return m


def test_untested_lists_runnable_models_until_tested(two_models: Path) -> None:
    """Broken and vocabulary-only files are not models to test; a record removes a model."""
    cfg = load_config()
    assert [e["id"] for e in untested(cfg)] == ["alpha", "beta"]
    rec = record_test(cfg, "alpha", "prompt_lookup", {"tps": "41.5", "tokens": 128, "accept": 0.75}, run_id="r1")
    assert rec["metrics"] == {"tps": 41.5, "tokens": 128, "accept": 0.75}
    assert [e["id"] for e in untested(cfg)] == ["beta"]
    (saved,) = load_tested(cfg)
    assert saved["model"] == "alpha" and saved["run_id"] == "r1" and saved["date"].endswith("Z")


def test_mark_tested_cli_and_untested_json(two_models: Path, log_dir: Path) -> None:
    """mark-tested records numbers as numbers; untested --json suggests a track per model."""
    r = run_cli("models", "untested", "--json")
    rows = {x["id"]: x for x in json.loads(r.stdout)}
    assert rows["alpha"]["command"] == "epyc-agent track run 8 --model alpha"
    assert rows["beta"]["suggested_track"] is None  # SSM and dense: no track applies
    r = run_cli(
        "models",
        "mark-tested",
        "ALPHA",
        "--method",
        "baseline",
        "--metric",
        "tps=12.3",
        "--metric",
        "ok=yes",
        "--run-id",
        "r7",
    )
    assert r.returncode == 0, r.stderr
    data = json.loads((log_dir / "tested_models.json").read_text())
    assert data["tests"][0]["metrics"] == {"tps": 12.3, "ok": "yes"}
    assert data["tests"][0]["model"] == "alpha" and data["tests"][0]["source"] == "manual"
    r = run_cli("models", "mark-tested", "alpha", "--method", "x", "--metric", "novalue")
    assert r.returncode == 2 and "expected KEY=VALUE" in r.stderr


def test_session_start_puts_untested_models_first(two_models: Path, log_dir: Path) -> None:
    """The first priority actions are the untested models; one OBSERVE event each."""
    r = run_cli("session", "start", "--purpose", "t")
    assert r.returncode == 0, r.stderr
    prio = [line for line in r.stdout.splitlines() if line.startswith("# priority")]
    assert prio[0] == "# priority 1: test untested model alpha: epyc-agent track run 8 --model alpha"
    assert prio[1].startswith("# priority 2: test untested model beta: no speculative track applies")
    events = [json.loads(x) for p in log_dir.glob("agent_audit-*.log") for x in p.read_text().splitlines()]
    obs = [e for e in events if e["cat"] == "OBSERVE" and e["msg"] == "untested model"]
    assert sorted(e["data"]["model"] for e in obs) == ["alpha", "beta"]
    assert obs[0]["data"]["size_bytes"] > 0


def test_session_start_without_model_folders() -> None:
    """No model folder yet: no untested-model actions and no error line."""
    r = run_cli("session", "start")
    assert r.returncode == 0 and "untested" not in r.stdout and "could not evaluate" not in r.stdout


def test_priority_lines_are_capped(root: Path) -> None:
    """Twelve untested models: ten action lines and a count, but twelve OBSERVE events."""
    from epyc_agent.events.writer import AuditLog
    from epyc_agent.models.tested import priority_untested

    (root / "models").mkdir()
    for i in range(12):
        write_gguf(root / "models" / f"m{i:02d}.gguf")
    cfg = load_config()
    with AuditLog(cfg.log_dir, "ses_t", "t") as log:
        lines = priority_untested(cfg, log)
    assert len(lines) == 11 and lines[-1] == "... and 2 more untested models: epyc-agent models untested"
    events = (Path(cfg.log_dir) / "agent_audit-t.log").read_text().splitlines()
    assert len([e for e in events if '"untested model"' in e]) == 12
