"""Retry limit: the lab's rule "at most 3 retries of a failing command, then diagnose".

The hook counts consecutive failures per command text in the session's state
file (a success of the same command resets it; other commands in between do not,
so an `ls` between retries does not launder a retry storm). The next attempt
after `limit` failures is refused unless EPYC_AGENT_ALLOW_RETRY=1 is set in the
hook's environment or as a prefix of the command itself.
"""

from __future__ import annotations

from .finding import Finding

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

OVERRIDE = "EPYC_AGENT_ALLOW_RETRY"


def command_key(command: str) -> str:
    """The command as counted: whitespace collapsed, the override prefix removed."""
    words = command.split()
    while words and words[0].startswith(OVERRIDE + "="):
        words.pop(0)
    return " ".join(words)[:2000]


def overridden(command: str, env: Mapping[str, str]) -> bool:
    return env.get(OVERRIDE) == "1" or command.lstrip().startswith(OVERRIDE + "=1 ")


def check_retry(failures: Mapping[str, int], command: str, limit: int) -> Finding | None:
    n = failures.get(command_key(command), 0)
    if n < limit:
        return None
    return Finding(
        "retry",
        f"this command already failed {n} times in a row in this session. Do not retry it "
        "again: diagnose the root cause first (read the error, check inputs, paths, versions), log "
        "a decision (`epyc-agent log decision ...`), then change the approach. To retry anyway after "
        f"diagnosing, prefix the command with {OVERRIDE}=1 (the override is logged).",
    )
