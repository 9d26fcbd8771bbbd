"""Which models have been tested, by which method: `<log_dir>/tested_models.json`.

The lab's rule is "test untested models before other work", so `session start` lists them
first (the priority provider below) and logs an OBSERVE event per model.

One file for the lab's scripts and ours: `{"tested": [...]}`, the layout the lab's
`record_test.sh` appends to and its `session_init.sh` reads (`jq '.tested[]?.path'`). Our records
carry the lab's fields (path, name, method, result_tps, date, timestamp, notes, acceptance,
config) plus ours (model, metrics, run_id, source); the lab's records are kept as written. Reading
upgrades every record to that full shape in one place (`normalize`), numeric strings such as
`"result_tps": "46.6"` becoming numbers. A file in our pre-#20 layout (`{"version": 1, "tests":
[...]}`) is moved into `tested` on the next write, once, after a copy to `<file>.v1.bak`.
Concurrent writers of ours are serialized with an flock and every write is atomic.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import shutil
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ..errors import EpycAgentError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ..config import Config
    from .inventory import Entry, Inventory
    from .registry import Registry

TESTED_NAME = "tested_models.json"
TESTED_VERSION = 2
LAB_KEY = "tested"  # the lab's record_test.sh and session_init.sh
LEGACY_KEY = "tests"  # epyc-agent before #20
SHOW_AT_MOST = 10  # priority lines for untested models; the rest are summarized in one line
TRACK_ORDER = ((8, "prompt_lookup"), (6, "suffix"), (1, "draft_model"), (2, "moe_reduction"))
TPS_KEYS = ("decode_tps", "tps", "result_tps")  # the metric the lab's result_tps column holds
ACCEPTANCE_KEYS = ("acceptance_rate", "acceptance")


def tested_path(cfg: Config) -> str:
    return os.path.join(cfg.log_dir, TESTED_NAME)


def backup_path(cfg: Config) -> str:
    return f"{tested_path(cfg)}.v1.bak"


@contextmanager
def _locked(path: str) -> Iterator[None]:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(f"{path}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read(path: str) -> dict[str, Any]:
    """The file as stored ({} if it does not exist yet), refused unless it holds a record list."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise EpycAgentError(f"{path}: unreadable: {e}", hint="fix or move the file") from None
    if not isinstance(doc, dict) or not any(isinstance(doc.get(k), list) for k in (LAB_KEY, LEGACY_KEY)):
        raise EpycAgentError(
            f'{path}: expected {{"tested": [...]}} (the lab\'s record_test.sh layout)', hint="fix or move the file"
        )
    return doc


def _raw_records(doc: dict[str, Any]) -> list[Any]:
    return [*(doc.get(LEGACY_KEY) or []), *(doc.get(LAB_KEY) or [])]


def _number(v: Any) -> Any:
    """Numbers stay numbers; numeric strings become (finite) numbers; anything else is kept as given."""
    if isinstance(v, str):
        for kind in (int, float):
            try:
                n = kind(v)
            except ValueError:
                continue
            return n if math.isfinite(n) else v
    return v


def _first(d: dict[str, Any], keys: tuple[str, ...]) -> Any:
    return next((d[k] for k in keys if d.get(k) not in (None, "")), "")


def _stem(name: str) -> str:
    from .inventory import file_stem

    return file_stem(name)


def normalize(raw: dict[str, Any]) -> dict[str, Any]:
    """Any record (the lab's, ours, our pre-#20 one) in the full shape, numbers as numbers."""
    path = str(raw.get("path") or "")
    name = str(raw.get("name") or os.path.basename(path))
    metrics = {str(k): _number(v) for k, v in (raw.get("metrics") or {}).items()}
    for key in ("result_tps", "acceptance"):  # the lab's columns, as metrics
        if raw.get(key) not in (None, ""):
            metrics.setdefault(key, _number(raw[key]))
    stamp = str(raw.get("timestamp") or raw.get("date") or "")
    return {
        "path": path,
        "name": name,
        "method": raw.get("method"),
        "result_tps": _number(raw.get("result_tps") or _first(metrics, TPS_KEYS)),
        "date": str(raw.get("date") or "")[:10],
        "timestamp": stamp,
        "notes": raw.get("notes") or raw.get("note") or "",
        "acceptance": _number(raw.get("acceptance") or _first(metrics, ACCEPTANCE_KEYS)),
        "config": raw.get("config") or metrics.get("config") or "",
        "model": raw.get("model") or _stem(name),
        "metrics": metrics,
        "run_id": raw.get("run_id"),
        "source": raw.get("source") or "record_test.sh",
    }


def load_tested(cfg: Config) -> list[dict[str, Any]]:
    """All test records, oldest first, normalized (none if the file does not exist yet)."""
    return [normalize(r) for r in _raw_records(_read(tested_path(cfg))) if isinstance(r, dict)]


def needs_migration(cfg: Config) -> bool:
    """Whether the file is in our pre-#20 layout (the next write moves it, after a backup)."""
    try:
        return LEGACY_KEY in _read(tested_path(cfg))
    except EpycAgentError:
        return False


def _migrate(path: str, doc: dict[str, Any], backup: str) -> dict[str, Any]:
    """Our old `tests` list moved into `tested`, the original copied to `backup` first (once)."""
    if LEGACY_KEY not in doc:
        return doc
    if not os.path.exists(backup):
        shutil.copy2(path, backup)
    legacy = [normalize(r) for r in doc.pop(LEGACY_KEY) if isinstance(r, dict)]
    doc[LAB_KEY] = legacy + list(doc.get(LAB_KEY) or [])
    doc["migrated"] = {"from": '{"version": 1, "tests": [...]}', "backup": backup, "at": _now()}
    return doc


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def record_test(
    cfg: Config,
    model: Entry | str,
    method: str,
    metrics: dict[str, Any] | None = None,
    run_id: str | None = None,
    source: str = "track",
    note: str | None = None,
) -> dict[str, Any]:
    """Record that `model` (an inventory entry, id or path) was tested with `method`; appended to
    the file's `tested` list, every other record and key kept as it was."""
    from ..fileio import write_json_atomic
    from .inventory import resolve_model

    entry = resolve_model(cfg, model) if isinstance(model, str) else model
    stamp = _now()
    rec = normalize(
        {
            "path": entry["path"],
            "method": method,
            "date": stamp,
            "timestamp": stamp,
            "notes": note or "",
            "model": entry["id"],
            "metrics": metrics or {},
            "run_id": run_id,
            "source": source,
        }
    )
    path = tested_path(cfg)
    with _locked(path):
        doc = _migrate(path, _read(path), backup_path(cfg))
        doc[LAB_KEY] = [*(doc.get(LAB_KEY) or []), rec]
        write_json_atomic(path, {"version": TESTED_VERSION, **{k: v for k, v in doc.items() if k != "version"}})
    return rec


def untested(cfg: Config, inventory: Inventory | None = None, registry: Registry | None = None) -> list[Entry]:
    """Runnable inventory models without any test record (matched by id or path), leaving out
    those the registry deprecates: retired models are not work to do."""
    from .inventory import load_or_scan

    inv = inventory or load_or_scan(cfg)
    done = set()
    for t in load_tested(cfg):
        done.add(("id", str(t["model"]).lower()))
        done.add(("path", os.path.realpath(t["path"])))
    return [
        e
        for e in inv.runnable()
        if ("id", e["id"].lower()) not in done
        and ("path", os.path.realpath(e["path"])) not in done
        and not (registry and registry.deprecated_reason(e))
    ]


def suggested_track(entry: Entry, registry: Registry | None = None) -> tuple[int, str] | None:
    """The first track (prompt lookup, suffix, draft, MoE) this model may run, or None."""
    from .registry import forbidden_methods

    forbidden = forbidden_methods(entry, registry)
    return next(((n, m) for n, m in TRACK_ORDER if m not in forbidden), None)


def priority_untested(cfg: Config, log: Any) -> list[str]:
    """`session start` provider: untested models first, one OBSERVE event each.

    Rescans with reuse: only new or changed files have their headers read, so this stays cheap
    and catches models copied in since the last scan. A registry that cannot be read costs the
    suggestions their registry facts (said in a line of its own), never the list itself.
    """
    from .inventory import scan
    from .registry import load_registry

    if not any(os.path.isdir(d) for d in cfg.model_dirs):
        return []
    inv = scan(cfg)
    try:
        registry, problem = load_registry(cfg), None
    except EpycAgentError as e:
        registry, problem = None, e.render()
    todo = untested(cfg, inv, registry)
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
    if problem and todo:
        actions.append(f"model registry not applied (deprecations, allowed and forbidden methods): {problem}")
    return actions
