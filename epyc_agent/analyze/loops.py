"""Loop detection that finds real loops: per session and agent, never across sessions.

The old tool counted a command over a whole month ("git status 86x") and called
it a loop. Here every finding comes from one (session, agent) stream, in the
order that agent wrote it, and the patterns are about runs:

* retry_storm - the same command failed N+ times (default 3: the lab's "at most 3
  retries" rule) without succeeding in between. Other commands and edits in between
  do not end the count: it is the retry guard's own rule (guards.retry.count_result),
  so the report finds every storm the live guard stopped.
* repeat - the same command gave the same result (exit code and normalised
  output summary) N+ times in a row (default 4) without being a retry storm.
  A file modification in between ends the run: re-running after a change is work.
* alternation - two commands alternate, A,B,A,B,A,B, over N+ commands (default
  6). A file modification in between ends it.
* burst - more than N commands within a sliding window (default 30 in 60 s).
* churn - one file modified back and forth: N+ separate visits (default 3), where
  a visit is a run of modifications of that file not interrupted by another file,
  and a change of direction (edit vs revert/undo/restore) also starts a visit;
  consecutive visits at most CHURN_GAP other modifications apart. Editing a file
  several times in one go is one visit; A,B,A,B,A within a few edits is churn.

* cycle - a cycle of 3 to 6 calls (A,B,C,A,B,C,...) repeated N+ times (default 3); a
  shorter period is the repeat or alternation pattern, a file modification ends it.
* mistake_streak - N+ consecutive failing calls (default 3), not all the same call (that is
  a retry storm); a success ends it.
* compaction_loop - N+ compactions (default 3) with no call or file change in between.
* text_loop - the assistant's text (digested at Stop by the hook) the same N+ times in a row
  (default 3) with no call in between, or one sentence repeated N+ times within one message
  (default 5, `text_repeat`).

Calls whose tool or command is in `exempt` (polling, scrolling) neither count nor break a run.
"In a row" counts commands (CMD_RESULT events); other categories do not break
runs. Calls are compared on the hook's call identity (`data.call_id`: the tool and
all its arguments, so one Grep pattern over two globs is two calls) when the event
has one, else (older logs, `session exec`) on the command after `normalize`
(whitespace, PIDs, timestamps). Interrupted calls neither fail nor succeed.
Memory per stream is bounded (line references are capped per finding, failing
commands tracked per stream are capped like the guard's).
"""

from __future__ import annotations

import calendar
from collections import deque
from typing import Any

from ..config import SECTIONS
from ..events.reader import ReadStats, details_action, details_exit, shard_files
from ..guards.retry import count_result
from .filters import Query
from .normalize import normalize, result_text
from .scan import AGENT, CAT, FILE, LINE, RAW, SES, TS, Item, event, map_shards, old_text, scan_shard, text

DEFAULTS: dict[str, Any] = {k: default for k, (_check, default) in SECTIONS["loops"].items()}
CYCLE_MIN, CYCLE_MAX = 3, 6  # period 1 is `repeat`, 2 is `alternation`
CHURN_GAP = 5
MAX_LINES = 100
HOOK_MARK = rb'"hook":"(?:PreCompact|Stop)"'  # the OBSERVE events the loop detectors read
HOOK_KEY = b'"hook":"'
REVERT_ACTIONS = frozenset({"revert", "undo", "restore", "reset", "rollback", "checkout"})

Ref = tuple[bytes, str, int]  # ts, file, line

_hour_cache: dict[bytes, int] = {}


def _hour(ts: bytes) -> int:
    t = ts[:13].decode()
    base = calendar.timegm((int(t[:4]), int(t[5:7]), int(t[8:10]), int(t[11:13]), 0, 0))
    if len(_hour_cache) > 100_000:
        _hour_cache.clear()
    _hour_cache[ts[:13]] = base
    return base


def seconds(ts: bytes) -> float:
    """Epoch seconds of a UTC sort key (`YYYY-MM-DDTHH:MM:SS.ffffffZ`)."""
    return (_hour_cache.get(ts[:13]) or _hour(ts)) + int(ts[14:16]) * 60 + float(ts[17:26])


class _Run:
    """A run of references: first/last time, count, and the first MAX_LINES lines."""

    __slots__ = ("n", "refs", "last", "subject")

    def __init__(self, ref: Ref | None = None, subject: str = "") -> None:
        self.n = 0
        self.refs: list[Ref] = []
        self.last: Ref | None = None
        self.subject = subject
        if ref is not None:
            self.add(ref)

    def add(self, ref: Ref) -> _Run:
        self.n += 1
        self.last = ref
        if len(self.refs) < MAX_LINES:
            self.refs.append(ref)
        return self


class Stream:
    """Detector state for one (session, agent) stream."""

    def __init__(self, session: bytes, agent: bytes, th: dict[str, Any], out: list[dict[str, Any]]) -> None:
        self.session, self.agent, self.th, self.out = text(session), text(agent), th, out
        self.cmd: str | None = None  # identity of the current same-command run
        self.fails: dict[str, _Run] = {}  # identity -> its failures since it last succeeded
        self.same: _Run | None = None
        self.same_first: Ref | None = None  # first command of the current same-result run
        self.same_key: tuple[int | None, str] | None = None
        self.same_code: int | None = None
        self.same_details = ""
        self.prev: list[tuple[str, Ref, str]] = []  # last two commands (identity, ref, command)
        self.alt: _Run | None = None
        self.window: deque[tuple[float, Ref]] = deque()
        self.window_s, self.burst_n = float(th["burst_window_s"]), int(th["burst"])
        self.burst: _Run | None = None
        self.last_path: str | None = None
        self.n_mod = 0
        self.files: dict[str, list[Any]] = {}  # path -> [run, last kind, last modify index]
        self.exempt = frozenset(th["exempt"])
        self.hist: deque[tuple[str, Ref, str]] = deque(maxlen=CYCLE_MAX * int(th["cycle"]))
        self.periodic = [0] * (CYCLE_MAX + 1)  # p -> calls in a row equal to the call p before (0 while p > len(hist))
        self.reps = int(th["cycle"])
        self.cyc: _Run | None = None
        self.cyc_len = 0
        self.streak: _Run | None = None
        self.streak_ids: set[str] = set()
        self.compacts: _Run | None = None
        self.text: _Run | None = None  # its subject is the text's digest

    # -- findings ----------------------------------------------------------------------
    def _emit(self, pattern: str, run: _Run, subject: str, suggestion: str) -> None:
        assert run.last is not None
        self.out.append(
            {
                "pattern": pattern,
                "session": self.session,
                "agent": self.agent,
                "first": text(run.refs[0][0]),
                "last": text(run.last[0]),
                "count": run.n,
                "subject": subject,
                "lines": [f"{f}:{n}" for _, f, n in run.refs],
                "suggestion": suggestion,
            }
        )

    def _close_fails(self, r: _Run) -> None:
        if r.n >= self.th["retry_storm"]:
            self._emit(
                "retry_storm",
                r,
                r.subject,
                f"stop retrying: `{r.subject}` failed {r.n} times without succeeding; read its error output, "
                "diagnose the cause and log a decision before running it again (max 3 retries)",
            )

    def _close_same(self) -> None:
        r, self.same, self.same_first = self.same, None, None
        if r is None or r.n < self.th["repeat"]:
            return
        if self.same_code not in (0, None) and r.n >= self.th["retry_storm"]:
            return  # reported as a retry storm
        self._emit(
            "repeat",
            r,
            r.subject,
            f"`{r.subject}` gave the same result {r.n} times: use the result you have, "
            "or change something before running it again",
        )

    def _close_alt(self) -> None:
        r, self.alt = self.alt, None
        if r is not None and r.n >= self.th["alternation"]:
            self._emit(
                "alternation",
                r,
                r.subject,
                f"{r.subject} alternate without progress: find out what each one undoes "
                "instead of toggling between them",
            )

    def _close_burst(self) -> None:
        r, self.burst = self.burst, None
        if r is not None:
            w = self.th["burst_window_s"]
            self._emit(
                "burst",
                r,
                f"{r.n} commands",
                f"more than {self.th['burst']} commands within {w:g} s: "
                "pause and check for a runaway loop; batch repeated work into one script",
            )

    def _close_churn(self, path: str) -> None:
        r = self.files[path][0]
        if r.n >= self.th["churn"]:
            self._emit(
                "churn",
                r,
                path,
                f"`{path}` was changed back and forth in {r.n} separate visits: "
                "settle on one version and write down why before editing it again",
            )

    def _close_cycle(self) -> None:
        r, self.cyc = self.cyc, None
        if r is not None:
            self._emit(
                "cycle",
                r,
                r.subject,
                f"the same {self.cyc_len} calls repeat in a cycle ({r.n} calls): "
                "the cycle makes no progress; stop, and change the approach",
            )

    def _close_streak(self) -> None:
        r, ids = self.streak, self.streak_ids
        if r is None:
            return
        self.streak, self.streak_ids = None, set()
        if r.n >= self.th["mistake_streak"] and len(ids) > 1:
            self._emit(
                "mistake_streak",
                r,
                f"{r.n} failing calls in a row ({len(ids)} different)",
                "every recent call failed: stop and re-read the errors; the shared cause "
                "(a wrong path, a missing build, a bad assumption) comes first",
            )

    def _close_compacts(self) -> None:
        r, self.compacts = self.compacts, None
        if r is not None and r.n >= self.th["compaction_loop"]:
            self._emit(
                "compaction_loop",
                r,
                f"{r.n} compactions",
                "the context was compacted again and again with nothing done in between: "
                "the task does not fit; split it or end the session with a summary",
            )

    def _close_text(self) -> None:
        r, self.text = self.text, None
        if r is not None and r.n >= self.th["text_loop"]:
            self._emit(
                "text_loop",
                r,
                r.subject,
                f"the assistant wrote the same text {r.n} times with no call in between: "
                "it is talking in a loop; act on it or stop",
            )

    def _work(self) -> None:
        """A call or a file change: compactions and assistant texts are no longer in a row."""
        self._close_compacts()
        self._close_text()

    def _cycle(self, norm: str, ref: Ref, raw_cmd: str) -> None:
        h, per = self.hist, self.periodic
        for p in range(1, min(len(h), CYCLE_MAX) + 1):
            per[p] = per[p] + 1 if h[-p][0] == norm else 0
        h.append((norm, ref, raw_cmd))
        if self.cyc is not None:
            if per[self.cyc_len]:
                self.cyc.add(ref)
                return
            self._close_cycle()
        reps = self.reps
        if max(per) < reps - 1:  # no period can qualify (the common case)
            return
        period = next((p for p in range(1, CYCLE_MAX + 1) if per[p] >= p * (reps - 1)), 0)
        if period >= CYCLE_MIN:
            members = list(h)[-period * reps :]
            names = " -> ".join(f"`{normalize(c)}`" for _, _, c in members[:period])
            self.cyc, self.cyc_len = _Run(subject=names), period
            for _, r, _ in members:
                self.cyc.add(r)

    def observe(self, it: Item) -> None:
        """The hook's compaction and Stop events."""
        data = event(it).get("data")
        hook = data.get("hook") if data.__class__ is dict else None
        ref: Ref = (it[TS], it[FILE], it[LINE])
        if hook == "PreCompact":
            self._close_text()
            self.compacts = (self.compacts or _Run()).add(ref)
        elif hook == "Stop" and isinstance(data.get("text_digest"), str):
            digest = data["text_digest"]
            repeats = data.get("sentence_repeats")
            if repeats.__class__ is int and repeats >= self.th["text_repeat"]:
                self._emit(
                    "text_loop",
                    _Run(ref),
                    f"one sentence {repeats} times in one message",
                    "the assistant repeated one sentence over and over in one message: "
                    "it is stuck generating; stop and restate the task",
                )
            if self.text is None or self.text.subject != f"text {digest}":
                self._close_text()
                self.text = _Run(subject=f"text {digest}")
            self.text.add(ref)

    # -- events ----------------------------------------------------------------------------
    def command(self, it: Item) -> None:
        old = old_text(it)
        if old is not None:  # the old toolkit's line: the facts its event would hold, from its bytes
            raw_cmd, details = old
            data, code = None, details_exit(details)
        else:
            ev = event(it)
            raw_cmd = str(ev.get("cmd") or ev.get("msg") or "")
            data = ev.get("data")
            code = ev.get("exit_code")
            code = code if code.__class__ is int else None
            details = ev.get("details") or ""
        is_dict = data.__class__ is dict
        call = data.get("call_id") if is_dict else None
        norm = call if call.__class__ is str else normalize(raw_cmd)
        if self.exempt and ((is_dict and data.get("tool") in self.exempt) or normalize(raw_cmd) in self.exempt):
            return  # polling or scrolling: neither a repeat nor the end of one
        if self.compacts is not None or self.text is not None:
            self._work()
        ref: Ref = (it[TS], it[FILE], it[LINE])
        if norm != self.cmd:
            self._close_same()
            self.cmd = norm
        elif self.same_first is not None:  # the same command again: compare results (normalised lazily)
            if self.same_key is None:
                self.same_key = (self.same_code, result_text(str(self.same_details)))
            if (code, result_text(str(details))) == self.same_key:
                if self.same is None:
                    self.same = _Run(self.same_first, raw_cmd)
                self.same.add(ref)
            else:
                self._close_same()
        if self.same_first is None:
            self.same_first, self.same_key, self.same_code, self.same_details = ref, None, code, details
        if not (is_dict and data.get("interrupted") is True):  # a user's stop is no result
            failed = code is not None and code != 0
            if failed or norm in self.fails:  # else the retry rule has nothing to do
                self._retry(norm, failed, ref, raw_cmd)
            if failed:
                self.streak = (self.streak or _Run()).add(ref)
                self.streak_ids.add(norm)
            elif self.streak is not None:
                self._close_streak()
        self._cycle(norm, ref, raw_cmd)
        # alternation: A,B,A,B,...
        p = self.prev
        cont = len(p) == 2 and norm == p[0][0] and norm != p[1][0]
        if cont and self.alt is not None:
            self.alt.add(ref)
        else:
            if self.alt is not None:
                self._close_alt()
            if cont:
                self.alt = _Run(p[0][1], f"`{normalize(p[0][2])}` and `{normalize(p[1][2])}`")
                self.alt.add(p[1][1])
                self.alt.add(ref)
        p.append((norm, ref, raw_cmd))
        if len(p) > 2:
            del p[0]
        # burst: more than N commands in the sliding window
        tsb = ref[0]
        t = (_hour_cache.get(tsb[:13]) or _hour(tsb)) + int(tsb[14:16]) * 60 + float(tsb[17:26])  # seconds()
        w = self.window
        w.append((t, ref))
        horizon = t - self.window_s
        while w[0][0] < horizon:
            w.popleft()
        if len(w) > self.burst_n:
            if self.burst is None:
                self.burst = _Run()
                for _, r in w:
                    self.burst.add(r)
            else:
                self.burst.add(ref)
        elif self.burst is not None:
            self._close_burst()

    def _retry(self, key: str, failed: bool, ref: Ref, subject: str) -> None:
        """The retry guard's rule: a command's failures count until that command succeeds."""
        for _, run in count_result(self.fails, key, failed, lambda r: (r or _Run(subject=subject)).add(ref)):
            self._close_fails(run)

    def modify(self, it: Item) -> None:
        self._close_same()  # re-running after a change is work, not a loop
        self._close_alt()
        self._close_cycle()
        self._work()
        self.prev.clear()
        self.hist.clear()
        self.periodic = [0] * (CYCLE_MAX + 1)
        old = old_text(it)
        if old is not None:
            path, action = old[0], details_action(old[1])
        else:
            ev = event(it)
            path, action = ev.get("path") or ev.get("msg"), ev.get("action")
        path = str(path or "")
        action = str(action or "edit").lower()
        kind = "revert" if action in REVERT_ACTIONS else "change"
        ref: Ref = (it[TS], it[FILE], it[LINE])
        self.n_mod += 1
        st = self.files.get(path)
        if st is not None and self.n_mod - st[2] - 1 > CHURN_GAP:
            self._close_churn(path)
            st = None
        if st is None:
            self.files[path] = [_Run(ref), kind, self.n_mod]
        else:
            if path != self.last_path or kind != st[1]:
                st[0].add(ref)  # a new visit
            st[1], st[2] = kind, self.n_mod
        self.last_path = path
        if len(self.files) > 64:  # bounded: drop files no longer within reach
            for p in [p for p, s in self.files.items() if self.n_mod - s[2] > CHURN_GAP]:
                self._close_churn(p)
                del self.files[p]

    def close(self) -> None:
        for run in self.fails.values():
            self._close_fails(run)
        self.fails.clear()
        self._close_same()
        self._close_alt()
        self._close_burst()
        self._close_cycle()
        self._close_streak()
        self._close_compacts()
        self._close_text()
        for p in list(self.files):
            self._close_churn(p)
        self.files.clear()


def _loops_part(path: str, q: Query, th: dict[str, Any]) -> tuple[list[dict[str, Any]], ReadStats]:
    st = ReadStats()
    out: list[dict[str, Any]] = []
    streams: dict[tuple[bytes, bytes], Stream] = {}
    keep, get = q.keep, streams.get
    for items in scan_shard(path, st, q):
        for it in items:
            if not keep(it):
                continue
            s = get((it[SES], it[AGENT]))
            if s is None:
                s = streams[(it[SES], it[AGENT])] = Stream(it[SES], it[AGENT], th, out)
            if it[CAT] == b"CMD_RESULT":
                s.command(it)
            elif it[CAT] == b"FILE_MODIFY":
                s.modify(it)
            elif it[RAW].__class__ is dict or HOOK_KEY in it[RAW]:  # no hook data (old formats): nothing to see
                s.observe(it)
    for s in streams.values():
        s.close()
    return out, st


def thresholds(config_loops: dict[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
    th = {**DEFAULTS, **(config_loops or {})}
    th.update({k: v for k, v in overrides.items() if v is not None})
    return th


def find_loops(log_dir: str, q: Query, th: dict[str, Any]) -> dict[str, Any]:
    """All findings, oldest first, with the thresholds used."""
    st = ReadStats()
    wanted = q.with_cats("CMD_RESULT", "FILE_MODIFY", also={"OBSERVE": HOOK_MARK})
    parts = map_shards(_loops_part, shard_files(log_dir), wanted, th, stats=st)
    # a total order: the same findings print the same whatever order the streams were read in
    findings = sorted(
        (f for p in parts for f in p), key=lambda f: (f["first"], f["session"], f["pattern"], f["agent"], f["lines"])
    )
    by: dict[str, int] = {}
    for f in findings:
        by[f["pattern"]] = by.get(f["pattern"], 0) + 1
    return {
        "count": len(findings),
        "by_pattern": by,
        "findings": findings,
        "thresholds": th,
        "corrupt": st.corrupt_count,
        "filters": q.describe(),
    }
