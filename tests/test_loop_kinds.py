"""Every loop kind of issue #25 on its scenarios (tests/data/loop_scenarios.yaml), positives and
the peers' negative cases; and the hook's part: the assistant's text digested at Stop, and the
live warnings for a mistake streak and a text loop."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from analyze_logs import LogBuilder
from conftest import run_cli

from epyc_agent.analyze.filters import Query
from epyc_agent.analyze.loops import find_loops, thresholds
from epyc_agent.hooks import payload as pl
from epyc_agent.hooks.assistant_text import latest_text, text_facts

SCENARIOS = yaml.safe_load((Path(__file__).parent / "data" / "loop_scenarios.yaml").read_text())
SID = "5c0ffee0-0000-4c1e-9a55-0d2e8f7b6a25"


def replay(b: LogBuilder, steps: list[str]) -> None:
    """Write the steps as the hook would log them, one second apart, in one session."""
    for t, step in enumerate(steps):
        verb, _, arg = step.partition(" ")
        if verb in ("ok", "fail"):
            b.cmd("a", "s", arg, 0 if verb == "ok" else 1, t, "out")
        elif verb in ("call", "callfail"):
            tool, _, args = arg.partition(" ")
            ti = json.loads(args)
            data = {"hook": "PostToolUse", "tool": tool, "call_id": pl.call_id(tool, ti)}
            b.cmd("a", "s", pl.tool_label(tool, ti), 0 if verb == "call" else 1, t, "out", data=data)
        elif verb == "edit":
            b.modify("a", "s", arg, t)
        elif verb == "compact":
            b.event("a", "s", "OBSERVE", "pre-compaction dump", t, data={"hook": "PreCompact", "trigger": "auto"})
        elif verb == "say":
            b.event("a", "s", "OBSERVE", "agent stopped", t, data={"hook": "Stop", **text_facts(arg)})
        else:
            raise AssertionError(f"unknown step {step!r}")


@pytest.mark.parametrize("sc", SCENARIOS, ids=[s["name"] for s in SCENARIOS])
def test_scenario(log_dir: Path, sc: dict) -> None:
    replay(LogBuilder(log_dir), sc["steps"])
    res = find_loops(str(log_dir), Query(), thresholds(sc.get("config")))
    assert sorted({f["pattern"] for f in res["findings"]}) == sorted(sc["expect"]), res["findings"]
    for f in res["findings"]:
        assert f["lines"] and all(":" in x for x in f["lines"])  # each finding names its events


def test_every_kind_has_positive_and_negative_scenarios() -> None:
    kinds = {s["kind"] for s in SCENARIOS}
    assert kinds == {"cycle", "text_loop", "compaction_loop", "mistake_streak", "canonical_args", "exempt"}
    for k in kinds:
        assert {bool(s.get("negative")) for s in SCENARIOS if s["kind"] == k} == {True, False}, k


def test_cycle_finding_names_the_calls(log_dir: Path) -> None:
    replay(LogBuilder(log_dir), [f"ok {c}" for c in ("build", "test", "lint")] * 4)
    (f,) = find_loops(str(log_dir), Query(), thresholds())["findings"]
    assert (f["pattern"], f["count"], f["subject"]) == ("cycle", 12, "`build` -> `test` -> `lint`")


def test_text_from_the_transcript_tail(tmp_path: Path) -> None:
    """Without `last_assistant_message`, the last assistant text comes from the transcript's end."""
    tr = tmp_path / "t.jsonl"
    lines = [{"type": "user", "message": {"content": "x" * 300_000}}]  # longer than the tail read
    lines += [
        {"type": "assistant", "message": {"content": [{"type": "text", "text": "first answer"}]}},
        {"type": "assistant", "message": {"content": [{"type": "tool_use", "id": "t", "name": "Bash"}]}},
        {"type": "assistant", "message": {"content": [{"type": "text", "text": "last answer"}]}},
        {"type": "system", "subtype": "turn_duration"},
        {"type": "assistant", "message": "not an object"},
    ]
    tr.write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert latest_text({"transcript_path": str(tr)}) == "last answer"
    assert latest_text({"last_assistant_message": "given", "transcript_path": str(tr)}) == "given"
    assert latest_text({"transcript_path": str(tmp_path / "missing")}) == ""


def hook(tmp_path: Path, event: str, **fields: object) -> dict:
    project = tmp_path / "project"
    project.mkdir(exist_ok=True)
    payload = {"session_id": SID, "cwd": str(project), "hook_event_name": event, **fields}
    r = run_cli("hook", input=json.dumps(payload), env={"CLAUDE_PROJECT_DIR": str(project)})
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["hookSpecificOutput"] if r.stdout.strip() else {}


def test_hook_digests_the_text_and_warns_at_the_next_prompt(tmp_path: Path, log_dir: Path) -> None:
    """Three identical answers at Stop: logged as digests (not the text), `--loops` finds the
    text loop, and the next prompt carries the warning once."""
    text = "I am going to check the benchmark results again now."
    for _ in range(3):
        assert hook(tmp_path, "Stop", stop_hook_active=False, last_assistant_message=text) == {}
    shard = next(log_dir.glob("agent_audit*.log")).read_text()
    assert text not in shard and '"text_digest"' in shard
    r = run_cli("log", "analyze", "--loops", "--json")
    assert r.returncode == 1 and [f["pattern"] for f in json.loads(r.stdout)["findings"]] == ["text_loop"]
    ctx = hook(tmp_path, "UserPromptSubmit", prompt="go on")["additionalContext"]
    assert "the same answer 3 times in a row" in ctx
    assert hook(tmp_path, "UserPromptSubmit", prompt="go on") == {}


def test_hook_warns_the_model_of_a_mistake_streak(tmp_path: Path) -> None:
    """Three different failing calls in a row: the third's PostToolUseFailure tells the model; a
    success ends the streak."""
    calls = [("Bash", {"command": "make"}), ("Bash", {"command": "ls build/"}), ("Read", {"file_path": "/nope"})]
    outs = [
        hook(tmp_path, "PostToolUseFailure", tool_name=t, tool_input=ti, tool_use_id=f"u{i}", error="Exit code 1")
        for i, (t, ti) in enumerate(calls)
    ]
    assert outs[:2] == [{}, {}] and "your last 3 calls all failed" in outs[2]["additionalContext"]
    ok = hook(
        tmp_path,
        "PostToolUse",
        tool_name="Bash",
        tool_input={"command": "ls"},
        tool_use_id="u9",
        tool_response={"stdout": "", "stderr": "", "interrupted": False},
    )
    assert ok == {}
    again = hook(
        tmp_path,
        "PostToolUseFailure",
        tool_name="Bash",
        tool_input={"command": "make"},
        tool_use_id="u10",
        error="Exit code 2",
    )
    assert again == {}


def test_sentences_are_counted_per_sentence_and_per_line() -> None:
    """Lines end sentences too (a streamed line repeated without a full stop), case and spacing
    are ignored, short fragments are not counted."""
    assert text_facts("Checking the draft model again\n" * 6)["sentence_repeats"] == 6
    assert text_facts("Checking the draft   model again. checking the DRAFT model again.")["sentence_repeats"] == 2
    assert text_facts("Done.\nDone.\nDone.\nDone.\nDone.")["sentence_repeats"] == 0
    assert text_facts("   ") == {}
