"""Small readers for kernel and hardware values. Each returns None when the value
cannot be read (a VM without cpufreq, a container without /sys): callers turn
None into SKIP or null, never into a failure (the old toolkit scored an unreadable
value as FAIL).

Units: bytes from the kernel; `GB` in this package always means 10^9 bytes, the
same unit as the config's `disk.min_free_gb`.
"""

from __future__ import annotations

import glob
import os
import re

GB = 1e9

THP_PATH = "/sys/kernel/mm/transparent_hugepage/enabled"
NUMA_BALANCING_PATH = "/proc/sys/kernel/numa_balancing"
PARANOID_PATH = "/proc/sys/kernel/perf_event_paranoid"
GOVERNOR_GLOB = "/sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_governor"
NODE_GLOB = "/sys/devices/system/node/node[0-9]*"


def read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return None


def read_int(path: str) -> int | None:
    text = read_text(path)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def bracketed(text: str | None) -> str | None:
    """The selected value of a sysfs choice line: 'always [madvise] never' -> 'madvise'."""
    if text is None:
        return None
    m = re.search(r"\[([^\]]+)\]", text)
    return m.group(1) if m else text or None


def thp() -> str | None:
    return bracketed(read_text(THP_PATH))


def governors() -> list[str] | None:
    """The distinct CPU frequency governors in use, or None without cpufreq."""
    found = {g for p in glob.glob(GOVERNOR_GLOB) if (g := read_text(p))}
    return sorted(found) or None


def numa_nodes() -> list[int] | None:
    nodes = [int(os.path.basename(p)[4:]) for p in glob.glob(NODE_GLOB)]
    return sorted(nodes) or None


def meminfo() -> dict[str, int] | None:
    """/proc/meminfo in bytes (HugePages_* counts stay counts)."""
    text = read_text("/proc/meminfo")
    if text is None:
        return None
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if not parts or not parts[0].isdigit():
            continue
        out[key] = int(parts[0]) * (1024 if len(parts) > 1 and parts[1] == "kB" else 1)
    return out


def cpuinfo() -> dict[str, object] | None:
    """Model name, logical CPUs, physical cores and the flags of the first processor."""
    text = read_text("/proc/cpuinfo")
    if text is None:
        return None
    model, flags, logical = None, [], 0
    cores: set[tuple[str, str]] = set()
    phys = core = ""
    for line in text.splitlines():
        key, _, value = (s.strip() for s in line.partition(":"))
        if key == "processor":
            logical += 1
        elif key == "model name" and model is None:
            model = value
        elif key == "flags" and not flags:
            flags = value.split()
        elif key == "physical id":
            phys = value
        elif key == "core id":
            core = value
            cores.add((phys, core))
    return {"model": model, "threads": logical or os.cpu_count(), "cores": len(cores) or None, "flags": flags}
