"""Storage guard and environment exports."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from epyc_agent.guards.check import check_bash, check_edit
from epyc_agent.storage import StorageGuard, is_under
from tests.conftest import run_cli


@pytest.fixture
def lab(tmp_path: Path) -> Path:
    """A root with a symlink pointing out, a symlink pointing in, and an outside folder."""
    root = tmp_path / "llm"
    (root / "models").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "escape").symlink_to(outside)
    (root / "dangling").symlink_to(tmp_path / "outside" / "new-file")
    (tmp_path / "inside-link").symlink_to(root / "models")
    (tmp_path / "llm2").mkdir()
    return root


def test_paths_under_root_are_allowed(lab: Path) -> None:
    g = StorageGuard(lab)
    assert g.check(lab / "models" / "x.gguf").allowed
    assert g.check(lab).allowed
    assert g.check(lab / "not" / "yet" / "there.txt").allowed


@pytest.mark.parametrize(
    "rel",
    [
        "../etc/passwd",  # .. out of the root
        "llm2/file",  # prefix twin
        "escape/file",  # symlink under the root pointing out
        "escape/new/dir/file",  # symlink among the parents of a file that does not exist yet
        "dangling",  # dangling symlink: the write would create its target outside
        "models/../../outside/x",
    ],
)
def test_escapes_are_refused(lab: Path, rel: str) -> None:
    """`..`, prefix twins and symlinks (existing, dangling, in missing parents) are refused."""
    target = lab / rel if not rel.startswith("llm2") else lab.parent / rel
    v = StorageGuard(lab).check(target)
    assert not v.allowed, v.resolved
    assert "outside the storage root" in v.reason


def test_relative_paths_use_the_given_cwd(lab: Path, tmp_path: Path) -> None:
    g = StorageGuard(lab)
    assert g.check("models/a", cwd=lab).allowed
    assert not g.check("a", cwd=tmp_path / "outside").allowed
    assert g.check("inside-link/a", cwd=tmp_path).allowed  # a symlink from outside pointing in


def test_the_root_itself_may_be_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "raid"
    real.mkdir()
    (tmp_path / "llm").symlink_to(real)
    g = StorageGuard(tmp_path / "llm")
    assert g.check(tmp_path / "llm" / "x").allowed
    assert g.check(real / "x").allowed


def test_allowlist(lab: Path) -> None:
    g = StorageGuard(lab, ["/dev/null", "/tmp/allowed-dir"])
    assert g.check("/dev/null").allowed
    assert g.check("/tmp/allowed-dir/sub/file").allowed
    assert not g.check("/tmp/allowed-dir2").allowed
    assert not g.check("/dev/sda").allowed


def test_empty_and_nul_paths_are_refused(lab: Path) -> None:
    g = StorageGuard(lab)
    assert not g.check("").allowed
    assert not g.check(f"{lab}/a\0b").allowed


def test_is_under_is_not_a_prefix_match() -> None:
    assert is_under("/mnt/raid0/llm/x", "/mnt/raid0/llm")
    assert not is_under("/mnt/raid0/llm2", "/mnt/raid0/llm")
    assert is_under("/mnt/raid0/llm", "/mnt/raid0/llm")


segments = st.sampled_from(["..", ".", "a", "b", "llm", "llm2", "escape", "in", "", "etc", "x y", "ø"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(segments, min_size=1, max_size=8), absolute=st.booleans())
def test_property_never_allows_a_path_resolving_outside(tmp_path: Path, parts: list[str], absolute: bool) -> None:
    """Whatever the path, if the guard allows it, its kernel-resolved form is under the root."""
    root = tmp_path / "p" / "llm"
    if not root.exists():
        root.mkdir(parents=True)
        (root / "escape").symlink_to("/etc")
        (root / "in").symlink_to(root / "a", target_is_directory=True)
        (root / "a").mkdir()
    base = str(root) if absolute else "."
    path = os.path.join(base, *parts)
    g = StorageGuard(root)
    v = g.check(path, cwd=root / "a")
    if v.allowed:
        real_root = os.path.realpath(root)
        resolved = os.path.realpath(os.path.join(root / "a", path))
        assert resolved == real_root or resolved.startswith(real_root + os.sep)


def test_storage_check_cli(root: Path) -> None:
    """Exit 0 when all allowed, 1 with a reason per refused path; --json."""
    ok = run_cli("storage", "check", str(root / "a"), str(root / "b" / "c"))
    assert ok.returncode == 0, ok.stderr
    bad = run_cli("storage", "check", str(root / "a"), f"{root}/../etc", f"{root}2")
    assert bad.returncode == 1
    assert bad.stdout.count("REFUSED") == 2 and "ALLOWED" in bad.stdout
    js = run_cli("storage", "check", "--json", f"{root}/../etc")
    data = json.loads(js.stdout)
    assert data["ok"] is False
    assert data["paths"][0]["allowed"] is False and data["paths"][0]["resolved"] == str(root.parent / "etc")


def test_env_exports_are_under_root_and_created(root: Path) -> None:
    """Every exported folder is under the root and exists; eval in bash works."""
    r = run_cli("env")
    assert r.returncode == 0, r.stderr
    names = [
        "HF_HOME",
        "TRANSFORMERS_CACHE",
        "HF_DATASETS_CACHE",
        "PIP_CACHE_DIR",
        "TMPDIR",
        "TMP",
        "TEMP",
        "XDG_CACHE_HOME",
        "XDG_DATA_HOME",
        "XDG_STATE_HOME",
        "TORCH_HOME",
        "npm_config_cache",
        "CARGO_HOME",
        "CLAUDE_CODE_TMPDIR",
    ]
    script = f'eval "$({run_cli.__globals__["BIN"]} env)"; ' + "; ".join(f'echo "{n}=${n}"' for n in names)
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=os.environ).stdout
    values = dict(line.split("=", 1) for line in out.splitlines())
    assert set(values) == set(names)
    for n, v in values.items():
        assert v.startswith(str(root) + "/"), (n, v)
        assert Path(v).is_dir(), n


@pytest.mark.parametrize("shell", ["zsh", "fish", "json"])
def test_env_other_shells(shell: str, root: Path) -> None:
    r = run_cli("env", "--shell", shell)
    assert r.returncode == 0
    if shell == "json":
        assert json.loads(r.stdout)["TMPDIR"] == str(root / "tmp")
    elif shell == "fish":
        assert f"set -gx TMPDIR {root / 'tmp'};" in r.stdout
    else:
        assert f"export TMPDIR={root / 'tmp'}" in r.stdout


@pytest.fixture
def loop(lab: Path) -> Path:
    """`loopa` and `loopb` under the root, symlinks to each other."""
    (lab / "loopa").symlink_to(lab / "loopb")
    (lab / "loopb").symlink_to(lab / "loopa")
    return lab


def test_a_symlink_loop_is_refused_with_the_reason(loop: Path) -> None:
    v = StorageGuard(loop).check(loop / "loopa" / "x")
    assert not v.allowed
    assert "symlink loop (ELOOP)" in v.reason
    assert StorageGuard(loop).check(loop / "loopa", follow=False).allowed  # removing the link is the fix


def test_a_name_too_long_is_refused_with_the_reason(lab: Path) -> None:
    v = StorageGuard(lab).check(lab / ("a" * 300) / "x")
    assert not v.allowed and "name too long (ENAMETOOLONG)" in v.reason


def test_a_parent_that_cannot_be_entered_is_refused(tmp_path: Path) -> None:
    """Checked in a forked child as an unprivileged user: root enters every folder."""
    (tmp_path / "llm" / "locked").mkdir(parents=True)
    (tmp_path / "llm" / "locked").chmod(0o700)
    for p in (tmp_path, tmp_path.parent, tmp_path.parent.parent):
        p.chmod(0o755)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child reports the verdict through the pipe and never returns to pytest
        try:
            if os.geteuid() == 0:
                os.setgid(65534)
                os.setuid(65534)
            v = StorageGuard(tmp_path / "llm").check(tmp_path / "llm" / "locked" / "x")
            os.write(write, f"{v.allowed} {v.reason}".encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as f:
        out = f.read()
    assert out.startswith("False") and "(EACCES)" in out, out


def test_unresolvable_paths_are_refused_by_cli_and_both_guards(loop: Path, tmp_path: Path) -> None:
    """`storage check`, the Write/Edit guard and the Bash guard give the same refusal."""
    target = str(loop / "loopa" / "x")
    out = run_cli("storage", "check", target, env={"EPYC_AGENT_ROOT": str(loop)})
    assert out.returncode == 1 and "REFUSED" in out.stdout and "ELOOP" in out.stdout, out.stdout + out.stderr
    guard = StorageGuard(loop)
    (edit,) = check_edit("Write", {"file_path": target, "content": "x"}, str(loop), guard)
    assert "ELOOP" in edit.reason
    for command in (f"echo hi > {target}", f"touch {target}", f"rm -rf {target}"):
        findings, _ = check_bash(command, str(loop), guard, {"HOME": str(tmp_path)})
        assert findings and "ELOOP" in findings[0].reason, command
    assert check_bash(f"rm {loop / 'loopa'}", str(loop), guard, {"HOME": str(tmp_path)})[0] == []
