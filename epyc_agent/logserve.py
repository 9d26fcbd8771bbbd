"""`epyc-agent log serve OWNER_PID FIFO_DIR`: the shell library's helper, one per shell.

A Python process per `agent_*` call costs ~25 ms; this one long-lived process writes
every event of its shell through `quicklog.run` (the same AuditLog as `epyc-agent log`:
escaping, the chain, the flock, one os.write per event), so a call costs a pipe round
trip. The shell starts it lazily (agent_log.sh, `_epyc_srv_start`) with its stdin and
stdout on two FIFOs in FIFO_DIR, which it removes once both ends are open.

Requests (stdin): a decimal count, then that many fields, every one ended by NUL (a bash
string cannot hold NUL, so any text survives): one per variable named in the ready line
(empty when the shell does not export it, else `=` and its value), the verb, its arguments.
The variables and the shell's own cwd (/proc/OWNER_PID/cwd) are applied first, so each
event is resolved as the `epyc-agent log` the shell would have started would resolve it.

Replies (stdout), each ended by NUL, sent after the event is on disk: `ready PID NAMES...`
once, then per request `0` (written), `F` (take `epyc-agent log` for this one: an option,
a help flag, anything the CLI would treat otherwise) or `CODE MESSAGE` (the CLI's exit
code and its error line).

It exits at EOF on stdin or when OWNER_PID exits (a pidfd), whichever comes first: a
shell killed with SIGKILL leaves no helper behind even if its children hold the FIFO.
"""

from __future__ import annotations

import os
import select
import sys

from . import quicklog
from .config import BIN_ENV, CONFIG_ENV, LOG_DIR_ENV, ROOT_ENVS
from .events import schema
from .events.verbs import VERBS
from .events.writer import AuditLog
from .sessions import AGENT_ENVS, SESSION_ENV

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

# What `epyc-agent log <verb>` reads from its environment (config, session, agent, secret key).
ENV_NAMES = (SESSION_ENV, *AGENT_ENVS, CONFIG_ENV, *ROOT_ENVS, LOG_DIR_ENV, BIN_ENV, "HOME", "XDG_STATE_HOME")
_CHUNK = 1 << 16


def fields(fd: int, owner_exit: int | None) -> Iterator[bytes]:
    """NUL-ended fields read from `fd`, until EOF or the owner's exit (its pidfd readable)."""
    buf = b""
    while True:
        *done, buf = buf.split(b"\0")
        yield from done
        if owner_exit is not None:
            ready, _, _ = select.select([fd, owner_exit], [], [])
            if fd not in ready:
                return
        chunk = os.read(fd, _CHUNK)
        if not chunk:
            return
        buf += chunk


def requests(stream: Iterator[bytes]) -> Iterator[list[bytes]]:
    """Count-prefixed requests; a malformed count or a cut request ends the stream."""
    for count in stream:
        n = int(count) if count.isdigit() else -1
        req = [f for _, f in zip(range(n), stream, strict=False)]
        if n < 0 or len(req) < n:
            return
        yield req


class LastLog:
    """The writer of the last event, kept open as a long-lived AuditLog is (no open, no tail read
    per event); another (log dir, session, agent), or a shard moved away, gets a fresh one."""

    def __init__(self) -> None:
        self._key: tuple[str, str | None, str] | None = None
        self._log: AuditLog | None = None

    def __call__(self, log_dir: str, session: str | None, agent: str) -> AuditLog:
        key = (log_dir, session, agent)
        if self._log is not None and key == self._key:
            self._log.reopen_if_moved()
            return self._log
        if self._log is not None:
            self._log.close()
        self._log, self._key = AuditLog(log_dir, session, agent), key
        return self._log


class Server:
    """Requests -> replies for one shell; the environment applied only when it changed."""

    def __init__(self, owner: int) -> None:
        self.owner = owner
        self.env: list[bytes] | None = None
        self.open_log = LastLog()

    def handle(self, req: list[bytes]) -> bytes:
        """One request -> its reply: the event written by the same code as `epyc-agent log`."""
        k = len(ENV_NAMES)
        if len(req) <= k:
            return b"F\0"
        if req[:k] != self.env:
            self.env = req[:k]
            for name, value in zip(ENV_NAMES, self.env, strict=True):
                if value:
                    os.environb[name.encode()] = value[1:]
                else:
                    os.environb.pop(name.encode(), None)
        verb, args = os.fsdecode(req[k]), [os.fsdecode(a) for a in req[k + 1 :]]
        if verb not in VERBS or not quicklog.plain(args):
            return b"F\0"
        try:
            os.chdir(f"/proc/{self.owner}/cwd")  # relative paths and ./epyc-agent.yaml as the shell's
            code, err = quicklog.run(verb, args, self.open_log)
        except Exception:  # noqa: BLE001 - the CLI then shows the user its own message
            return b"F\0"
        return b"0\0" if code == 0 else f"{code} {err}\0".encode(errors="surrogateescape")


def close_inherited() -> None:
    """Close what the shell had open besides stdin, stdout and stderr: a pipe the script later
    closes must reach EOF at its reader, not stay open in here for the shell's lifetime."""
    for name in os.listdir("/proc/self/fd"):
        if int(name) > 2:
            try:
                os.close(int(name))
            except OSError:
                pass  # the listing's own descriptor


def watch(pid: int) -> int | None:
    """A pidfd that turns readable when `pid` exits; None where the kernel has none (EOF only)."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def main(args: list[str]) -> int:
    if len(args) != 2 or not args[0].isdigit():
        print("epyc-agent: usage: epyc-agent log serve OWNER_PID FIFO_DIR (the shell starts it)", file=sys.stderr)
        return 2
    owner, fifo_dir = int(args[0]), args[1]
    schema.set_lean()  # the bytes `epyc-agent log` writes
    close_inherited()
    for name in ("in", "out"):
        try:
            os.unlink(os.path.join(fifo_dir, name))
        except OSError:
            pass
    try:
        os.rmdir(fifo_dir)
    except OSError:
        pass
    exited = watch(owner)
    try:
        os.write(1, f"ready {os.getpid()} {' '.join(ENV_NAMES)}\0".encode())
        server = Server(owner)
        for req in requests(fields(0, exited)):
            os.write(1, server.handle(req))
    except BrokenPipeError:  # the shell is gone
        pass
    return 0
