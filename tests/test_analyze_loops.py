"""Loop detection on labelled logs: every injected loop found, nothing on clean sessions."""

from __future__ import annotations

import json
from pathlib import Path

from analyze_logs import T0, LogBuilder, key
from conftest import run_cli

from epyc_agent.analyze.filters import Query
from epyc_agent.analyze.loops import find_loops, thresholds
from epyc_agent.analyze.normalize import normalize


def build(log_dir: Path) -> dict[str, list[str]]:
    """Injected loops (one per pattern, plus a normalisation case) and clean sessions; returns lines."""
    b = LogBuilder(log_dir)
    L: dict[str, list[str]] = {}
    # retry storm: the same failing command 3x in a row, an edit in between does not excuse it
    L["storm"] = [b.cmd("a", "s_storm", "make -j2", 2, 0, "error: x")]
    b.modify("a", "s_storm", "src/x.c", 5)
    L["storm"] += [b.cmd("a", "s_storm", "make  -j2", 2, 10, "error: x"), b.cmd("a", "s_storm", "make -j2", 2, 20)]
    b.cmd("a", "s_storm", "ls", 0, 30)
    # volatile parts differ (PIDs): still the same command
    L["pid"] = [b.cmd("a", "s_pid", f"kill -9 {pid}", 1, 100 + n) for n, pid in enumerate((41234, 41235, 41236))]
    # repeat: the same command and result 4x in a row
    L["repeat"] = [b.cmd("b", "s_repeat", "git status", 0, 200 + 10 * n, "nothing to commit") for n in range(4)]
    # alternation over 6 commands
    L["alt"] = [
        b.cmd("b", "s_alt", c, 0, 300 + 10 * n, f"ran at 2026-01-10 00:0{n}:00")
        for n, c in enumerate(["make", "./bench", "make", "./bench", "make", "./bench"])
    ]
    # burst: 35 different commands within 35 s
    L["burst"] = [b.cmd("c", "s_burst", f"echo step {n}", 0, 400 + n) for n in range(35)]
    # churn: A,B,A,B,A within a few edits (A: 3 visits), and edit/revert/edit on one file
    L["churn_a"] = []
    for n, p in enumerate(["src/a.py", "src/b.py", "src/a.py", "src/b.py", "src/a.py"]):
        line = b.modify("c", "s_churn", p, 500 + n)
        if p == "src/a.py":
            L["churn_a"].append(line)
    L["churn_r"] = [b.modify("c", "s_churn2", "cfg.yaml", 600 + n, a) for n, a in enumerate(["edit", "revert", "edit"])]
    # clean: a command repeated a few times far apart, with other work in between
    for n in range(5):
        b.cmd("d", "s_clean", "pytest -q", 0, 1000 + 1800 * n, "5 passed")
        b.cmd("d", "s_clean", "git diff", 0, 1010 + 1800 * n)
        b.modify("d", "s_clean", "src/c.py", 1020 + 1800 * n)
        b.modify("d", "s_clean", "src/c.py", 1021 + 1800 * n)  # one visit: edited twice in one go
    b.cmd("d", "s_clean", "make", 2, 20000)
    b.cmd("d", "s_clean", "make", 2, 20010)  # failed twice, then fixed: below the retry limit
    b.cmd("d", "s_clean", "make", 0, 20020)
    b.cmd("d", "s_clean", "git status", 0, 20030)
    b.cmd("d", "s_clean", "git status", 0, 20040)
    b.cmd("d", "s_clean", "git status", 0, 20050)  # 3x: below the repeat threshold
    # clean: the same command across many sessions (the old tool's "git status 86x")
    for s in range(30):
        for n, c in enumerate(["git status", "make", "pytest -q", "git status"]):
            b.cmd("e", f"s_many{s:02d}", c, 0, 30000 + 100 * s + 10 * n, "clean")
    # clean: two agents in one session, each failing twice (interleaved in time): never summed
    for n in range(2):
        b.cmd("f", "s_shared", "make", 2, 40000 + 10 * n)
        b.cmd("g", "s_shared", "make", 2, 40005 + 10 * n)
    return L


def test_every_injected_loop_found_and_nothing_else(log_dir: Path) -> None:
    """Exactly the injected loops, each with its session, agent, count, lines, times and a next step."""
    lines = build(log_dir)
    res = find_loops(str(log_dir), Query(), thresholds())
    got = {(f["pattern"], f["session"], f["agent"], f["count"]) for f in res["findings"]}
    assert got == {
        ("retry_storm", "s_storm", "a", 3),
        ("retry_storm", "s_pid", "a", 3),
        ("repeat", "s_repeat", "b", 4),
        ("alternation", "s_alt", "b", 6),
        ("burst", "s_burst", "c", 35),
        ("churn", "s_churn", "c", 3),
        ("churn", "s_churn2", "c", 3),
    }
    by = {(f["pattern"], f["session"]): f for f in res["findings"]}
    assert by[("retry_storm", "s_storm")]["lines"] == lines["storm"]
    assert by[("retry_storm", "s_pid")]["lines"] == lines["pid"]
    assert by[("repeat", "s_repeat")]["lines"] == lines["repeat"]
    assert by[("alternation", "s_alt")]["lines"] == lines["alt"]
    assert by[("burst", "s_burst")]["lines"] == lines["burst"]
    assert by[("churn", "s_churn")]["lines"] == lines["churn_a"]
    assert by[("churn", "s_churn2")]["lines"] == lines["churn_r"]
    storm = by[("retry_storm", "s_storm")]
    assert (storm["first"], storm["last"], storm["subject"]) == (key(T0), key(T0 + 20), "make -j2")
    assert "diagnose" in storm["suggestion"]
    assert by[("alternation", "s_alt")]["subject"] == "`make` and `./bench`"
    assert all(f["suggestion"] for f in res["findings"])
    assert res["by_pattern"] == {"retry_storm": 2, "repeat": 1, "alternation": 1, "burst": 1, "churn": 2}


def test_thresholds_are_configurable(log_dir: Path) -> None:
    """Lower thresholds find the shorter runs (per agent), higher ones drop findings."""
    build(log_dir)
    res = find_loops(str(log_dir), Query(session="s_shared"), thresholds(retry_storm=2))
    assert {(f["agent"], f["count"]) for f in res["findings"]} == {("f", 2), ("g", 2)}
    res = find_loops(str(log_dir), Query(), thresholds({"retry_storm": 4, "burst": 40}))
    assert {f["pattern"] for f in res["findings"]} == {"repeat", "alternation", "churn"}


def test_normalize_keeps_meaningful_numbers() -> None:
    """PIDs, timestamps and temp names are volatile; small parameters are not."""
    assert normalize("kill   -9 41234") == normalize("kill -9 98765") == "kill -9 <N>"
    assert normalize("cp /tmp/tmp.aB3xY9zQ out-2026-01-10T12:00:01Z.log") == "cp /tmp/tmp.<TMP> out-<TS>.log"
    assert normalize("llama-speculative --draft-max 8") != normalize("llama-speculative --draft-max 16")


def test_loops_cli_json_exit_code_and_config(log_dir: Path, root: Path) -> None:
    """`--loops --json` exits 1 with findings; the config's `loops` section sets thresholds."""
    build(log_dir)
    r = run_cli("log", "analyze", "--loops", "--json", "--session", "s_storm")
    assert r.returncode == 1, r.stderr
    data = json.loads(r.stdout)
    assert [(f["pattern"], f["count"]) for f in data["findings"]] == [("retry_storm", 3)]
    assert data["thresholds"] == {
        "retry_storm": 3,
        "repeat": 4,
        "alternation": 6,
        "burst": 30,
        "burst_window_s": 60.0,
        "churn": 3,
        "cycle": 3,
        "mistake_streak": 3,
        "compaction_loop": 3,
        "text_loop": 3,
        "text_repeat": 5,
        "exempt": [],
        "warn": True,
    }
    cfg = root.parent / "epyc-agent.yaml"
    cfg.write_text("loops:\n  retry_storm: 5\n")
    r = run_cli("log", "analyze", "--loops", "--json", "--session", "s_storm")
    assert r.returncode == 0 and json.loads(r.stdout)["findings"] == []
    r = run_cli("log", "analyze", "--loops", "--session", "s_clean")
    assert (r.returncode, r.stdout.strip()) == (0, "OK no loops found")


def test_human_output_names_each_pattern(log_dir: Path) -> None:
    """The text report shows every pattern with session, lines and the next step."""
    build(log_dir)
    r = run_cli("log", "analyze", "--loops")
    assert r.returncode == 1
    for pattern in ("RETRY_STORM", "REPEAT", "ALTERNATION", "BURST", "CHURN"):
        assert f"{pattern}  s_" in r.stdout
    assert r.stdout.count("next:") == 7 and "\x1b[" not in r.stdout
    assert r.stdout.rstrip().endswith("7 finding(s): retry_storm 2, repeat 1, alternation 1, burst 1, churn 2")


def test_retry_storm_is_the_guards_rule(log_dir: Path) -> None:
    """Failures count per command until that command succeeds: other commands and the hook's
    exit-0 Edit results in between do not end the count, a success of it does, an interrupt is
    neither."""
    b = LogBuilder(log_dir)
    edit = {"data": {"tool": "Edit", "call_id": "e1"}}
    b.cmd("a", "s_gap", "make -j2", 2, 0)
    b.cmd("a", "s_gap", "Edit /src/x.c", 0, 1, **edit)
    b.cmd("a", "s_gap", "make -j2", 2, 2)
    b.cmd("a", "s_gap", "ls", 0, 3)
    b.cmd("a", "s_gap", "make -j2", 2, 4)
    for n, code in enumerate((2, 2, 0, 2)):  # fixed after two failures, then failed once more
        b.cmd("a", "s_reset", "make", code, n)
    stopped = {"data": {"tool": "Bash", "interrupted": True}}
    b.cmd("a", "s_stop", "make", 2, 0)
    b.cmd("a", "s_stop", "make", 130, 1, **stopped)
    b.cmd("a", "s_stop", "make", 2, 2)
    res = find_loops(str(log_dir), Query(), thresholds())
    assert [(f["pattern"], f["session"], f["count"]) for f in res["findings"]] == [("retry_storm", "s_gap", 3)]
    assert "without succeeding" in res["findings"][0]["suggestion"]


def test_calls_compared_by_call_id_when_logged(log_dir: Path) -> None:
    """One label over different calls (`data.call_id` differs) is no repeat; the same call is."""
    b = LogBuilder(log_dir)
    for n in range(4):
        b.cmd("a", "s_ids", "Grep TODO", 0, n, "no matches", data={"call_id": f"glob{n}"})
    for n in range(4):
        b.cmd("a", "s_same", "Grep TODO", 0, n, "no matches", data={"call_id": "one"})
    res = find_loops(str(log_dir), Query(), thresholds())
    assert [(f["pattern"], f["session"], f["subject"]) for f in res["findings"]] == [("repeat", "s_same", "Grep TODO")]
