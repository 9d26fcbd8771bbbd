"""Cheap, conservative first look at a Bash command: could it write or destroy anything?

Most agent commands (`ls`, `git status`, `grep`, `pytest -q`, `make`) cannot, by
their words alone, and the hook must answer them in a few milliseconds. Anything
that might (a write redirection, a writing or killing command word anywhere, a
substitution, eval, a nested shell, a here-document) goes to the full bashlex
parse. A false "needs parse" costs time; a false "harmless" would miss a write,
so every doubt answers "needs parse".
"""

from __future__ import annotations

import os
import re

# command words that write, delete, change permissions, kill by pattern or run other commands
RISKY = frozenset(
    {
        "rm",
        "rmdir",
        "unlink",
        "shred",
        "cp",
        "mv",
        "install",
        "uninstall",  # `epyc-agent hooks uninstall`
        "ln",
        "mkdir",
        "touch",
        "truncate",
        "tee",
        "dd",
        "chmod",
        "chown",
        "chgrp",
        "rsync",
        "scp",
        "sed",
        "perl",
        "find",
        "xargs",
        "eval",
        "exec",
        "bash",
        "sh",
        "dash",
        "zsh",
        "ksh",
        "source",
        ".",
        "pkill",
        "killall",
        "mkfs",
        "mke2fs",
        "wipefs",
        "fdisk",
        "sfdisk",
        "parted",
        "mkswap",
        "mount",
        "umount",
        "curl",
        "wget",
        "tar",
        "unzip",
        "clone",
        "patch",
        "split",
        "csplit",
        "sudo",
        "doas",
        "cpio",
        "7z",
        "zip",
        "gzip",
        "gunzip",
        "xz",
        "zstd",
        "bzip2",
        "bunzip2",
        "unxz",
        "unzstd",
        "lz4",
        "lzma",
        "systemctl",
        "crontab",
        "setfacl",
        "chattr",
        "mktemp",
        "fallocate",
        "mkfifo",
        "mknod",
        "rename",
        # git subcommands that change the work tree (`git -C /x clean -fdx`)
        "clean",
        "pull",
        "checkout",
        "reset",
        "restore",
        "switch",
        "stash",
        "worktree",
        # wrappers that write a file themselves or run a shell string
        "strace",
        "ltrace",
        "perf",
        "script",
        "su",
        "flock",
        "watch",
        "busybox",
        "chroot",
        "trap",
        "coproc",
        # host operations and the lab's other rules (guards/host.py)
        "pkexec",
        "runuser",
        "apt",
        "apt-get",
        "aptitude",
        "dpkg",
        "rpm",
        "dnf",
        "yum",
        "zypper",
        "snap",
        "service",
        "sysctl",
        "reboot",
        "shutdown",
        "poweroff",
        "halt",
        "telinit",
        "modprobe",
        "insmod",
        "rmmod",
        "swapon",
        "swapoff",
        "llama-cli",
        "llama-completion",
        "restic",
        "borg",
        "rclone",
    }
)
PYTEST_WORKERS = re.compile(r"(?:^|[\s;&|(])(?:-n|--numprocesses)")  # with `pytest` in the command
TIME_OUTPUT = re.compile(r"(?:^|[\s;&|(/])time\s+(?:-\S+\s+)*(?:-o|--output)")  # GNU time writes a file
SAFE_REDIRECT_TARGETS = frozenset({"/dev/null", "/dev/stdout", "/dev/stderr", "/dev/tty"})
MARKERS = ("`", "$(", "<(", ">(", "<<", "${")


def needs_parse(command: str) -> bool:
    """True unless every word is harmless and every redirection goes to /dev/null or an fd."""
    if not command or len(command) > 4000 or any(m in command for m in MARKERS):
        return True
    return (
        _risky_word(command)
        or ("pytest" in command or "py.test" in command)
        and PYTEST_WORKERS.search(command) is not None
        or (">" in command and not _redirects_harmless(command))
        or TIME_OUTPUT.search(command) is not None
    )


def _risky_word(command: str) -> bool:
    """Any word, after quote and backslash removal and split at every operator, `=` and brace
    expansion commas (`r\\m`, `'r'm`, `{rm,-rf,/}` are all `rm`), is a risky command name."""
    text = command.replace("'", "").replace('"', "").replace("\\", "")
    for ch in "|;&()<>{},\n":
        text = text.replace(ch, " ")
    for raw in text.split():
        if raw.startswith("of="):
            return True
        for part in raw.split("="):  # `ProxyCommand=rm ...`, `--to-command=sh`
            w = os.path.basename(part) if "/" in part else part
            if w in RISKY or w.startswith("mkfs"):
                return True
    return False


def _redirects_harmless(command: str) -> bool:
    """Every `>` is `>/dev/null`-like or an fd duplication (`2>&1`, `>&2`); quotes make us doubt."""
    if "'" in command or '"' in command:
        return False
    i = command.find(">")
    while i != -1:
        j = i + 1
        if j < len(command) and command[j] in ">|":
            j += 1
        if j < len(command) and command[j] == "&":
            k = j + 1
            while k < len(command) and command[k].isdigit():
                k += 1
            if k == j + 1 or (k < len(command) and not command[k].isspace() and command[k] not in ";|&)"):
                return False
        else:
            rest = command[j:].lstrip()
            target = rest.split(None, 1)[0] if rest else ""
            for stop in (";", "|", "&", ")"):
                target = target.split(stop, 1)[0]
            if target not in SAFE_REDIRECT_TARGETS:
                return False
        i = command.find(">", j)
    return True
