"""Hook state under concurrency, and the compaction dump's size cap."""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from conftest import BIN

from epyc_agent.compaction import MAX_CHARS, render
from epyc_agent.hooks.state import load, state_path

SID = "c0ffee00-0000-4000-8000-000000000001"


def failure(tmp_path: Path, n: int) -> bytes:
    return json.dumps(
        {
            "session_id": SID,
            "transcript_path": "",
            "cwd": str(tmp_path),
            "hook_event_name": "PostToolUseFailure",
            "tool_name": "Bash",
            "tool_use_id": f"t{n}",
            "tool_input": {"command": "make -j2"},
            "error": "Exit code 2\nboom",
            "is_interrupt": False,
            "duration_ms": 5,
        }
    ).encode()


def test_parallel_failures_all_counted(tmp_path: Path, log_dir: Path) -> None:
    """Eight hook processes recording failures at once lose no update (flock + atomic replace)."""

    def run(n: int) -> int:
        return subprocess.run(
            [str(BIN), "hook"], input=failure(tmp_path, n), capture_output=True, timeout=60
        ).returncode

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(run, range(8))) == [0] * 8
    st = load(str(log_dir), f"cc-{SID}")
    assert st["failures"] == {"make -j2": 8}
    assert len(st["recent_failures"]) == 8
    assert Path(state_path(str(log_dir), f"cc-{SID}")).exists()


def test_dump_render_is_capped() -> None:
    """A session with huge sections still renders under the re-injection limit, most important first."""
    big = "x" * 400
    d = {
        "session": "s",
        "written": "now",
        "trigger": "auto",
        "events": 10**6,
        "current_task": "the task",
        "next_steps": ["continue"],
        "pending_tasks": [big] * 50,
        "retry_blocked": [],
        "recent_errors": [{"ts": "t", "msg": big, "details": big}] * 10,
        "files_modified": [{"path": big, "edits": 3}] * 30,
        "models_in_use": [],
        "research_report": None,
        "completed_tasks": [{"task": big, "outcome": "ok"}] * 20,
    }
    text = render(d)
    assert len(text) <= MAX_CHARS < 10_000
    assert text.index("the task") < text.index("Pending tasks")
    assert text.endswith("[dump cut to fit the context limit]\n")
