"""Health checks: unreadable values SKIP, no self-match, exit 1 on FAIL, units labelled."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import BIN, run_cli

from epyc_agent.config import load_config
from epyc_agent.system import health, probe


def test_unreadable_values_are_skip_not_fail(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A missing sysfs file (a VM without cpufreq) yields SKIP for THP, governor, numa, paranoid."""
    missing = str(tmp_path / "nope")
    monkeypatch.setattr(probe, "THP_PATH", missing)
    monkeypatch.setattr(probe, "GOVERNOR_GLOB", missing + "/cpu*/x")
    monkeypatch.setattr(probe, "NUMA_BALANCING_PATH", missing)
    monkeypatch.setattr(probe, "PARANOID_PATH", missing)
    cfg = load_config()
    checks = {c.name: c for c in health.run_health(cfg, "batch")}
    for name in ("thp", "governor", "numa_balancing", "perf_event_paranoid"):
        assert checks[name].status == "SKIP", checks[name].line()
        assert "cannot read" in checks[name].detail
    assert not any(c.status == "FAIL" for c in checks.values())


def test_root_missing_fails_with_exit_1_and_is_not_created(tmp_path: Path) -> None:
    """A missing root is FAIL with a fix hint, exit 1, and logging does not create it."""
    gone = tmp_path / "gone"
    r = run_cli("system", "health", "--json", env={"EPYC_AGENT_ROOT": str(gone)})
    assert r.returncode == 1, r.stderr
    data = json.loads(r.stdout)
    root = next(c for c in data["checks"] if c["name"] == "root")
    assert root["status"] == "FAIL" and "does not exist" in root["detail"] and root["fix"]
    assert data["ok"] is False and data["summary"]["FAIL"] >= 1
    assert next(c for c in data["checks"] if c["name"] == "disk")["status"] == "SKIP"
    assert not gone.exists()


def test_disk_thresholds_in_labelled_units(tmp_path: Path, root: Path) -> None:
    """Disk FAIL when free GB is under the configured minimum; the line names % and GB."""
    (tmp_path / "epyc-agent.yaml").write_text("disk: {min_free_gb: 1000000}\n")
    r = run_cli("system", "health")
    assert r.returncode == 1
    line = next(ln for ln in r.stdout.splitlines() if " disk " in ln)
    assert line.startswith("FAIL") and "% used" in line and "GB free" in line and "min free 1000000.0 GB" in line
    events = [json.loads(x) for x in (root / "logs" / "agent_audit-sysadmin.log").read_text().splitlines()]
    assert any(e["cat"] == "ERROR" and e["msg"].startswith("health disk") for e in events)
    assert any(e["cat"] == "OBSERVE" and e["data"]["profile"] == "session" for e in events)


def _spawn(argv: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_process_check_counts_others_never_itself(tmp_path: Path) -> None:
    """A real `llama-bench` program is counted; a process that merely mentions it in its
    arguments is not; a checker whose own program or parent is `llama-bench` does not count itself."""
    fake = tmp_path / "llama-bench"
    fake.symlink_to(sys.executable)
    sleeper = "import time; time.sleep(60)"
    other = _spawn([str(fake), "-c", sleeper])
    mention = _spawn([sys.executable, "-c", sleeper, "llama-bench", "llama-server"])
    try:
        time.sleep(0.3)
        found = {p["pid"] for p in health.heavy_processes()}
        assert other.pid in found
        assert mention.pid not in found
        # the checker itself runs as `llama-bench`: it must see only `other`, not itself
        code = (
            "import json; from epyc_agent.system.health import heavy_processes; "
            "print(json.dumps([p['pid'] for p in heavy_processes()]))"
        )
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}  # venv via a symlink
        own = subprocess.run([str(fake), "-c", code], capture_output=True, text=True, timeout=60, env=env)
        assert json.loads(own.stdout) == [other.pid], own.stderr
        # the CLI run as a child of a `llama-bench` parent: the parent is ours, not another
        wrapper = f"import subprocess, sys; sys.exit(subprocess.call([{str(BIN)!r}, 'system', 'health', '--json']))"
        r = subprocess.run([str(fake), "-c", wrapper], capture_output=True, text=True, timeout=60)
        procs = next(c for c in json.loads(r.stdout)["checks"] if c["name"] == "processes")
        assert [p["pid"] for p in procs["value"]] == [other.pid]
        assert procs["status"] == "WARN"  # session profile: a warning; batch: a failure
    finally:
        for p in (other, mention):
            p.kill()
            p.wait()


def test_batch_profile_adds_checks_and_fails_on_competing_process(tmp_path: Path) -> None:
    """The batch profile checks numa_balancing and llama_cpp, and a running llama-server is FAIL."""
    fake = tmp_path / "llama-server"
    fake.symlink_to(sys.executable)
    other = _spawn([str(fake), "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.3)
        checks = {c.name: c for c in health.run_health(load_config(), "batch")}
    finally:
        other.kill()
        other.wait()
    assert {"numa_balancing", "llama_cpp"} <= set(checks)
    assert checks["llama_cpp"].status == "PASS"
    assert checks["processes"].status == "FAIL" and str(other.pid) in checks["processes"].detail
    assert "numa_balancing" not in {c.name for c in health.run_health(load_config(), "session")}


def test_session_start_prints_health_problems_as_priorities(tmp_path: Path) -> None:
    """`session start` lists the session profile's FAIL/WARN lines among its priority actions."""
    (tmp_path / "epyc-agent.yaml").write_text("disk: {warn_used_pct: 0.1}\n")
    r = run_cli("session", "start", "--purpose", "t")
    assert r.returncode == 0, r.stderr
    assert any(ln.startswith("# priority") and "health WARN disk" in ln for ln in r.stdout.splitlines()), r.stdout


def test_unknown_profile_is_usage_error() -> None:
    """An unknown profile is refused by the CLI with exit 2."""
    r = run_cli("system", "health", "--profile", "nightly")
    assert r.returncode == 2 and "nightly" in r.stderr
    assert os.environ["EPYC_AGENT_ROOT"]


@pytest.mark.parametrize(
    ("cmdline", "heavy"),
    [
        (["/opt/llama.cpp/bin/llama-server", "-m", "x.gguf"], True),
        (["/venv/bin/epyc-agent", "track", "run", "8", "-m", "x"], True),
        (["/venv/bin/python", "/venv/bin/epyc-agent", "--root", "/r", "track", "rerun", "id"], True),
        (["/venv/bin/epyc-agent", "track", "list"], False),
        (["/venv/bin/epyc-agent", "--root", "track", "session", "run"], False),
        (["/venv/bin/python", "-c", "pass", "epyc-agent", "track", "run"], False),
        (["bash", "-c", "llama-bench -m x; epyc-agent track run 8"], False),
        (["grep", "llama-server"], False),
    ],
)
def test_heavy_process_by_argv_positions(cmdline: list[str], heavy: bool) -> None:
    """llama.cpp tools and other `track run`s are found by program and argv position, not substrings."""
    prog = health.program_name(cmdline, "x")
    assert health.is_heavy(cmdline, prog, set(health.HEAVY_PROGRAMS)) is heavy


def test_other_track_run_is_counted(tmp_path: Path) -> None:
    """A real process running as `epyc-agent track run` (a script named so) is another heavy process."""
    fake = tmp_path / "epyc-agent"
    fake.write_text(f"#!{sys.executable}\nimport time\ntime.sleep(60)\n")
    fake.chmod(0o755)
    other = _spawn([str(fake), "track", "run", "8"])
    try:
        time.sleep(0.3)
        found = {p["pid"]: p["program"] for p in health.heavy_processes()}
    finally:
        other.kill()
        other.wait()
    assert found.get(other.pid) == "epyc-agent"
