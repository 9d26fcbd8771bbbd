"""`models watch` as a real process: a model written slowly through a .part file and renamed
into place appears once in the inventory, with one OBSERVE event; SIGTERM stops it cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from conftest import BIN
from gguf_factory import write_gguf


def _start(*args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [str(BIN), "models", "watch", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # printed once the observer runs
    assert line.startswith("# watching"), line + proc.stderr.read()  # type: ignore[union-attr]
    return proc


def _events(log_dir: Path, msg: str) -> list[dict]:
    return [
        e
        for p in log_dir.glob("agent_audit-*.log")
        for e in map(json.loads, p.read_text().splitlines())
        if e["cat"] == "OBSERVE" and e["msg"] == msg
    ]


def test_slow_part_write_then_rename(root: Path, log_dir: Path, tmp_path: Path) -> None:
    """Only the renamed .gguf counts: one inventory entry, one OBSERVE event, then --once exits."""
    models = root / "models"
    models.mkdir()
    data = write_gguf(tmp_path / "src.gguf").read_bytes()
    proc = _start("--once", "--timeout", "60", "--debounce", "0.5")
    part = models / "new-model.gguf.part"
    with open(part, "wb") as f:  # written in pieces, with pauses longer than the debounce
        for i in range(0, len(data), 1024):
            f.write(data[i : i + 1024])
            f.flush()
            time.sleep(0.3)
    time.sleep(0.7)
    inv_path = log_dir / "model_inventory.json"
    assert not inv_path.exists() or json.loads(inv_path.read_text())["models"] == []
    os.rename(part, models / "new-model.gguf")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "new model new-model:" in out
    entries = json.loads(inv_path.read_text())["models"]
    assert [(e["id"], e["error"]) for e in entries] == [("new-model", None)]
    (ev,) = _events(log_dir, "new model")
    assert ev["data"]["path"] == str(models / "new-model.gguf") and ev["data"]["arch"] == "llama"


def test_sigterm_stops_cleanly(root: Path) -> None:
    """SIGTERM ends the watcher with exit 0 and its closing line."""
    (root / "models").mkdir()
    proc = _start("--timeout", "60")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "# stopped; 0 model(s) added" in out


def test_no_model_folder_is_an_error() -> None:
    """Without any model folder the watcher refuses in one line."""
    proc = subprocess.run([str(BIN), "models", "watch", "--timeout", "5"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "no model folder exists" in proc.stderr
