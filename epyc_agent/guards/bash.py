"""The Bash guards: writes outside the storage root, and destructive commands.

Input is `shell.Parsed` (every simple command with its words, redirections and
cwd); output is a list of `Finding`s. Which words a command writes is known per
command (`cp`'s target, `mv`'s sources and target, `tee`'s files, `dd of=`, ...);
a target known only at run time is skipped and said so in `blind`, except a
recursive delete that starts with an unknown variable (`rm -rf "$X/"` deletes
from `/` when X is empty), which is refused.
"""

from __future__ import annotations

import glob
import os

from ..storage import is_under
from .finding import Finding
from .host import bench_edit, host_findings, kernel_path
from .shell import Cmd, Parsed, Word

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..storage import StorageGuard

DEVICE_TOOLS = ("mkfs", "mke2fs", "mkswap", "wipefs", "fdisk", "sfdisk", "parted", "sgdisk")
PATH_ARGS = ("mkdir", "touch", "rm", "rmdir", "unlink", "shred", "truncate", "tee")
MODE_TOOLS = ("chmod", "chown", "chgrp", "setfacl", "chattr")
# per command: short options that take a value, long options that take a value (so the value
# is not mistaken for a path, and `-t/x`, `-fsSLo FILE`, `-Dt DIR`, `-C/x` are read right)
VALUE_OPTS: dict[str, tuple[str, frozenset[str]]] = {
    name: (short, frozenset(long.split()))
    for name, short, long in (
        ("truncate", "sr", "--size --reference"),
        ("touch", "dtr", "--date --reference"),
        ("mkdir", "m", "--mode"),
        ("install", "mogtS", "--mode --owner --group --target-directory --suffix"),
        ("cp", "tS", "--target-directory --suffix"),
        ("mv", "tS", "--target-directory --suffix"),
        ("ln", "tS", "--target-directory --suffix"),
        ("rsync", "efT", "--rsh --exclude --include --filter --chmod --log-file --temp-dir --backup-dir"),
        ("sed", "efl", "--expression --file --line-length"),
        ("perl", "eEIMm", ""),
        ("chmod", "", "--reference"),
        ("chown", "", "--reference --from"),
        ("chgrp", "", "--reference"),
        ("shred", "ns", "--iterations --size"),
        (
            "curl",
            "odHXuAeTFrCEKmwxyYzbcDQ",
            "--output --data --header --request --user --user-agent --referer --upload-file --form --range "
            "--cookie --cookie-jar --dump-header --output-dir --config --max-time --write-out --proxy --trace "
            "--trace-ascii --stderr",
        ),
        (
            "wget",
            "OPoaUetTwQiBlARDIX",
            "--output-document --directory-prefix --output-file --append-output --user-agent --header --tries "
            "--timeout --wait --input-file --level --accept --reject",
        ),
        ("unzip", "dx", ""),
        ("git", "BCbcjo", "--branch --depth --origin --config --reference --template --separate-git-dir --jobs"),
        ("chattr", "pv", ""),
        ("zstd", "oDLT", "--output"),
        ("fallocate", "lo", "--length --offset"),
        ("mkfifo", "mZ", "--mode"),
        ("mknod", "mZ", "--mode"),
        ("mktemp", "p", "--tmpdir --suffix"),
        ("split", "abCln", "--suffix-length --bytes --line-bytes --lines --number --additional-suffix"),
        ("zip", "bntix", ""),
        ("7z", "opwxi", ""),
        ("cpio", "DEFHIMORs", "--directory --file --format"),
        ("setfacl", "mMxX", "--modify --modify-file --remove --remove-file"),
        (
            "restic",
            "rpoteHi",
            "--repo --repository-file --password-file --password-command --option --target --exclude "
            "--exclude-file --iexclude --include --host --cache-dir --tag --files-from --limit-upload "
            "--limit-download --pack-size --compression --keep-last --keep-hourly --keep-daily --keep-weekly "
            "--keep-monthly --keep-yearly --keep-within --keep-tag --parent --from-repo --from-password-file",
        ),
        (
            "borg",
            "eaP",
            "--exclude --exclude-from --pattern --patterns-from --compression --comment --encryption "
            "--keep-last --keep-hourly --keep-daily --keep-weekly --keep-monthly --keep-yearly --keep-within "
            "--prefix --glob-archives --match-archives --remote-path --rsh --umask --lock-wait --timestamp",
        ),
        (
            "rclone",
            "",
            "--config --exclude --exclude-from --include --include-from --filter --filter-from --log-file "
            "--backup-dir --transfers --checkers --bwlimit --max-age --min-age --max-size --min-size --suffix",
        ),
        (
            "tar",
            "fCbHKLNTgVX",
            "--file --directory --exclude --files-from --exclude-from --transform --owner --group --mode "
            "--listed-incremental --use-compress-program --to-command",
        ),
    )
}
OPTIONAL_ATTACHED = {"sed": "i", "perl": "i"}  # `-i.bak`: a value only when attached
MODE_FLAGS = {"chmod": set("cfvR"), "chattr": set("RVfpv")}  # any other `-x` word is a mode (`chmod -w`)


def split_args(cmd: Cmd) -> tuple[list[Word], dict[str, Word | None]]:
    """Positional arguments and options of a simple command, getopt-style: a bundle `-czf F`
    is `-c -z -f F`, `-t/x` is `-t /x`, `--out=F` and `--out F` are `--out F`. tar's
    old-style first word (`tar czf F`) is a bundle; chmod's `-w`/`-x` are modes, not options."""
    short, long = VALUE_OPTS.get(cmd.name, ("", frozenset()))
    optional = OPTIONAL_ATTACHED.get(cmd.name, "")
    words = list(cmd.argv[1:])
    if cmd.name == "tar" and words and not words[0].text.startswith("-"):
        words[0] = Word("-" + words[0].text, words[0].dynamic)
    args: list[Word] = []
    opts: dict[str, Word | None] = {}
    i = 0
    while i < len(words):
        w = words[i]
        t = w.text
        i += 1
        if t == "--":
            args.extend(words[i:])
            break
        is_opt = t.startswith("-") and len(t) > 1
        flags = MODE_FLAGS.get(cmd.name)
        if flags and is_opt and not t.startswith("--") and not set(t[1:]) <= flags:
            is_opt = False  # `chmod -w f`: a mode
        if not is_opt:
            args.append(w)
            continue
        if t.startswith("--"):
            key, eq, val = t.partition("=")
            if eq:
                opts[key] = Word(val, w.dynamic)
            elif key in long and i < len(words):
                opts[key], i = words[i], i + 1
            else:
                opts[key] = None
            continue
        i = _bundle(w, words, i, short, optional, opts)
    return args, opts


def _bundle(w: Word, words: list[Word], i: int, short: str, optional: str, opts: dict[str, Word | None]) -> int:
    """Read the short-option bundle `w` (e.g. `-fsSLo`) into opts; return the next index."""
    t = w.text
    for k, ch in enumerate(t[1:], 1):
        rest = t[k + 1 :]
        if ch in optional:
            opts["-" + ch] = Word(rest, w.dynamic) if rest else None
            return i
        if ch in short:
            if rest:
                opts["-" + ch] = Word(rest, w.dynamic)
            elif i < len(words):
                opts["-" + ch], i = words[i], i + 1
            else:
                opts["-" + ch] = None
            return i
        opts["-" + ch] = None
    return i


def _has_flag(opts: dict[str, Word | None], short: str, long: str) -> bool:
    return long in opts or "-" + short in opts


def _first(opts: dict[str, Word | None], *names: str) -> Word | None:
    return next((opts[n] for n in names if opts.get(n) is not None), None)


def write_targets(cmd: Cmd) -> list[Word]:
    """The paths a simple command writes, creates, deletes or changes the mode of."""
    name = cmd.name
    args, opts = split_args(cmd)
    if name in PATH_ARGS:
        return args
    if name in ("cp", "mv", "install", "ln"):
        target = _first(opts, "-t", "--target-directory")
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
        moved = args[:-1] if "--remove-source-files" in opts and len(args) >= 2 else []  # sources deleted
        return [w for w in [*moved, *args[-1:]] if len(args) >= 2 and ":" not in w.text.split("/", 1)[0]]
    if name == "dd":
        return [Word(w.text[3:], w.dynamic) for w in cmd.argv[1:] if w.text.startswith("of=")]
    if name == "sed" and ("-i" in opts or "--in-place" in opts):
        return args if _first(opts, "-e", "-f", "--expression", "--file") else args[1:]
    if name == "perl" and "-i" in opts:
        return args if _first(opts, "-e", "-E") else args[1:]
    if name in MODE_TOOLS:
        return args if "--reference" in opts or name == "setfacl" else args[1:]  # setfacl's ACL is an option
    if name == "curl":
        outs = [w for w in (_first(opts, n, m) for n, m in CURL_WRITES) if w is not None and w.text != "-"]
        return outs + ([Word(".")] if "-O" in opts or "--remote-name" in opts else [])
    if name == "wget":
        out = _first(opts, "-O", "--output-document", "-P", "--directory-prefix")
        logs = [w for w in (_first(opts, "-o", "--output-file"), _first(opts, "-a", "--append-output")) if w]
        return [w for w in [out or Word("."), *logs] if w.text != "-"]
    if name == "unzip":
        return [_first(opts, "-d") or Word(".")]
    if name == "tar":
        return _tar_targets(args, opts)
    if name in BACKUP_REPOS:
        return BACKUP_REPOS[name](args, opts)
    if name in COMPRESSORS:  # each file is replaced by its (de)compressed twin, unless to stdout
        if any(o in opts for o in ("-c", "--stdout", "--to-stdout", "-t", "--test", "-l", "--list")):
            return []
        return [o for o in [_first(opts, "-o", "--output")] if o] or args
    if name in ("fallocate", "mkfifo", "mknod"):
        return args[:1]
    if name == "rename":
        return args[1:]
    if name == "mktemp":
        folder = _first(opts, "-p", "--tmpdir")
        return [folder] if folder is not None else [a for a in args[:1] if "/" in a.text]
    if name == "split":
        return [Word(args[1].text + "x", args[1].dynamic)] if len(args) >= 2 else [Word("x")]
    if name == "zip":
        return args[:1]
    if name == "7z":
        verb = args[0].text if args else ""
        if verb in ("x", "e"):
            return [_first(opts, "-o") or Word(".")]
        return args[1:2] if verb in ("a", "u", "d", "rn") else []
    if name == "cpio" and ("-i" in opts or "--extract" in opts):
        return [_first(opts, "-D", "--directory") or Word(".")]
    if name == "git" and args and args[0].text in GIT_WRITES:  # changes the work tree it runs in
        base = opts.get("-C")
        # `git worktree add PATH` also checks out a new tree at PATH
        new = args[2:3] if args[0].text == "worktree" and args[1:2] and args[1].text == "add" else []
        return [base if base is not None else Word("."), *_under(base, new)]
    if name == "git" and args and args[0].text == "clone":
        rest = args[1:]
        return _under(opts.get("-C"), rest[1:2] if len(rest) >= 2 else [Word(".")])
    return []


def _under(base: Word | None, paths: list[Word]) -> list[Word]:
    """`git -C DIR ... PATH`: PATH is relative to DIR."""
    if base is None:
        return paths
    return [Word(os.path.join(base.text, p.text), p.dynamic or base.dynamic) for p in paths]


GIT_WRITES = {
    "checkout",
    "switch",
    "restore",
    "reset",
    "clean",
    "stash",
    "pull",
    "merge",
    "rebase",
    "cherry-pick",
    "revert",
    "apply",
    "am",
    "mv",
    "rm",
    "init",
    "commit",
    "add",
    "worktree",
    "submodule",
}
COMPRESSORS = {"gzip", "gunzip", "xz", "unxz", "bzip2", "bunzip2", "zstd", "unzstd", "lz4", "lzma"}
CURL_WRITES = (("-o", "--output"), ("-c", "--cookie-jar"), ("-D", "--dump-header"), ("--output-dir", "--trace"))


def _tar_targets(args: list[Word], opts: dict[str, Word | None]) -> list[Word]:
    extract = any(o in opts for o in ("-x", "--extract", "--get"))
    create = any(o in opts for o in ("-c", "-r", "-u", "--create", "--append", "--update"))
    out: list[Word] = []
    folder = _first(opts, "-C", "--directory")
    if folder is not None:
        out.append(folder)
    elif extract:
        out.append(Word("."))
    archive = _first(opts, "-f", "--file")
    if create and archive is not None and archive.text != "-":
        out.append(archive)
    return out


def _local(w: Word | None) -> Word | None:
    """A backup location on this host (`local:/x`, `/x`, `dir`), not a remote (`s3:...`,
    `sftp:host:/x`, `user@host:repo`)."""
    if w is None:
        return None
    text = w.text.removeprefix("local:")
    if ":" in text and not text.startswith(("/", "./", "../")):
        return None
    return Word(text, w.dynamic)


def _restic_targets(args: list[Word], opts: dict[str, Word | None]) -> list[Word]:
    """The repository restic writes (init, backup, forget, ...; an unnamed one comes from
    $RESTIC_REPOSITORY), a restore's --target, a mount's mount point."""
    verb = args[0].text if args else ""
    out = [_first(opts, "--cache-dir")]
    if verb in RESTIC_WRITES:
        out.append(_local(_first(opts, "-r", "--repo")))
    if verb == "restore":
        out.append(_first(opts, "-t", "--target"))
    if verb == "mount":
        out += args[1:2]
    return [w for w in out if w is not None]


def _borg_targets(args: list[Word], opts: dict[str, Word | None]) -> list[Word]:
    """`borg init|create|prune|... REPO[::ARCHIVE]`: the repository; `extract` writes the cwd."""
    verb = args[0].text if args else ""
    if verb == "extract":
        return [Word(".")]
    if verb not in BORG_WRITES or len(args) < 2:
        return []
    repo = _local(Word(args[1].text.split("::", 1)[0], args[1].dynamic))
    return [repo] if repo is not None and repo.text else []


def _rclone_targets(args: list[Word], opts: dict[str, Word | None]) -> list[Word]:
    """`rclone copy|sync|move SRC DST`: a local DST (a remote is `name:path`)."""
    verb = args[0].text if args else ""
    if verb not in ("copy", "sync", "move", "copyto", "moveto", "bisync") or len(args) < 3:
        return []
    dst = args[-1]
    return [] if ":" in dst.text.split("/", 1)[0] else [dst]


def _backup(cmd: Cmd) -> bool:
    """A backup tool, or tar creating an archive: its writes outside the root are `backup`'s."""
    if cmd.name in ("restic", "borg", "rclone", "rsync"):
        return True
    return cmd.name == "tar" and any(o in split_args(cmd)[1] for o in ("-c", "--create"))


def _recursive(cmd: Cmd) -> bool:
    _args, opts = split_args(cmd)
    return _has_flag(opts, "r", "--recursive") or _has_flag(opts, "R", "--recursive")


FIND_NOT_FILTERS = {"-delete", "-depth", "-xdev", "-mount", "-print", "-print0", "-ignore_readdir_race", "-noleaf"}


def _find_filters(cmd: Cmd, exec_counts: bool = True) -> bool:
    """Whether a find's expression selects some files (`-name '*.pyc'`) rather than all of them
    (`find DIR -delete`, `-name '*'`): deleting everything under a folder is a recursive delete."""
    words = [w.text for w in cmd.argv[1:]]
    starts, _ = find_parts(cmd)
    expr = words[words.index(starts[-1].text) + 1 :] if starts[-1].text in words else words
    i = 0
    while i < len(expr):
        t = expr[i]
        if t in ("-maxdepth", "-mindepth"):
            i += 2
            continue
        if t in ("-name", "-iname", "-path", "-wholename") and i + 1 < len(expr) and expr[i + 1] in ("*", "**"):
            i += 2
            continue
        if t in ("-exec", "-execdir", "-ok", "-okdir") and not exec_counts:
            return False  # what follows is the command, not a test
        if t.startswith("-") and t not in FIND_NOT_FILTERS and t not in ("-H", "-L", "-P"):
            return True
        i += 1
    return False


def find_parts(cmd: Cmd) -> tuple[list[Word], list[list[Word]]]:
    """A find's start folders (after `-H`/`-L`/`-P`/`-D X`/`-O3`) and the commands of its
    `-exec`/`-execdir`/`-ok` actions."""
    words = cmd.argv[1:]
    i = 0
    while i < len(words) and (words[i].text in ("-H", "-L", "-P") or words[i].text.startswith(("-D", "-O"))):
        i += 2 if words[i].text == "-D" else 1
    starts: list[Word] = []
    for w in words[i:]:
        if w.text.startswith(("-", "(", "!")):
            break
        starts.append(w)
    execs: list[list[Word]] = []
    texts = [w.text for w in words]
    for j, t in enumerate(texts):
        if t in ("-exec", "-execdir", "-ok", "-okdir"):
            inner: list[Word] = []
            for w in words[j + 1 :]:
                if w.text in (";", "+"):
                    break
                inner.append(w)
            execs.append(inner)
    return starts or [Word(".")], execs


def _text(cmd: Cmd) -> str:
    words = [w.text for w in cmd.argv] + [f"{op} {w.text}" for op, w in cmd.redirects]
    s = " ".join(words)
    return s if len(s) <= 120 else s[:117] + "..."


def _glob_base(text: str) -> str:
    """The path a glob stands for when nothing matches it (bash passes it on as written): a
    match-all component (`*`, `.*`) is its folder itself (`rm -rf ROOT/*` empties ROOT), any other
    one (`*.egg-info`) a child of its folder; what follows it is kept (`*/../..` climbs)."""
    cut = min((i for i in (text.find(c) for c in "*?[") if i != -1), default=-1)
    if cut == -1:
        return text
    start = text.rfind("/", 0, cut) + 1
    end = text.find("/", cut)
    end = len(text) if end == -1 else end
    folder = text[:start] or "./"
    if set(text[start:end]) <= set("*?.") and end == len(text):
        return folder
    return folder + "glob-match" + text[end:]


class BashCheck:
    """Findings for one parsed command against one storage guard."""

    def __init__(self, guard: StorageGuard, parsed: Parsed) -> None:
        self.guard, self.parsed = guard, parsed
        self.findings: list[Finding] = []
        self.bases = (guard.root_resolved, *guard.allow)
        self.links: dict[str, str] = {}  # symlinks made by `ln -s` earlier in the command

    def run(self) -> list[Finding]:
        for why in self.parsed.refusals:
            self.add("bash", f"{why}, so this command cannot be checked. {SPLIT_IT}")
        for cmd in self.parsed.cmds:
            self.command(cmd)
        return self.findings

    def add(self, guard: str, reason: str, path: str = "") -> None:
        if not any(f.guard == guard and f.reason == reason for f in self.findings):
            self.findings.append(Finding(guard, reason, path))

    def command(self, cmd: Cmd) -> None:
        name = cmd.name
        if self.guard.host is not None and name:
            for f in host_findings(cmd, self.guard.host, write_targets(cmd)):
                self.add(f.guard, f.reason, f.path)
        for _op, target in cmd.redirects:
            self.write(cmd, target, "redirects output to")
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
        if self.guard.protected is not None and (what := _rewires_guards(cmd)):
            self.add(
                "bash",
                f"`{_text(cmd)}` {what}: what guards this session is protected (hook settings, role "
                "files); the agent may not run it, a person runs it outside the agent session",
            )
            return
        if name == "find":
            for i, w in enumerate(cmd.argv[:-1]):
                if w.text in ("-fprint", "-fprint0", "-fls", "-fprintf"):
                    self.write(cmd, cmd.argv[i + 1], "writes its list to")
            if any(w.text == "-delete" for w in cmd.argv):
                check = self.write if _find_filters(cmd) else self.tree
                for s in find_parts(cmd)[0]:  # deletes what matches beneath each start folder
                    check(cmd, s, "deletes files under")
            return
        tree = (name == "rm" and _recursive(cmd)) or (name in MODE_TOOLS and _recursive(cmd))
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
            if tree:
                self.tree(cmd, target, "recursively deletes" if name == "rm" else "recursively changes")
            else:
                self.write(cmd, target, "removes" if name in ("rm", "rmdir", "unlink", "shred") else "writes")
        if name == "ln":  # after its own target is checked: the link is new, not followed
            self.hard_link(cmd)
            self.note_link(cmd)

    def places(self, cmd: Cmd, w: Word, follow: bool = True) -> list[str] | None:
        """The paths word `w` stands for, relative ones against the command's cwd: a glob is
        expanded on the real filesystem (`*/../..` climbs from each match) besides its literal
        folder; `/proc/self/cwd` is the tracked cwd. None if the cwd or the word is unknown."""
        text = w.text
        for proc in PROC_CWD:
            if text == proc or text.startswith(proc + "/"):
                if cmd.cwd is None:
                    return None
                text = cmd.cwd + text[len(proc) :]
        if text == "/proc/self/root" or text.startswith("/proc/self/root/"):
            text = text[len("/proc/self/root") :] or "/"
        if not os.path.isabs(text) and cmd.cwd is None:
            return None
        out = [_glob_base(text)]
        if any(c in text for c in "*?["):
            matches = glob.glob(text, root_dir=cmd.cwd)[:GLOB_CAP]
            out += [m if os.path.isabs(m) else os.path.join(cmd.cwd or "/", m) for m in matches]
        return [self.through_links(p, cmd.cwd, follow) for p in out]

    def through_links(self, path: str, cwd: str | None, follow: bool) -> str:
        """`path` with a symlink an earlier `ln -s` of this command made replaced by its target,
        when the path goes through it (`ln -s /x l && rm -rf l/` deletes what is in /x), or is it
        and `follow` (a write to the link writes its target; removing it removes only the link)."""
        full = os.path.normpath(os.path.join(cwd or "/", path)) + ("/" if path.endswith("/") else "")
        for link, target in self.links.items():
            if full.startswith(link + "/") or (follow and full == link):
                return target + full[len(link) :]
        return path

    def hard_link(self, cmd: Cmd) -> None:
        """`ln FILE LINK` of a file outside the root: a write to LINK later is a write to FILE."""
        args, opts = split_args(cmd)
        if "-s" in opts or "--symbolic" in opts or len(args) < 2 or cmd.cwd is None:
            return
        for src in args[:-1]:
            v = self.guard.check(src.text, cmd.cwd)
            if not src.dynamic and not v.allowed:
                self.add(
                    "bash",
                    f"`{_text(cmd)}` hard-links {src.text}, {v.reason}: a write through the link changes "
                    "that file. Copy it under the root instead (`cp`).",
                    v.resolved,
                )

    def note_link(self, cmd: Cmd) -> None:
        """Remember `ln -s TARGET LINK` (LINK in the cwd when omitted) for the commands after it."""
        args, opts = split_args(cmd)
        if "-s" not in opts and "--symbolic" not in opts or not 1 <= len(args) <= 2 or cmd.cwd is None:
            return
        if any(w.dynamic for w in args):
            return
        target = os.path.join(cmd.cwd, args[0].text)
        link = args[1].text if len(args) == 2 else os.path.basename(args[0].text.rstrip("/"))
        link = os.path.normpath(os.path.join(cmd.cwd, link))
        if os.path.isdir(link) and not os.path.islink(link):
            link = os.path.join(link, os.path.basename(args[0].text.rstrip("/")))
        self.links[link] = os.path.normpath(target)
        self.parsed.note("a symlink the command creates is followed for the commands after it")

    def unplaced(self, cmd: Cmd, w: Word, verb: str) -> None:
        """A target known only at run time: refused when the command came from the fallback
        parser or goes through another process's /proc cwd or root (it may be anything),
        else noted as unseen."""
        if cmd.uncertain or _foreign_proc(w.text):
            self.add("bash", f"`{_text(cmd)}` {verb} {w.text!r}, which cannot be placed. {SPLIT_IT}", w.text)
        else:
            self.parsed.note(f"write target {w.text!r} is known only at run time")

    def write(self, cmd: Cmd, w: Word, verb: str) -> None:
        """A write to `w`: refused if it lands outside the root and the allowlist."""
        if _foreign_proc(w.text):
            self.unplaced(cmd, w, verb)
            return
        if w.dynamic:
            prefix = self.static_part(w)
            if prefix is None:
                self.unplaced(cmd, w, verb)
                return
            w = prefix
        follow = verb != "removes"
        paths = self.places(cmd, w, follow)
        if paths is None:
            self.unplaced(cmd, w, verb)
            return
        host = self.guard.host
        for path in paths:
            v = self.guard.check(path, cmd.cwd, follow)
            if host is not None and kernel_path(v.resolved or path):
                continue  # a kernel setting, not storage: the privileged rule judges it
            if v.allowed:
                edit = bench_edit(v.resolved, host, f"`{_text(cmd)}` {verb}") if host is not None else None
                if edit is not None:
                    self.add(edit.guard, edit.reason, edit.path)
                continue
            if _backup(cmd):
                if host is not None and host.allowed(cmd):
                    continue
                self.add(
                    "backup",
                    f"`{_text(cmd)}` {verb} {w.text}, {v.reason.split('; ')[0]}: backups go under "
                    f"{self.guard.root_resolved}/backups, or the operator adds the destination to allow_write "
                    "in the epyc-agent config.",
                    v.resolved,
                )
                return
            self.add(
                "bash",
                f"`{_text(cmd)}` {verb} {w.text}, {v.reason} (temp files: "
                f"{self.guard.root_resolved}/tmp). If the user really needs this path, ask them (it can be "
                "added to allow_write in the epyc-agent config).",
                v.resolved,
            )
            return

    def static_part(self, w: Word) -> Word | None:
        """For `/etc/$f`: the folder known before run time, if no expansion could lead from it
        into the root or an allowlisted folder; else None."""
        cut = min((i for i in (w.text.find("$"), w.text.find("`")) if i != -1), default=-1)
        prefix = os.path.dirname(w.text[:cut]) if cut > 0 else ""
        if os.path.isabs(prefix) and "/../" not in w.text[cut:] + "/":
            resolved = os.path.realpath(prefix)
            if not any(is_under(b, resolved) for b in self.bases):
                return Word(prefix)
        return None

    def tree(self, cmd: Cmd, w: Word, verb: str) -> None:
        """A recursive delete or mode change: refused for the root, an ancestor of it, an
        allowlisted folder, anything outside, and any path that cannot be placed."""
        paths = None if w.dynamic or _foreign_proc(w.text) else self.places(cmd, w, follow=False)
        if paths is None:
            self.tree_unplaced(cmd, w, verb)
            return
        for path in paths:
            v = self.guard.check(path, cmd.cwd, follow=False)
            for base in self.bases:
                if is_under(base, v.resolved):
                    what = "the storage root" if base == self.guard.root_resolved else f"the allowlisted {base}"
                    self.add(
                        "destructive",
                        f"`{_text(cmd)}` {verb} {what} or a folder holding it (it resolves to {v.resolved}). "
                        "Name specific subfolders under the root instead, and log a rollback plan first.",
                        v.resolved,
                    )
                    return
            if not v.allowed:
                self.add(
                    "destructive",
                    f"`{_text(cmd)}` {verb} {w.text}, {v.reason}. Only delete or change "
                    "under the root; anything else is for the user to decide.",
                    v.resolved,
                )
                return

    def tree_unplaced(self, cmd: Cmd, w: Word, verb: str) -> None:
        """`rm -rf "$X/"` deletes from `/` when X is empty; `$(pwd)/..`, `$D/../..` climb out;
        a relative path after a `cd` to an unknown folder may be anywhere."""
        t = w.text
        climbs = ".." in t.split("/")
        if cmd.uncertain or _foreign_proc(t) or not w.dynamic or t.startswith(("$", "/", "`")) or climbs:
            self.add(
                "destructive",
                f"`{_text(cmd)}` {verb} {t!r}, a path known only at run time (an empty variable "
                "turns it into `/...`; an unknown cwd makes it relative to anywhere). Spell the path out "
                "literally, as an absolute path under the storage root.",
                t,
            )
        else:
            self.parsed.note(f"delete target {t!r} is known only at run time")


REWIRING = {
    ("hooks", "install"): "rewrites the hook settings",
    ("hooks", "uninstall"): "removes the hooks",
    ("agents", "install"): "rewrites the role files",
}


def _rewires_guards(cmd: Cmd) -> str | None:
    """What `epyc-agent hooks install|uninstall` or `agents install` (also as `python -m
    epyc_agent`) would change: the CLI itself writes the protected files the parser cannot see."""
    words = [w.text for w in cmd.argv]
    if cmd.name.startswith("python") and "-m" in words[:-1]:
        i = words.index("-m")
        if words[i + 1].split(".")[0] != "epyc_agent":
            return None
        words = words[i + 1 :]
    elif cmd.name != "epyc-agent":
        return None
    return next((REWIRING[p] for p in zip(words[1:], words[2:], strict=False) if p in REWIRING), None)


def _foreign_proc(text: str) -> bool:
    """`/proc/PID/cwd/...` or `/proc/PID/root/...` of a process other than the command itself:
    where that leads is not known here."""
    parts = text.split("/")
    return (
        len(parts) > 3
        and parts[1] == "proc"
        and parts[3] in ("cwd", "root")
        and parts[2] not in ("self", "thread-self")
    )


RESTIC_WRITES = frozenset({"init", "backup", "forget", "prune", "copy", "tag", "key", "migrate", "rebuild-index",
                           "repair", "unlock", "rewrite"})  # fmt: skip
BORG_WRITES = frozenset({"init", "rcreate", "create", "prune", "delete", "rdelete", "compact", "rename", "recreate",
                         "upgrade", "key", "break-lock", "import-tar"})  # fmt: skip
BACKUP_REPOS = {"restic": _restic_targets, "borg": _borg_targets, "rclone": _rclone_targets}
SPLIT_IT = (
    "Write it as plain commands with literal paths under the storage root (one per line, no "
    "nested shells or constructs the guard cannot read), or ask the user to run it."
)
PROC_CWD = ("/proc/self/cwd", "/proc/thread-self/cwd", "/dev/fd/../cwd")
GLOB_CAP = 500
