"""The shell library: an old script that sources agent_log.sh runs unchanged and writes valid events;
`epyc-agent log <verb>` with the old positional arguments."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from epyc_agent.events import chain
from epyc_agent.events.reader import ReadStats, read_events
from tests.conftest import BIN, run_cli

REPO = Path(__file__).resolve().parents[1]

OLD_SCRIPT = r"""
set -euo pipefail
source "$REPO/scripts/agent_log.sh"
agent_session_start "benchmark \"quoted\" purpose"
agent_task_start "build llama.cpp" "need a $(printf 'new\nline') build"
agent_cmd_intent "make -j96 > build.log" "compile"
agent_cmd_result "make -j96" 0 "ok"
agent_cmd_result "make -j96" 2
agent_file_modify "/mnt/raid0/llm/x.txt" edit "tweak \\ backslash"
agent_decision "use K=16" "acceptance 75%"
agent_warn "disk 90% full" "tab	here"
agent_error "OOM" "control $(printf '\x01\x1b[31m') chars"
agent_observe decode_tps 41.7
agent_rollback_info "edited Makefile" "git checkout Makefile"
agent_task_end "build llama.cpp"
agent_exec "list root" ls "$EPYC_AGENT_ROOT" > /dev/null
agent_exec "a shell string" "echo piped | tr p P"
myfunc() { echo "from a function"; return 4; }
rc=0; agent_exec "a shell function" myfunc || rc=$?
echo "function rc=$rc"
set +e; agent_exec "failing" false; echo "exec rc=$?"; set -e
agent_log_tail 5 > /dev/null 2>&1 || true
agent_session_end "all done"
echo "script finished"
"""


def run_script(script: str, root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REPO": str(REPO), "EPYC_AGENT_BIN": str(BIN), "EPYC_AGENT_ROOT": str(root)}
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=120)


def test_old_script_runs_unchanged_and_logs_valid_events(root: Path, log_dir: Path) -> None:
    r = run_script(OLD_SCRIPT, root)
    assert r.returncode == 0, r.stderr
    assert "script finished" in r.stdout and "PiPed" in r.stdout and "from a function" in r.stdout
    assert "function rc=4" in r.stdout and "exec rc=1" in r.stdout
    stats = ReadStats()
    evs = [
        e
        for e in read_events(log_dir, stats)
        if e["cat"] not in ("OBSERVE", "WARNING") or e["msg"] in ("decode_tps", "disk 90% full")
    ]
    assert stats.corrupt_count == 0
    for line in (log_dir / "agent_audit-main.log").read_bytes().splitlines():
        json.loads(line)  # every line is valid JSON
    by_cat = {}
    for e in evs:
        by_cat.setdefault(e["cat"], []).append(e)
    assert by_cat["SESSION_START"][0]["msg"] == 'benchmark "quoted" purpose'
    assert by_cat["TASK_START"][0]["details"] == "need a new\nline build"
    assert [e["exit_code"] for e in by_cat["CMD_RESULT"]][:2] == [0, 2]
    assert by_cat["FILE_MODIFY"][0]["details"] == "action=edit; tweak \\ backslash"
    assert by_cat["ERROR"][0]["details"] == "control \x01\x1b[31m chars"
    assert any(e["data"] == {"what": "decode_tps", "value": 41.7} for e in by_cat["OBSERVE"])
    assert by_cat["ROLLBACK"][0]["undo"] == "git checkout Makefile"
    results = {e["cmd"]: e["exit_code"] for e in by_cat["CMD_RESULT"]}
    assert results["echo piped | tr p P"] == 0 and results["myfunc"] == 4 and results["false"] == 1
    sessions = {e["session"] for e in evs}
    assert len(sessions) == 1 and next(iter(sessions)).startswith("ses_")
    assert by_cat["SESSION_END"][0]["msg"] == "all done"


def test_logging_failures_do_not_abort_set_e_scripts(tmp_path: Path) -> None:
    """A broken log dir is reported on stderr, but an old `set -e` script keeps running."""
    blocker = tmp_path / "blocked"
    blocker.write_text("a file where the log dir should be")
    env = {**os.environ, "REPO": str(REPO), "EPYC_AGENT_BIN": str(BIN), "EPYC_AGENT_LOG_DIR": str(blocker)}
    script = 'set -e; source "$REPO/scripts/agent_log.sh"; agent_observe x 1; echo survived'
    r = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env)
    assert r.returncode == 0 and "survived" in r.stdout
    assert "cannot write the audit log" in r.stderr and "agent_log: could not log" in r.stderr


def test_shell_init_defines_every_old_function() -> None:
    names = [
        "agent_session_start",
        "agent_session_end",
        "agent_task_start",
        "agent_task_end",
        "agent_cmd_intent",
        "agent_cmd_result",
        "agent_file_modify",
        "agent_decision",
        "agent_warn",
        "agent_error",
        "agent_observe",
        "agent_rollback_info",
        "agent_exec",
        "agent_log_tail",
        "agent_log_session",
    ]
    script = f'eval "$({BIN} shell-init)"; for f in {" ".join(names)}; do type -t "$f"; done'
    r = subprocess.run(["bash", "-c", script], capture_output=True, text=True)
    assert r.stdout.split() == ["function"] * len(names)


@pytest.mark.parametrize(
    ("args", "cat", "fields"),
    [
        (["task-start", "desc", "why"], "TASK_START", {"msg": "desc", "details": "why"}),
        (["task-end", "desc", "failed"], "TASK_END", {"details": "outcome=failed", "level": "WARN"}),
        (["cmd-intent", "make", "build"], "CMD_INTENT", {"cmd": "make", "details": "build"}),
        (["cmd-result", "make", "0", "fine"], "CMD_RESULT", {"exit_code": 0, "details": "exit=0; fine"}),
        (["file-modify", "/a", "delete", "cleanup"], "FILE_MODIFY", {"path": "/a", "action": "delete"}),
        (["decision", "K=16", "best"], "DECISION", {"msg": "K=16"}),
        (["warn", "slow", "ctx"], "WARNING", {"level": "WARN"}),
        (["error", "boom"], "ERROR", {"level": "ERROR"}),
        (["observe", "delta", "-5"], "OBSERVE", {"data": {"what": "delta", "value": -5}}),
        (["rollback", "edit", "git checkout f"], "ROLLBACK", {"undo": "git checkout f", "action": "edit"}),
    ],
)
def test_log_verbs_fast_path(args: list[str], cat: str, fields: dict, log_dir: Path) -> None:
    r = run_cli("log", *args)
    assert r.returncode == 0, r.stderr
    (ev,) = list(read_events(log_dir))
    assert ev["cat"] == cat
    for k, v in fields.items():
        assert ev[k] == v


def test_log_verb_options_and_usage(log_dir: Path) -> None:
    """--agent/--session go through click; missing arguments are a usage error (exit 2)."""
    r = run_cli("log", "observe", "--agent", "bench", "--session", "ses_x", "k", "v")
    assert r.returncode == 0, r.stderr
    (ev,) = list(read_events(log_dir))
    assert (ev["agent"], ev["session"]) == ("bench", "ses_x")
    bad = run_cli("log", "cmd-result", "make")
    assert bad.returncode == 2 and "usage: epyc-agent log cmd-result COMMAND EXIT_CODE [SUMMARY]" in bad.stderr
    assert run_cli("log", "observe", "--help").returncode == 0


def test_agent_from_old_env_variable(log_dir: Path) -> None:
    run_cli("log", "observe", "k", "v", env={"AGENT_ID": "worker7"})
    assert (log_dir / "agent_audit-worker7.log").exists()


def test_shell_init_works_without_the_venv_on_path(tmp_path: Path) -> None:
    """eval of the absolute executable's shell-init defines functions that call that executable, not PATH's."""
    log = tmp_path / "logs"
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "EPYC_AGENT_ROOT": str(tmp_path),
        "EPYC_AGENT_LOG_DIR": str(log),
    }
    script = f'eval "$({BIN.absolute()} shell-init)"; agent_warn "no venv on PATH" ctx; agent_observe k 1; echo done'
    r = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0 and "done" in r.stdout, r.stderr
    assert "command not found" not in r.stderr, r.stderr
    evs = list(read_events(log))
    assert [(e["cat"], e["msg"]) for e in evs] == [("WARNING", "no venv on PATH"), ("OBSERVE", "k")]


def test_agent_log_sh_finds_the_checkout_venv_without_path(tmp_path: Path) -> None:
    """scripts/agent_log.sh finds this checkout's .venv when neither PATH nor EPYC_AGENT_BIN names it."""
    log = tmp_path / "logs"
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "EPYC_AGENT_ROOT": str(tmp_path),
        "EPYC_AGENT_LOG_DIR": str(log),
    }
    script = f'source "{REPO}/scripts/agent_log.sh"; agent_decision "d" "r"; echo done'
    r = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0 and "done" in r.stdout, r.stderr
    assert [e["cat"] for e in read_events(log)] == ["DECISION"]


def _ansi_c(value: str | bytes) -> str:
    """A bash $'...' literal for any string or bytes without NUL."""
    raw = value.encode("utf-8") if isinstance(value, str) else value
    return "$'" + "".join(f"\\x{b:02x}" for b in raw) + "'"


HOSTILE: list[str | bytes] = [
    'say "hi"',
    "back\\slash \\n not a newline",
    "new\nline\r\n",
    "tab\there",
    "".join(chr(c) for c in range(1, 32)) + "\x7f",
    b"bad \xff\xfe utf-8 \xc3",
    "x" * 20_000,
    "emoji \U0001f600 and é",
    "",
    "&amp; & \\& ${HOME} $(echo no) `echo no` * ?",
]

CALLS = [
    ("agent_task_start", 2),
    ("agent_task_end", 2),
    ("agent_cmd_intent", 2),
    ("agent_file_modify", 1),
    ("agent_decision", 2),
    ("agent_warn", 2),
    ("agent_error", 2),
    ("agent_rollback_info", 2),
]
FIXED_CALLS = [
    "agent_task_end done",
    "agent_task_end done ''",
    "agent_cmd_result make 0",
    "agent_cmd_result make 2 'it failed'",
    "agent_file_modify /p delete 'clean up' extra words",
    "agent_file_modify /p '' ''",
    "agent_observe tps 41.7",
    "agent_observe tps 007",
    "agent_observe tps 1e5",
    "agent_observe tps 0.00001",
    "agent_observe tps -0",
    "agent_observe state 'warming up'",
    "agent_observe tps inf",
    "agent_decision unquoted words are joined",
]
CLI_CALLS = [  # what click would parse as an option or help: the helper hands these back to the CLI
    "agent_decision --looks-like-an-option why",
    "agent_warn -h ctx",
]


def _hostile_script() -> str:
    lines = ['eval "$("$REAL_BIN" shell-init)"']
    for value in HOSTILE:
        lit = _ansi_c(value)
        for fn, n in CALLS:
            lines.append(f"{fn} {' '.join([lit] * n)}")
        lines.append(f"agent_cmd_result {lit} 0 {lit}")
        lines.append(f"agent_file_modify {lit} edit {lit}")
        lines.append(f"agent_observe {lit} {lit}")
    return "\n".join(lines + FIXED_CALLS + CLI_CALLS) + "\n"


def _unusable_key(state: Path) -> None:
    """A state folder whose secret key others may read: refused, so events are written unchained."""
    key = state / "epyc-agent" / "hook-secret"
    key.parent.mkdir(parents=True)
    key.write_bytes(os.urandom(32))
    key.chmod(0o644)


def _run_hostile(tmp_path: Path, name: str, fast: bool) -> tuple[list[bytes], int]:
    log = tmp_path / name
    counter = tmp_path / f"{name}.calls"
    wrapper = tmp_path / f"{name}-bin"
    wrapper.write_text(f'#!/bin/bash\necho x >> "{counter}"\nexec "{BIN.absolute()}" "$@"\n')
    wrapper.chmod(0o755)
    env = {
        **os.environ,
        "REAL_BIN": str(BIN.absolute()),
        "EPYC_AGENT_BIN": str(wrapper),
        "EPYC_AGENT_LOG_DIR": str(log),
        "EPYC_AGENT_SESSION": "ses_20261203_120000_abcdef",
        "EPYC_AGENT_FAST": "1" if fast else "0",
        "XDG_STATE_HOME": str(tmp_path / "state"),
    }
    script = tmp_path / f"{name}.sh"
    script.write_text(_hostile_script())
    r = subprocess.run(["bash", str(script)], capture_output=True, env=env, timeout=300)
    assert r.returncode == 0 and r.stderr == b"", r.stderr
    calls = len(counter.read_text().split()) if counter.exists() else 0
    return (log / "agent_audit-main.log").read_bytes().splitlines(keepends=True), calls


def _unchained(line: bytes) -> bytes:
    """The line without its ts and hash (the two fields that differ between two writes of one event)."""
    found = chain.parse(line)
    covered = line if found is None else found[2]
    return covered[:7] + covered[34:]


@pytest.mark.parametrize("chained", [True, False], ids=["chained", "unchained"])
def test_shell_helper_writes_what_the_python_writer_writes(tmp_path: Path, chained: bool) -> None:
    """For hostile inputs the shell's helper and `epyc-agent log` write the same bytes, bar ts and
    hash, chained or not; the helper is the one process started for all of them."""
    if not chained:
        _unusable_key(tmp_path / "state")
    fast, fast_calls = _run_hostile(tmp_path, "fast", True)
    slow, slow_calls = _run_hostile(tmp_path, "slow", False)
    events = len(HOSTILE) * (len(CALLS) + 3) + len(FIXED_CALLS) + len(CLI_CALLS) - 1  # `-h` logs nothing
    assert len(fast) == len(slow) == events
    for f, s in zip(fast, slow, strict=True):
        assert f[:8] == s[:8] == b'{"ts":"2'
        assert _unchained(f) == _unchained(s), (f[:300], s[:300])
        assert re.fullmatch(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", f[7:34])
        assert (chain.parse(f) is not None) is chained
    assert slow_calls == len(slow) + 1  # and the help
    assert fast_calls == 1 + len(CLI_CALLS), fast_calls  # the helper, and what it hands back to the CLI
    if chained:  # (without a usable key verify refuses to check anything)
        for name in ("fast", "slow"):
            env = {"EPYC_AGENT_LOG_DIR": str(tmp_path / name), "XDG_STATE_HOME": str(tmp_path / "state")}
            r = run_cli("log", "verify", "--json", env=env)
            assert r.returncode == 0, r.stdout + r.stderr
            (shard,) = json.loads(r.stdout)["shards"]
            assert (shard["status"], shard["lines"]) == ("intact", events)
