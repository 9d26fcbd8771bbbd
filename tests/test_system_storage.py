"""`storage monitor` (thresholds, events, SIGTERM) and `storage cleanup` (only old files in tmp/cache)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import BIN, run_cli

from epyc_agent.errors import EpycAgentError
from epyc_agent.system.cleanup import parse_age

OLD = time.time() - 10 * 86400


def _events(root: Path, agent: str = "sysadmin") -> list[dict]:
    path = root / "logs" / f"agent_audit-{agent}.log"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def test_monitor_once_warns_over_threshold(tmp_path: Path, root: Path) -> None:
    """With warn at 0.1% used, one sample prints WARN and logs one WARNING event."""
    (tmp_path / "epyc-agent.yaml").write_text("disk: {warn_used_pct: 0.1, critical_used_pct: 99.99}\n")
    r = run_cli("storage", "monitor", "--once")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("WARN") and "% used" in r.stdout and "GB free" in r.stdout
    warns = [e for e in _events(root) if e["cat"] == "WARNING"]
    assert len(warns) == 1 and warns[0]["msg"].startswith("disk nearly full")


def test_monitor_critical_is_error_event(tmp_path: Path, root: Path) -> None:
    """Free space under min_free_gb is CRITICAL and logged as an ERROR event."""
    (tmp_path / "epyc-agent.yaml").write_text("disk: {min_free_gb: 1000000}\n")
    r = run_cli("storage", "monitor", "--once")
    assert r.returncode == 0 and r.stdout.startswith("CRITICAL")
    assert [e["level"] for e in _events(root) if e["cat"] == "ERROR"] == ["ERROR"]


def test_monitor_exits_cleanly_on_sigterm(tmp_path: Path, root: Path) -> None:
    """A looping monitor stops on SIGTERM with exit 0, after logging only level changes."""
    (tmp_path / "epyc-agent.yaml").write_text("disk: {warn_used_pct: 0.1, critical_used_pct: 99.99}\n")
    p = subprocess.Popen(
        [str(BIN), "storage", "monitor", "--interval", "0.2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        first = p.stdout.readline()  # type: ignore[union-attr]
        assert first.startswith("WARN")
        time.sleep(0.7)  # several more samples
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=10) == 0, p.stderr.read()  # type: ignore[union-attr]
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert len([e for e in _events(root) if e["cat"] == "WARNING"]) == 1  # a change, not every sample


@pytest.mark.parametrize(
    ("text", "seconds"), [("45s", 45), ("30m", 1800), ("2h", 7200), ("7d", 604800), ("1w", 604800), ("1.5h", 5400)]
)
def test_parse_age(text: str, seconds: float) -> None:
    """Ages parse with their unit."""
    assert parse_age(text) == seconds


@pytest.mark.parametrize("bad", ["", "7", "d", "7y", "-1d"])
def test_parse_age_rejects(bad: str) -> None:
    """Ages without a known unit are refused."""
    with pytest.raises(EpycAgentError):
        parse_age(bad)


def _old(path: Path, size: int = 100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    os.utime(path, (OLD, OLD))
    return path


@pytest.fixture
def tree(tmp_path: Path, root: Path) -> dict[str, Path]:
    """Old and new files in tmp and cache, an old file elsewhere under the root, and symlinks out."""
    outside = tmp_path / "outside"
    t = {
        "tmp_old": _old(root / "tmp" / "a" / "old.bin", 1000),
        "cache_old": _old(root / "cache" / "hf" / "old.json", 234),
        "models_old": _old(root / "models" / "old.gguf"),
        "outside_old": _old(outside / "victim.txt"),
        "outside_dir_file": _old(outside / "dir" / "victim2.txt"),
    }
    t["tmp_new"] = root / "tmp" / "new.bin"
    t["tmp_new"].write_bytes(b"n" * 10)
    t["link"] = root / "tmp" / "link-out"
    t["link"].symlink_to(t["outside_old"])
    t["dirlink"] = root / "cache" / "dir-out"
    t["dirlink"].symlink_to(outside / "dir")
    for name in ("link", "dirlink"):
        os.utime(t[name], (OLD, OLD), follow_symlinks=False)
    return t


def test_cleanup_dry_run_deletes_nothing(tree: dict[str, Path]) -> None:
    """The default is a dry run: it lists old files and bytes, deletes nothing."""
    r = run_cli("storage", "cleanup", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    listed = {f["path"] for f in data["files"]}
    assert listed == {str(tree[k]) for k in ("tmp_old", "cache_old", "link", "dirlink")}
    assert data["bytes"] == 1234 and data["bytes_freed"] == 0 and data["applied"] is False
    assert all(p.exists() or p.is_symlink() for p in tree.values())


def test_cleanup_apply_deletes_only_old_files_inside_tmp_and_cache(tree: dict[str, Path], root: Path) -> None:
    """--apply removes old tmp/cache files and the links themselves; never link targets or other files."""
    r = run_cli("storage", "cleanup", "--apply")
    assert r.returncode == 0, r.stderr
    assert "4 files deleted, 1234 bytes freed" in r.stdout
    for k in ("tmp_old", "cache_old", "link", "dirlink"):
        assert not tree[k].exists() and not tree[k].is_symlink(), k
    for k in ("tmp_new", "models_old", "outside_old", "outside_dir_file"):
        assert tree[k].exists(), k
    deletes = [e for e in _events(root) if e["cat"] == "FILE_MODIFY" and e["action"] == "delete"]
    assert sorted(e["path"] for e in deletes) == sorted(
        str(tree[k]) for k in ("tmp_old", "cache_old", "link", "dirlink")
    )


def test_cleanup_refuses_tmp_outside_root(tmp_path: Path) -> None:
    """A tmp folder that resolves outside the root (here a symlink out) is refused with exit 2."""
    outside = tmp_path / "elsewhere"
    victim = _old(outside / "keep.txt")
    (tmp_path / "root" / "tmp").symlink_to(outside)
    r = run_cli("storage", "cleanup", "--apply")
    assert r.returncode == 2 and "not inside the storage root" in r.stderr
    assert victim.exists()
