"""Tested/untested bookkeeping and `session start` putting untested models first."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import run_cli
from gguf_factory import write_gguf

from epyc_agent.config import load_config
from epyc_agent.models.tested import load_tested, record_test, untested

RECORD_ENV = "EPYC_AGENT_LAB_RECORD_TEST"
NO_TRACK = "(SSM/hybrid, not MoE): measure its baseline"


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
    assert saved["model"] == "alpha" and saved["run_id"] == "r1" and saved["timestamp"].endswith("Z")
    assert saved["result_tps"] == 41.5 and len(saved["date"]) == 10  # the lab's columns, filled from ours


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
    assert data["version"] == 2 and list(data) == ["version", "tested"]  # the lab's layout
    assert data["tested"][0]["metrics"] == {"tps": 12.3, "ok": "yes"}
    assert data["tested"][0]["model"] == "alpha" and data["tested"][0]["source"] == "manual"
    assert data["tested"][0]["path"].endswith("alpha.gguf") and data["tested"][0]["result_tps"] == 12.3
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


# --- the lab's {"tested": [...]} record -----------------------------------------------------------

LAB_RECORD = {  # as the lab's record_test.sh writes it: every value a string
    "path": "",
    "name": "alpha.gguf",
    "method": "speculative_decoding",
    "result_tps": "46.6",
    "date": "2025-12-16",
    "timestamp": "2025-12-16T19:07:55+00:00",
    "notes": "K=16",
    "acceptance": "72",
    "config": "",
}
# the lab's own jq programs: record_test.sh appends with the first, session_init.sh reads with the second
JQ_APPEND = '.tested += [{"path": $path, "name": $name, "method": $method, "result_tps": $result}]'
JQ_PATHS = ".tested[]?.path // empty"


def _lab_file(log_dir: Path, models: Path) -> dict:
    rec = {**LAB_RECORD, "path": str(models / "alpha.gguf")}
    log_dir.mkdir(parents=True, exist_ok=True)
    (log_dir / "tested_models.json").write_text(json.dumps({"tested": [rec]}, indent=2))
    return rec


def test_lab_record_is_read_with_numbers(two_models: Path, log_dir: Path) -> None:
    """The lab's file: "46.6" becomes 46.6, its model counts as tested, `models untested` exits 0."""
    _lab_file(log_dir, two_models)
    (rec,) = load_tested(load_config())
    assert rec["result_tps"] == 46.6 and rec["acceptance"] == 72 and rec["model"] == "alpha"
    assert rec["metrics"] == {"result_tps": 46.6, "acceptance": 72} and rec["source"] == "record_test.sh"
    assert rec["notes"] == "K=16" and rec["date"] == "2025-12-16"
    r = run_cli("models", "untested", "--json")
    assert r.returncode == 0, r.stderr
    assert [x["id"] for x in json.loads(r.stdout)] == ["beta"]


def test_session_start_keeps_untested_first_on_the_lab_file(two_models: Path, log_dir: Path) -> None:
    """session start on the lab's file: the untested model is priority 1, nothing "could not evaluate"."""
    _lab_file(log_dir, two_models)
    r = run_cli("session", "start")
    assert r.returncode == 0, r.stderr
    prio = [line for line in r.stdout.splitlines() if line.startswith("# priority")]
    assert prio[0] == "# priority 1: test untested model beta: no speculative track applies " + NO_TRACK
    assert not [p for p in prio if "could not evaluate" in p]


@pytest.mark.skipif(shutil.which("jq") is None, reason="jq is not installed")
def test_our_writes_stay_readable_by_the_lab_scripts(two_models: Path, log_dir: Path) -> None:
    """We append to the lab's list and keep its record as written; the lab's jq reads our records
    and appends to our file, and we read what it appended."""
    lab_rec = _lab_file(log_dir, two_models)
    cfg = load_config()
    record_test(cfg, "beta", "baseline", {"decode_tps": 12.5, "config": "default"}, run_id="r1")
    path = log_dir / "tested_models.json"
    data = json.loads(path.read_text())
    assert data["tested"][0] == lab_rec  # strings kept: the lab's record is the lab's
    ours = data["tested"][1]
    assert ours["result_tps"] == 12.5 and ours["config"] == "default" and ours["name"] == "beta.gguf"
    read = subprocess.run(["jq", "-r", JQ_PATHS, str(path)], capture_output=True, text=True, check=True)
    assert read.stdout.split() == [str(two_models / "alpha.gguf"), str(two_models / "beta.gguf")]
    args = ["--arg", "path", "/lab/gamma.gguf", "--arg", "name", "gamma.gguf", "--arg", "method", "lookup"]
    out = subprocess.run(
        ["jq", *args, "--arg", "result", "9.5", JQ_APPEND, str(path)], capture_output=True, text=True, check=True
    )
    path.write_text(out.stdout)
    assert [(t["model"], t["result_tps"]) for t in load_tested(cfg)] == [
        ("alpha", 46.6),
        ("beta", 12.5),
        ("gamma", 9.5),
    ]


def test_pre_20_file_moves_once_with_a_backup(two_models: Path, log_dir: Path) -> None:
    """Our old {"version": 1, "tests": [...]}: read as it is; the next write moves it into `tested`
    after a byte-for-byte backup, and says so once."""
    log_dir.mkdir(parents=True)
    path = log_dir / "tested_models.json"
    alpha = {"model": "alpha", "path": str(two_models / "alpha.gguf"), "method": "prompt_lookup"}
    alpha.update(metrics={"tps": "41.5"}, date="2025-11-01T10:00:00Z", run_id="r0", source="track")
    old = {"version": 1, "tests": [alpha]}
    path.write_text(json.dumps(old))
    original = path.read_bytes()
    assert [t["metrics"] for t in load_tested(load_config())] == [{"tps": 41.5}]
    r = run_cli("models", "mark-tested", "beta", "--method", "baseline")
    assert r.returncode == 0, r.stderr
    assert r.stderr == (
        f'epyc-agent: moved {path} to the lab\'s {{"tested": [...]}} layout; the old file is {path}.v1.bak\n'
    )
    assert (log_dir / "tested_models.json.v1.bak").read_bytes() == original
    data = json.loads(path.read_text())
    assert "tests" not in data and [t["model"] for t in data["tested"]] == ["alpha", "beta"]
    assert data["tested"][0]["result_tps"] == 41.5 and data["tested"][0]["date"] == "2025-11-01"
    assert data["migrated"]["backup"] == f"{path}.v1.bak"
    r = run_cli("models", "mark-tested", "beta", "--method", "x")
    assert r.returncode == 0 and r.stderr == ""


def test_a_file_that_is_no_record_is_refused(two_models: Path, log_dir: Path) -> None:
    """Neither `tested` nor `tests`: a one-line refusal naming the file and the expected layout."""
    log_dir.mkdir(parents=True)
    (log_dir / "tested_models.json").write_text('{"models": []}')
    r = run_cli("models", "untested")
    assert r.returncode == 2 and r.stderr.startswith("epyc-agent: ")
    assert 'tested_models.json: expected {"tested": [...]}' in r.stderr and len(r.stderr.splitlines()) == 1


@pytest.mark.skipif(not os.environ.get(RECORD_ENV), reason=f"set {RECORD_ENV} to the lab's scripts/record_test.sh")
def test_the_lab_record_test_script_on_our_file(two_models: Path, log_dir: Path, tmp_path: Path) -> None:
    """The lab's own record_test.sh (its env library stubbed to point at our log folder) appends to
    a file we wrote, and we read its string numbers as numbers."""
    record_test(load_config(), "beta", "baseline", {"tps": 10.0})
    scripts = tmp_path / "lab" / "scripts"  # the script sources ../lib/env.sh
    for sub in ("lib", "session"):
        (scripts / sub).mkdir(parents=True)
    shutil.copy(os.environ[RECORD_ENV], scripts / "session" / "record_test.sh")
    stubs = "".join(f"{f}() {{ :; }}\n" for f in ("agent_task_start", "agent_task_end", "agent_observe"))
    (scripts / "lib" / "env.sh").write_text(f"LOG_DIR={log_dir}\nPROJECT_ROOT={tmp_path / 'lab'}\n{stubs}")
    alpha = str(two_models / "alpha.gguf")
    r = subprocess.run(
        [
            "bash",
            str(scripts / "session" / "record_test.sh"),
            "--model",
            alpha,
            "--method",
            "lookup",
            "--result",
            "46.6",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    recs = load_tested(load_config())
    assert [(t["model"], t["result_tps"], t["source"]) for t in recs] == [
        ("beta", 10.0, "track"),
        ("alpha", 46.6, "record_test.sh"),
    ]
    assert untested(load_config()) == []
