"""The kernel floor under Claude Code's Bash: `epyc-agent-shell`, its CLAUDE_CODE_SHELL_PREFIX.

Claude Code 2.1.x runs every shell command it starts (the Bash tool, and hook commands too)
as `PREFIX "<whole command line>"` when CLAUDE_CODE_SHELL_PREFIX names an executable (one
path, no arguments). `hooks install` points it here and sets EPYC_AGENT_SANDBOX_WRITE (the
folders, `:`-separated) in the settings' `env` block, which a project install does honour.
Each command then runs under Landlock (`sandbox.py`): a write outside those folders fails
in the kernel, whatever the command looks like to the parser. The agent cannot loosen it:
the variables are read by the CLI's own process, not from the agent's shell.

Exempt, because they are ours: the exact hook command `hooks install` registered (it writes
its state under the user's state folder); it runs in this process, so a hook pays one Python
start, not two. Allowed besides the folders: the device files, and
the one file the CLI itself has each command write its final cwd to (`pwd -P >| FILE`).
"""

from __future__ import annotations

import os
import re
import sys

ENV_WRITE = "EPYC_AGENT_SANDBOX_WRITE"
SHELL = "/bin/bash" if os.path.exists("/bin/bash") else "/bin/sh"
# Claude Code appends `&& pwd -P >| /tmp/claude-1dec-cwd` to track the shell's cwd
_CWD_FILE = re.compile(r"pwd -P >\| (\S+/claude-[0-9a-f]+-cwd)\s*$")


def is_our_hook(command: str) -> bool:
    """`<this installation's bin>/epyc-agent hook`, the line `hooks install` registered."""
    words = command.split()
    mine = os.path.join(os.path.dirname(os.path.abspath(sys.argv[0])), "epyc-agent")
    return len(words) == 2 and words[1] == "hook" and os.path.realpath(words[0]) == os.path.realpath(mine)


def prefix_env(write_dirs: list[str]) -> dict[str, str]:
    """The settings `env` entries that put every command of Claude Code under the sandbox."""
    exe = os.path.join(os.path.dirname(sys.executable), "epyc-agent-shell")
    return {"CLAUDE_CODE_SHELL_PREFIX": exe, ENV_WRITE: os.pathsep.join(write_dirs)}


def cwd_file(command: str) -> str | None:
    """The CLI's own cwd-tracking file, if this command line ends by writing it."""
    m = _CWD_FILE.search(command)
    return m.group(1) if m else None


def _fail(msg: str) -> int:
    print(f"epyc-agent-shell: {msg}", file=sys.stderr)
    return 126  # what a shell answers for a command it cannot run


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        return _fail("usage: epyc-agent-shell COMMAND_LINE (set as CLAUDE_CODE_SHELL_PREFIX by `hooks install`)")
    command = args[0] if len(args) == 1 else None
    if command is not None and is_our_hook(command):  # run it here: no second Python start
        from .hooks import fastpath

        return fastpath.main()
    dirs = [d for d in os.environ.get(ENV_WRITE, "").split(os.pathsep) if d]
    if not dirs:
        return _fail(f"{ENV_WRITE} is empty, so nothing may be written: run `epyc-agent hooks install` again")
    from .sandbox import DEVICE_FILES, SandboxError, prepare

    files = list(DEVICE_FILES)
    track = cwd_file(command or "")
    if track:
        try:
            os.close(os.open(track, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600))
            files.append(track)
        except OSError:
            pass  # the CLI then reports the cwd as unchanged; the command itself still runs
    try:
        box = prepare(dirs, tuple(files))
        box.apply()
    except (SandboxError, OSError) as e:
        return _fail(f"cannot sandbox the command, so it was not run: {e}")
    run = [SHELL, "-c", command] if command is not None else args
    try:
        os.execvp(run[0], run)
    except OSError as e:
        return _fail(f"cannot run {run[0]}: {e.strerror}")
    return 0  # not reached: exec replaced this process


if __name__ == "__main__":
    sys.exit(main())
