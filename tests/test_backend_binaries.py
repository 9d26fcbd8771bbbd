"""The llama.cpp-binaries backend: parsing real tool output (captured from this llama.cpp build), flag
probing, argv building; and, when the tools are built (`make llama-tools`), a real run through them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import run_cli

from epyc_agent.tracks.backends import binaries

DATA = Path(__file__).parent / "data" / "llama_cpp"
REPO = Path(__file__).parent.parent


def _read(name: str) -> str:
    return (DATA / name).read_text()


def test_parse_completion_perf() -> None:
    """llama-completion's perf lines: prompt eval = prefill, eval = decode (runs = tokens after the first)."""
    assert binaries.parse_perf(_read("completion.stderr")) == {
        "prompt_ms": 1784.44,
        "n_prompt": 15,
        "prefill_tps": 8.41,
        "eval_ms": 6198.92,
        "n_eval": 15,
        "decode_tps": 2.42,
    }


def test_parse_lookup_and_speculative() -> None:
    """llama-lookup / llama-speculative summaries: speeds and draft counters despite the log prefix."""
    lookup = binaries.parse_spec(_read("lookup.stderr"))
    assert lookup == {
        "n_prompt": 15,
        "encode_s": 1.691,
        "prefill_tps": 19.519,
        "n_generated": 18,
        "decode_s": 1.901,
        "decode_tps": 9.47,
        "n_draft": 8,
        "n_predict": 18,
        "n_drafted": 16,
        "n_accept": 13,
        "accept_pct": 81.25,
    }
    spec = binaries.parse_spec(_read("spec.stderr"))
    assert (spec["n_drafted"], spec["n_accept"], spec["accept_pct"], spec["decode_tps"]) == (16, 12, 75.0, 2.255)


def test_parse_bench_json() -> None:
    assert binaries.parse_bench_json(_read("bench.stdout")) == [
        {"test": "pp32", "n_prompt": 32, "n_gen": 0, "avg_ts": 48.197592, "stddev_ts": 0.0, "n_threads": 2},
        {"test": "tg8", "n_prompt": 0, "n_gen": 8, "avg_ts": 10.059707, "stddev_ts": 0.0, "n_threads": 2},
    ]


def test_help_probe_skips_removed_flags() -> None:
    """`--draft-max` is still in the help text but marked removed: the probe leaves it out."""
    lookup = binaries.parse_help(_read("lookup.help"))
    assert "--spec-draft-n-max" in lookup and "--draft-max" not in lookup and "--draft" not in lookup
    completion = binaries.parse_help(_read("completion.help"))
    assert {"-no-cnv", "--no-escape", "--override-kv", "--perf", "-e", "--escape"} <= completion


def test_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argv for the plain tool (MoE override) and for llama-lookup, from the probed flags of this build."""
    helps = {
        "llama-completion": binaries.parse_help(_read("completion.help")),
        "llama-lookup": binaries.parse_help(_read("lookup.help")),
    }
    monkeypatch.setattr(binaries, "probe_flags", lambda tool: helps[os.path.basename(tool)])
    argv = binaries.plain_argv("/b/llama-completion", "m.gguf", "hi", 8, 2, 512, 0, {"qwen3moe.expert_used_count": 4})
    assert argv[:4] == ["/b/llama-completion", "-m", "m.gguf", "-p"] and "-no-cnv" in argv
    assert argv[argv.index("--override-kv") + 1] == "qwen3moe.expert_used_count=int:4"
    argv = binaries.method_argv("/b/llama-lookup", "prompt_lookup", "m.gguf", None, "hi", 8, 2, 512, 0, {"pl_k": 12})
    assert argv[argv.index("--spec-draft-n-max") + 1] == "12" and "--draft-max" not in argv
    assert binaries.bench_argv("/b/llama-bench", "m.gguf", 2, 3)[-2:] == ["-o", "json"]


def test_numactl_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    assert binaries.tool_env()["OMP_NUM_THREADS"] == "1"
    monkeypatch.setenv("PATH", "/nonexistent")
    assert binaries.wrap(["x"]) == ["x"]


def _bin_dir() -> str | None:
    """$EPYC_AGENT_LLAMA_CPP_BIN (read at collection, before the fixture clears it), else make llama-tools's."""
    for d in (os.environ.get("EPYC_AGENT_LLAMA_CPP_BIN"), str(REPO / "tools" / "llama.cpp" / "build" / "bin")):
        if d and all(os.path.isfile(os.path.join(d, t)) for t in ("llama-completion", "llama-lookup", "llama-bench")):
            return d
    return None


BIN = _bin_dir()
needs_tools = pytest.mark.skipif(
    BIN is None,
    reason="llama.cpp tools not built: run `make llama-tools` (or set EPYC_AGENT_LLAMA_CPP_BIN to their folder)",
)


@needs_tools
@pytest.mark.slow
def test_track_8_through_the_real_tools(default_model: Path, root: Path) -> None:
    """`track run 8` with llama_cpp_bin set runs llama-completion and llama-lookup and records their figures."""
    r = run_cli(
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
        "8",
        "--json",
        env={"EPYC_AGENT_LLAMA_CPP_BIN": str(BIN)},
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    conf = json.loads((Path(out["run_dir"]) / "config.json").read_text())
    assert conf["backend"]["backend"] == "binaries" and conf["backend"]["omp_num_threads"] == 1
    assert {b["test"] for b in conf["backend"]["bench"]} == {"pp64", "tg32"}
    base, method = out["summary"]
    assert base["decode_tps"]["median"] > 0 and method["decode_tps"]["median"] > 0
    assert isinstance(method["acceptance_rate"], float) and method["speedup"] > 0
    rec = [json.loads(x) for x in (Path(out["run_dir"]) / "output.jsonl").read_text().splitlines()]
    assert [x["config"] for x in rec] == ["baseline", "default"] and all(x["text"] for x in rec)


@needs_tools
@pytest.mark.slow
def test_track_2_override_kv_through_llama_completion(tmp_path: Path) -> None:
    """Track 2 through llama-completion `--override-kv llama.expert_used_count=int:N` on a tiny real MoE."""
    from tiny_moe import write_tiny_moe

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
        "1",
        "--reps",
        "1",
        "--max-tokens",
        "64",
        "--param",
        "expert_used_count=1",
        "--json",
        env={"EPYC_AGENT_LLAMA_CPP_BIN": str(BIN)},
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    base, one = json.loads(r.stdout)["summary"]
    assert one["config"] == "expert_used_count=1" and base["decode_tps"]["median"] > 0 < one["decode_tps"]["median"]
    assert one["identical_outputs"] == 0  # one expert instead of four changes the text
