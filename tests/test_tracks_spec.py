"""research/tracks.yaml and research/workloads/: the lab's plan as valid data, prompts versioned and hashed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import run_cli

from epyc_agent.errors import EpycAgentError
from epyc_agent.inference.methods import METHODS
from epyc_agent.tracks.spec import STATUSES, load_tracks, parse_tracks, research_dir
from epyc_agent.tracks.workloads import list_workloads, load_workload

EXPECTED = {
    1: ("draft_model", "production"),
    2: ("moe_reduction", "production"),
    3: ("eagle", "deprecated"),
    6: ("suffix", "active"),
    7: ("cas_spec", "planned"),
    8: ("prompt_lookup", "active"),
}


def test_every_track_of_the_plan_with_method_and_status() -> None:
    """All six tracks are there with the lab's methods and statuses, each with a gain and references."""
    tracks = load_tracks()
    assert {t: (tr.method, tr.status) for t, tr in tracks.items()} == EXPECTED
    for t in tracks.values():
        assert t.status in STATUSES and t.expected_gain and t.references and t.summary


def test_track_params_are_the_engines_and_have_sweeps() -> None:
    """Speculative tracks' parameters exist in the engine's METHODS (same names), with typed sweeps."""
    tracks = load_tracks()
    for t in tracks.values():
        if t.method in METHODS:
            assert set(t.params) <= set(METHODS[t.method]["params"]), t.id
        for p in t.params.values():
            assert p.sweep and all(isinstance(v, int | float) for v in p.sweep)
    assert tracks[2].params["expert_used_count"].sweep == [2, 4, 6]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {
                "tracks": [
                    {"id": 1, "name": "x", "method": "m", "status": "someday", "summary": "s", "expected_gain": "g"}
                ]
            },
            "status 'someday' not one of",
        ),
        (
            {"tracks": [{"id": 1, "name": "x", "method": "m", "status": "active", "summary": "s"}]},
            "lacks expected_gain",
        ),
        (
            {
                "tracks": [
                    {
                        "id": 1,
                        "name": "x",
                        "method": "m",
                        "status": "active",
                        "summary": "s",
                        "expected_gain": "g",
                        "params": {"k": {"type": "int", "sweep": [1, "two"]}},
                    }
                ]
            },
            "value 'two' is not a int",
        ),
        (
            {
                "tracks": [
                    {"id": 1, "name": "x", "method": "m", "status": "active", "summary": "s", "expected_gain": "g"}
                ]
                * 2
            },
            "appears twice",
        ),
    ],
)
def test_invalid_tracks_are_named(raw: dict, message: str) -> None:
    """A defect in tracks.yaml names the track and what is wrong."""
    with pytest.raises(EpycAgentError, match=message):
        parse_tracks(raw)


def test_workloads_are_small_versioned_prompt_sets() -> None:
    """Five workloads, ids unique, >= 30 templated agentic requests, copy prompts holding what the answer copies."""
    assert list_workloads() == ["agentic_sql", "code_editing", "copy", "open_ended", "summarization"]
    for name in list_workloads():
        wl = load_workload(name)
        assert wl.version >= 1 and len({p["id"] for p in wl.prompts}) == len(wl.prompts)
    sql = load_workload("agentic_sql")
    assert len(sql.prompts) >= 30 and sql.prompts[0]["id"] == "sql-01"
    assert all(p["text"].startswith("You are a database agent.") for p in sql.prompts)
    for p in [*load_workload("summarization").prompts, *load_workload("copy").prompts]:
        last = p["text"].rstrip("\n").splitlines()[-1].strip()
        assert p["text"].count(last[-30:]) >= 2, p["id"]  # the answer's start is already in the passage
    for p in load_workload("copy").prompts:  # long enough that 256 answer tokens can all be copied
        assert len(p["text"]) >= 1000, p["id"]


def test_workload_hash_follows_the_prompts(tmp_path: Path) -> None:
    """The hash changes with a prompt's text and not with the file's comments or layout."""
    src = Path(research_dir()) / "workloads" / "open_ended.yaml"
    data = yaml.safe_load(src.read_text())
    a = tmp_path / "a.yaml"
    a.write_text("# comment\n" + yaml.safe_dump(data))
    b = tmp_path / "b.yaml"
    data["prompts"][0]["text"] += " again"
    b.write_text(yaml.safe_dump(data))
    assert load_workload(str(a)).sha256 == load_workload("open_ended").sha256 != load_workload(str(b)).sha256
    assert load_workload("open_ended").head(2).prompts == load_workload("open_ended").prompts[:2]


def test_track_list_and_show_cli() -> None:
    """`track list --json` lists the six tracks; `track show 8` names parameters and sweeps; unknown ids exit 2."""
    r = run_cli("track", "list", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert [(d["id"], d["status"], d["built"]) for d in data] == [
        (1, "production", True),
        (2, "production", True),
        (3, "deprecated", False),
        (6, "active", True),
        (7, "planned", False),
        (8, "active", True),
    ]
    r = run_cli("track", "show", "8")
    assert r.returncode == 0 and "pl_k" in r.stdout and "4, 8, 10, 16" in r.stdout and "llama-lookup" in r.stdout
    show2 = json.loads(run_cli("track", "show", "2", "--json").stdout)
    assert show2["params"]["expert_used_count"]["sweep"] == [2, 4, 6]
    r = run_cli("track", "show", "5")
    assert r.returncode == 2 and r.stderr == "epyc-agent: no track '5' (known tracks: 1, 2, 3, 6, 7, 8)\n"
