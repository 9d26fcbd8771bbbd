"""Sessions: start/end/status/list/exec through the real CLI, and concurrency between agents."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from epyc_agent.config import load_config
from epyc_agent.errors import StorageError
from epyc_agent.events.reader import read_events
from epyc_agent.sessions import current_session_id, end_session, start_session
from tests.conftest import BIN, run_cli


def events(log_dir: Path) -> list[dict]:
    return list(read_events(log_dir))


def test_start_prints_status_and_an_eval_able_export(root: Path, log_dir: Path) -> None:
    r = run_cli("session", "start", "--purpose", "tune draft-max")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert all(line.startswith(("#", "export ")) for line in lines)
    sid = lines[-1].split("=", 1)[1]
    assert sid.startswith("ses_")
    assert f"# root {root}:" in r.stdout and "GB free" in r.stdout and "# log dir" in r.stdout
    (ev,) = [e for e in events(log_dir) if e["cat"] == "SESSION_START"]
    assert (ev["cat"], ev["session"], ev["msg"]) == ("SESSION_START", sid, "tune draft-max")
    assert ev["details"] == f"new_session={sid}"
    out = subprocess.run(
        ["bash", "-c", f'eval "$({BIN} session start)"; echo "$EPYC_AGENT_SESSION"'], capture_output=True, text=True
    ).stdout.strip()
    assert out.startswith("ses_") and out != sid


def test_missing_root_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-root"
    r = run_cli("session", "start", env={"EPYC_AGENT_ROOT": str(missing)})
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "does not exist" in r.stderr and "--init" in r.stderr
    assert not missing.exists()


def test_init_creates_root_and_layout(tmp_path: Path) -> None:
    new = tmp_path / "fresh"
    r = run_cli("session", "start", "--init", env={"EPYC_AGENT_ROOT": str(new)})
    assert r.returncode == 0, r.stderr
    for sub in ("models", "benchmarks/runs", "research", "logs", "cache/pip", "tmp/claude"):
        assert (new / sub).is_dir(), sub


def test_unwritable_root_is_refused(tmp_path: Path) -> None:
    """A folder nobody may create files in (as root too: /proc/1) is refused, nothing written."""
    ro = "/proc/1" if os.geteuid() == 0 else str(tmp_path / "ro")
    if ro != "/proc/1":
        Path(ro).mkdir()
        Path(ro).chmod(0o555)
    r = run_cli("session", "start", env={"EPYC_AGENT_ROOT": ro})
    assert r.returncode == 2 and "not writable" in r.stderr


def test_root_that_is_a_file_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(StorageError, match="not a directory"):
        start_session(load_config(root=str(f)))


def test_critically_full_root_is_refused(tmp_path: Path, root: Path) -> None:
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("disk: {min_free_gb: 1000000}\n")
    r = run_cli("--config", str(cfg_file), "session", "start")
    assert r.returncode == 2 and "critically full" in r.stderr


def test_concurrent_agents_do_not_end_each_other(root: Path) -> None:
    """Two agents start sessions; ending one leaves the other's current session intact."""
    cfg = load_config()
    a = start_session(cfg, "a", agent="alpha")["session"]
    b = start_session(cfg, "b", agent="beta")["session"]
    env: dict[str, str] = {}
    assert current_session_id(cfg, "alpha", env) == a
    assert current_session_id(cfg, "beta", env) == b
    end_session(cfg, a, "done")
    assert current_session_id(cfg, "alpha", env) is None
    assert current_session_id(cfg, "beta", env) == b
    assert current_session_id(cfg, "alpha", {"EPYC_AGENT_SESSION": "explicit"}) == "explicit"


def test_status_end_and_list(root: Path, log_dir: Path) -> None:
    sid = run_cli("session", "start", "--purpose", "p").stdout.splitlines()[-1].split("=")[1]
    st = run_cli("session", "status", "--json", env={"EPYC_AGENT_SESSION": sid})
    data = json.loads(st.stdout)
    assert data["session"]["id"] == sid and data["session"]["status"] == "open" and data["root"] == str(root)
    end = run_cli("session", "end", "--summary", "all good", env={"EPYC_AGENT_SESSION": sid})
    assert end.returncode == 0 and "unset EPYC_AGENT_SESSION" in end.stdout
    lst = json.loads(run_cli("session", "list", "--json").stdout)
    assert [(s["id"], s["status"], s["summary"]) for s in lst] == [(sid, "ended", "all good")]
    assert [e["cat"] for e in events(log_dir) if e["cat"].startswith("SESSION")] == ["SESSION_START", "SESSION_END"]
    assert run_cli("session", "end").returncode == 2  # no current session any more


def test_exec_logs_intent_and_result_and_returns_exit_code(root: Path, log_dir: Path) -> None:
    sid = run_cli("session", "start").stdout.splitlines()[-1].split("=")[1]
    env = {"EPYC_AGENT_SESSION": sid}
    r = run_cli("session", "exec", "--reason", "probe", "--", "bash", "-c", "echo out; echo err >&2; exit 3", env=env)
    assert r.returncode == 3
    assert r.stdout == "out\n" and r.stderr == "err\n"
    intent, result = [e for e in events(log_dir) if e["cat"] in ("CMD_INTENT", "CMD_RESULT")]
    assert intent["cmd"] == "bash -c 'echo out; echo err >&2; exit 3'" and intent["details"] == "probe"
    assert result["exit_code"] == 3 and result["session"] == sid and result["duration_ms"] >= 0
    assert "out" in result["details"] and "err" in result["details"]
    r2 = run_cli("session", "exec", "--", "sh", "-c", 'echo "$TMPDIR"', env=env)
    assert r2.stdout.strip() == str(root / "tmp")  # the session environment is exported
    r3 = run_cli("session", "exec", "--shell", "--", "echo a | tr a b", env=env)
    assert r3.stdout == "b\n"
    r4 = run_cli("session", "exec", "--", "no-such-command-xyz", env=env)
    assert r4.returncode == 127 and "no-such-command-xyz" in r4.stderr


def test_exec_output_capture_is_limited_to_500_chars(root: Path, log_dir: Path) -> None:
    r = run_cli("session", "exec", "--", "python3", "-c", "print('x' * 5000)")
    assert r.returncode == 0 and len(r.stdout) == 5001
    (res,) = [e for e in events(log_dir) if e["cat"] == "CMD_RESULT"]
    assert res["details"] == "exit=0; " + "x" * 500
