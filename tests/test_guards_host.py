"""The lab's host rules (guards/host.py): privileged operations, unbounded llama-cli, pytest -n auto,
nothing that disturbs a running benchmark, backups outside the root; each with its twin that
passes, its config switch and the operator's allowlist, through the real hook."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import run_cli

from epyc_agent.guards.check import check_bash, check_edit
from epyc_agent.guards.host import HostRules
from epyc_agent.storage import StorageGuard

SID = "5b2e7c1a-0000-4d1e-8a55-1c2e8f7b6a22"

# (command, the guard that refuses it); {R} is the storage root
REFUSED = [
    ("sudo apt-get install -y jq", "privileged"),
    ("apt-get install jq", "privileged"),
    ("dpkg -i x.deb", "privileged"),
    ("systemctl restart llama-server", "privileged"),
    ("sudo systemctl stop nginx", "privileged"),
    ("service nginx restart", "privileged"),
    ("echo 3 > /proc/sys/vm/drop_caches", "privileged"),
    ("sync; echo 3 >/proc/sys/vm/drop_caches", "privileged"),
    ("echo 3 | sudo tee /proc/sys/vm/drop_caches", "privileged"),
    ("echo 1 | tee -a /proc/sys/vm/drop_caches", "privileged"),
    ("sudo sysctl -w vm.drop_caches=3", "privileged"),
    ("echo never > /sys/kernel/mm/transparent_hugepage/enabled", "privileged"),
    ("sudo mount /dev/sdb1 /mnt/x", "privileged"),
    ("sudo -u nobody ls", "privileged"),
    ("sudo modprobe msr", "privileged"),
    ("llama-cli -m m.gguf -p hi", "unbounded"),
    ("llama-cli -m m.gguf -p hi -n 64", "unbounded"),
    ("llama-cli -m m.gguf -p hi -n -1 -no-cnv", "unbounded"),
    ("llama-cli -m m.gguf -i -n 8 -no-cnv", "unbounded"),
    ("/opt/llama/bin/llama-completion -m m.gguf -cnv -n 8", "unbounded"),
    ("timeout 600 llama-cli -m m.gguf -p hi", "unbounded"),
    ("pytest -n auto", "pytest_workers"),
    ("python -m pytest -n auto tests/", "pytest_workers"),
    ("pytest -nauto -q", "pytest_workers"),
    ("pytest --numprocesses=logical", "pytest_workers"),
    ("pytest -n 64", "pytest_workers"),
    ("restic -r /srv/restic backup {R}/models", "backup"),
    ("restic --repo local:/srv/restic init", "backup"),
    ("borg create /srv/borg::today {R}/models", "backup"),
    ("rsync -a {R}/models/ /backup/models/", "backup"),
    ("tar czf /backup/models.tgz {R}/models", "backup"),
    ("rclone sync {R}/models /mnt/nas/models", "backup"),
]
# their twins: the same tools used in ways the rules let through
PASSES = [
    "apt list --installed",
    "apt-cache policy jq",
    "dpkg -l",
    "systemctl status llama-server",
    "systemctl --user restart my-unit",
    "sysctl vm.swappiness",
    "mount",
    "cat /proc/sys/vm/drop_caches",
    'git commit -m "blocked a drop_caches that would corrupt inference"',
    "grep -rn drop_caches scripts/",
    'grep -rn "echo 3 > /proc/sys/vm/drop_caches" docs/',
    'echo "the drop_caches rule fires under a live holder"',
    "cat > {R}/notes.md <<'ZQ'\nrun: echo 3 > /proc/sys/vm/drop_caches\nZQ",
    "llama-cli -m m.gguf -p hi -n 64 -no-cnv",
    "llama-cli -m m.gguf -p hi --n-predict 64 --single-turn",
    "llama-cli --version",
    "pytest -q tests/",
    "pytest -n 8",
    "head -n 5 x | pytest -q",
    "restic -r {R}/backups/restic backup {R}/models",
    "restic -r s3:s3.amazonaws.com/bucket backup {R}/models",
    "restic -r /srv/restic snapshots",
    "borg create {R}/backups/borg::today {R}/models",
    "borg create user@nas:repo::today {R}/models",
    "rsync -a {R}/models/ {R}/backups/models/",
    "rsync -a {R}/models/ nas:/backup/models/",
    "tar czf {R}/backups/models.tgz {R}/models",
    "tar tzf /backup/models.tgz",
    "rclone sync {R}/models nas:models",
]


def findings(command: str, root: Path, **guards: object) -> list[tuple[str, str]]:
    guard = StorageGuard(root)
    guard.host = HostRules(guards)
    found, _how = check_bash(command.replace("{R}", str(root)), str(root), guard)
    return [(f.guard, f.reason) for f in found]


@pytest.mark.parametrize(("command", "rule"), REFUSED)
def test_refused(command: str, rule: str, root: Path) -> None:
    """Each command is refused by its rule, and the reason names the command and a fix."""
    found = findings(command, root)
    assert [g for g, _ in found] == [rule], found
    reason = found[0][1]
    assert reason.startswith("`") and ("allow_commands" in reason or " -n" in reason or "allow_write" in reason)


@pytest.mark.parametrize("command", PASSES)
def test_passes(command: str, root: Path) -> None:
    """Reads, one-shot runs, a bounded worker count and backups under the root are not host operations."""
    assert findings(command, root) == []


def test_allowlist_and_switches(root: Path) -> None:
    """An operator allowlist lets a command through; `off` switches a rule; the cap is configurable."""
    allow = {"allow_commands": ["systemctl restart llama-*", "sudo tee /proc/sys/vm/drop_caches"]}
    assert findings("sudo systemctl restart llama-server", root, **allow) == []
    assert findings("echo 3 | sudo tee /proc/sys/vm/drop_caches", root, **allow) == []
    assert [g for g, _ in findings("systemctl restart nginx", root, **allow)] == ["privileged"]
    assert findings("llama-cli -m m.gguf", root, unbounded="off") == []
    assert findings("pytest -n 64", root, pytest_max_workers=64) == []
    assert [g for g, _ in findings("pytest -n 8", root, pytest_max_workers=4)] == ["pytest_workers"]
    assert findings("restic -r /srv/restic backup x", root, allow_commands=["restic -r /srv/restic *"]) == []
    assert findings("apt-get install jq", root, privileged="off") == []


@pytest.fixture
def benchmark(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A process named llama-bench (a copy of sleep) on our CPUs, as a benchmark someone started."""
    prog = tmp_path / "bin" / "llama-bench"
    prog.parent.mkdir()
    shutil.copy(shutil.which("sleep") or "/bin/sleep", prog)
    proc = subprocess.Popen([str(prog), "60"])
    time.sleep(0.2)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_live_bench(root: Path, tmp_path: Path, benchmark: subprocess.Popen[bytes]) -> None:
    """While a benchmark runs: no drop_caches even when allowlisted, no edit of a benchmark file or a
    running shell script; other edits pass."""
    allow = {"allow_commands": ["sudo tee /proc/sys/vm/drop_caches"]}
    found = findings("echo 3 | sudo tee /proc/sys/vm/drop_caches", root, **allow)
    assert [g for g, _ in found] == ["live_bench"]
    assert f"llama-bench (pid {benchmark.pid})" in found[0][1]
    bench_file = root / "research" / "benchmarks" / "run_suite.py"
    found = findings(f"sed -i s/8/16/ {bench_file}", root)
    assert [g for g, _ in found] == ["live_bench"], found
    guard = StorageGuard(root)
    guard.host = HostRules({})
    edit = check_edit("Write", {"file_path": str(bench_file), "content": "x"}, str(root), guard)
    assert [f.guard for f in edit] == ["live_bench"] and "Wait until the run ends" in edit[0].reason
    assert check_edit("Write", {"file_path": str(root / "notes.md"), "content": "x"}, str(root), guard) == []

    script = root / "sweep.sh"
    script.write_text("sleep 30\n")
    runner = subprocess.Popen(["bash", str(script)])
    try:
        time.sleep(0.2)
        edit = check_edit("Edit", {"file_path": str(script)}, str(root), guard)
        assert [f.guard for f in edit] == ["live_bench"] and "executing" in edit[0].reason
    finally:
        runner.kill()
        runner.wait()
    assert findings(f"sed -i s/8/16/ {bench_file}", root, live_bench="off") == []


def test_no_benchmark_no_live_rule(root: Path) -> None:
    """With nothing benchmarking, an allowlisted drop_caches and benchmark edits pass."""
    allow = {"allow_commands": ["sudo tee /proc/sys/vm/drop_caches"]}
    assert findings("echo 3 | sudo tee /proc/sys/vm/drop_caches", root, **allow) == []
    assert findings(f"sed -i s/8/16/ {root}/benchmarks/run.sh", root) == []


def hook(tmp_path: Path, command: str, config: str | None = None) -> dict:
    env = {}
    if config is not None:
        cfg = tmp_path / "config.yaml"
        cfg.write_text(config)
        env["EPYC_AGENT_CONFIG"] = str(cfg)
    payload = {
        "session_id": SID,
        "cwd": str(tmp_path),
        "hook_event_name": "PreToolUse",
        "tool_name": "Bash",
        "tool_use_id": "toolu_h1",
        "tool_input": {"command": command},
    }
    r = run_cli("hook", input=json.dumps(payload), env=env)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["hookSpecificOutput"] if r.stdout.strip() else {}


def test_through_the_hook(tmp_path: Path, log_dir: Path) -> None:
    """The real hook denies with the rule's name, logs the decision, and obeys the config file."""
    out = hook(tmp_path, "sudo systemctl restart llama-server")
    assert out["permissionDecision"] == "deny"
    reason = out["permissionDecisionReason"]
    assert "[privileged] `sudo systemctl restart llama-server` changes a system service" in reason
    events = [json.loads(x) for p in log_dir.glob("agent_audit*") for x in p.read_text().splitlines()]
    assert any(e.get("data", {}).get("decision") == "deny" for e in events)
    assert hook(tmp_path, "pytest -n auto", "guards:\n  pytest_workers: off\n") == {}
    assert hook(tmp_path, "restic -r /srv/restic backup x", "guards:\n  backup: off\n") == {}
    assert hook(tmp_path, "sudo systemctl restart llama-server",
                "guards:\n  allow_commands: ['sudo systemctl restart llama-server']\n") == {}  # fmt: skip
    warned = hook(tmp_path, "llama-cli -m m.gguf", "guards:\n  unbounded: warn\n")
    assert warned.get("permissionDecision") != "deny"
    r = run_cli("config", "show", env={"EPYC_AGENT_CONFIG": str(tmp_path / "config.yaml")})
    assert "guards.unbounded" in r.stdout and "warn" in r.stdout
