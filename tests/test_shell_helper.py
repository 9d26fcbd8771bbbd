"""The shell library's helper (`epyc-agent log serve`): one per shell, started on the first call,
gone with its shell (killed or not), never shared with a subshell, acked once the event is on
disk, invisible to the script's jobs, and replaced by the CLI when it cannot run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import BIN, run_cli

from epyc_agent.events import chain

SESSION = "ses_20261204_120000_abcdef"
HEAD = 'eval "$("$REAL_BIN" shell-init)"\n'


def bash(script: str, tmp_path: Path, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    full = {
        **os.environ,
        "REAL_BIN": str(BIN.absolute()),
        "EPYC_AGENT_SESSION": SESSION,
        "TMPDIR": str(tmp_path / "tmpdir"),
        **env,
    }
    (tmp_path / "tmpdir").mkdir(exist_ok=True)
    return subprocess.run(["bash", "-c", HEAD + script], capture_output=True, text=True, env=full, timeout=timeout)


def values(out: str, key: str) -> list[str]:
    """The words after `key=` on the script's output lines."""
    return [line.split("=", 1)[1] for line in out.splitlines() if line.startswith(f"{key}=")]


def is_helper(pid: int) -> bool:
    try:
        return b"serve" in Path(f"/proc/{pid}/cmdline").read_bytes() and not _zombie(pid)
    except OSError:
        return False


def _zombie(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"


def gone(pid: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while is_helper(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def events(shard: Path) -> list[dict]:
    return [json.loads(x) for x in shard.read_bytes().splitlines()]


def test_the_helper_exits_with_its_shell(tmp_path: Path, log_dir: Path) -> None:
    """A script's helper is gone when the script ends, and its FIFOs were removed once open."""
    r = bash('agent_observe k 1\necho "pid=$_epyc_srv_pid"\nls "$TMPDIR"\n', tmp_path)
    assert r.returncode == 0, r.stderr
    (pid,) = values(r.stdout, "pid")
    assert "epyc-agent-log" not in r.stdout  # no FIFO left, even while the shell ran
    assert gone(int(pid))
    assert [e["msg"] for e in events(log_dir / "agent_audit-main.log")] == ["k"]
    assert list((tmp_path / "tmpdir").iterdir()) == []


def test_a_killed_shell_leaves_no_helper_even_when_a_child_holds_its_pipe(tmp_path: Path) -> None:
    """SIGKILL on the shell: the helper exits although a background child still holds the request
    FIFO open (so it never sees EOF): it watches its shell's pid."""
    script = (
        'agent_observe k 1\necho "pid=$_epyc_srv_pid"\n'
        'sleep 60 >/dev/null 2>&1 </dev/null & echo "child=$!"\n'
        "kill -9 $$\n"
    )
    r = bash(script, tmp_path)
    assert r.returncode == -signal.SIGKILL
    (pid,), (child,) = values(r.stdout, "pid"), values(r.stdout, "child")
    try:
        held = [os.readlink(f"/proc/{child}/fd/{fd}") for fd in os.listdir(f"/proc/{child}/fd")]
        assert any("epyc-agent-log" in h for h in held), held  # the child really holds the FIFO
        assert gone(int(pid))
    finally:
        os.kill(int(child), signal.SIGKILL)


def test_jobs_wait_and_last_pid_are_the_scripts_own(tmp_path: Path) -> None:
    """The helper is no job of the shell: `$!` keeps the script's last job, `jobs` lists only it,
    and `wait` returns when it ends instead of waiting for the helper."""
    script = (
        "sleep 0.3 & mine=$!\n"
        "agent_observe k 1\n"
        '[ "$!" = "$mine" ] && echo "bang=same"\n'
        'echo "jobs=$(jobs -p | wc -l)"\n'
        "wait $mine; echo waited=$?; wait\n"
    )
    t = time.monotonic()
    r = bash(script, tmp_path, timeout=60)
    assert r.returncode == 0, r.stderr
    assert (values(r.stdout, "bang"), values(r.stdout, "jobs"), values(r.stdout, "waited")) == (["same"], ["1"], ["0"])
    assert time.monotonic() - t < 30


def test_subshells_start_their_own_helper(tmp_path: Path, log_dir: Path) -> None:
    """`( )`, `$( )`, a pipeline's loop and a background subshell each start their own helper, the
    script's own keeps working, no event is lost or doubled, and the shard's chain stays intact."""
    script = (
        'agent_observe main 1; echo "main=$_epyc_srv_pid"\n'
        '( agent_observe sub 1; echo "sub=$_epyc_srv_pid" )\n'
        'x=$(agent_observe cmdsub 1; echo "$_epyc_srv_pid"); echo "cmdsub=$x"\n'
        "printf 'a\\nb\\n' | while read -r l; do agent_observe \"pipe $l\" 1; done\n"
        "( for i in 1 2 3 4 5; do agent_observe bg $i; done ) &\n"
        "for i in 1 2 3 4 5; do agent_observe fg $i; done\n"
        'wait; agent_observe main 2; echo "main=$_epyc_srv_pid"\n'
    )
    r = bash(script, tmp_path)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    main, (sub,), (cmdsub,) = values(r.stdout, "main"), values(r.stdout, "sub"), values(r.stdout, "cmdsub")
    assert main[0] == main[1] and len({main[0], sub, cmdsub}) == 3
    evs = events(log_dir / "agent_audit-main.log")
    got = [(e["msg"], e["data"]["value"]) for e in evs]
    assert sorted(got) == sorted(
        [("main", 1), ("sub", 1), ("cmdsub", 1), ("pipe a", 1), ("pipe b", 1), ("main", 2)]
        + [(w, i) for w in ("bg", "fg") for i in range(1, 6)]
    )
    for who in ("bg", "fg", "main"):
        assert [v for m, v in got if m == who] == sorted(v for m, v in got if m == who)
    assert [e["seq"] for e in evs] == list(range(1, len(evs) + 1))
    assert run_cli("log", "verify").returncode == 0


def test_an_event_is_on_disk_when_the_call_returns(tmp_path: Path, log_dir: Path) -> None:
    """Each call returns only after its event is written: the next command of the script sees it."""
    script = (
        'shard="$EPYC_AGENT_ROOT/logs/agent_audit-main.log"\n'
        "for i in $(seq 1 40); do\n"
        '  agent_cmd_result "make t$i" $((i % 3)) out\n'
        '  tail -n 1 "$shard" | grep -q "make t$i\\"" || echo "missing=$i"\n'
        "done\n"
        '"$REAL_BIN" log analyze --commands --json\n'
    )
    r = bash(script, tmp_path)
    assert r.returncode == 0, r.stderr
    assert values(r.stdout, "missing") == []
    assert '"make t40"' in r.stdout


def _env_and_cwd_script() -> str:
    return (
        "agent_observe a 1\n"
        "EPYC_AGENT_ID=not_exported; agent_observe b 1\n"
        "export EPYC_AGENT_ID=w2; agent_observe c 1\n"
        "unset EPYC_AGENT_ID; export EPYC_AGENT_SESSION=ses_20261204_130000_bbbbbb; agent_observe d 1\n"
        "cd proj; agent_observe e 1\n"
        "export EPYC_AGENT_LOG_DIR=rel_logs; agent_observe f 1\n"
        "unset EPYC_AGENT_SESSION EPYC_AGENT_LOG_DIR; agent_observe g 1\n"
    )


def _bar_ts_and_hash(line: bytes) -> bytes:
    found = chain.parse(line)
    assert found is not None, line
    return found[2][:7] + found[2][34:]


def _shards(top: Path) -> dict[str, list[bytes]]:
    """Every shard under `top`, its lines without ts and hash."""
    return {
        str(p.relative_to(top)): [_bar_ts_and_hash(x) for x in p.read_bytes().splitlines(keepends=True)]
        for p in sorted(top.rglob("agent_audit-*.log"))
    }


def test_the_helper_follows_the_shells_variables_and_cwd(tmp_path: Path) -> None:
    """Exported (not merely set) variables, `unset`, `cd` into a folder with its own epyc-agent.yaml
    and relative paths: the helper writes the same events to the same shards as `epyc-agent log`."""
    out = {}
    for mode in ("1", "0"):
        top = tmp_path / f"run{mode}"
        (top / "proj").mkdir(parents=True)
        (top / "proj" / "epyc-agent.yaml").write_text("log_dir: plogs\n")
        (top / "root").mkdir()
        r = subprocess.run(
            ["bash", "-c", HEAD + _env_and_cwd_script()],
            capture_output=True,
            text=True,
            cwd=top,
            timeout=120,
            env={
                **os.environ,
                "REAL_BIN": str(BIN.absolute()),
                "EPYC_AGENT_ROOT": str(top / "root"),
                "EPYC_AGENT_SESSION": SESSION,
                "EPYC_AGENT_FAST": mode,
            },
        )
        assert r.returncode == 0 and r.stderr == "", r.stderr
        out[mode] = _shards(top)
    assert out["1"] == out["0"]
    assert sorted(out["1"]) == [
        "proj/plogs/agent_audit-main.log",
        "proj/rel_logs/agent_audit-main.log",
        "root/logs/agent_audit-main.log",
        "root/logs/agent_audit-w2.log",
    ]


def _counting_bin(tmp_path: Path, serve_exit: int | None) -> tuple[Path, Path]:
    """An EPYC_AGENT_BIN that counts its calls; `log serve` exits at once when serve_exit is set."""
    counter, wrapper = tmp_path / "calls", tmp_path / "bin"
    refuse = f'[ "$1 $2" = "log serve" ] && exit {serve_exit}\n' if serve_exit is not None else ""
    wrapper.write_text(f'#!/bin/bash\necho "$1 $2" >> "{counter}"\n{refuse}exec "{BIN.absolute()}" "$@"\n')
    wrapper.chmod(0o755)
    return wrapper, counter


def test_the_cli_takes_over_when_the_helper_cannot_start(tmp_path: Path, log_dir: Path) -> None:
    """A helper that exits at once: one try per shell, then every event through `epyc-agent log`."""
    wrapper, counter = _counting_bin(tmp_path, serve_exit=3)
    r = bash("for i in 1 2 3 4; do agent_observe k $i; done\n", tmp_path, EPYC_AGENT_BIN=str(wrapper))
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert counter.read_text().splitlines() == ["log serve"] + ["log observe"] * 4
    assert [e["data"]["value"] for e in events(log_dir / "agent_audit-main.log")] == [1, 2, 3, 4]
    assert list((tmp_path / "tmpdir").iterdir()) == []


def test_a_killed_helper_is_replaced_without_losing_or_doubling_an_event(tmp_path: Path, log_dir: Path) -> None:
    """The call after the helper died goes through the CLI; the one after starts a new helper."""
    wrapper, counter = _counting_bin(tmp_path, serve_exit=None)
    script = (
        'agent_observe k 1; first=$_epyc_srv_pid; echo "first=$first"\n'
        "kill -9 $first\n"
        "for _ in $(seq 200); do [ -d /proc/$first ] && [ \"$(cut -d' ' -f3 /proc/$first/stat)\" != Z ] "
        "&& sleep 0.01; done\n"
        'agent_observe k 2; agent_observe k 3; echo "second=$_epyc_srv_pid"\n'
    )
    r = bash(script, tmp_path, EPYC_AGENT_BIN=str(wrapper))
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert [e["data"]["value"] for e in events(log_dir / "agent_audit-main.log")] == [1, 2, 3]
    assert counter.read_text().splitlines() == ["log serve", "log observe", "log serve"]
    (first,), (second,) = values(r.stdout, "first"), values(r.stdout, "second")
    assert first != second and gone(int(second))


def test_a_failed_write_is_reported_like_the_cli_reports_it(tmp_path: Path) -> None:
    """The helper's error reply prints the CLI's line and exit code; the script carries on."""
    blocker = tmp_path / "blocked"
    blocker.write_text("a file where the log dir should be")
    r = bash("set -e; agent_observe x 1; echo survived\n", tmp_path, EPYC_AGENT_LOG_DIR=str(blocker))
    assert r.returncode == 0 and "survived" in r.stdout
    assert r.stderr.splitlines()[-1] == "agent_log: could not log 'observe' (exit 2)"
    assert r.stderr.startswith("epyc-agent: cannot write the audit log: ")


WRITER = """
import sys, time
from pathlib import Path
from epyc_agent.events.writer import AuditLog
log_dir, go, done = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
with AuditLog(log_dir, "ses_other", "main") as log:
    go.touch()
    n = 0
    while not done.exists() or n < 50:
        n += 1
        log.observe("python", n)
        time.sleep(0.0005)
print(n)
"""


def test_200_events_through_the_helper_beside_another_writer_verify_intact(tmp_path: Path, log_dir: Path) -> None:
    """A script logs 200 events through its helper while another process appends to the same shard:
    every event is there once, the two interleave, and `log verify` says INTACT."""
    go, done = tmp_path / "go", tmp_path / "done"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(log_dir), str(go), str(done)], stdout=subprocess.PIPE, text=True
    )
    script = (
        f'while [ ! -e "{go}" ]; do sleep 0.01; done\n'
        "for i in $(seq 1 200); do agent_observe shell $i; done\n"
        f'touch "{done}"\n'
    )
    try:
        r = bash(script, tmp_path)
    finally:
        done.touch()
        n_python = int(writer.communicate(timeout=120)[0])
    assert r.returncode == 0 and r.stderr == "", r.stderr
    evs = events(log_dir / "agent_audit-main.log")
    shell = [i for i, e in enumerate(evs) if e["msg"] == "shell"]
    assert [evs[i]["data"]["value"] for i in shell] == list(range(1, 201))
    assert len(evs) == 200 + n_python
    assert any(evs[i]["msg"] == "python" for i in range(shell[0], shell[-1])), "the writers did not interleave"
    v = run_cli("log", "verify")
    assert v.returncode == 0 and "INTACT" in v.stdout, v.stdout + v.stderr


def test_the_helper_holds_none_of_the_callers_pipes(tmp_path: Path) -> None:
    """A call whose stderr is a process substitution, and an fd the script opened: both reach EOF
    when the script closes them (the helper keeps only its FIFOs), so `wait` on the reader returns."""
    script = (
        'exec 7> >(cat > "$TMPDIR/seven"); seven=$!\n'
        'agent_observe k 1 2> >(cat > "$TMPDIR/err"); err=$!\n'
        'exec 7>&-; wait $seven; echo "seven=$?"\n'
        'wait $err; echo "err=$?"\n'
    )
    r = bash(script, tmp_path, timeout=60)
    assert r.returncode == 0, r.stderr
    assert (values(r.stdout, "seven"), values(r.stdout, "err")) == (["0"], ["0"])


def test_a_shard_moved_away_is_not_written_behind_the_readers_back(tmp_path: Path, log_dir: Path) -> None:
    """The helper keeps its shard open; moved or deleted between two calls, the next event goes to a
    new file at the shard's path (a new chain), not to the old file."""
    script = (
        'shard="$EPYC_AGENT_ROOT/logs/agent_audit-main.log"\n'
        'agent_observe k 1; mv "$shard" "$shard.old"; agent_observe k 2\n'
        'rm "$shard"; agent_observe k 3; agent_observe k 4\n'
    )
    r = bash(script, tmp_path)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    shard = log_dir / "agent_audit-main.log"
    assert [(e["data"]["value"], e["seq"]) for e in events(Path(f"{shard}.old"))] == [(1, 1)]
    assert [(e["data"]["value"], e["seq"]) for e in events(shard)] == [(3, 1), (4, 2)]
    assert run_cli("log", "verify").returncode == 0
