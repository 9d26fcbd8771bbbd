"""Retry limit: the lab's rule "at most 3 retries of a failing command, then diagnose".

One rule, used both by the hook (live, in the session's state file) and by
`log analyze --loops` (afterwards, from the log), so the report never contradicts
the guard: failures are counted per command until THAT command succeeds. Other
commands in between (an `ls`, an Edit) neither reset nor end the count, so they do
not launder a retry storm. Commands are compared by `command_key`, their parsed
form. The next attempt after `limit` failures is refused unless
EPYC_AGENT_ALLOW_RETRY=1 is set in the hook's environment or as a prefix of the
command itself. Calls still running count too: Claude Code runs every PreToolUse
of one message's parallel batch before the first result comes back.
"""

from __future__ import annotations

import re

from .finding import Finding

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, MutableMapping
    from typing import TypeVar

    R = TypeVar("R")

OVERRIDE = "EPYC_AGENT_ALLOW_RETRY"
MAX_KEYS = 200  # commands tracked per session or stream (least recently failed dropped first)
KEY_CHARS = 2000
PARSE_CHARS = 2000  # longer ones (heredoc scripts) skip shlex: pure Python, ~3 us a character
OPERATORS = frozenset("();<>|&")
# `#` starts a comment only at the start of a word; shlex would also cut `a#b`, `${#x}`, `$#`
_MID_WORD_HASH = re.compile(r"(?<=[^\s();<>|&])#")
_HIDE = "\x00"
_SPECIAL = re.compile(r"['\"\\#();<>|&]")  # without these, shell words are whitespace-separated


def command_key(command: str) -> str:
    """The command as counted: its shell words (quotes, comments and a trailing `;` gone), the
    override prefix removed. `make -j2 check;`, `make -j2 check # again` and `'make' -j2 check`
    are one command. A trailing `&` stays: a backgrounded command's exit status is not its own."""
    parsed = _words(command)
    words = command.split() if parsed is None else parsed  # None: unparseable or long, whitespace collapsed
    while words and words[0].startswith(OVERRIDE + "="):
        words.pop(0)
    while words and set(words[-1]) == {";"}:
        words.pop()
    key = " ".join(words if parsed is None else map(_quoted, words))
    return key if len(key) <= KEY_CHARS else f"{key[: KEY_CHARS - 19]} <{digest(key)}>"  # no tail collisions


def _words(command: str) -> list[str] | None:
    """Shell words and operators via shlex (cheap, unlike bashlex), or None where it cannot tell."""
    if not _SPECIAL.search(command):
        return command.split()  # what shlex would return, a hundred times faster
    if len(command) > PARSE_CHARS or _HIDE in command:
        return None
    import shlex

    lex = shlex.shlex(_MID_WORD_HASH.sub(_HIDE, command), posix=True, punctuation_chars=True)
    lex.whitespace_split = True
    try:
        return [w.replace(_HIDE, "#") for w in lex]
    except ValueError:  # an unclosed quote, a trailing backslash
        return None


def _quoted(word: str) -> str:
    """A word as written in the key: quoted only where needed to keep `echo 'a b'` apart from `echo a b`."""
    if word and (set(word) <= OPERATORS or not any(c.isspace() or c in "'\"\\;&|()<>" for c in word)):
        return word
    import shlex

    return shlex.quote(word)


def digest(text: str) -> str:
    """16 hex digits of BLAKE2b: long command keys and call identities (hooks.payload.call_id)."""
    try:  # hashlib would load OpenSSL first (~14 ms at every hook start); blake2 is built in
        from _blake2 import blake2b
    except ImportError:  # pragma: no cover - an interpreter without the builtin module
        from hashlib import blake2b
    return blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


def overridden(command: str, env: Mapping[str, str]) -> bool:
    return env.get(OVERRIDE) == "1" or command.lstrip().startswith(OVERRIDE + "=1 ")


def count_result(
    runs: MutableMapping[str, R], key: str, failed: bool, add: Callable[[R | None], R], max_keys: int = MAX_KEYS
) -> list[tuple[str, R]]:
    """The retry rule on any store of failure runs (the hook's counts, the analyzer's line lists).

    A failure of `key` extends its run via `add` (moved to the newest end); a success of `key`
    ends its run; nothing else touches it. Returns the runs that ended: the succeeded one, and
    the least recently failed ones dropped to keep at most `max_keys`.
    """
    if not failed:
        run = runs.pop(key, None)
        return [] if run is None else [(key, run)]
    runs[key] = add(runs.pop(key, None))
    ended = []
    while len(runs) > max_keys:
        oldest = next(iter(runs))
        ended.append((oldest, runs.pop(oldest)))
    return ended


def check_retry(failures: Mapping[str, int], command: str, limit: int) -> Finding | None:
    """A finding when `command` already failed `limit` times in a row."""
    return retry_finding(failures.get(command_key(command), 0), 0, limit)


def retry_finding(failed: int, pending: int, limit: int) -> Finding | None:
    """A finding when a command's failures plus its identical calls still running reach `limit`."""
    if failed + pending < limit:
        return None
    if pending:
        so_far = f"failed {failed} times in a row and {pending} identical call(s) of it are still running"
    else:
        so_far = f"already failed {failed} times in a row"
    return Finding(
        "retry",
        f"this command {so_far} in this session. Do not retry it "
        "again: diagnose the root cause first (read the error, check inputs, paths, versions), log "
        "a decision (`epyc-agent log decision ...`), then change the approach. To retry anyway after "
        f"diagnosing, prefix the command with {OVERRIDE}=1 (the override is logged).",
    )
