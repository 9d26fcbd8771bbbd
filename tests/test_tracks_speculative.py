"""Tracks 6 (suffix decoding) and 1 (draft model) through the runner on a tiny real GGUF: the engine's
counters reach the summary, sweeps give one configuration each, and a self-draft is fully accepted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli
from tiny_moe import write_tiny_moe

pytestmark = pytest.mark.slow


def _run(*args: str) -> dict:
    r = run_cli("track", "run", *args, "--threads", "1", "--json", timeout=600)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_suffix_decoding_counters(tmp_path: Path) -> None:
    """Track 6 on repeated agentic requests: drafted/accepted counts and per-prompt records for each rep."""
    model = write_tiny_moe(tmp_path / "tiny.gguf")
    out = _run("6", "-m", str(model), "-w", "agentic_sql", "--prompts", "4", "--reps", "2", "--max-tokens", "24")
    base, method = out["summary"]
    assert method["params"]["suffix_k"] == 64 and method["reps"] == 2 and method["prompts"] == 4
    assert method["acceptance_rate"] is None or 0.0 <= method["acceptance_rate"] <= 1.0
    recs = [json.loads(x) for x in (Path(out["run_dir"]) / "output.jsonl").read_text().splitlines()]
    assert len(recs) == 2 * 4 * 2 and {r["rep"] for r in recs} == {0, 1}
    assert all(r["accepted"] <= r["drafted"] for r in recs)


def test_self_draft_is_accepted_and_longer_drafts_are_not_capped(tmp_path: Path) -> None:
    """Track 1 with the model drafting for itself: acceptance ~1; K=24 accepts more per step than K=4."""
    model = write_tiny_moe(tmp_path / "tiny.gguf")
    out = _run(
        "1",
        "-m",
        str(model),
        "--draft",
        str(model),
        "-w",
        "code_editing",
        "--prompts",
        "2",
        "--reps",
        "1",
        "--max-tokens",
        "48",
        "--param",
        "draft_k=4,24",
    )
    base, k4, k24 = out["summary"]
    assert (k4["config"], k24["config"]) == ("draft_k=4", "draft_k=24")
    assert k4["acceptance_rate"] > 0.9 and k24["acceptance_rate"] > 0.9
    assert k24["mean_accepted_per_step"] > k4["mean_accepted_per_step"] > 1.0
    conf = json.loads((Path(out["run_dir"]) / "config.json").read_text())
    assert conf["draft"]["path"] == str(model) and len(conf["draft"]["sha256"]) == 64
