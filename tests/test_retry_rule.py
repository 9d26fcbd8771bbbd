"""The retry rule as the real hook applies it and as `log analyze --loops` reports it: parallel
calls still running count, edits in between never launder a storm, and commands compare by
their parsed form and calls by their full arguments."""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from conftest import BIN, run_cli

from epyc_agent.guards.retry import KEY_CHARS, command_key, count_result
from epyc_agent.hooks import state
from epyc_agent.hooks.payload import call_id

SID = "5e1f0a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b"
SESSION = f"cc-{SID}"


def payload(tmp_path: Path, event: str, **fields: Any) -> dict[str, Any]:
    return {"session_id": SID, "transcript_path": "", "cwd": str(tmp_path), "hook_event_name": event, **fields}


def bash(tmp_path: Path, event: str, command: str, use_id: str, **more: Any) -> dict[str, Any]:
    ti = {"command": command, "description": "build", "timeout": 120000}
    return payload(tmp_path, event, tool_name="Bash", tool_use_id=use_id, tool_input=ti, **more)


def hook(p: dict[str, Any]) -> str | None:
    """Run the real hook on one payload; the permission decision of a PreToolUse, else None."""
    r = subprocess.run([str(BIN), "hook"], input=json.dumps(p).encode(), capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout) if r.stdout.strip() else {}
    return out.get("hookSpecificOutput", {}).get("permissionDecision")


def attempt(tmp_path: Path, command: str, use_id: str) -> str | None:
    return hook(bash(tmp_path, "PreToolUse", command, use_id))


def fail(tmp_path: Path, command: str, use_id: str) -> None:
    hook(bash(tmp_path, "PostToolUseFailure", command, use_id, error="Exit code 2\nmake: *** Error 2"))


def edit(tmp_path: Path, root: Path, n: int) -> None:
    """An Edit through the hook, as Claude Code sends it: PreToolUse, then PostToolUse (exit 0)."""
    f = root / "src.c"
    f.write_text(f"int x = {n};\n")
    ti = {"file_path": str(f), "old_string": f"x = {n}", "new_string": f"x = {n + 1}"}
    for event in ("PreToolUse", "PostToolUse"):
        extra = {"tool_response": {"filePath": str(f), "success": True}} if event == "PostToolUse" else {}
        hook(payload(tmp_path, event, tool_name="Edit", tool_use_id=f"e{n}", tool_input=ti, **extra))


def loops(*args: str) -> dict[str, Any]:
    r = run_cli("log", "analyze", "--loops", "--json", "--session", SESSION, *args)
    assert r.returncode in (0, 1), r.stderr
    return json.loads(r.stdout)  # type: ignore[no-any-return]


def storms(report: dict[str, Any]) -> list[tuple[str, int]]:
    return [(f["subject"], f["count"]) for f in report["findings"] if f["pattern"] == "retry_storm"]


def test_parallel_batch_fourth_call_denied(tmp_path: Path, log_dir: Path) -> None:
    """Four identical calls of one message, all PreToolUse before any result: the 4th is denied."""
    decisions = [attempt(tmp_path, "make -j2", f"t{n}") for n in range(4)]
    assert decisions == [None, None, None, "deny"]
    for n in range(3):
        fail(tmp_path, "make -j2", f"t{n}")
    st = state.load(str(log_dir), SESSION)
    assert st["failures"] == {"make -j2": 3} and st.get("pending") == {}
    assert attempt(tmp_path, "make -j2", "t5") == "deny"


def test_parallel_hooks_at_once_deny_exactly_one(tmp_path: Path) -> None:
    """Four PreToolUse hook processes at the same moment: the lock lets exactly three through."""
    hook(payload(tmp_path, "SessionStart", source="startup"))  # as in a real session: state and key exist
    with ThreadPoolExecutor(4) as pool:
        decisions = list(pool.map(lambda n: attempt(tmp_path, "make -j2", f"t{n}"), range(4)))
    assert (decisions.count(None), decisions.count("deny")) == (3, 1)


def test_success_settles_and_resets(tmp_path: Path, log_dir: Path) -> None:
    """A running call that succeeds is no longer pending and resets its command's failures."""
    fail(tmp_path, "make -j2", "t0")
    fail(tmp_path, "make -j2", "t1")
    assert attempt(tmp_path, "make -j2", "t2") is None
    assert attempt(tmp_path, "make -j2", "t3") == "deny"  # 2 failed + 1 running
    hook(bash(tmp_path, "PostToolUse", "make -j2", "t2", tool_response={"stdout": "ok", "stderr": ""}))
    st = state.load(str(log_dir), SESSION)
    assert (st["failures"], st["pending"]) == ({}, {})
    assert attempt(tmp_path, "make -j2", "t4") is None


@pytest.mark.parametrize(
    "turn_end",
    [{"hook_event_name": "Stop", "stop_hook_active": False}, {"hook_event_name": "UserPromptSubmit", "prompt": "go"}],
)
def test_unsettled_calls_forgotten_at_turn_end(tmp_path: Path, log_dir: Path, turn_end: dict[str, Any]) -> None:
    """Calls whose result never came (Esc, another hook's deny) stop counting when the turn ends."""
    for n in range(3):
        assert attempt(tmp_path, "make -j2", f"t{n}") is None
    assert attempt(tmp_path, "make -j2", "t3") == "deny"
    hook({**payload(tmp_path, "x"), **turn_end})
    assert not state.load(str(log_dir), SESSION).get("pending")
    assert attempt(tmp_path, "make -j2", "t4") is None


def test_stale_pending_calls_expire(log_dir: Path) -> None:
    """A pending call past its own timeout plus the grace minute no longer counts."""
    ld = str(log_dir)
    for n in range(3):
        assert state.begin_call(ld, SESSION, f"t{n}", "make", 3, timeout_s=1.0) == (0, n)
    assert state.begin_call(ld, SESSION, "t3", "make", 3) == (0, 3)

    def age(data: dict[str, Any]) -> bool:
        data["pending"]["t0"]["until"] = 0.0
        return True

    state.update(ld, SESSION, age)
    assert state.begin_call(ld, SESSION, "t4", "make", 3) == (0, 2)
    assert "t0" not in state.load(ld, SESSION)["pending"]


def test_call_denied_by_another_guard_is_not_pending(tmp_path: Path, log_dir: Path) -> None:
    """A write outside the root is denied by the bash guard: it never runs, so it is not pending."""
    for n in range(4):
        assert attempt(tmp_path, "echo x > /etc/passwd", f"t{n}") == "deny"
    assert state.load(str(log_dir), SESSION).get("pending") == {}


def test_edits_between_failures_guard_and_report_agree(tmp_path: Path, root: Path) -> None:
    """Fail, edit, fail, edit, fail through the real hook: the guard denies the 4th attempt and
    `log analyze --loops` reports the storm (the hook's exit-0 Edit results do not end it)."""
    for n in range(3):
        assert attempt(tmp_path, "make -j2", f"m{n}") is None
        fail(tmp_path, "make -j2", f"m{n}")
        if n < 2:
            edit(tmp_path, root, n)
    assert attempt(tmp_path, "make -j2", "m3") == "deny"
    assert storms(loops()) == [("make -j2", 3)]
    assert storms(loops("--retry-storm", "2")) == [("make -j2", 3)]


def test_same_command_in_another_spelling_is_a_retry(tmp_path: Path) -> None:
    """A trailing `;`, a comment, quotes around a word: the same command to the guard and the report."""
    spellings = ["make -j2 check;", "make -j2 check # again", "'make' -j2 check"]
    for n, command in enumerate(spellings):
        assert attempt(tmp_path, command, f"s{n}") is None
        fail(tmp_path, command, f"s{n}")
    assert attempt(tmp_path, "make -j2 check", "s3") == "deny"
    assert attempt(tmp_path, "EPYC_AGENT_ALLOW_RETRY=1 make -j2 check", "s4") is None
    assert [c for _, c in storms(loops())] == [3]


def test_grep_over_other_globs_is_not_a_repeat(tmp_path: Path) -> None:
    """One Grep pattern over four globs, same empty result: four different calls, no `repeat`;
    the same Grep four times is one."""

    def grep(n: int, glob: str) -> None:
        ti = {"pattern": "TODO", "glob": glob, "output_mode": "files_with_matches"}
        resp = {"mode": "files_with_matches", "filenames": [], "numFiles": 0}
        hook(payload(tmp_path, "PostToolUse", tool_name="Grep", tool_use_id=f"g{n}", tool_input=ti, tool_response=resp))

    for n, glob in enumerate(["*.py", "*.md", "*.toml", "*.yaml"]):
        grep(n, glob)
    assert loops()["findings"] == []
    for n in range(4, 8):
        grep(n, "*.rs")
    assert [(f["pattern"], f["count"], f["subject"]) for f in loops()["findings"]] == [("repeat", 4, "Grep TODO")]


def test_command_key_parsed_form() -> None:
    """Spellings of one command share a key; different words, `#` inside a word and a trailing `&` do not."""
    same = ["make -j2 check", "make  -j2 check;", "make -j2 check # again", "'make' -j2 check", 'make "-j2" check']
    assert {command_key(c) for c in same} == {"make -j2 check"}
    assert command_key("EPYC_AGENT_ALLOW_RETRY=1 make -j2 check") == "make -j2 check"
    assert command_key("echo 'a b'") != command_key("echo a b")
    assert command_key("echo 'a;b'") != command_key("echo a ; b")
    assert command_key("echo a#b") == "echo a#b" and command_key("echo ${#x}") == "echo ${#x}"
    assert command_key("make &") != command_key("make")
    assert command_key('echo "unclosed  quote') == 'echo "unclosed quote'  # shlex fails: whitespace collapsed
    assert command_key("a&&b") == command_key("a && b") == "a && b"
    script = "python - <<'EOF'\n" + "print('step')\n" * 300
    long_a, long_b = command_key(script + "x = 1\nEOF"), command_key(script + "x = 2\nEOF")
    assert long_a != long_b and len(long_a) == len(long_b) == KEY_CHARS  # differing past the cut


def test_call_id_ignores_metadata_only() -> None:
    """The identity covers every argument but description, timeout and run_in_background."""
    a = call_id("Bash", {"command": "make -j2;", "description": "build", "timeout": 1000})
    assert a == call_id("Bash", {"command": "make  -j2", "run_in_background": False})
    assert a != call_id("Bash", {"command": "make -j4"})
    assert call_id("Grep", {"pattern": "x", "glob": "*.py"}) != call_id("Grep", {"pattern": "x", "glob": "*.md"})
    assert call_id("Grep", {"pattern": "x", "path": "a"}) == call_id("Grep", {"path": "a", "pattern": "x"})
    assert call_id("Read", {"file_path": "/a"}) != call_id("Write", {"file_path": "/a"})


def test_count_result_is_per_command() -> None:
    """Failures of a command count until that command succeeds; other commands never touch them."""
    runs: dict[str, int] = {}
    plus = lambda n: (n or 0) + 1  # noqa: E731
    for key, failed in [("make", True), ("ls", False), ("make", True), ("pytest", True), ("make", True)]:
        count_result(runs, key, failed, plus)
    assert runs == {"pytest": 1, "make": 3}
    assert count_result(runs, "make", False, plus) == [("make", 3)] and runs == {"pytest": 1}
    assert count_result(runs, "a", True, plus, max_keys=1) == [("pytest", 1)] and runs == {"a": 1}
