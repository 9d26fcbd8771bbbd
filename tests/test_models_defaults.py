"""`models fetch-default`: the real gemma GGUF assembled under <root>/models (never ~/.cache),
SmolLM2 linked from its package, both in the inventory; a second run does no work."""

from __future__ import annotations

import json
import os
from pathlib import Path

from conftest import run_cli

from epyc_agent.models.defaults import GEMMA_NAME, GEMMA_SIZE, SMOLLM_NAME, smollm_source


def test_fetch_default(root: Path, tmp_path: Path) -> None:
    """Files land under the root only, atomically (no .part left), and are scanned."""
    r = run_cli("models", "fetch-default", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    gemma = root / "models" / GEMMA_NAME
    assert data["paths"][0] == str(gemma) and gemma.stat().st_size == GEMMA_SIZE
    assert data["models"][0] == "gemma-3-270m-q4_k_m"
    if smollm_source():
        link = root / "models" / SMOLLM_NAME
        assert link.is_symlink() and os.path.realpath(link) == os.path.realpath(smollm_source())
        assert data["models"][1] == "SmolLM2-135M-Instruct.Q4_1"
    assert sorted(os.listdir(root / "models")) == sorted([GEMMA_NAME, *([SMOLLM_NAME] if smollm_source() else [])])
    assert not (tmp_path / "home" / ".cache").exists()
    mtime = gemma.stat().st_mtime_ns
    r = run_cli("models", "fetch-default")
    assert r.returncode == 0 and gemma.stat().st_mtime_ns == mtime  # kept, not rebuilt
    assert "gemma-3-270m-q4_k_m: " in r.stdout


def test_wrong_size_file_is_replaced(tmp_path: Path) -> None:
    """A wrong-size file is replaced by a verified one (the temp file never stays behind)."""
    models = tmp_path / "root" / "models"
    models.mkdir()
    (models / GEMMA_NAME).write_bytes(b"GGUF" + b"\0" * 100)
    r = run_cli("models", "fetch-default", "--json")
    assert r.returncode == 0, r.stderr
    assert (models / GEMMA_NAME).stat().st_size == GEMMA_SIZE
    assert not [n for n in os.listdir(models) if n.endswith(".part")]
