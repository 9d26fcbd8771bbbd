"""Role policies as code: each refusal with its reason, each allow with what it checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from epyc_agent.roles import policies
from epyc_agent.storage import StorageGuard
from epyc_agent.system.health import Check

GB = 10**9


def _checks(*statuses: str) -> list[Check]:
    return [Check(f"c{i}", s, f"detail {i}", f"fix {i}") for i, s in enumerate(statuses)]


def test_sysadmin_refuses_on_health_fail() -> None:
    """A FAIL in the batch profile refuses, naming the check, its detail and its fix."""
    v = policies.sysadmin_preflight(_checks("PASS", "FAIL", "WARN"), GB, 100 * GB)
    assert not v.ok and v.role == "sysadmin"
    assert v.reason == "health check failed: c1: detail 1 (fix: fix 1)"


def test_sysadmin_refuses_without_ram_for_the_model() -> None:
    """Available RAM below model size x 1.2 refuses with both figures in GB."""
    v = policies.sysadmin_preflight(_checks("PASS"), 10 * GB, 11 * GB)
    assert not v.ok
    assert v.reason == "not enough free RAM: the model needs 12.00 GB (10.00 GB x 1.2), 11.00 GB available"
    assert policies.sysadmin_preflight(_checks("PASS"), 10 * GB, 12 * GB).ok


def test_sysadmin_skip_and_unreadable_ram_do_not_refuse() -> None:
    """SKIP checks and unreadable RAM allow the run; warnings are named."""
    v = policies.sysadmin_preflight(_checks("SKIP", "WARN"), 10 * GB, None)
    assert v.ok and "RAM unreadable" in v.reason and "warnings: c1" in v.reason


def test_paths_outside_root_refused(tmp_path: Path, root: Path) -> None:
    """An output path resolving outside the root (via a symlink) is refused by the safety-reviewer."""
    (root / "runs").symlink_to(tmp_path)
    guard = StorageGuard(root)
    v = policies.paths_under_root(guard, [str(root / "research"), str(root / "runs" / "x")])
    assert not v.ok and v.role == "safety-reviewer" and "outside the storage root" in v.reason
    assert v.data["refused_paths"] == [str(root / "runs" / "x")]
    assert policies.paths_under_root(guard, [str(root / "research")]).ok


def _end(key: str, outcome: str) -> dict:
    return {"cat": "TASK_END", "data": {"config_key": key, "outcome": outcome}}


def test_retry_budget_refuses_fourth_attempt() -> None:
    """Three consecutive failures of one configuration refuse the 4th attempt."""
    events = [_end("k", "failure")] * 3
    v = policies.retry_budget(events, "k", 3)
    assert not v.ok and "failed 3 times in a row" in v.reason and "log decision" in v.reason
    assert policies.retry_budget(events[:2], "k", 3).ok


def test_retry_budget_reopened_by_decision_or_success_and_scoped_by_config() -> None:
    """A DECISION (new diagnosis) or a success resets the count; other configurations do not count."""
    fail = _end("k", "failure")
    assert policies.retry_budget([fail, fail, fail, {"cat": "DECISION"}], "k").ok
    assert policies.retry_budget([fail, fail, _end("k", "success"), fail, fail], "k").ok
    assert policies.retry_budget([fail, _end("other", "failure"), fail, fail], "k").ok is False
    assert policies.retry_budget([_end("other", "failure")] * 5, "k").ok
    assert policies.consecutive_failures([fail, {"cat": "DECISION"}, fail], "k") == 1


def test_host_change_needs_rollback() -> None:
    """A host change without an undo command is refused; with one it is allowed."""
    v = policies.rollback_plan([{"action": "sysctl kernel.numa_balancing=0", "undo": ""}])
    assert not v.ok and v.reason == "host change without a rollback plan: sysctl kernel.numa_balancing=0"
    assert policies.rollback_plan([{"action": "x", "undo": "sysctl kernel.numa_balancing=1"}]).ok
    assert policies.rollback_plan([]).reason == "no host changes"


def test_safety_review_returns_first_refusal() -> None:
    """The gate passes only when every check passes, and reports the first refusal."""
    ok = policies.Verdict("safety-reviewer", True, "a", {"x": 1})
    bad = policies.Verdict("safety-reviewer", False, "b")
    assert policies.safety_review([ok, bad]) is bad
    both = policies.safety_review([ok, policies.Verdict("safety-reviewer", True, "c")])
    assert both.ok and both.reason == "a; c" and both.data == {"x": 1}


def _summary(label: str, reps: int, kind: str = "method") -> dict:
    return {"config": label, "kind": kind, "reps": reps, "decode_tps": {"median": 100.0}, "speedup": None}


def test_cv_over_10_percent_flagged_unstable() -> None:
    """A configuration whose per-rep decode t/s vary by more than 10% CV is flagged; verdict unstable."""
    summary = [_summary("baseline", 3, "baseline"), _summary("k=8", 3)]
    a = policies.analyze(summary, {"baseline": [100, 101, 99], "k=8": [80, 100, 120]})
    assert a["verdict"] == "unstable" and a["cv_flagged"] == ["k=8"]
    assert summary[1]["cv_flag"] is True and summary[1]["cv"] == pytest.approx(0.2)
    assert summary[0]["cv_flag"] is False and summary[0]["verdict"] == "unstable"


def test_fewer_than_three_reps_is_inconclusive() -> None:
    """Two repetitions give no conclusion, however stable."""
    summary = [_summary("baseline", 2, "baseline"), _summary("k=8", 2)]
    a = policies.analyze(summary, {"baseline": [100, 100.5], "k=8": [150, 150.2]})
    assert a["verdict"] == "inconclusive" and "2 repetition(s) < 3" in a["reason"]
    single = [_summary("baseline", 1, "baseline")]
    assert policies.analyze(single, {"baseline": [100]})["verdict"] == "inconclusive"
    assert single[0]["cv"] is None


def test_stable_three_reps_conclusive() -> None:
    """Three stable repetitions per configuration give a conclusive verdict."""
    summary = [_summary("baseline", 3, "baseline"), _summary("k=8", 3)]
    assert policies.analyze(summary, {"baseline": [100, 102, 98], "k=8": [150, 151, 149]})["verdict"] == "conclusive"


def test_compare_earlier_runs() -> None:
    """This run's median against earlier runs of the same configuration: delta and reproduced."""
    now = [{"config": "baseline", "decode_tps": {"median": 110.0}}, {"config": "k=8", "decode_tps": {"median": 50.0}}]
    earlier = [
        {
            "summary": [
                {"config": "baseline", "decode_tps": {"median": 100.0}},
                {"config": "k=8", "decode_tps": {"median": 100.0}},
            ]
        }
    ]
    cmp = policies.compare_earlier(now, earlier)
    assert cmp[0] == {
        "config": "baseline",
        "now": 110.0,
        "earlier_median": 100.0,
        "earlier_runs": 1,
        "delta_pct": 10.0,
        "reproduced": True,
    }
    assert cmp[1]["delta_pct"] == -50.0 and cmp[1]["reproduced"] is False
    assert policies.compare_earlier(now, []) == []
