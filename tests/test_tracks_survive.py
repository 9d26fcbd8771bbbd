"""Runs that survive: plain progress lines when stderr is no terminal, records on disk as each rep
finishes, SIGTERM leaving an `interrupted` run folder that `track resume` finishes, and
`track run --detach` followed with `track status` until done. Real runs of the default model with
tiny settings, through the real CLI."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import BIN, run_cli

from epyc_agent.system import health

TINY = ("--prompts", "2", "--reps", "2", "--max-tokens", "24")
EXPECTED = {(c, p, r) for c in ("baseline", "default") for p in ("sum-01", "sum-02") for r in (0, 1)}
LINE = re.compile(r"^\[(\d+)/8\] (baseline|default) (sum-0[12]) rep ([12])/2: [\d.]+ tok/s decode.*, [\d.]+ s elapsed$")


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "output.jsonl").read_text().splitlines()]


def _keys(recs: list[dict]) -> list[tuple[str, str, int]]:
    return [(r["config"], r["prompt_id"], r["rep"]) for r in recs]


def _task_ends(log_dir: Path, run_id: str) -> list[str]:
    events = [json.loads(x) for f in sorted(log_dir.glob("agent_audit-*.log")) for x in f.read_text().splitlines()]
    return [e["data"]["outcome"] for e in events if e["cat"] == "TASK_END" and e["msg"] == f"track 8 run {run_id}"]


def _wait(cond, timeout: float, every: float = 0.02):  # noqa: ANN001, ANN202 - a polling helper
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if got := cond():
            return got
        time.sleep(every)
    raise AssertionError(f"not within {timeout} s")


def test_detached_child_is_a_heavy_process() -> None:
    """A detached run (`python -m epyc_agent ... track resume ID`) counts as another benchmark for the
    health check, as `track run` does; `track status` does not."""
    argv = ["/venv/bin/python", "-m", "epyc_agent", "--root", "/r", "track", "resume", "x"]
    assert health.is_heavy(argv, health.program_name(argv, "python"), set(health.HEAVY_PROGRAMS))
    status = [*argv[:6], "status", "x"]
    assert not health.is_heavy(status, health.program_name(status, "python"), set(health.HEAVY_PROGRAMS))


def test_resume_refuses_what_it_cannot_finish(root: Path, tmp_path: Path) -> None:
    """No such run, a complete run of an older version (no status.json), a run another live process
    is measuring: each a one-line refusal, exit 2."""
    r = run_cli("track", "resume", "nope")
    assert r.returncode == 2 and r.stderr.startswith("epyc-agent: run nope is not a run folder"), r.stderr
    old = root / "benchmarks" / "runs" / "old"
    old.mkdir(parents=True)
    (old / "summary.json").write_text("{}")
    r = run_cli("track", "resume", "old")
    assert r.returncode == 2 and "run old is complete: nothing to resume" in r.stderr, r.stderr
    live = root / "benchmarks" / "runs" / "live"
    live.mkdir()
    from epyc_agent.tracks.journal import _created

    me = {"state": "running", "pid": os.getpid(), "pid_started": _created(os.getpid()), "request": {}}
    (live / "status.json").write_text(json.dumps(me))
    r = run_cli("track", "resume", "live")
    assert r.returncode == 2 and f"still being measured by pid {os.getpid()}" in r.stderr, r.stderr
    r = run_cli("track", "status", "live", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["state"] == "running"
    assert json.loads(r.stdout)["pid_alive"] is True
    gone = {**me, "pid_started": 1.0}  # the pid now names another process: the measuring one is gone
    (live / "status.json").write_text(json.dumps(gone))
    r = run_cli("track", "status", "live", "--json")
    assert json.loads(r.stdout)["state"] == "interrupted" and json.loads(r.stdout)["pid_alive"] is False


@pytest.mark.slow
def test_progress_lines_without_a_terminal(default_model: Path) -> None:
    """stderr is a pipe: one line per prompt and rep (config, prompt, rep, tok/s, elapsed), one per
    warm-up, and a line saying the model is being hashed; stdout stays pure JSON."""
    r = run_cli("track", "run", "8", "-m", str(default_model), *TINY, "--json", timeout=600)
    assert r.returncode == 0, r.stderr
    json.loads(r.stdout)
    lines = [x for x in r.stderr.splitlines() if LINE.match(x)]
    got = [(m[2], m[3], int(m[4]) - 1) for m in map(LINE.match, lines) if m]
    assert sorted(got) == sorted(EXPECTED) and [int(LINE.match(x)[1]) for x in lines] == list(range(1, 9))
    assert sum(1 for x in r.stderr.splitlines() if re.match(r"^\[\d/8\] (baseline|default) warm-up, ", x)) == 2
    assert "hashing gemma-3-270m-q4_k_m.gguf (0.3 GB, once per file)" in r.stderr


@pytest.mark.slow
def test_sigterm_mid_run_then_resume(default_model: Path, root: Path, log_dir: Path) -> None:
    """SIGTERM once a record is on disk: exit 143, the folder marked interrupted with its records and
    a TASK_END `interrupted`; `track resume` keeps them, measures the rest, and ends with the records
    an uninterrupted run has, a summary and a TASK_END `success`."""
    args = [str(BIN), "track", "run", "8", "-m", str(default_model), *TINY]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    runs = root / "benchmarks" / "runs"
    try:
        out = _wait(lambda: next((p for p in runs.glob("*/output.jsonl") if p.read_text().count("\n") >= 1), None), 300)
        proc.send_signal(signal.SIGTERM)
        _stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, stderr
    run_dir = out.parent
    run_id = run_dir.name
    status = json.loads((run_dir / "status.json").read_text())
    kept = _records(run_dir)
    assert status["state"] == "interrupted" and status["error"] == "interrupted by SIGTERM", status
    assert 1 <= len(kept) < 8 and status["done"] == len(kept) and status["total"] == 8, (kept, status)
    assert not (run_dir / "summary.json").exists()
    assert f"epyc-agent track resume {run_id}" in stderr.splitlines()[-1]
    assert _task_ends(log_dir, run_id) == ["interrupted"]

    r = run_cli("track", "status", run_id, "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["state"] == "interrupted"
    r = run_cli("track", "resume", run_id, "--json", timeout=600)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["run_dir"] == str(run_dir)
    final = _records(run_dir)
    assert len(final) == 8 and set(_keys(final)) == EXPECTED
    assert _keys(final) == sorted(_keys(final), key=lambda k: (k[0] != "baseline", k[2], k[1]))
    complete = {
        (r["config"], r["rep"])
        for r in kept
        if sum(1 for x in kept if x["config"] == r["config"] and x["rep"] == r["rep"]) == 2
    }
    assert [r for r in final if (r["config"], r["rep"]) in complete] == [
        r for r in kept if (r["config"], r["rep"]) in complete
    ]
    assert all(isinstance(r["agreement"]["identical"], bool) for r in final if r["config"] == "default")
    assert json.loads((run_dir / "status.json").read_text())["state"] == "done"
    conf = json.loads((run_dir / "config.json").read_text())
    assert len(conf["resumed"]) == 1 and conf["ended"] and conf["wall_s"] > 0
    assert len(json.loads((run_dir / "summary.json").read_text())["summary"]) == 2
    assert not (run_dir / ".baseline_tokens.jsonl").exists()
    assert _task_ends(log_dir, run_id) == ["interrupted", "success"]
    r = run_cli("track", "resume", run_id)
    assert r.returncode == 2 and "is done: nothing to resume" in r.stderr


@pytest.mark.slow
def test_detach_then_status_until_done(default_model: Path, root: Path) -> None:
    """`--detach --json` returns with the run id and the child's pid while the run goes on in its own
    session; `track status` follows it to done; run.log has its progress; `track runs` lists it."""
    t0 = time.monotonic()
    r = run_cli("track", "run", "8", "-m", str(default_model), *TINY, "--detach", "--json", timeout=120)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    pid = out["pid"]
    try:
        assert set(out) == {"run_id", "run_dir", "state", "pid", "log"} and out["state"] == "running"
        assert os.getsid(pid) == pid and time.monotonic() - t0 < 60

        def done() -> dict | None:
            s = run_cli("track", "status", out["run_id"], "--json")
            assert s.returncode == 0, s.stderr
            st = json.loads(s.stdout)
            assert st["state"] in ("running", "done"), st
            return st if st["state"] == "done" and st["pid_alive"] is False else None  # and the child has exited

        st = _wait(done, 600, every=1.0)
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert (st["done"], st["total"], st["pid"], st["pid_alive"]) == (8, 8, pid, False)
    log = Path(out["log"]).read_text()
    assert sum(1 for x in log.splitlines() if LINE.match(x)) == 8, log
    runs = json.loads(run_cli("track", "runs", "--json").stdout)
    assert [(x["run_id"], x["state"], x["done"], x["total"]) for x in runs] == [(out["run_id"], "done", 8, 8)]
