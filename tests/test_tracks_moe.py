"""Track 2 end to end on a tiny real MoE GGUF: the expert count is overridden through kv_overrides,
swept, and the loss of agreement with the full-expert output is reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli
from tiny_moe import write_tiny_moe

pytestmark = pytest.mark.slow


def test_track_2_sweeps_expert_counts(tmp_path: Path, log_dir: Path) -> None:
    """Two reduced counts against the full 4 experts: each changes the output, and the report says how much."""
    moe = write_tiny_moe(tmp_path / "tiny-moe.gguf")
    r = run_cli(
        "track",
        "run",
        "2",
        "-m",
        str(moe),
        "--workload",
        "open_ended",
        "--prompts",
        "2",
        "--reps",
        "2",
        "--max-tokens",
        "16",
        "--param",
        "expert_used_count=1,2",
        "--threads",
        "1",
        "--json",
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    base, one, two = out["summary"]
    assert (base["config"], one["config"], two["config"]) == ("baseline", "expert_used_count=1", "expert_used_count=2")
    assert one["params"] == {"expert_used_count": 1} and two["reps"] == 2 and two["prompts"] == 2
    assert base["identical_outputs"] == 2 and base["agree_frac"] == 1.0  # greedy baseline reproduces itself
    for s in (one, two):
        assert s["identical_outputs"] < 2 and 0.0 <= s["agree_frac"] < 1.0
        assert s["divergences"] and all(isinstance(d["margin"], float) for d in s["divergences"])
        assert s["speedup"] > 0 and s["acceptance_rate"] is None
    conf = json.loads((Path(out["run_dir"]) / "config.json").read_text())
    assert conf["model"]["expert_count"] == 8 and conf["model"]["expert_used_count"] == 4
    assert conf["configs"] == [
        {"label": "expert_used_count=1", "params": {"expert_used_count": 1}},
        {"label": "expert_used_count=2", "params": {"expert_used_count": 2}},
    ]
    tested = json.loads((log_dir / "tested_models.json").read_text())["tested"]
    assert tested[-1]["method"] == "moe_reduction"
