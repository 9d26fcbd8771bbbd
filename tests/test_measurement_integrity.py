"""Measurement integrity: each run records the llama.cpp build it measured (path, version line,
sha256) and refuses a build other than the pinned one; a timed run refuses to start while another
benchmark (a llama.cpp tool or a track run, anyone's) runs on the same CPUs."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import BIN, run_cli

from epyc_agent.config import load_config
from epyc_agent.system.builds import binaries_build, embedded_build, pin_problem

RUN = ("track", "run", "8", "--prompts", "1", "--reps", "1", "--max-tokens", "4", "--json")


def config(tmp_path: Path, text: str) -> dict[str, str]:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return {"EPYC_AGENT_CONFIG": str(path)}


def test_embedded_build_is_the_loaded_library() -> None:
    """The embedded build names llama-cpp-python's own libllama.so, hashed as it is on disk."""
    build = embedded_build()
    lib = next(b for b in build if b["path"].endswith("/libllama.so"))
    assert hashlib.sha256(Path(lib["path"]).read_bytes()).hexdigest() == lib["sha256"]
    assert lib["version"] == "llama-cpp-python 0.3.36"
    assert any(b["path"].endswith("/libggml-cpu.so") for b in build)


def test_binaries_build_reads_version_and_hash(tmp_path: Path) -> None:
    """A tool's --version line (llama.cpp prints it on stderr) and its sha256 are recorded."""
    tool = tmp_path / "llama-completion"
    tool.write_text("#!/bin/sh\necho 'load_backend: loaded CPU' >&2\necho 'version: 7404 (52392291b)' >&2\n")
    tool.chmod(0o755)
    (build,) = binaries_build(str(tmp_path), {"llama-completion": str(tool)})
    assert build == {
        "path": str(tool),
        "version": "version: 7404 (52392291b)",
        "sha256": hashlib.sha256(tool.read_bytes()).hexdigest(),
    }


def test_pin_problem(tmp_path: Path) -> None:
    """No pin: nothing to say. A pin of the right hash or version passes; any other is named."""
    build = embedded_build()
    assert pin_problem(load_config(), build) is None
    digests = "".join(f"\n  - {b['sha256'].upper()}" for b in build)
    os.environ.update(config(tmp_path, f"measurement:\n  llama_cpp_sha256:{digests}\n  llama_cpp_version: '0.3.36'\n"))
    try:
        assert pin_problem(load_config(), build) is None
        (tmp_path / "config.yaml").write_text("measurement:\n  llama_cpp_version: '0.3.99'\n")
        why = pin_problem(load_config(), build)
        assert why is not None and "not the pinned version '0.3.99'" in why
    finally:
        os.environ.pop("EPYC_AGENT_CONFIG")


def test_run_refuses_another_build(default_model: Path, tmp_path: Path, root: Path) -> None:
    """A pin that is not this build: `track run` exits 2 before loading anything, nothing recorded."""
    env = config(tmp_path, "measurement:\n  llama_cpp_sha256: ['" + "0" * 64 + "']\n")
    r = run_cli(*RUN, "-m", str(default_model), env=env)
    assert r.returncode == 2, r.stderr
    assert "not the pinned llama.cpp build" in r.stderr and "libllama.so has sha256" in r.stderr
    assert "Traceback" not in r.stderr
    assert not list((root / "benchmarks" / "runs").glob("*/output.jsonl"))


@pytest.mark.slow
def test_run_records_the_pinned_build(default_model: Path, tmp_path: Path) -> None:
    """With the right pin the run goes ahead, and config.json records the build it measured."""
    build = embedded_build()
    env = config(tmp_path, "measurement:\n  llama_cpp_sha256: [" + ", ".join(b["sha256"] for b in build) + "]\n")
    r = run_cli(*RUN, "-m", str(default_model), env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    conf = json.loads((Path(json.loads(r.stdout)["run_dir"]) / "config.json").read_text())
    assert conf["backend"]["build"] == build


@pytest.fixture
def fake_bench(tmp_path: Path) -> Iterator[Path]:
    """A program named llama-bench (a copy of sleep): a benchmark someone else started."""
    prog = tmp_path / "bin" / "llama-bench"
    prog.parent.mkdir()
    shutil.copy(shutil.which("sleep") or "/bin/sleep", prog)
    yield prog


def _start(argv: list[str]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(argv)
    time.sleep(0.2)
    return proc


def test_run_refuses_while_another_benchmark_runs(default_model: Path, fake_bench: Path) -> None:
    """`track run` refuses while a llama-bench runs on our CPUs, naming it."""
    proc = _start([str(fake_bench), "60"])
    try:
        r = run_cli(*RUN, "-m", str(default_model))
    finally:
        proc.kill()
        proc.wait()
    assert r.returncode == 2, r.stderr
    assert f"llama-bench (pid {proc.pid})" in r.stderr and "refused by sysadmin" in r.stderr


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs to pin apart")
def test_a_benchmark_on_other_cpus_does_not_count(fake_bench: Path) -> None:
    """A benchmark pinned to other CPUs than ours does not disturb our figures; on ours it does."""
    a, b = sorted(os.sched_getaffinity(0))[:2]
    taskset = shutil.which("taskset")
    if taskset is None:
        pytest.skip("taskset not installed")
    proc = _start([taskset, "-c", str(b), str(fake_bench), "60"])
    try:
        apart = _health_on(taskset, a)
        together = _health_on(taskset, b)
    finally:
        proc.kill()
        proc.wait()
    assert apart["status"] == "PASS", apart
    assert together["status"] == "FAIL" and together["value"][0]["pid"] == proc.pid


def _health_on(taskset: str, cpu: int) -> dict:
    """The batch health's `processes` check, run pinned to one CPU."""

    r = subprocess.run(
        [taskset, "-c", str(cpu), str(BIN), "system", "health", "--profile", "batch", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    checks = json.loads(r.stdout)
    checks = checks["checks"]
    return next(c for c in checks if c["name"] == "processes")
