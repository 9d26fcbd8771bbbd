"""ROLLBACK listing (newest first per session) and the undo script (reverse order, runs nothing)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from analyze_logs import T0, LogBuilder, key
from conftest import run_cli


def build(log_dir: Path, work: Path) -> None:
    """Three rollbacks in s1 (each undo appends its step number), one in s2, a legacy one without undo."""
    b = LogBuilder(log_dir)
    for n in (1, 2, 3):
        b.event(
            "a",
            "s1",
            "ROLLBACK",
            f"change {n}\nrm -rf /",
            10 * n,
            action=f"change {n}\nrm -rf /",
            undo=f"echo {n} >> {work}/order.txt",
            details=f"undo_with: echo {n} >> {work}/order.txt",
        )
    b.event(
        "b",
        "s2",
        "ROLLBACK",
        "set governor",
        15,
        action="set governor",
        undo=f"touch {work}/s2-undone",
        details=f"undo_with: touch {work}/s2-undone",
    )
    b.raw("agent_audit.log", "[2026-01-10T00:00:01+00:00] ROLLBACK: old change without undo")


def test_rollbacks_newest_first_per_session(log_dir: Path, tmp_path: Path) -> None:
    """Sessions by their newest rollback; within a session newest first; legacy lines included."""
    build(log_dir, tmp_path)
    r = run_cli("log", "analyze", "--rollbacks", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["total"] == 5
    assert [(s["session"], [x["ts"] for x in s["rollbacks"]]) for s in d["sessions"]] == [
        ("s1", [key(T0 + 30), key(T0 + 20), key(T0 + 10)]),
        ("s2", [key(T0 + 15)]),
        ("none", ["2026-01-10T00:00:01+00:00"]),
    ]  # legacy lines keep their own time text
    assert d["sessions"][1]["rollbacks"][0]["undo"] == f"touch {tmp_path}/s2-undone"
    assert d["sessions"][2]["rollbacks"][0]["action"] == "old change without undo"


def test_script_undoes_in_reverse_order_and_runs_nothing(log_dir: Path, tmp_path: Path) -> None:
    """The script has set -euo pipefail and a comment per step; printing it runs nothing; bash runs it newest first."""
    build(log_dir, tmp_path)
    r = run_cli("log", "analyze", "--rollbacks", "--script", "--session", "s1")
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / "order.txt").exists() and not (tmp_path / "s2-undone").exists()
    text = r.stdout
    lines = text.splitlines()
    assert lines[0] == "#!/usr/bin/env bash" and "set -euo pipefail" in lines
    assert "# 3 step(s), newest change first. Filters: session=s1." in lines
    steps = [ln for ln in lines if ln.startswith("# step ")]
    assert steps == [f"# step {i}/3: {key(T0 + 10 * n)} session s1 agent a" for i, n in ((1, 3), (2, 2), (3, 1))]
    assert "# action: change 3 rm -rf /" in lines  # a newline in an action cannot escape its comment
    assert "rm -rf /" not in [ln.strip() for ln in lines]
    assert subprocess.run(["bash", "-n"], input=text, text=True).returncode == 0
    script = tmp_path / "undo.sh"
    script.write_text(text)
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "order.txt").read_text() == "3\n2\n1\n"
    assert not (tmp_path / "s2-undone").exists()


def test_script_marks_steps_without_undo(log_dir: Path, tmp_path: Path) -> None:
    """A rollback logged without an undo command becomes a comment, not a command."""
    build(log_dir, tmp_path)
    r = run_cli("log", "analyze", "--rollbacks", "--script", "--agent", "legacy")
    assert "# (no undo command was logged for this action)" in r.stdout
    r = run_cli("log", "analyze", "--errors", "--script")
    assert r.returncode == 2 and "--script goes with --rollbacks" in r.stderr
