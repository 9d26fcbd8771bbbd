"""Commands that run another command: which of their options take a value, and what else
they do (change the cwd, write a log file, run a shell string).

`unwrap()` peels wrappers off the front of argv (`sudo -u x env -C /d nice -n 5 rm ...`)
so the guard sees the command that really runs. A wrapper's option that is not in
its table is taken as a flag; a value taken as a flag would make the value look
like the command, so every option that takes a value is listed here, short and long.
"""

from __future__ import annotations

import os
import shlex

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .shell import Word


class Spec:
    """One wrapper: short options taking a value (`short`), long ones (`long`), how many
    positional words it takes before the command (`timeout 5`, `chroot DIR`), and the
    options that set the cwd, write a file, or give a shell string to run."""

    __slots__ = ("short", "long", "positional", "chdir", "writes", "script", "split", "after")

    def __init__(
        self,
        short: str = "",
        long: tuple[str, ...] = (),
        positional: int = 0,
        chdir: tuple[str, ...] = (),
        writes: tuple[str, ...] = (),
        script: tuple[str, ...] = (),
        split: tuple[str, ...] = (),
        after: bool = False,
    ) -> None:
        self.short, self.long, self.positional = short, frozenset(long), positional
        self.chdir, self.writes, self.script, self.split = chdir, writes, script, split
        self.after = after  # options may follow the positional words too (`flock F -c CMD`, `su U -c CMD`)


TABLE: dict[str, Spec] = {
    "sudo": Spec(
        "ugCDhprtUTR",
        ("--user", "--group", "--chdir", "--host", "--prompt", "--role", "--type", "--other-user", "--chroot"),
        chdir=("-D", "--chdir"),
    ),
    "doas": Spec("uC"),
    "env": Spec(
        "uCS", ("--unset", "--chdir", "--split-string"), chdir=("-C", "--chdir"), split=("-S", "--split-string")
    ),
    "nice": Spec("n", ("--adjustment",)),
    "nohup": Spec(),
    "setsid": Spec(),
    "unbuffer": Spec(),
    "builtin": Spec(),
    "command": Spec(),
    "exec": Spec("a"),
    "time": Spec("fo", ("--format", "--output"), writes=("-o", "--output")),
    "timeout": Spec("sk", ("--signal", "--kill-after"), positional=1),
    "stdbuf": Spec("ioe", ("--input", "--output", "--error")),
    "ionice": Spec("cnp", ("--class", "--classdata", "--pid")),
    "chrt": Spec("TPD", ("--sched-runtime", "--sched-period", "--sched-deadline"), positional=1),
    "taskset": Spec("", (), positional=1),
    "numactl": Spec(
        "NmCpiPa",
        (
            "--cpunodebind",
            "--membind",
            "--physcpubind",
            "--preferred",
            "--interleave",
            "--cpubind",
            "--weighted-interleave",
            "--preferred-many",
        ),
    ),
    "xargs": Spec(
        "aIiLlnPdEes",
        ("--arg-file", "--replace", "--max-lines", "--max-args", "--max-procs", "--delimiter", "--eof", "--max-chars"),
    ),
    "flock": Spec(
        "wEc", ("--timeout", "--conflict-exit-code", "--command"), positional=1, script=("-c", "--command"), after=True
    ),
    "strace": Spec(
        "oepsuEPIXabS",
        ("--output", "--trace", "--attach", "--user", "--env", "--trace-path"),
        writes=("-o", "--output"),
    ),
    "ltrace": Spec("oepsuEnaAlLX", ("--output",), writes=("-o", "--output")),
    "perf": Spec("oepcFCGmIt", ("--output", "--event", "--pid", "--cpu", "--repeat"), writes=("-o", "--output")),
    "chroot": Spec("", ("--userspec", "--groups", "--skip-chdir"), positional=1),
    "su": Spec(
        "sgGcw",
        ("--shell", "--group", "--supp-group", "--command", "--whitelist-environment"),
        positional=1,
        script=("-c", "--command"),
        after=True,
    ),
    "coproc": Spec(),
    "script": Spec(
        "cOITBE",
        ("--command", "--log-out", "--log-in", "--log-io", "--log-timing", "--echo"),
        script=("-c", "--command"),
        writes=("-O", "--log-out", "-I", "--log-in", "-B", "--log-io", "-T", "--log-timing"),
    ),
    "watch": Spec("nqd", ("--interval", "--differences")),
    "busybox": Spec(),
    "runuser": Spec(
        "ugGcsw", ("--user", "--group", "--command", "--shell"), positional=1, script=("-c", "--command"), after=True
    ),
    "sg": Spec("c", (), positional=1, script=("-c",), after=True),
    "fakeroot": Spec("ils", ()),
    "valgrind": Spec(),
    "unshare": Spec("", ("--wd", "--root", "--setuid", "--setgid"), chdir=("--wd",)),
    "nsenter": Spec("tSGdrw", ("--target", "--setuid", "--setgid", "--wd", "--root"), chdir=("-w", "--wd")),
    "systemd-run": Spec(
        "pEuMHs",
        (
            "--property",
            "--setenv",
            "--unit",
            "--machine",
            "--host",
            "--slice",
            "--working-directory",
            "--description",
            "--uid",
            "--gid",
        ),
        chdir=("--working-directory",),
    ),
}
PERF_SUBCOMMANDS = {"record", "stat", "trace", "top", "sched", "mem", "c2c", "kvm", "lock"}
# the command after these is run through `sh -c "ARGS..."`, so its words are a script
SHELL_JOINED = {"watch", "sg"}


class Unwrapped:
    """What the wrappers in front of a command add: the command itself, the wrapper names,
    a cwd set by one (`env -C`), files they write (`strace -o`), shell strings they run
    (`su -c`, `flock -c`, `env -S`) and variables they set (`env A=1`)."""

    def __init__(self, words: list[Word]) -> None:
        self.words = words
        self.wrapped: list[str] = []
        self.chdir: Word | None = None
        self.writes: list[Word] = []
        self.scripts: list[Word] = []
        self.assigns: dict[str, Word] = {}
        self.split: Word | None = None
        self.replace: str | None = None  # xargs -I R: R in the command stands for each input line
        self.argfile = False  # xargs -a FILE: the arguments come from FILE, not stdin
        self.runs = True  # False for `command -v X`: nothing runs


def unwrap(words: list[Word]) -> Unwrapped:
    """Strip leading wrappers and their options off argv (see the module docstring)."""
    out = Unwrapped(words)
    i = 0
    while i < len(words):
        name = os.path.basename(words[i].text)
        spec = TABLE.get(name)
        if spec is None:
            break
        out.wrapped.append(name)
        i += 1
        if name == "perf" and i < len(words) and words[i].text in PERF_SUBCOMMANDS:
            i += 1
        i = _options(words, i, name, spec, out)
        if name == "script" and i < len(words):
            out.writes.append(words[i])  # `script [opts] FILE`: the typescript
            i = len(words)
        if name == "su" and i < len(words) and words[i].text == "-":
            i += 1
        if not (name == "runuser" and any(w.text.startswith(("-u", "--user")) for w in words[:i])):
            i = min(i + spec.positional, len(words))  # `runuser -u U -- CMD` names no user positionally
        if spec.after:
            i = _options(words, i, name, spec, out)
            if name == "su" or out.scripts:
                i = len(words)  # `su U -c CMD`: the rest are the shell's; `flock F -c CMD`: nothing else runs
        if out.split is not None:  # `env -S 'cmd args' more`: the string is split into words
            rest = " ".join(shlex.quote(w.text) for w in words[i:])
            out.scripts.append(type(out.split)(f"{out.split.text} {rest}", out.split.dynamic))
            out.split, i = None, len(words)
        if name == "sudo" and any(w.text in ("-s", "-i", "--shell", "--login") for w in words[:i]):
            name = "watch"  # `sudo -s CMD ARGS`: run as `$SHELL -c 'CMD ARGS'`, like watch does
        if name in SHELL_JOINED and i < len(words):
            from .shell import Word as W

            out.scripts.append(W(" ".join(w.text for w in words[i:]), any(w.dynamic for w in words[i:])))
            i = len(words)
    out.words = words[i:]
    return out


def _options(words: list[Word], i: int, name: str, spec: Spec, out: Unwrapped) -> int:
    """Consume the wrapper's options from words[i]; return the index after them."""
    while i < len(words):
        w = words[i]
        t = w.text
        if t == "--":
            return i + 1
        if name == "env" and "=" in t and not t.startswith("-") and t.partition("=")[0].isidentifier():
            k, _, v = t.partition("=")
            out.assigns[k] = type(w)(v, w.dynamic)
            i += 1
            continue
        if not t.startswith("-") or t == "-":
            return i
        opt, value, i = _one_option(words, i, spec)
        if name in ("command", "builtin") and opt in ("-v", "-V"):
            out.runs = False
        if value is None:
            continue
        if opt in spec.chdir:
            out.chdir = value
        elif opt in spec.writes:
            out.writes.append(value)
        elif opt in spec.script:
            out.scripts.append(value)
        elif opt in spec.split:
            out.split = value
        elif name == "xargs" and opt in ("-I", "-i", "--replace"):
            out.replace = value.text
        elif name == "xargs" and opt in ("-a", "--arg-file"):
            out.argfile = True
    return i


def _one_option(words: list[Word], i: int, spec: Spec) -> tuple[str, Word | None, int]:
    """The option at words[i] (`-oFILE`, `-o FILE`, `-qo FILE`, `--out=F`, `--out F`), its value."""
    w = words[i]
    t = w.text
    make = type(w)
    if t.startswith("--"):
        key, eq, val = t.partition("=")
        if eq:
            return key, make(val, w.dynamic), i + 1
        if key in spec.long and i + 1 < len(words):
            return key, words[i + 1], i + 2
        return key, None, i + 1
    for k, ch in enumerate(t[1:], 1):
        if ch in spec.short:
            rest = t[k + 1 :]
            if rest:
                return "-" + ch, make(rest, w.dynamic), i + 1
            if i + 1 < len(words):
                return "-" + ch, words[i + 1], i + 2
            return "-" + ch, None, i + 1
    return t, None, i + 1
