"""Run a command with the session's environment and log it: CMD_INTENT, then CMD_RESULT
with exit code, duration and the first 500 characters of output.

Output is passed through as it arrives (both streams), and the command's exit code
is returned unchanged, so wrapping a command never changes what a script sees.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING

from .environment import env_vars
from .events.writer import AuditLog
from .sessions import SESSION_ENV

if TYPE_CHECKING:
    from .config import Config

OUTPUT_CHARS = 500


class _Capture:
    """First N characters of combined output, in arrival order, thread-safe."""

    def __init__(self, limit: int) -> None:
        self.limit, self.parts, self.size = limit, [], 0
        self.lock = threading.Lock()

    def add(self, chunk: bytes) -> None:
        with self.lock:
            if self.size < self.limit * 4:  # bytes; decoded and cut to characters later
                self.parts.append(chunk)
                self.size += len(chunk)

    def text(self) -> str:
        return b"".join(self.parts).decode("utf-8", "replace")[: self.limit]


def _pump(src: subprocess.IO[bytes], dst: object, cap: _Capture) -> None:
    out = getattr(dst, "buffer", dst)
    for chunk in iter(lambda: src.read1(65536), b""):  # type: ignore[attr-defined]
        cap.add(chunk)
        try:
            out.write(chunk)
            out.flush()
        except (BrokenPipeError, ValueError):
            pass
    src.close()


def command_text(argv: list[str], use_shell: bool) -> str:
    return argv[0] if use_shell and len(argv) == 1 else shlex.join(argv)


def run_logged(
    cfg: Config,
    argv: list[str],
    *,
    reason: str = "",
    use_shell: bool = False,
    session: str | None = None,
    agent: str | None = None,
    preexec: object | None = None,
) -> int:
    """Run `argv` (through `bash -c` when `use_shell`), log intent and result, return its exit code.

    `preexec` runs in the child before exec (the Landlock sandbox uses it).
    """
    cmd = command_text(argv, use_shell)
    log = AuditLog(cfg.log_dir, session, agent)
    log.cmd_intent(cmd, reason)
    env = {**os.environ, **env_vars(cfg)}
    if session:
        env[SESSION_ENV] = session
    popen_args = ["bash", "-c", cmd] if use_shell else argv
    cap = _Capture(OUTPUT_CHARS)
    start = time.monotonic()
    try:
        proc = subprocess.Popen(popen_args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, preexec_fn=preexec)  # type: ignore[arg-type]  # noqa: PLW1509
    except (FileNotFoundError, PermissionError, NotADirectoryError) as e:
        code = 127 if isinstance(e, FileNotFoundError) else 126
        msg = f"{argv[0]}: {e.strerror}"
        print(f"epyc-agent: {msg}", file=sys.stderr)
        log.cmd_result(cmd, code, msg, duration_ms=0.0)
        log.close()
        return code
    threads = [
        threading.Thread(target=_pump, args=(proc.stdout, sys.stdout, cap), daemon=True),
        threading.Thread(target=_pump, args=(proc.stderr, sys.stderr, cap), daemon=True),
    ]
    for t in threads:
        t.start()
    old = signal.signal(signal.SIGTERM, lambda s, f: proc.send_signal(s))
    try:
        while True:
            try:
                rc = proc.wait()
                break
            except KeyboardInterrupt:  # the child got SIGINT too (same process group)
                continue
    finally:
        signal.signal(signal.SIGTERM, old)
    for t in threads:
        t.join()
    code = rc if rc >= 0 else 128 - rc
    duration = round((time.monotonic() - start) * 1000, 1)
    log.cmd_result(cmd, code, cap.text(), duration_ms=duration)
    log.close()
    return code
