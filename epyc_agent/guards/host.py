"""The lab's host rules, each from an incident in its history: no privileged host operations
(`sudo`, package installs, service restarts, kernel tunables such as drop_caches), no unbounded
`llama-cli`, no `pytest -n auto`, nothing that disturbs a benchmark while one runs (drop_caches,
edits to benchmark files or to a shell script a process is executing), and no backup written
outside the root (`backup`, decided in bash.py where writes are placed).

Each rule is a guard with its own switch (guards.privileged|unbounded|pytest_workers|live_bench|
backup: enforce|warn|off). `guards.allow_commands` is the operator's allowlist: a simple command
matching one of its globs passes every host rule except `live_bench` (an allowed drop_caches is
still refused while a benchmark runs). Rules judge parsed invocations, never text: a commit
message or a grep that mentions drop_caches is not a write to it.
"""

from __future__ import annotations

import os

from .finding import Finding

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

    from .shell import Cmd, Word

HOST_GUARDS = ("privileged", "unbounded", "pytest_workers", "live_bench", "backup")
ROOT_WRAPPERS = frozenset({"sudo", "doas", "pkexec", "su", "runuser"})
KERNEL_DIRS = ("/proc/sys", "/sys")
DROP_CACHES = "/proc/sys/vm/drop_caches"
APT_VERBS = {"install", "remove", "purge", "upgrade", "full-upgrade", "dist-upgrade", "autoremove", "update"}
PACKAGE_VERBS = {
    "apt": APT_VERBS | {"reinstall"},
    "apt-get": APT_VERBS | {"build-dep"},
    "aptitude": {"install", "remove", "purge", "upgrade", "full-upgrade", "safe-upgrade", "update", "reinstall"},
    "dnf": {"install", "remove", "erase", "upgrade", "update", "reinstall", "downgrade", "autoremove", "swap"},
    "yum": {"install", "remove", "erase", "upgrade", "update", "reinstall", "downgrade", "autoremove", "swap"},
    "zypper": {"install", "in", "remove", "rm", "update", "up", "dist-upgrade", "dup", "patch"},
    "snap": {"install", "remove", "refresh", "revert", "disable", "enable"},
}
DPKG_CHANGES = frozenset({"-i", "--install", "-r", "--remove", "-P", "--purge", "--configure", "--unpack"})
SYSTEMCTL_READS = frozenset(
    {"status", "show", "cat", "list-units", "list-unit-files", "list-timers", "list-sockets", "list-jobs",
     "list-dependencies", "is-active", "is-enabled", "is-failed", "is-system-running", "help", "--version"}
)  # fmt: skip
HOST_TOOLS = frozenset(
    {"reboot", "shutdown", "poweroff", "halt", "telinit", "modprobe", "insmod", "rmmod", "swapon", "swapoff"}
)
LLAMA_CHAT_TOOLS = ("llama-cli", "llama-completion")
INTERACTIVE = frozenset({"-i", "--interactive", "-if", "--interactive-first", "-cnv", "--conversation"})
ONE_SHOT = frozenset({"-no-cnv", "--no-conversation", "-st", "--single-turn"})
MODEL_FLAGS = frozenset({"-m", "--model", "-hf", "-hfr", "--hf-repo", "-mu", "--model-url", "-dr", "--docker-repo"})
N_PREDICT = ("-n", "--n-predict", "--predict")
PYTEST_WORKERS = ("-n", "--numprocesses")
BENCH_DIRS = ("benchmarks", "benchmark")
SHELLS = frozenset({"bash", "sh", "dash", "zsh", "ksh"})


class HostRules:
    """The host rules' settings for one hook call; the benchmark probe runs at most once, and
    only when a rule needs it (it reads the process table)."""

    def __init__(self, guards: dict[str, Any]) -> None:
        self.modes = {g: guards.get(g, "enforce") for g in HOST_GUARDS}
        self.max_workers = int(guards.get("pytest_max_workers", 16))
        self.allow = list(guards.get("allow_commands") or [])
        self._bench: list[dict[str, Any]] | None = None

    def on(self, guard: str) -> bool:
        return self.modes.get(guard, "enforce") != "off"

    def allowed(self, cmd: Cmd) -> bool:
        """The operator allowed this command: its words, with or without its wrappers' names."""
        if not self.allow:
            return False
        import fnmatch

        bare = " ".join(w.text for w in cmd.argv)
        full = " ".join([*cmd.wrapped, bare])
        return any(fnmatch.fnmatchcase(t, p) for p in self.allow for t in (bare, full))

    def benchmarks(self) -> list[dict[str, Any]]:
        """Benchmark processes running now (llama.cpp tools or `epyc-agent track run`, anyone's)."""
        if self._bench is None:
            from ..system.health import heavy_processes

            try:
                self._bench = heavy_processes()
            except Exception:  # noqa: BLE001 - no process table: nothing known to be running
                self._bench = []
        return self._bench

    def bench_note(self) -> str | None:
        """'llama-bench (pid 12)' for the first running benchmark, or None."""
        procs = self.benchmarks() if self.on("live_bench") else []
        more = f" and {len(procs) - 1} more" if len(procs) > 1 else ""
        return f"{procs[0]['program']} (pid {procs[0]['pid']}){more}" if procs else None


def host_findings(cmd: Cmd, rules: HostRules, targets: Iterable[Word]) -> list[Finding]:
    """The host rules' objections to one simple command; `targets` are the paths it writes."""
    text = " ".join([*cmd.wrapped, *(w.text for w in cmd.argv), *(f"{op} {w.text}" for op, w in cmd.redirects)])
    text = text if len(text) <= 120 else text[:117] + "..."
    writes = [*(w.text for _op, w in cmd.redirects), *(w.text for w in targets)]
    kernel = [p for p in writes if kernel_path(p)]
    out: list[Finding] = []
    drops = DROP_CACHES in map(os.path.normpath, kernel) or _sysctl_drop(cmd)
    if drops and (bench := rules.bench_note()):
        out.append(Finding("live_bench", f"`{text}` drops the page cache while {bench} is benchmarking: "
                           "its figures would be wrong. Wait until it ends.", DROP_CACHES))  # fmt: skip
    if rules.allowed(cmd):
        return out
    why = _privileged(cmd, kernel)
    if why and rules.on("privileged"):
        out.append(Finding("privileged", f"`{text}` {why}; host changes are the operator's. Ask the user to run "
                           "it, or to add it to guards.allow_commands in the epyc-agent config."))  # fmt: skip
    why = _unbounded(cmd)
    if why and rules.on("unbounded"):
        out.append(Finding("unbounded", f"`{text}` {why}"))
    why = _pytest_workers(cmd, rules.max_workers)
    if why and rules.on("pytest_workers"):
        out.append(Finding("pytest_workers", f"`{text}` {why}"))
    return out


def bench_edit(path: str, rules: HostRules, verb: str) -> Finding | None:
    """A write to a benchmark file, or to a shell script a process is executing, while a benchmark
    runs (an edit mid-run changes what is measured; bash reads a running script as it goes)."""
    if not rules.on("live_bench"):
        return None
    parts = path.split(os.sep)
    bench_file = any(p in BENCH_DIRS for p in parts[:-1])
    if not bench_file and not path.endswith((".sh", ".bash")):
        return None
    bench = rules.bench_note()
    if bench is None or not (bench_file or _executing(path)):
        return None
    what = "a benchmark file" if bench_file else "a shell script a running process is executing"
    return Finding(
        "live_bench",
        f"{verb} {path}: {what}, while {bench} is benchmarking. Wait until the run ends, then edit it.",
        path,
    )


def kernel_path(path: str) -> bool:
    p = os.path.normpath(path)
    return any(p == d or p.startswith(d + "/") for d in KERNEL_DIRS)


def _sysctl_drop(cmd: Cmd) -> bool:
    return cmd.name == "sysctl" and any(w.text.replace("/", ".").startswith("vm.drop_caches=") for w in cmd.argv)


def _privileged(cmd: Cmd, kernel: list[str]) -> str | None:
    """What makes this command a host operation, or None."""
    name, words = cmd.name, [w.text for w in cmd.argv[1:]]
    root = ROOT_WRAPPERS.intersection(cmd.wrapped) or ROOT_WRAPPERS.intersection([name])
    if kernel:
        what = "drops the page cache for every process" if DROP_CACHES in kernel else f"writes {kernel[0]}"
        return f"{what} (a kernel setting)"
    if name in PACKAGE_VERBS and PACKAGE_VERBS[name].intersection(words[:3]):
        return "changes the host's installed packages"
    if name in ("dpkg", "rpm") and (DPKG_CHANGES.intersection(words) or any(w.startswith(("-U", "-e")) for w in words)):
        return "changes the host's installed packages"
    if name == "systemctl" and "--user" not in words and _first_arg(words) not in (None, *SYSTEMCTL_READS):
        return "changes a system service"
    if name == "service" and len(words) >= 2 and words[1] != "status":
        return "changes a system service"
    if name == "sysctl" and any(w in ("-w", "--write", "-p", "--load", "--system") or "=" in w for w in words):
        return "changes a kernel setting"
    if name in ("mount", "umount") and _first_arg(words) is not None:
        return "mounts or unmounts a filesystem"
    if name in HOST_TOOLS:
        return "changes the host's state"
    if root:
        return f"runs as root through {sorted(root)[0]}"
    return None


def _first_arg(words: list[str]) -> str | None:
    return next((w for w in words if not w.startswith("-") or w == "--version"), None)


def _unbounded(cmd: Cmd) -> str | None:
    """Why a llama-cli/llama-completion run may never end on its own (an agent's shell hangs)."""
    if cmd.name not in LLAMA_CHAT_TOOLS:
        return None
    words = [w.text for w in cmd.argv[1:]]
    if not MODEL_FLAGS.intersection(words):
        return None  # `--version`, `--help`, `--list-devices`: no model, no generation
    if INTERACTIVE.intersection(words):
        return "is interactive and waits for input forever; run it one-shot with -no-cnv and -n N"
    n = next((words[i + 1] for i, w in enumerate(words[:-1]) if w in N_PREDICT), None)
    if n is None:
        return "has no -n/--n-predict, so it generates until the context is full; add -n N (e.g. -n 128)"
    if not n.lstrip("-").isdigit() or int(n) < 0:
        return f"has -n {n}: generation without a bound; give a positive -n N"
    if not ONE_SHOT.intersection(words):
        return ("starts a chat when the model has a chat template and then waits for input; add -no-cnv "
                "(or --single-turn)")  # fmt: skip
    return None


def _pytest_workers(cmd: Cmd, cap: int) -> str | None:
    """pytest-xdist asked for one worker per CPU, or more than the cap."""
    words = [w.text for w in cmd.argv]
    if cmd.name.startswith("python") and "-m" in words[:-1] and words[words.index("-m") + 1] == "pytest":
        words = words[words.index("-m") + 1 :]
    elif cmd.name not in ("pytest", "py.test"):
        return None
    value = None
    for i, w in enumerate(words[1:], 1):
        if w in PYTEST_WORKERS and i + 1 < len(words):
            value = words[i + 1]
        elif w.startswith("--numprocesses="):
            value = w.partition("=")[2]
        elif w.startswith("-n") and len(w) > 2 and not w.startswith("--"):
            value = w[2:].lstrip("=")
    if value is None:
        return None
    if value in ("auto", "logical"):
        return (f"starts one pytest worker per CPU ({value}), which on the lab's server is hundreds and takes "
                f"the machine down; use -n {min(8, cap)}")  # fmt: skip
    if value.isdigit() and int(value) > cap:
        return f"starts {value} pytest workers, more than guards.pytest_max_workers ({cap}); use -n {min(8, cap)}"
    return None


def _executing(path: str) -> bool:
    """Some process runs `path` as a shell script (`bash path ...`, or `path` with a shebang)."""
    import psutil

    real = os.path.realpath(path)
    for p in psutil.process_iter(["cmdline", "cwd"]):
        argv = p.info.get("cmdline") or []
        cands = argv[1:2] if argv and os.path.basename(argv[0]) in SHELLS else []
        for c in cands:
            base = p.info.get("cwd") or "/"
            if os.path.realpath(os.path.join(base, c)) == real:
                return True
    return False
