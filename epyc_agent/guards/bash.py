"""The Bash guards: writes outside the storage root, and destructive commands.

Input is `shell.Parsed` (every simple command with its words, redirections and
cwd); output is a list of `Finding`s. Which words a command writes is known per
command (`cp`'s target, `mv`'s sources and target, `tee`'s files, `dd of=`, ...);
a target known only at run time is skipped and said so in `blind`, except a
recursive delete that starts with an unknown variable (`rm -rf "$X/"` deletes
from `/` when X is empty), which is refused.
"""

from __future__ import annotations

import os

from ..storage import is_under
from .finding import Finding
from .shell import Cmd, Parsed, Word

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..storage import StorageGuard

DEVICE_TOOLS = ("mkfs", "mke2fs", "mkswap", "wipefs", "fdisk", "sfdisk", "parted", "sgdisk")
PATH_ARGS = ("mkdir", "touch", "rm", "rmdir", "unlink", "shred", "truncate", "tee")
MODE_TOOLS = ("chmod", "chown", "chgrp", "setfacl", "chattr")
# options that take a separate value, per command (so the value is not mistaken for a path)
VALUE_OPTS = {
    "truncate": {"-s", "-r", "--size", "--reference"},
    "touch": {"-d", "-t", "-r", "--date", "--reference"},
    "mkdir": {"-m", "--mode"},
    "install": {"-m", "-o", "-g", "--mode", "--owner", "--group", "-S"},
    "cp": {"-S", "--suffix"},
    "mv": {"-S", "--suffix"},
    "ln": {"-S", "--suffix"},
    "rsync": {"-e", "--rsh", "--exclude", "--include", "--filter", "-f", "--chmod", "--log-file"},
    "sed": {"-e", "-f", "--expression", "--file", "-l"},
    "chmod": {"--reference"},
    "chown": {"--reference", "--from"},
    "shred": {"-n", "-s", "--iterations", "--size"},
    "curl": {"-o", "--output", "-d", "--data", "-H", "--header", "-X", "-u", "-A", "-e", "-T", "-F"},
    "wget": {"-O", "--output-document", "-P", "--directory-prefix", "-o", "-a", "-U", "--header"},
    "unzip": {"-d", "-x"},
}


def split_args(cmd: Cmd) -> tuple[list[Word], dict[str, Word | None]]:
    """Positional arguments and options (value or None) of a simple command."""
    takes = VALUE_OPTS.get(cmd.name, set())
    args: list[Word] = []
    opts: dict[str, Word | None] = {}
    words = cmd.argv[1:]
    i = 0
    while i < len(words):
        t = words[i].text
        if t == "--":
            args.extend(words[i + 1 :])
            break
        if t.startswith("-") and len(t) > 1:
            key, eq, val = t.partition("=")
            if eq:
                opts[key] = Word(val, words[i].dynamic)
            elif t in takes and i + 1 < len(words):
                opts[t] = words[i + 1]
                i += 1
            else:
                opts[t] = None
        else:
            args.append(words[i])
        i += 1
    return args, opts


def _has_flag(opts: dict[str, Word | None], short: str, long: str) -> bool:
    return long in opts or any(o.startswith("-") and not o.startswith("--") and short in o for o in opts)


def write_targets(cmd: Cmd) -> list[Word]:
    """The paths a simple command writes, creates, deletes or changes the mode of."""
    name = cmd.name
    args, opts = split_args(cmd)
    if name in PATH_ARGS:
        return args
    if name in ("cp", "mv", "install", "ln"):
        target = opts.get("-t") or opts.get("--target-directory")
        if name == "install" and _has_flag(opts, "d", "--directory"):
            return args
        if target is not None:
            return [target, *args] if name == "mv" else [target]
        if name == "ln" and len(args) == 1:
            return [Word(os.path.basename(args[0].text.rstrip("/")) or ".", args[0].dynamic)]
        if name == "mv":
            return args  # the sources disappear too
        return args[-1:] if len(args) >= 2 else []
    if name in ("rsync", "scp"):
        dest = args[-1:] if len(args) >= 2 else []
        return [w for w in dest if ":" not in w.text.split("/", 1)[0]]
    if name == "dd":
        return [Word(w.text[3:], w.dynamic) for w in cmd.argv[1:] if w.text.startswith("of=")]
    if name == "sed" and any(
        o == "--in-place" or (o.startswith("-i") or (not o.startswith("--") and "i" in o)) for o in opts
    ):
        return args if ("-e" in opts or "-f" in opts or "--expression" in opts) else args[1:]
    if name == "perl" and any(not o.startswith("--") and "i" in o for o in opts):
        return args
    if name in MODE_TOOLS:
        return args if "--reference" in opts else args[1:]
    if name == "curl":
        out = opts.get("-o") or opts.get("--output")
        return [out] if out is not None else ([Word(".")] if "-O" in opts or "--remote-name" in opts else [])
    if name == "wget":
        out = opts.get("-O") or opts.get("--output-document") or opts.get("-P") or opts.get("--directory-prefix")
        return [out] if out is not None else [Word(".")]
    if name == "unzip":
        d = opts.get("-d")
        return [d] if d is not None else [Word(".")]
    if name == "tar":
        return _tar_targets(cmd)
    if name == "git" and args and args[0].text == "clone":
        rest = args[1:]
        return rest[1:2] if len(rest) >= 2 else [Word(".")]
    return []


def _tar_targets(cmd: Cmd) -> list[Word]:
    words = cmd.argv[1:]
    texts = [w.text for w in words]
    first = texts[0] if texts else ""
    bundled = first if first and not first.startswith("-") else ""
    flags = bundled + "".join(t[1:] for t in texts if t.startswith("-") and not t.startswith("--"))
    extract = "x" in flags or "--extract" in texts or "--get" in texts
    create = "c" in flags or "--create" in texts or "r" in flags or "u" in flags
    out: list[Word] = []
    for i, t in enumerate(texts):
        if t in ("-C", "--directory") and i + 1 < len(words):
            out.append(words[i + 1])
        elif t.startswith("--directory="):
            out.append(Word(t.partition("=")[2], words[i].dynamic))
    if extract and not out:
        out.append(Word("."))
    if create:
        for i, t in enumerate(texts):
            if (t == "-f" or t == "--file" or (t == bundled and "f" in t)) and i + 1 < len(words):
                out.append(words[i + 1])
            elif t.startswith("--file="):
                out.append(Word(t.partition("=")[2], words[i].dynamic))
    return out


def _recursive(cmd: Cmd) -> bool:
    _args, opts = split_args(cmd)
    return _has_flag(opts, "r", "--recursive") or _has_flag(opts, "R", "--recursive")


def _text(cmd: Cmd) -> str:
    words = [w.text for w in cmd.argv] + [f"{op} {w.text}" for op, w in cmd.redirects]
    s = " ".join(words)
    return s if len(s) <= 120 else s[:117] + "..."


def _glob_base(text: str) -> str:
    cut = min((i for i in (text.find(c) for c in "*?[") if i != -1), default=-1)
    return text if cut == -1 else (text[:cut] or ".")


class BashCheck:
    """Findings for one parsed command against one storage guard."""

    def __init__(self, guard: StorageGuard, parsed: Parsed) -> None:
        self.guard, self.parsed = guard, parsed
        self.findings: list[Finding] = []
        self.bases = (guard.root_resolved, *guard.allow)

    def run(self) -> list[Finding]:
        for cmd in self.parsed.cmds:
            self.command(cmd)
        return self.findings

    def add(self, guard: str, reason: str, path: str = "") -> None:
        self.findings.append(Finding(guard, reason, path))

    def command(self, cmd: Cmd) -> None:
        for _op, target in cmd.redirects:
            self.write(cmd, target, "redirects output to")
        name = cmd.name
        if not name:
            return
        if name.startswith(DEVICE_TOOLS):
            self.add(
                "destructive",
                f"`{_text(cmd)}` formats or repartitions a device: there is no rollback. "
                "Do not run it; if the user wants it, ask them to run it themselves.",
            )
            return
        if name in ("pkill", "killall"):
            self.add(
                "destructive",
                f"`{_text(cmd)}` kills processes by name pattern, which can hit other "
                "agents' and the user's processes (the pattern may even match the shell running it). "
                "Find the exact process with `pgrep -af PATTERN`, then `kill PID`.",
            )
            return
        if name == "find":
            self.find(cmd)
            return
        recursive_rm = name == "rm" and _recursive(cmd)
        for target in write_targets(cmd):
            if name == "dd" and target.text.startswith("/dev/"):
                resolved = os.path.realpath(target.text)
                if not any(is_under(resolved, a) for a in self.guard.allow):
                    self.add(
                        "destructive",
                        f"`{_text(cmd)}` writes the device {target.text}: there is no "
                        "rollback. Write to a file under the root instead; device writes are for the user.",
                        target.text,
                    )
                    continue
            if recursive_rm:
                self.remove_tree(cmd, target)
            elif name in MODE_TOOLS and _recursive(cmd):
                self.write(cmd, target, "recursively changes permissions of", destructive=True)
            else:
                self.write(cmd, target, "removes" if name in ("rm", "rmdir", "unlink", "shred") else "writes")

    def path_of(self, cmd: Cmd, w: Word) -> str | None:
        text = _glob_base(w.text)
        if not os.path.isabs(text) and cmd.cwd is None:
            self.parsed.note(f"relative path {w.text!r} after a `cd` to an unknown folder")
            return None
        return text

    def write(self, cmd: Cmd, w: Word, verb: str, destructive: bool = False) -> None:
        if w.dynamic:
            w = self.static_part(w)
            if w is None:
                return
        path = self.path_of(cmd, w)
        if path is None:
            return
        v = self.guard.check(path, cmd.cwd)
        if not v.allowed:
            guard = "destructive" if destructive else "bash"
            self.add(
                guard,
                f"`{_text(cmd)}` {verb} {w.text}, {v.reason} (temp files: "
                f"{self.guard.root_resolved}/tmp). If the user really needs this path, ask them (it can be "
                "added to allow_write in the epyc-agent config).",
                v.resolved,
            )

    def static_part(self, w: Word) -> Word | None:
        """For `/etc/$f`: the folder known before run time, if no expansion could lead from it
        into the root or an allowlisted folder; else None (and the target is noted as unseen)."""
        cut = min((i for i in (w.text.find("$"), w.text.find("`")) if i != -1), default=-1)
        prefix = os.path.dirname(w.text[:cut]) if cut > 0 else ""
        if os.path.isabs(prefix):
            resolved = os.path.realpath(prefix)
            if not any(is_under(b, resolved) for b in self.bases):
                return Word(prefix)
        self.parsed.note(f"write target {w.text!r} is known only at run time")
        return None

    def remove_tree(self, cmd: Cmd, w: Word) -> None:
        if w.dynamic:
            if w.text.startswith("$") or w.text.startswith("/"):
                self.add(
                    "destructive",
                    f"`{_text(cmd)}` recursively deletes {w.text!r}, a path known only at "
                    "run time (an empty variable turns it into `/...`). Spell the path out literally, "
                    "under the storage root.",
                    w.text,
                )
            else:
                self.parsed.note(f"delete target {w.text!r} is known only at run time")
            return
        path = self.path_of(cmd, w)
        if path is None:
            return
        v = self.guard.check(path, cmd.cwd)
        for base in self.bases:
            if is_under(base, v.resolved):
                what = "the storage root" if base == self.guard.root_resolved else f"the allowlisted {base}"
                self.add(
                    "destructive",
                    f"`{_text(cmd)}` would delete {what} (it resolves to {v.resolved}). "
                    "Delete specific subfolders under the root instead, and log a rollback plan first.",
                    v.resolved,
                )
                return
        if not v.allowed:
            self.add(
                "destructive",
                f"`{_text(cmd)}` recursively deletes {w.text}, {v.reason}. Only delete "
                "under the root; anything else is for the user to decide.",
                v.resolved,
            )

    def find(self, cmd: Cmd) -> None:
        words = cmd.argv[1:]
        starts = []
        for w in words:
            if w.text.startswith(("-", "(", "!")):
                break
            starts.append(w)
        starts = starts or [Word(".")]
        texts = [w.text for w in words]
        if "-delete" in texts:
            for s in starts:  # deletes what matches beneath each start folder
                self.write(cmd, s, "deletes files under", destructive=True)
        for i, t in enumerate(texts):
            if t in ("-exec", "-execdir", "-ok", "-okdir"):
                inner: list[Word] = []
                for w in words[i + 1 :]:
                    if w.text in (";", "+"):
                        break
                    inner.append(w)
                for s in starts:
                    sub = [Word(x.text.replace("{}", s.text.rstrip("/") + "/x"), x.dynamic) for x in inner]
                    self.command(Cmd(sub, [], cmd.cwd, []))
