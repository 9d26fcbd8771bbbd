"""Health checks: PASS / WARN / FAIL / SKIP per check, each with a fix hint.

Two profiles: `session` (is this host fit to work on?) and `batch` (adds what
invalidates a benchmark: NUMA balancing, another llama.cpp process, a loadable
llama-cpp-python). Rules learned from the old toolkit:
- a value that cannot be read is SKIP, never FAIL;
- process checks match a process's own program name, never a substring of a
  whole command line, and never this process or its ancestors (`pgrep -f claude`
  found itself);
- every threshold names its unit (GB = 10^9 bytes, as in the config).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from . import probe

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from ..config import Config

PROFILES = ("session", "batch")
STATUSES = ("PASS", "WARN", "FAIL", "SKIP")
# programs whose presence makes a benchmark's numbers meaningless
HEAVY_PROGRAMS = (
    "llama-server",
    "llama-bench",
    "llama-cli",
    "llama-completion",
    "llama-mtmd-cli",
    "llama-speculative",
    "llama-perplexity",
    "llama-batched-bench",
    "llama-lookup",
)
RAM_WARN_PCT, RAM_FAIL_PCT = 15.0, 5.0  # available RAM, % of total
SWAP_WARN_PCT = 25.0  # swap in use, % of swap
LOAD_WARN_PER_CORE = {"session": 1.0, "batch": 0.5}  # 1-min load average per logical CPU


class Check:
    """One check's outcome."""

    __slots__ = ("name", "status", "value", "detail", "fix")

    def __init__(self, name: str, status: str, detail: str, fix: str = "", value: Any = None) -> None:
        assert status in STATUSES, status
        self.name, self.status, self.detail, self.fix, self.value = name, status, detail, fix, value

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "value": self.value, "detail": self.detail, "fix": self.fix}

    def line(self) -> str:
        return f"{self.status} {self.name}: {self.detail}" + (f" (fix: {self.fix})" if self.fix else "")


def _skip(name: str, what: str) -> Check:
    return Check(name, "SKIP", f"cannot read {what}")


# --- checks ------------------------------------------------------------------------------


def check_root(cfg: Config) -> Check:
    root = cfg.root
    if not os.path.isdir(root):
        return Check(
            "root",
            "FAIL",
            f"storage root {root} does not exist",
            "create it (`epyc-agent session start --init`) or set EPYC_AGENT_ROOT",
        )
    if not os.access(root, os.W_OK | os.X_OK):
        return Check("root", "FAIL", f"storage root {root} is not writable", f"fix permissions: chmod u+rwx {root}")
    return Check("root", "PASS", f"{root} present and writable")


def check_disk(cfg: Config) -> Check:
    if not os.path.isdir(cfg.root):
        return Check("disk", "SKIP", "storage root missing")
    try:
        st = os.statvfs(cfg.root)
    except OSError as e:
        return _skip("disk", f"disk usage of {cfg.root} ({e.strerror})")
    total, free = st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize
    used_pct = 100.0 * (total - free) / total if total else 0.0
    free_gb = free / probe.GB
    lim = cfg.disk
    value = {"used_pct": round(used_pct, 1), "free_gb": round(free_gb, 1), "total_gb": round(total / probe.GB, 1)}
    detail = (
        f"{used_pct:.1f}% used, {free_gb:.1f} GB free (limits: warn {lim['warn_used_pct']}%, "
        f"critical {lim['critical_used_pct']}%, min free {lim['min_free_gb']} GB)"
    )
    fix = "free space: `epyc-agent storage cleanup --apply`, or move old models/results off the root"
    if used_pct >= lim["critical_used_pct"] or free_gb < lim["min_free_gb"]:
        return Check("disk", "FAIL", detail, fix, value)
    if used_pct >= lim["warn_used_pct"]:
        return Check("disk", "WARN", detail, fix, value)
    return Check("disk", "PASS", detail, value=value)


def check_ram(cfg: Config) -> Check:
    mem = probe.meminfo()
    if not mem or "MemTotal" not in mem or "MemAvailable" not in mem:
        return _skip("ram", "/proc/meminfo")
    total, avail = mem["MemTotal"], mem["MemAvailable"]
    pct = 100.0 * avail / total if total else 0.0
    value = {
        "available_gb": round(avail / probe.GB, 1),
        "total_gb": round(total / probe.GB, 1),
        "available_pct": round(pct, 1),
    }
    detail = f"{avail / probe.GB:.1f} GB of {total / probe.GB:.1f} GB available ({pct:.0f}%)"
    fix = "stop idle model servers or other memory-heavy jobs (the processes check lists llama.cpp ones)"
    if pct < RAM_FAIL_PCT:
        return Check("ram", "FAIL", detail + f" < {RAM_FAIL_PCT:.0f}%", fix, value)
    if pct < RAM_WARN_PCT:
        return Check("ram", "WARN", detail + f" < {RAM_WARN_PCT:.0f}%", fix, value)
    return Check("ram", "PASS", detail, value=value)


def check_swap(cfg: Config) -> Check:
    mem = probe.meminfo()
    if not mem or "SwapTotal" not in mem or "SwapFree" not in mem:
        return _skip("swap", "/proc/meminfo")
    total, used = mem["SwapTotal"], mem["SwapTotal"] - mem["SwapFree"]
    if total == 0:
        return Check("swap", "PASS", "no swap configured", value={"used_gb": 0.0, "total_gb": 0.0})
    pct = 100.0 * used / total
    value = {"used_gb": round(used / probe.GB, 2), "total_gb": round(total / probe.GB, 2), "used_pct": round(pct, 1)}
    detail = f"{used / probe.GB:.2f} GB of {total / probe.GB:.2f} GB swap in use ({pct:.0f}%)"
    if pct > SWAP_WARN_PCT:
        return Check(
            "swap",
            "WARN",
            detail + f" > {SWAP_WARN_PCT:.0f}%",
            "free RAM, then `sudo swapoff -a && sudo swapon -a` to pull pages back",
            value,
        )
    return Check("swap", "PASS", detail, value=value)


def check_load(cfg: Config, profile: str = "session") -> Check:
    try:
        load1 = os.getloadavg()[0]
    except OSError:
        return _skip("load", "the load average")
    cpus = os.cpu_count() or 1
    per = load1 / cpus
    limit = LOAD_WARN_PER_CORE[profile]
    value = {"load1": round(load1, 2), "cpus": cpus, "per_cpu": round(per, 2)}
    detail = f"1-min load {load1:.2f} on {cpus} logical CPUs ({per:.2f} per CPU, warn above {limit})"
    if per > limit:
        return Check("load", "WARN", detail, "wait for other jobs (see `top`); timings now are noisy", value)
    return Check("load", "PASS", detail, value=value)


def check_thp(cfg: Config) -> Check:
    mode = probe.thp()
    if mode is None:
        return _skip("thp", probe.THP_PATH)
    if mode == "never":
        return Check(
            "thp",
            "WARN",
            "transparent hugepages disabled (never)",
            f"echo madvise | sudo tee {probe.THP_PATH}  (undo: echo never | sudo tee ...)",
            mode,
        )
    return Check("thp", "PASS", f"transparent hugepages: {mode}", value=mode)


def check_governor(cfg: Config) -> Check:
    govs = probe.governors()
    if govs is None:
        return _skip("governor", "cpufreq scaling_governor (none on most VMs)")
    if govs != ["performance"]:
        return Check(
            "governor",
            "WARN",
            f"CPU governor {', '.join(govs)}, not performance",
            "sudo cpupower frequency-set -g performance  (undo: -g " + govs[0] + ")",
            govs,
        )
    return Check("governor", "PASS", "CPU governor performance", value=govs)


def check_numa_balancing(cfg: Config) -> Check:
    val = probe.read_int(probe.NUMA_BALANCING_PATH)
    if val is None:
        return _skip("numa_balancing", probe.NUMA_BALANCING_PATH)
    nodes = probe.numa_nodes() or []
    if val and len(nodes) > 1:
        return Check(
            "numa_balancing",
            "WARN",
            f"automatic NUMA balancing on with {len(nodes)} nodes",
            "sudo sysctl kernel.numa_balancing=0  (undo: =1); it migrates pages mid-benchmark",
            val,
        )
    return Check("numa_balancing", "PASS", f"numa_balancing={val}, {len(nodes) or '?'} NUMA node(s)", value=val)


def check_perf_paranoid(cfg: Config) -> Check:
    val = probe.read_int(probe.PARANOID_PATH)
    if val is None:
        return _skip("perf_event_paranoid", probe.PARANOID_PATH)
    if val > 1:
        return Check(
            "perf_event_paranoid",
            "WARN",
            f"perf_event_paranoid={val}: no user perf profiling",
            "sudo sysctl kernel.perf_event_paranoid=1  (undo: =" + str(val) + ")",
            val,
        )
    return Check("perf_event_paranoid", "PASS", f"perf_event_paranoid={val}", value=val)


def own_lineage() -> set[int]:
    """This process and its ancestors: never counted as 'another' process."""
    import psutil

    me = psutil.Process()
    pids = {me.pid}
    try:
        pids.update(p.pid for p in me.parents())
    except psutil.Error:
        pids.add(os.getppid())
    return pids


def program_name(cmdline: list[str], name: str) -> str:
    """A process's program: the base name of argv[0], else the kernel's name for it. A script run by
    its interpreter (`python /x/epyc-agent track run`) is named by the script, and `python -m
    epyc_agent` (a detached run) is epyc-agent."""
    if not cmdline or not cmdline[0]:
        return name
    prog = os.path.basename(cmdline[0])
    if prog.startswith("python") and cmdline[1:3] == ["-m", "epyc_agent"]:
        return "epyc-agent"
    if prog.startswith("python") and len(cmdline) > 1 and not cmdline[1].startswith("-"):
        return os.path.basename(cmdline[1])
    return prog


def is_heavy(cmdline: list[str], prog: str, programs: set[str]) -> bool:
    """A llama.cpp tool by name, or another `epyc-agent track run|rerun|resume` (in-process
    inference): decided on argv positions, never on a substring of the whole command line."""
    if prog in programs:
        return True
    if prog != "epyc-agent":
        return False
    args = iter(cmdline[1 if os.path.basename(cmdline[0]) == prog else 3 if cmdline[1:2] == ["-m"] else 2 :])
    words = []
    for w in args:
        if w in ("--config", "--root"):  # the global options that take a value
            next(args, None)
        elif not w.startswith("-"):
            words.append(w)
    return words[:2] in (["track", "run"], ["track", "rerun"], ["track", "resume"])


def heavy_processes(programs: Iterable[str] = HEAVY_PROGRAMS) -> list[dict[str, Any]]:
    """Other running llama.cpp tools (exact program name) and `epyc-agent track run`s, anyone's,
    that may run on our CPUs (one pinned to other CPUs does not disturb our figures)."""
    import psutil

    wanted, skip = set(programs), own_lineage()
    ours = os.sched_getaffinity(0)
    found = []
    for p in psutil.process_iter(["pid", "name", "cmdline", "cpu_affinity"]):
        info = p.info
        if info["pid"] in skip:
            continue
        cmdline = info.get("cmdline") or []
        prog = program_name(cmdline, info.get("name") or "")
        cpus = info.get("cpu_affinity")  # None when unreadable: assume it may use ours
        if is_heavy(cmdline, prog, wanted) and (not cpus or ours.intersection(cpus)):
            found.append({"pid": info["pid"], "program": prog, "cmdline": " ".join(info.get("cmdline") or [])[:200]})
    return found


def check_processes(cfg: Config, profile: str = "session") -> Check:
    try:
        procs = heavy_processes()
    except Exception as e:  # noqa: BLE001 - no /proc access: unreadable, not failing
        return _skip("processes", f"the process table ({e})")
    if not procs:
        return Check("processes", "PASS", "no other llama.cpp process running", value=[])
    desc = ", ".join(f"{p['program']} (pid {p['pid']})" for p in procs[:5])
    status = "FAIL" if profile == "batch" else "WARN"
    return Check(
        "processes",
        status,
        f"{len(procs)} other llama.cpp process(es): {desc}",
        "wait for them or stop them (kill PID) before benchmarking",
        procs,
    )


def check_log_dir(cfg: Config) -> Check:
    d = cfg.log_dir
    probe_dir = d
    while not os.path.isdir(probe_dir):
        parent = os.path.dirname(probe_dir)
        if parent == probe_dir:
            break
        probe_dir = parent
    if not os.access(probe_dir, os.W_OK | os.X_OK):
        return Check(
            "log_dir",
            "FAIL",
            f"log dir {d} not writable ({probe_dir} is read-only to us)",
            f"fix permissions on {probe_dir} or set EPYC_AGENT_LOG_DIR",
        )
    what = "writable" if probe_dir == d else f"will be created under {probe_dir}"
    return Check("log_dir", "PASS", f"{d} {what}")


def check_llama_cpp(cfg: Config) -> Check:
    try:
        import llama_cpp  # noqa: F401 - loads the shared library: the real test
    except Exception as e:  # noqa: BLE001 - ImportError or OSError from the .so
        return Check(
            "llama_cpp",
            "FAIL",
            f"llama-cpp-python does not import: {type(e).__name__}: {e}",
            "pip install --force-reinstall llama-cpp-python (CMAKE_ARGS=-DLLAVA_BUILD=OFF)",
        )
    from importlib.metadata import PackageNotFoundError, version

    try:
        ver = version("llama-cpp-python")
    except PackageNotFoundError:
        ver = "?"
    return Check("llama_cpp", "PASS", f"llama-cpp-python {ver} imports", value=ver)


CHECKS: dict[str, tuple[Callable[..., Check], tuple[str, ...], bool]] = {
    # name: (function, profiles, takes the profile)
    "root": (check_root, PROFILES, False),
    "disk": (check_disk, PROFILES, False),
    "ram": (check_ram, PROFILES, False),
    "swap": (check_swap, PROFILES, False),
    "load": (check_load, PROFILES, True),
    "thp": (check_thp, PROFILES, False),
    "governor": (check_governor, PROFILES, False),
    "numa_balancing": (check_numa_balancing, ("batch",), False),
    "perf_event_paranoid": (check_perf_paranoid, PROFILES, False),
    "processes": (check_processes, PROFILES, True),
    "log_dir": (check_log_dir, PROFILES, False),
    "llama_cpp": (check_llama_cpp, ("batch",), False),
}


def run_health(cfg: Config, profile: str = "session") -> list[Check]:
    """Every check of the profile; a check that crashes is reported as SKIP, not hidden."""
    if profile not in PROFILES:
        from ..errors import EpycAgentError

        raise EpycAgentError(f"unknown health profile {profile!r}", hint=f"use one of {', '.join(PROFILES)}")
    out = []
    for name, (fn, profiles, takes_profile) in CHECKS.items():
        if profile not in profiles:
            continue
        try:
            out.append(fn(cfg, profile) if takes_profile else fn(cfg))
        except Exception as e:  # noqa: BLE001 - a broken probe is unreadable, not a failed host
            out.append(Check(name, "SKIP", f"check error: {type(e).__name__}: {e}"))
    return out


def summary(checks: list[Check]) -> dict[str, int]:
    return {s: sum(c.status == s for c in checks) for s in STATUSES}


def log_results(log: Any, checks: list[Check], profile: str) -> None:
    """One OBSERVE with the counts, plus a WARN or ERROR event per problem."""
    counts = summary(checks)
    log.observe(
        f"health {profile}",
        " ".join(f"{k}={v}" for k, v in counts.items()),
        data={"profile": profile, "counts": counts, "checks": [c.as_dict() for c in checks]},
    )
    for c in checks:
        if c.status == "FAIL":
            log.error(f"health {c.name}: {c.detail}", f"fix: {c.fix}")
        elif c.status == "WARN":
            log.warn(f"health {c.name}: {c.detail}", f"fix: {c.fix}")


def priority_lines(cfg: Config, log: Any) -> list[str]:
    """PROVIDERS entry for `session start`: the session profile's FAIL and WARN lines."""
    checks = run_health(cfg, "session")
    log_results(log, checks, "session")
    order = {"FAIL": 0, "WARN": 1}
    bad = sorted((c for c in checks if c.status in order), key=lambda c: order[c.status])
    return [f"health {c.line()}" for c in bad]
