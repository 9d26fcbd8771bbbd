"""Watch the model folders and add models to the inventory once they are fully written.

A model counts as written when its file is closed after writing (inotify IN_CLOSE_WRITE) or
renamed/linked into place; `*.part`, `*.incomplete`, `*.tmp` and hidden files are ignored, and
a path must stay quiet for `debounce` seconds (a copy may close and reopen). Each settled batch
triggers one reuse-rescan (only new or changed headers are read) and one OBSERVE event per model
that appeared or disappeared.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import StorageError
from .inventory import is_temp, load_inventory, scan

if TYPE_CHECKING:
    from ..config import Config
    from ..events.writer import AuditLog
    from .inventory import Entry

POLL_S = 0.1


def _relevant(path: str) -> bool:
    name = os.path.basename(path)
    return not is_temp(name) and (name.lower().endswith(".gguf") or name == "config.json")


class _Pending:
    """Paths that finished writing, each with the time of its last activity (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.done: dict[str, float] = {}  # closed or moved into place
        self.active: dict[str, float] = {}  # any activity: postpones processing

    def touch(self, path: str, finished: bool) -> None:
        now = time.monotonic()
        with self.lock:
            self.active[path] = now
            if finished:
                self.done[path] = now

    def settled(self, debounce: float) -> list[str]:
        now = time.monotonic()
        with self.lock:
            ready = [p for p in self.done if now - self.active.get(p, 0) >= debounce]
            for p in ready:
                self.done.pop(p)
                self.active.pop(p, None)
            return ready


def _handler(pending: _Pending) -> Any:
    from watchdog.events import FileSystemEventHandler

    class Handler(FileSystemEventHandler):  # type: ignore[misc]
        def on_closed(self, event: Any) -> None:
            if _relevant(event.src_path):
                pending.touch(event.src_path, finished=True)

        def on_modified(self, event: Any) -> None:
            if not event.is_directory and _relevant(event.src_path):
                pending.touch(event.src_path, finished=False)

        def on_moved(self, event: Any) -> None:
            if event.is_directory or _relevant(event.dest_path):
                pending.touch(event.dest_path, finished=True)
            if event.is_directory or _relevant(event.src_path):
                pending.touch(event.src_path, finished=True)

        def on_created(self, event: Any) -> None:  # symlinks are never "closed"
            if _relevant(event.src_path) and os.path.islink(event.src_path):
                pending.touch(event.src_path, finished=True)

        def on_deleted(self, event: Any) -> None:
            if event.is_directory or _relevant(event.src_path):
                pending.touch(event.src_path, finished=True)

    return Handler()


def _diff(before: list[Entry], after: list[Entry]) -> tuple[list[Entry], list[Entry]]:
    old = {(e["kind"], e["path"]) for e in before}
    new = {(e["kind"], e["path"]) for e in after}
    added = [e for e in after if (e["kind"], e["path"]) not in old]
    return added, [e for e in before if (e["kind"], e["path"]) not in new]


def refresh(cfg: Config, log: AuditLog | None, before: list[Entry]) -> tuple[list[Entry], list[Entry], list[Entry]]:
    """Rescan (reusing unchanged entries); log one OBSERVE per added or removed model."""
    inv = scan(cfg)
    added, removed = _diff(before, inv.models)
    for e in added if log else []:
        log.observe(
            "new model",
            e["id"],
            data={  # type: ignore[union-attr]
                "model": e["id"],
                "path": e["path"],
                "kind": e["kind"],
                "arch": e["arch"],
                "size_bytes": e["size_bytes"],
                "error": e["error"],
            },
        )
    for e in removed if log else []:
        log.observe("model removed", e["id"], data={"model": e["id"], "path": e["path"]})  # type: ignore[union-attr]
    return inv.models, added, removed


def watch(
    cfg: Config,
    log: AuditLog | None,
    stop: threading.Event,
    *,
    debounce: float = 1.0,
    once: bool = False,
    timeout: float | None = None,
    on_ready: Callable[[list[str]], None] | None = None,
    on_change: Callable[[list[Entry], list[Entry]], None] | None = None,
) -> int:
    """Watch until `stop` is set (or `timeout`, or after the first change with `once`).

    Models that appeared since the last inventory are reported at start-up too. Returns the
    number of models added.
    """
    from watchdog.observers import Observer

    dirs = [d for d in cfg.model_dirs if os.path.isdir(d)]
    if not dirs:
        raise StorageError(
            f"no model folder exists ({', '.join(cfg.model_dirs)})",
            hint="create one, e.g. `epyc-agent session start --init`",
        )
    prev = load_inventory(cfg)
    models, added, removed = refresh(cfg, log, prev.models if prev else [])
    total = len(added)
    if on_change and (added or removed):
        on_change(added, removed)
    pending = _Pending()
    observer = Observer()
    handler = _handler(pending)
    for d in dirs:
        observer.schedule(handler, d, recursive=True)
    observer.start()
    try:
        if on_ready:
            on_ready(dirs)
        deadline = time.monotonic() + timeout if timeout else None
        while not stop.wait(POLL_S):
            if pending.settled(debounce):
                models, added, removed = refresh(cfg, log, models)
                total += len(added)
                if on_change and (added or removed):
                    on_change(added, removed)
                if once and (added or removed):
                    break
            if deadline is not None and time.monotonic() >= deadline:
                break
    finally:
        observer.stop()
        observer.join(timeout=5)
    return total
