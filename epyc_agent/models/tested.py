"""Which models have been tested, by which method: `<log_dir>/tested_models.json`.

The lab's rule is "test untested models before other work", so `session start` lists them
first (the priority provider below) and logs an OBSERVE event per model. Records keep numbers
as numbers (the old toolkit stored `"result_tps": "12.3"`). Concurrent writers (several
agents finishing runs) are serialized with an flock and every write is atomic.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ..errors import EpycAgentError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ..config import Config
    from .inventory import Entry, Inventory

TESTED_NAME = "tested_models.json"
TESTED_VERSION = 1
SHOW_AT_MOST = 10  # priority lines for untested models; the rest are summarized in one line
TRACK_ORDER = ((8, "prompt_lookup"), (6, "suffix"), (1, "draft_model"), (2, "moe_reduction"))


def tested_path(cfg: Config) -> str:
    return os.path.join(cfg.log_dir, TESTED_NAME)


@contextmanager
def _locked(path: str) -> Iterator[None]:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(f"{path}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def load_tested(cfg: Config) -> list[dict[str, Any]]:
    """All test records, oldest first (none if the file does not exist yet)."""
    path = tested_path(cfg)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as e:
        raise EpycAgentError(f"{path}: unreadable: {e}", hint="fix or move the file") from None
    tests = data.get("tests") if isinstance(data, dict) else None
    if not isinstance(tests, list):
        raise EpycAgentError(f'{path}: expected {{"version": 1, "tests": [...]}}', hint="fix or move the file")
    return tests


def _number(v: Any) -> Any:
    """Numbers stay numbers; numeric strings become numbers; anything else is kept as given."""
    if isinstance(v, str):
        try:
            return int(v)
        except ValueError:
            try:
                return float(v)
            except ValueError:
                return v
    return v


def record_test(
    cfg: Config,
    model: Entry | str,
    method: str,
    metrics: dict[str, Any] | None = None,
    run_id: str | None = None,
    source: str = "track",
    note: str | None = None,
) -> dict[str, Any]:
    """Record that `model` (an inventory entry, id or path) was tested with `method`."""
    from ..fileio import write_json_atomic
    from .inventory import resolve_model

    entry = resolve_model(cfg, model) if isinstance(model, str) else model
    rec = {
        "model": entry["id"],
        "path": entry["path"],
        "method": method,
        "metrics": {str(k): _number(v) for k, v in (metrics or {}).items()},
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "run_id": run_id,
        "source": source,
    }
    if note:
        rec["note"] = note
    path = tested_path(cfg)
    with _locked(path):
        tests = load_tested(cfg)
        tests.append(rec)
        write_json_atomic(path, {"version": TESTED_VERSION, "tests": tests})
    return rec


def untested(cfg: Config, inventory: Inventory | None = None) -> list[Entry]:
    """Runnable inventory models without any test record (matched by id or path)."""
    from .inventory import load_or_scan

    inv = inventory or load_or_scan(cfg)
    done = set()
    for t in load_tested(cfg):
        done.add(("id", str(t.get("model")).lower()))
        done.add(("path", os.path.realpath(str(t.get("path")))))
    return [
        e
        for e in inv.runnable()
        if ("id", e["id"].lower()) not in done and ("path", os.path.realpath(e["path"])) not in done
    ]


def suggested_track(entry: Entry, registry: Any = None) -> tuple[int, str] | None:
    """The first track (prompt lookup, suffix, draft, MoE) this model may run, or None."""
    from .registry import forbidden_methods

    forbidden = forbidden_methods(entry, registry)
    return next(((n, m) for n, m in TRACK_ORDER if m not in forbidden), None)


def priority_untested(cfg: Config, log: Any) -> list[str]:
    """`session start` provider: untested models first, one OBSERVE event each.

    Rescans with reuse: only new or changed files have their headers read, so this stays cheap
    and catches models copied in since the last scan.
    """
    from .inventory import scan
    from .registry import load_registry

    if not any(os.path.isdir(d) for d in cfg.model_dirs):
        return []
    inv = scan(cfg)
    todo = untested(cfg, inv)
    registry = load_registry(cfg)
    actions = []
    for e in todo:
        track = suggested_track(e, registry)
        log.observe(
            "untested model",
            e["id"],
            data={
                "model": e["id"],
                "path": e["path"],
                "arch": e["arch"],
                "size_bytes": e["size_bytes"],
                "ssm_or_hybrid": e["ssm_or_hybrid"],
                "suggested_track": track[0] if track else None,
            },
        )
        if len(actions) < SHOW_AT_MOST:
            how = (
                f"epyc-agent track run {track[0]} --model {e['id']}"
                if track
                else "no speculative track applies (SSM/hybrid, not MoE): measure its baseline"
            )
            actions.append(f"test untested model {e['id']}: {how}")
    if len(todo) > SHOW_AT_MOST:
        actions.append(f"... and {len(todo) - SHOW_AT_MOST} more untested models: epyc-agent models untested")
    return actions
