"""`log analyze --engine clickhouse`: --summary, --errors, --commands, --sessions and --loops
(retry storms) as SQL on the fleet table, in the local analyzers' JSON shapes.

Every query reads the table FINAL (one row per line, however often it was shipped). With
`--host` the answers equal the local analyzers' on that host's log folder: `where` is the
shard's path on the host and its line number, ties are broken as the local merge breaks
them (legacy file first, then shards by name, then line). Without `--host` the whole fleet
is one log, `where` is `HOST:path:line`. The SQL is kept to what ClickHouse 18.16 has (no
window functions): retry storms are a per-stream array scan (`_STORMS`).
"""

from __future__ import annotations

from typing import Any

import orjson

from ..analyze.aggregate import summary_shape
from ..analyze.filters import Query
from .clickhouse import Client, literal
from .rows import TABLE

MAX_CORRUPT_SHOWN = 20
TOP_MESSAGES = 10
# the local merge's order: host, the legacy file before the shards, shards by path, line
ORD = "(host, shard != 'agent_audit.log', file, line)"
FAILED = "failed = 1"


class Fleet:
    """The fleet table of one database, optionally one host of it."""

    def __init__(self, client: Client, host: str | None = None) -> None:
        self.client, self.host = client, host
        self.table = f"{client.target.db}.{TABLE}"

    def _rows(self, sql: str) -> list[dict[str, Any]]:
        return self.client.rows(sql)

    def _base(self) -> str:
        return f"FROM {self.table} FINAL WHERE " + (f"host = {literal(self.host)}" if self.host else "1")

    def _events(self, q: Query, *extra: str) -> str:
        """FROM ... WHERE: this host's events within the query's filters."""
        conds = ["kind = 'event'", *_filters(q), *extra]
        return f"{self._base()} AND " + " AND ".join(conds)

    def where(self, row: dict[str, Any]) -> str:
        loc = f"{row['file']}:{row['line']}"
        return loc if self.host else f"{row['host']}:{loc}"

    def _reading(self, shown: bool = True) -> dict[str, Any]:
        """What the local reader counts whatever the filters: files, lines, legacy and corrupt lines
        (and, if `shown`, the first corrupt lines themselves: a second query)."""
        (r,) = self._rows(
            "SELECT uniqExact(host, file, inode) AS files, count() AS lines, sum(legacy) AS legacy_lines, "
            f"countIf(kind = 'corrupt') AS corrupt {self._base()}"
        )
        if not shown:
            return r
        shown_rows = self._rows(
            f"SELECT host, file, line, error {self._base()} AND kind = 'corrupt' "
            f"ORDER BY {ORD} LIMIT {MAX_CORRUPT_SHOWN}"
        )
        r["corrupt_lines"] = [f"{self.where(x)}: {x['error']}" for x in shown_rows]
        return r

    def _ranked(self, q: Query, column: str, *extra: str, limit: int | None = None) -> dict[str, int]:
        """Counts by `column`, most first; ties in the order the local merge meets them."""
        top = f" LIMIT {limit}" if limit else ""
        rows = self._rows(
            f"SELECT {column} AS k, count() AS n, min({ORD}) AS o {self._events(q, *extra)} "
            f"GROUP BY k ORDER BY n DESC, o{top}"
        )
        return {r["k"]: r["n"] for r in rows}

    # -- modes ---------------------------------------------------------------------------------
    def summary(self, q: Query) -> dict[str, Any]:
        rd = self._reading()
        (t,) = self._rows(
            "SELECT count() AS events, min(ts) AS first, max(ts) AS last, uniqExact(session) AS sessions, "
            f"countIf(cat = 'CMD_RESULT' AND {FAILED}) AS failed {self._events(q)}"
        )
        ranked = (self._ranked(q, "cat"), self._ranked(q, "level"), self._ranked(q, "agent"))
        totals = (t["events"], t["sessions"], t["failed"])
        return summary_shape(str(self.client.target), rd, (t["first"], t["last"]), totals, ranked, q)

    def sessions(self, q: Query) -> dict[str, Any]:
        rows = self._rows(
            "SELECT session, arraySort(groupUniqArray(agent)) AS agents, min(ts) AS first, max(ts) AS last, "
            "count() AS events, countIf(level = 'ERROR') AS errors, countIf(level = 'WARN') AS warnings, "
            f"countIf(cat = 'CMD_RESULT') AS commands, countIf(cat = 'CMD_RESULT' AND {FAILED}) AS failed, "
            "countIf(cat = 'FILE_MODIFY') AS files_modified, countIf(cat = 'ROLLBACK') AS rollbacks, "
            f"countIf(cat = 'SESSION_START') AS started, argMaxIf(msg, {ORD}, cat = 'SESSION_START') AS purpose, "
            f"countIf(cat = 'SESSION_END') AS ended, argMaxIf(msg, {ORD}, cat = 'SESSION_END') AS end_summary "
            f"{self._events(q)} GROUP BY session ORDER BY first, session"
        )
        for r in rows:
            r["purpose"] = r["purpose"] if r.pop("started") else None
            r["end_summary"] = r["end_summary"] if r["ended"] else None
            r["ended"] = bool(r["ended"])
        return {
            "count": len(rows),
            "sessions": rows,
            "corrupt": self._reading(shown=False)["corrupt"],
            "filters": q.describe(),
        }

    def commands(self, q: Query, limit: int = 50) -> dict[str, Any]:
        cmds = self._events(q, "cat = 'CMD_RESULT'")
        (t,) = self._rows(f"SELECT count() AS total, uniqExact(cmd_norm) AS distinct, sum(failed) AS failed {cmds}")
        top = f" LIMIT {limit}" if limit else ""
        rows = self._rows(
            "SELECT cmd_norm, count() AS count, sum(failed) AS failed, uniqExact(session) AS sessions, "
            f"max(ts) AS last, argMax(tuple(exit_code), (ts, {ORD})).1 AS last_exit, argMin(cmd, {ORD}) AS example "
            f"{cmds} GROUP BY cmd_norm ORDER BY count DESC, cmd_norm{top}"
        )  # (an alias `cmd` would shadow the column argMin reads)
        rows = [{"cmd": r.pop("cmd_norm"), **r} for r in rows]
        return {
            "total": t["total"],
            "distinct": t["distinct"],
            "failed": t["failed"],
            "commands": rows,
            "filters": q.describe(),
        }

    def errors(self, q: Query, limit: int = 50) -> dict[str, Any]:
        err = (f"(level != 'INFO' OR (cat = 'CMD_RESULT' AND {FAILED}))",)
        rd = self._reading()
        top = f" LIMIT {limit}" if limit else ""
        latest = self._rows(f"SELECT host, file, line, event {self._events(q, *err)} ORDER BY ts DESC, {ORD} DESC{top}")
        messages = self._ranked(q, "msg_norm", *err, limit=TOP_MESSAGES)
        by_cat = self._ranked(q, "cat", *err)
        return {
            "total": sum(by_cat.values()),
            "by_category": by_cat,
            "by_agent": self._ranked(q, "agent", *err),
            "top_messages": [{"msg": m, "count": c} for m, c in messages.items()],
            "events": [{**_event(r["event"]), "where": self.where(r)} for r in reversed(latest)],
            "corrupt": rd["corrupt"],
            "corrupt_lines": rd["corrupt_lines"],
            "filters": q.describe(),
        }

    def loops(self, q: Query, th: dict[str, Any]) -> dict[str, Any]:
        """Retry storms: a command's failures in one (shard, session, agent) stream until it succeeds."""
        from ..analyze.loops import MAX_LINES, Stream, _Run

        exempt = th.get("exempt") or []
        skip = f" AND tool NOT IN ({_list(exempt)}) AND cmd_norm NOT IN ({_list(exempt)})" if exempt else ""
        n = int(th["retry_storm"])
        rows = self._rows(
            _STORMS.format(events=self._events(q, "cat = 'CMD_RESULT'", "interrupted = 0") + skip, n=n, lines=MAX_LINES)
        )
        findings: list[dict[str, Any]] = []
        for r in rows:
            # the local detector's own finding (text, fields), from the run SQL found
            s = Stream(r["session"].encode(), r["agent"].encode(), th, findings)
            run = _Run(subject=r["subject"])
            for ts, line in r["refs"]:
                run.add((ts.encode(), r["file"] if self.host else f"{r['host']}:{r['file']}", line))
            run.n, run.last = r["n"], (r["last"].encode(), "", 0)
            s._close_fails(run)
        by = {"retry_storm": len(findings)} if findings else {}
        return {
            "count": len(findings),
            "by_pattern": by,
            "findings": findings,
            "thresholds": th,
            "corrupt": self._reading(shown=False)["corrupt"],
            "filters": q.describe(),
            "patterns": ["retry_storm"],
        }


MODES = ("summary", "errors", "commands", "sessions", "loops")


def answer(
    url: str | None, host: str | None, mode: str, q: Query, limit: int, th: dict[str, Any] | None
) -> dict[str, Any]:
    """One analyzer mode answered by the fleet table at `url`."""
    from .clickhouse import FleetError, Target

    if not url:
        raise FleetError("--engine clickhouse needs the server", hint="pass --url http://HOST:8123[/DB]")
    if mode not in MODES:
        raise FleetError(
            f"--{mode} is not answered by --engine clickhouse",
            hint=f"use {', '.join('--' + m for m in MODES)}, or --engine local",
        )
    client = Client(Target(url))
    try:
        fleet = Fleet(client, host)
        if mode == "loops":
            assert th is not None
            return fleet.loops(q, th)
        if mode in ("commands", "errors"):
            return getattr(fleet, mode)(q, limit)  # type: ignore[no-any-return]
        return getattr(fleet, mode)(q)  # type: ignore[no-any-return]
    finally:
        client.close()


# One stream's calls of one command, in line order; a run is the failures between two of its
# successes (a success ends the run: count_result's rule). arrayCumSum numbers the runs.
_STORMS = """
SELECT host, file, session, agent, count() AS n, arraySort(groupArray((line, ts, cmd))) AS calls,
       calls[1].3 AS subject, calls[-1].2 AS last,
       arrayMap(c -> (c.2, c.1), arraySlice(calls, 1, {lines})) AS refs, min(ord) AS o
FROM (
  SELECT host, file, inode, session, agent, call, c.1 AS line, c.2 AS ts, c.3 AS failed, c.4 AS cmd, run, c.5 AS ord
  FROM (
    SELECT host, file, inode, session, agent, call,
           arraySort(groupArray((line, ts, failed, cmd, {ord}))) AS all_calls,
           arrayCumSum(arrayMap(x -> 1 - x.3, all_calls)) AS runs
    {events}
    GROUP BY host, file, inode, session, agent, call
    HAVING sum(failed) >= {n}
  )
  ARRAY JOIN all_calls AS c, runs AS run
  WHERE failed = 1
)
GROUP BY host, file, inode, session, agent, call, run
HAVING n >= {n}
ORDER BY calls[1].2, session, o
""".replace("{ord}", ORD)


def _list(values: list[str]) -> str:
    return ", ".join(literal(str(v)) for v in values)


def _filters(q: Query) -> list[str]:
    """The Query's filters as SQL conditions (ts keys compare as strings, as the local ones do)."""
    out = []
    if q.since is not None:
        out.append(f"ts >= {literal(q.since)}")
    if q.until is not None:
        out.append(f"ts <= {literal(q.until)}")
    if q.agent is not None:
        out.append(f"agent = {literal(q.agent)}")
    if q.session is not None:
        out.append(f"session = {literal(q.session)}")
    if q.levels is not None:
        out.append(f"level IN ({_list([x.decode() for x in sorted(q.levels)])})")
    return out


def _event(text: str) -> dict[str, Any]:
    return orjson.loads(text)  # type: ignore[no-any-return]
