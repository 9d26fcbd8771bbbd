"""`session exec --sandbox`: Landlock really stops writes outside the root."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_cli

from epyc_agent.sandbox import abi_version

pytestmark = pytest.mark.skipif(abi_version() < 1, reason="kernel without Landlock (needs Linux >= 5.13)")


def test_write_outside_root_fails_inside_succeeds(tmp_path: Path, root: Path) -> None:
    """Under --sandbox a child process cannot create a file outside the root; inside it can."""
    outside = tmp_path / "outside.txt"
    inside = root / "inside.txt"
    script = (
        f"echo in > {inside} && echo wrote-inside; echo out > {outside} || echo blocked-outside; "
        f"echo x > /dev/null && echo devnull-ok"
    )
    r = run_cli("session", "exec", "--sandbox", "--shell", "--", script)
    assert r.returncode == 0, r.stderr
    assert "wrote-inside" in r.stdout and "blocked-outside" in r.stdout and "devnull-ok" in r.stdout
    assert "Permission denied" in r.stderr
    assert inside.read_text() == "in\n" and not outside.exists()


def test_sandbox_inherited_and_exit_code(tmp_path: Path) -> None:
    """Grandchildren are restricted too, and the command's exit code comes back unchanged."""
    target = tmp_path / "grandchild.txt"
    r = run_cli(
        "session",
        "exec",
        "--sandbox",
        "--",
        "python3",
        "-c",
        f"import subprocess,sys; sys.exit(subprocess.call(['touch', '{target}']))",
    )
    assert r.returncode != 0 and not target.exists()


def test_without_sandbox_write_outside_works(tmp_path: Path) -> None:
    """Control: the same write succeeds without --sandbox (so the test above can fail)."""
    target = tmp_path / "free.txt"
    r = run_cli("session", "exec", "--", "touch", str(target))
    assert r.returncode == 0 and target.exists()
