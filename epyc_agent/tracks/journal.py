"""A run folder while it is measured, so that a long run survives the process measuring it.

The folder is reserved once every gate has passed; config.json is written before the first
generation; each record is appended to output.jsonl and flushed as it finishes; status.json says
where the run stands (state running|interrupted|done|failed, the pid measuring it, records done of
total). SIGTERM and SIGINT raise `RunInterrupted` (see `interruptible`), so the folder is marked
`interrupted` before the process exits, and `track resume` finishes it into the same folder.

A resumed run keeps every complete rep and measures a partly measured rep again from its first
prompt: a method's drafting state (a suffix tree, an adaptive draft length) carries across the
prompts of a rep, so half a rep measured in another process would not be the same measurement.
The baseline's rep-0 token ids (what every method's output is compared with) wait in a hidden
sidecar until the run is done.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ..errors import EpycAgentError, RunInterrupted
from ..fileio import write_json_atomic, write_text_atomic
from ..sessions import read_json

if TYPE_CHECKING:
    from ..config import Config
    from .backends import Record
    from .plan import RunPlan
    from .runner import Progress

STATUS, OUTPUT, LOG, CONFIG = "status.json", "output.jsonl", "run.log", "config.json"
TOKENS = ".baseline_tokens.jsonl"  # baseline rep 0's token ids and margins, until the run is done
STATES = ("running", "interrupted", "done", "failed")
TOKEN_KEYS = ("tokens", "margins")
# what must not change between the segments of a resumed run (the request is rebuilt from it)
SAME_SETUP = ("epyc_agent", "track", "model", "draft", "backend", "host", "threads", "configs", "workload")


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _reserve(base: str, run_id: str) -> str:
    """Claim a free folder name with mkdir (atomic: two concurrent runs never get the same one)."""
    name, n = run_id, 2
    while True:
        try:
            os.mkdir(os.path.join(base, name))
            return name
        except FileExistsError:
            name, n = f"{run_id}-{n}", n + 1


def run_path(cfg: Config, run_id: str) -> str:
    from .results import runs_dir

    return run_id if os.path.isdir(run_id) else os.path.join(runs_dir(cfg), run_id)


def _created(pid: int) -> float | None:
    """A process's start time: with the pid it names one process, even after the pid is reused."""
    import psutil

    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        return None


def pid_alive(status: dict[str, Any]) -> bool | None:
    """Whether the process named in status.json still runs (None: no pid recorded yet)."""
    pid = status.get("pid")
    if not isinstance(pid, int):
        return None
    started = _created(pid)
    return started is not None and abs(started - float(status.get("pid_started") or started)) < 1.0


def state_of(status: dict[str, Any]) -> str:
    """The run's state; a `running` run whose process is gone was killed without a chance to say
    so (SIGKILL, the OOM killer, a reboot): interrupted."""
    state = str(status.get("state"))
    return "interrupted" if state == "running" and pid_alive(status) is False else state


def read_status(run_dir: str) -> dict[str, Any] | None:
    try:
        st = read_json(os.path.join(run_dir, STATUS))
    except EpycAgentError:
        return None
    # a status.json not of our shape (a hand edit, another tool) reads as none, never as a crash
    return st if isinstance(st, dict) and isinstance(st.get("request", {}), dict) else None


def _read_jsonl(path: str) -> list[dict[str, Any]]:
    """The complete lines of a file appended to as records finish (a line cut by a kill is dropped)."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
    except FileNotFoundError:
        return []
    out = []
    for line in lines[:-1]:  # the text after the last newline was never finished
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def total_records(plan: RunPlan) -> int:
    return (1 + len(plan.configs)) * len(plan.workload.prompts) * plan.request.reps


class Journal:
    """The run folder this process is measuring into."""

    def __init__(self, cfg: Config, plan: RunPlan, run_dir: str, status: dict[str, Any]) -> None:
        self.cfg, self.plan, self.run_dir, self.status = cfg, plan, run_dir, status
        self.records: list[Record] = []  # measured so far, as in output.jsonl
        self.baseline: dict[str, Record] = {}  # baseline rep 0 with its token ids, by prompt id
        self.t0 = time.perf_counter()
        self.wall_before = float(status.get("wall_s") or 0.0)
        self.config: dict[str, Any] | None = None

    @property
    def total(self) -> int:
        return total_records(self.plan)

    @property
    def wall_s(self) -> float:
        """Measuring time over every segment of the run."""
        return round(self.wall_before + time.perf_counter() - self.t0, 3)

    def complete_reps(self) -> frozenset[tuple[str, int]]:
        """(config, rep) pairs with every prompt measured: what a resumed run skips."""
        n = len(self.plan.workload.prompts)
        count: dict[tuple[str, int], int] = {}
        for r in self.records:
            count[(r["config"], r["rep"])] = count.get((r["config"], r["rep"]), 0) + 1
        return frozenset(k for k, c in count.items() if c == n)

    def ordered(self) -> list[Record]:
        """The records in the order an uninterrupted run measures them (baseline first)."""
        labels = ["baseline", *(c["label"] for c in self.plan.configs)]
        prompts = [p["id"] for p in self.plan.workload.prompts]
        return sorted(self.records, key=lambda r: (labels.index(r["config"]), r["rep"], prompts.index(r["prompt_id"])))

    def _path(self, name: str) -> str:
        return os.path.join(self.run_dir, name)

    def save_status(self, **changes: Any) -> None:
        from .labfiles import locked

        self.status.update(changes, updated=now(), done=len(self.records), total=self.total, wall_s=self.wall_s)
        with locked(self.run_dir):  # `detach` may be recording the child's pid at the same moment
            write_json_atomic(self._path(STATUS), self.status)

    def begin(self, backend_info: dict[str, Any], host: dict[str, Any], progress: Progress | None) -> None:
        """config.json before the first generation (hashing the model if it never was); for a resumed
        run, a refusal if anything config.json records has changed since."""
        from .results import config_json

        times = {"started": self.status["started"], "ended": None, "wall_s": None}
        fresh = json.loads(json.dumps(config_json(self.cfg, self.plan, backend_info, host, times, progress)))
        old = read_json(self._path(CONFIG))
        if isinstance(old, dict):
            changed = [k for k in SAME_SETUP if old.get(k) != fresh.get(k)]
            if changed:
                raise EpycAgentError(
                    f"run {self.plan.run_id} cannot be resumed: its {', '.join(changed)} changed since it started",
                    hint="a resumed run must measure what its first part measured; start a new run",
                )
            self.config = old
            return
        write_json_atomic(self._path(CONFIG), fresh)
        self.config = fresh

    def append(self, rec: Record) -> None:
        """Record one finished generation: the baseline's token ids first, then the record, each flushed,
        so a record on disk always has what a resumed run compares with."""
        kept = {k: v for k, v in rec.items() if k not in TOKEN_KEYS}
        if rec["kind"] == "baseline" and rec["rep"] == 0:
            self.baseline[rec["prompt_id"]] = rec
            _append_line(self._path(TOKENS), {"prompt_id": rec["prompt_id"], **{k: rec.get(k) for k in TOKEN_KEYS}})
        meta = self.plan.workload.meta
        suite = {"suite": meta[rec["prompt_id"]]} if rec["prompt_id"] in meta else {}
        _append_line(self._path(OUTPUT), {"run_id": self.plan.run_id, **kept, **suite})
        self.records.append(kept)
        self.save_status()

    def close(self, state: str, error: BaseException | None = None) -> None:
        """The final state; a done run no longer needs the baseline's token ids."""
        if state == "done":
            try:
                os.unlink(self._path(TOKENS))
            except FileNotFoundError:
                pass
        self.save_status(state=state, error=None if error is None else _message(error))


def _message(error: BaseException) -> str:
    render = getattr(error, "render", None)
    return str(render()) if callable(render) else f"{type(error).__name__}: {error}"


def _append_line(path: str, data: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(data, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def reserve(cfg: Config, plan: RunPlan) -> Journal:
    """A new run folder (its final name becomes `plan.run_id`), marked running by this process."""
    from .results import runs_dir

    base = runs_dir(cfg)
    os.makedirs(base, exist_ok=True)
    plan.run_id = _reserve(base, plan.run_id)
    status = {"run_id": plan.run_id, "state": "running", "started": now(), "request": plan.request.as_dict()}
    journal = Journal(cfg, plan, os.path.join(base, plan.run_id), status)
    journal.save_status(**_me())
    return journal


def _me() -> dict[str, Any]:
    return {"pid": os.getpid(), "pid_started": _created(os.getpid()), "error": None}


def check_resumable(run_id: str, run_dir: str) -> dict[str, Any]:
    """The status of a run `track resume` may finish, else the reason it may not."""
    status = read_status(run_dir)
    if status is None:
        done = os.path.isfile(os.path.join(run_dir, "summary.json"))
        raise EpycAgentError(
            f"run {run_id} is {'complete' if done else 'not a run folder with a status.json'}: nothing to resume",
            hint="`epyc-agent track rerun RUN_ID` measures a past run again" if done else "see `epyc-agent track runs`",
        )
    state = state_of(status)
    if state == "done":
        raise EpycAgentError(f"run {run_id} is done: nothing to resume", hint=f"`epyc-agent track rerun {run_id}`")
    if state == "running" and status.get("pid") not in (None, os.getpid()):
        raise EpycAgentError(
            f"run {run_id} is still being measured by pid {status['pid']}",
            hint=f"`epyc-agent track status {run_id}`; stop it with kill {status['pid']} to resume it later",
        )
    return status


def reopen(cfg: Config, plan: RunPlan, run_id: str) -> Journal:
    """An interrupted or failed run folder, claimed by this process: its complete reps are kept,
    output.jsonl is rewritten without the records of a partly measured rep."""
    run_dir = run_path(cfg, run_id)
    status = check_resumable(run_id, run_dir)
    plan.run_id = os.path.basename(run_dir)
    journal = Journal(cfg, plan, run_dir, status)
    raw = _read_jsonl(journal._path(OUTPUT))
    journal.records = [_strip(r) for r in raw]
    tokens = {t["prompt_id"]: t for t in _read_jsonl(journal._path(TOKENS)) if "prompt_id" in t}
    complete = journal.complete_reps()
    if any(p["id"] not in tokens for p in plan.workload.prompts):  # without its token ids rep 0 is measured again
        complete -= {("baseline", 0)}
    raw = [r for r in raw if (r["config"], r["rep"]) in complete]
    write_text_atomic(journal._path(OUTPUT), "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in raw))
    journal.records = [_strip(r) for r in raw]
    journal.baseline = {
        r["prompt_id"]: {**r, **tokens[r["prompt_id"]]}
        for r in journal.records
        if r["kind"] == "baseline" and r["rep"] == 0
    }
    resumed = [*status.get("resumed", []), now()]
    journal.save_status(state="running", resumed=resumed, **_me())
    return journal


def _strip(line: dict[str, Any]) -> Record:
    """A record as measured, from its output.jsonl line."""
    return {k: v for k, v in line.items() if k not in ("run_id", "suite")}


def mark_failed(cfg: Config, run_id: str, error: BaseException) -> None:
    """A resume refused before it claimed the folder: the folder says so (and stays resumable)."""
    _update_status(run_path(cfg, run_id), state="failed", error=_message(error))


def _update_status(run_dir: str, unless_pid: bool = False, **changes: Any) -> None:
    """Change a status.json this process is not measuring into (under the folder's lock);
    `unless_pid`: leave it alone once a process has claimed the run."""
    from .labfiles import locked

    with locked(run_dir):
        status = read_status(run_dir)
        if status is None or (unless_pid and status.get("pid") is not None):
            return
        status.update(changes, updated=now())
        write_json_atomic(os.path.join(run_dir, STATUS), status)


@contextmanager
def interruptible() -> Iterator[None]:
    """SIGTERM and SIGINT raise `RunInterrupted` instead of ending the process where it stands, so
    the run folder can be marked; only the first one raises (the cleanup is not cut short)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired: list[int] = []

    def handler(signum: int, _frame: Any) -> None:
        if not fired:
            fired.append(signum)
            raise RunInterrupted(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def detach(run_dir: str, argv: list[str]) -> int:
    """Start `argv` in its own session (the caller's terminal, timeout or Ctrl-C does not reach it)
    with its output in the run folder's run.log; its pid goes into status.json."""
    import subprocess

    try:
        with open(os.path.join(run_dir, LOG), "ab") as log:
            child = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
    except OSError as e:
        _update_status(run_dir, state="failed", error=f"the detached run did not start: {e}")
        raise EpycAgentError(f"the detached run did not start: {e}", hint="run it without --detach") from None
    # the child may have claimed the folder already: then it is left alone
    _update_status(run_dir, unless_pid=True, pid=child.pid, pid_started=_created(child.pid))
    return child.pid


def release(journal: Journal) -> None:
    """Hand a reserved folder to a detached child: no pid until the child claims it."""
    journal.save_status(pid=None, pid_started=None, detached=True)


def progress_of(run_dir: str) -> dict[str, Any] | None:
    """What `track status` and `track runs` show of a run folder, None if it is not a run of ours.
    A finished run of an older version (no status.json) is done with every record it has."""
    status = read_status(run_dir)
    if status is None:
        if not os.path.isfile(os.path.join(run_dir, "summary.json")):
            return None
        n = len(_read_jsonl(os.path.join(run_dir, OUTPUT)))
        status = {"run_id": os.path.basename(run_dir), "state": "done", "done": n, "total": n}
    log = os.path.join(run_dir, LOG)
    return {
        "run_id": status.get("run_id", os.path.basename(run_dir)),
        "state": state_of(status),
        "done": status.get("done"),
        "total": status.get("total"),
        "pid": status.get("pid"),
        "pid_alive": pid_alive(status),
        "started": status.get("started"),
        "updated": status.get("updated"),
        "wall_s": status.get("wall_s"),
        "resumed": status.get("resumed", []),
        "error": status.get("error"),
        "what": _what(run_dir, status.get("request") or {}),
        "dir": run_dir,
        "log": log if os.path.isfile(log) else None,
    }


def _what(run_dir: str, request: dict[str, Any]) -> dict[str, Any]:
    """Track, model and workload: as resolved in config.json once measuring began, else as asked."""
    try:
        conf = read_json(os.path.join(run_dir, CONFIG))
    except EpycAgentError:
        conf = None
    if isinstance(conf, dict) and conf.get("model"):
        return {"track": conf["track"]["id"], "model": conf["model"]["path"], "workload": conf["workload"]["name"]}
    return {"track": request.get("track"), "model": request.get("model"), "workload": request.get("workload")}


def list_progress(cfg: Config) -> list[dict[str, Any]]:
    """Every run folder of ours, oldest first."""
    from .results import runs_dir

    base = runs_dir(cfg)
    try:
        names = sorted(n for n in os.listdir(base) if not n.startswith("."))
    except FileNotFoundError:
        return []
    return [p for n in names if (p := progress_of(os.path.join(base, n))) is not None]
