"""Labelled audit logs for the analyzer tests: events at chosen times, and where each line went."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from epyc_agent.events.schema import encode_event, make_event, shard_name

T0 = 1_768_003_200  # 2026-01-10T00:00:00Z


def key(sec: float) -> str:
    s = int(sec)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s)) + f".{round((sec - s) * 1e6):06d}Z"


class LogBuilder:
    """Appends v1 events (and raw lines) to shards under `log_dir`; remembers file:line of each."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.counts: dict[str, int] = {}

    def raw(self, name: str, line: str) -> str:
        """Append a raw line to file `name`; returns its `file:line`."""
        path = self.log_dir / name
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
        self.counts[name] = self.counts.get(name, 0) + 1
        return f"{path}:{self.counts[name]}"

    def event(
        self, agent: str, session: str, cat: str, msg: str = "", t: float = 0.0, *, base: float = T0, **fields: Any
    ) -> str:
        ev = make_event(cat, msg, session=session, agent=agent, ts=key(base + t), **fields)
        return self.raw(shard_name(agent), encode_event(ev).decode().rstrip("\n"))

    def cmd(self, agent: str, session: str, cmd: str, code: int, t: float, summary: str = "", **kw: Any) -> str:
        details = f"exit={code}; {summary}" if summary else f"exit={code}"
        return self.event(
            agent,
            session,
            "CMD_RESULT",
            cmd,
            t,
            cmd=cmd,
            exit_code=code,
            details=details,
            level="INFO" if code == 0 else "ERROR",
            **kw,
        )

    def modify(self, agent: str, session: str, path: str, t: float, action: str = "edit") -> str:
        return self.event(agent, session, "FILE_MODIFY", path, t, path=path, action=action, details=f"action={action}")
