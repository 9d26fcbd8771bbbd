"""Bad input is refused up front: click's ranges and choices, the track and --param checks, the
config's ranges and unknown keys, a non-numeric exit code; each exits 2 with one line saying what
is wrong, before any gate runs or any event reaches the audit log."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from conftest import BIN, run_cli
from gguf_factory import write_gguf

REPO = Path(__file__).resolve().parent.parent
CPUS = os.cpu_count() or 1


def audit_log(log_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(log_dir.glob("agent_audit-*.log"))}


@pytest.fixture
def seeded(log_dir: Path) -> dict[str, bytes]:
    """An audit log with one event in it, so "nothing new" is checked against a real shard."""
    assert run_cli("log", "decision", "seed").returncode == 0
    before = audit_log(log_dir)
    assert len(before) == 1
    return before


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return write_gguf(tmp_path / "tiny.gguf", name="tiny")


def click_error(r: subprocess.CompletedProcess[str]) -> str:
    """The one `Error:` line of click's usage error (exit 2), the rest being usage and --help."""
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, r.stderr
    return errors[0]


def one_line(r: subprocess.CompletedProcess[str]) -> str:
    """Our own refusal: exactly one line on stderr, exit 2."""
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and r.stderr.startswith("epyc-agent: "), r.stderr
    return r.stderr


RUN_OPTIONS = [
    (["--reps", "0"], "Invalid value for '--reps': 0 is not in the range x>=1."),
    (["--reps", "-3"], "Invalid value for '--reps': -3 is not in the range x>=1."),
    (["--reps", "many"], "Invalid value for '--reps': 'many' is not a valid integer range."),
    (["--prompts", "0"], "Invalid value for '--prompts': 0 is not in the range x>=1."),
    (["--threads", "0"], f"Invalid value for '--threads': 0 is not in the range 1<=x<={CPUS}."),
    (["--threads", str(CPUS + 1)], f"Invalid value for '--threads': {CPUS + 1} is not in the range 1<=x<={CPUS}."),
    (["--max-tokens", "0"], "Invalid value for '--max-tokens': 0 is not in the range x>=1."),
    (["--n-ctx", "1"], "Invalid value for '--n-ctx': 1 is not in the range x>=2."),
    (
        ["--max-tokens", "64", "--n-ctx", "64"],
        "Invalid value for '--max-tokens': 64 leaves no room for the prompt in --n-ctx 64",
    ),
    (["--backend", "gpu"], "Invalid value for '--backend': 'gpu' is not one of 'auto', 'embedded', 'binaries'."),
]


@pytest.mark.parametrize(("extra", "error"), RUN_OPTIONS, ids=[" ".join(o) for o, _ in RUN_OPTIONS])
def test_track_run_option_out_of_range(
    extra: list[str], error: str, tiny: Path, log_dir: Path, seeded: dict[str, bytes]
) -> None:
    """A numeric or enumerated option out of range is click's usage error, and nothing is logged."""
    r = run_cli("track", "run", "8", "-m", str(tiny), "--prompts", "1", "--reps", "1", *extra)
    assert click_error(r) == f"Error: {error}"
    assert audit_log(log_dir) == seeded


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["99"], "no track '99' (known tracks: 1, 2, 3, 6, 7, 8)"),
        (["8", "--param", "nope=1"], "track 8 has no parameter 'nope'"),
        (["8", "--param", "pl_k=abc"], "parameter pl_k: 'abc' is not a int"),
        (["8", "--param", "pl_k"], "--param 'pl_k': expected NAME=VALUE or NAME=V1,V2"),
    ],
)
def test_track_and_params_checked_before_the_gates(
    args: list[str], message: str, tiny: Path, log_dir: Path, seeded: dict[str, bytes]
) -> None:
    """An unknown track or a --param the track cannot take is refused before the sysadmin's preflight."""
    r = run_cli("track", "run", *args, "-m", str(tiny), "--prompts", "1", "--reps", "1")
    assert message in one_line(r)
    assert audit_log(log_dir) == seeded


def test_valid_options_do_reach_the_gates(tiny: Path, log_dir: Path, seeded: dict[str, bytes]) -> None:
    """The control: the same command with valid values runs the pipeline, which logs its steps."""
    run_cli("track", "run", "8", "-m", str(tiny), "--prompts", "1", "--reps", "1", "--threads", "1", timeout=300)
    after = audit_log(log_dir)
    assert any(name.startswith("agent_audit-sysadmin") for name in after), sorted(after)


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--timeout", "0"], "Invalid value for '--timeout': 0.0 is not in the range x>0."),
        (["--debounce", "-1"], "Invalid value for '--debounce': -1.0 is not in the range x>=0."),
    ],
)
def test_models_watch_ranges(args: list[str], error: str, log_dir: Path, seeded: dict[str, bytes]) -> None:
    """models watch refuses a timeout of zero and a negative debounce before it watches or logs."""
    assert click_error(run_cli("models", "watch", *args)) == f"Error: {error}"
    assert audit_log(log_dir) == seeded


@pytest.mark.parametrize("via", [[], ["--agent", "main"]], ids=["fast path", "click"])
def test_cmd_result_needs_an_integer_exit_code(via: list[str], log_dir: Path, seeded: dict[str, bytes]) -> None:
    """`log cmd-result make notanumber` exits 2 naming the value and the usage; nothing is written."""
    r = run_cli("log", "cmd-result", *via, "make", "notanumber")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    line = "exit code 'notanumber' is not an integer; usage: epyc-agent log cmd-result COMMAND EXIT_CODE [SUMMARY]"
    assert (one_line(r).rstrip("\n") if not via else click_error(r)).endswith(line)
    assert audit_log(log_dir) == seeded
    assert run_cli("log", "cmd-result", *via, "make", " 2 ").returncode == 0  # a number with spaces is a number


def test_shell_library_reports_a_bad_exit_code(log_dir: Path, seeded: dict[str, bytes]) -> None:
    """The shell library's agent_cmd_result says it could not log, keeps the script running, writes nothing."""
    script = f'source "{REPO}/scripts/agent_log.sh"; agent_cmd_result make x1 "not a number"; echo survived'
    env = {**os.environ, "EPYC_AGENT_BIN": str(BIN), "EPYC_AGENT_SESSION": "ses_20261204_120000_abcdef"}
    r = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0 and r.stdout == "survived\n"
    assert "exit code 'x1' is not an integer" in r.stderr and "agent_log: could not log 'cmd-result'" in r.stderr
    assert audit_log(log_dir) == seeded


CONFIGS = [
    ("disk: {warn_used_pct: 150}", "key 'disk.warn_used_pct': expected a percentage from 0 to 100, got 150"),
    ("disk: {critical_used_pct: -1}", "key 'disk.critical_used_pct': expected a percentage from 0 to 100, got -1"),
    ("disk: {min_free_gb: -2}", "key 'disk.min_free_gb': expected at least 0, got -2"),
    ("disk: {warn_used_pct: 97}", "disk.warn_used_pct 97 is above disk.critical_used_pct 95"),
    ("guards: {retry_limit: -5}", "key 'guards.retry_limit': expected at least 1, got -5"),
    ("guards: {retry_limit: 0}", "key 'guards.retry_limit': expected at least 1, got 0"),
    ("guards: {pytest_max_workers: 0}", "key 'guards.pytest_max_workers': expected at least 1, got 0"),
    ("loops: {cycle: 1}", "key 'loops.cycle': expected at least 2, got 1"),
    ("loops: {burst_window_s: 0}", "key 'loops.burst_window_s': expected at least 1, got 0"),
    ("results: {near_tie_margin: -0.5}", "key 'results.near_tie_margin': expected at least 0, got -0.5"),
    ("disk: {warn_used_pc: 80}", "unknown key 'disk.warn_used_pc' (did you mean 'disk.warn_used_pct'?)"),
    ("gaurds: {bash: warn}", "unknown key 'gaurds' (did you mean 'guards'?)"),
    ("retry_limit: 5", "unknown key 'retry_limit' (did you mean 'guards.retry_limit'?)"),
    ("loops: {retry_limit: 5}", "unknown key 'loops.retry_limit' (did you mean 'guards.retry_limit'?)"),
    ("colour: red", "unknown key 'colour' (known: root, log_dir"),
]


@pytest.mark.parametrize(("text", "message"), CONFIGS, ids=[t for t, _ in CONFIGS])
def test_config_ranges_and_unknown_keys(
    text: str, message: str, tmp_path: Path, tiny: Path, log_dir: Path, seeded: dict[str, bytes]
) -> None:
    """A config value out of range or an unknown key stops both a run and a log verb, logging nothing."""
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text + "\n")
    run = run_cli("--config", str(cfg), "track", "run", "8", "-m", str(tiny), "--prompts", "1", "--reps", "1")
    assert one_line(run).startswith(f"epyc-agent: {cfg}: {message}")
    assert message in one_line(run_cli("log", "decision", "d", env={"EPYC_AGENT_CONFIG": str(cfg)}))
    assert audit_log(log_dir) == seeded


def test_config_at_the_bounds_is_accepted(tmp_path: Path) -> None:
    """The bounds themselves are valid values."""
    cfg = tmp_path / "ok.yaml"
    cfg.write_text(
        "disk: {warn_used_pct: 0, critical_used_pct: 100, min_free_gb: 0}\n"
        "guards: {retry_limit: 1, pytest_max_workers: 1}\n"
        "loops: {cycle: 2, burst: 1, burst_window_s: 1}\n"
    )
    r = run_cli("--config", str(cfg), "config", "show")
    assert r.returncode == 0, r.stderr
