"""System audit: what the host is, for the record next to every benchmark.

Everything a result depends on (ISA, NUMA, hugepages, governor, compilers, the
llama.cpp build's features) read once, saved as JSON under `<root>/system/`,
and logged as OBSERVE events. Unreadable values are null, never guesses.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from typing import TYPE_CHECKING, Any

from . import probe

if TYPE_CHECKING:
    from ..config import Config

ISA_PREFIXES = ("avx2", "avx512", "amx", "avx_vnni", "fma", "f16c")
COMPILERS = ("gcc", "clang", "cmake")


def tool_version(name: str) -> str | None:
    """First line of `NAME --version`, or None when it is not installed or fails."""
    path = shutil.which(name)
    if path is None:
        return None
    try:
        r = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    first = (r.stdout or r.stderr).strip().splitlines()
    return first[0] if r.returncode == 0 and first else None


def lscpu() -> dict[str, str] | None:
    path = shutil.which("lscpu")
    if path is None:
        return None
    try:
        r = subprocess.run([path], capture_output=True, text=True, timeout=10, env={**os.environ, "LC_ALL": "C"})
    except (OSError, subprocess.SubprocessError):
        return None
    if r.returncode != 0:
        return None
    out = {}
    for line in r.stdout.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() != "Flags":
            out[key.strip()] = value.strip()
    return out


def llama_system_info() -> str | None:
    """llama.cpp's own feature line (AVX512 = 1 | ...), from the installed llama-cpp-python."""
    try:
        import llama_cpp

        info = llama_cpp.llama_print_system_info()
    except Exception:  # noqa: BLE001 - missing or broken build: null, the audit goes on
        return None
    return (info.decode("utf-8", "replace") if isinstance(info, bytes) else str(info)).strip()


def collect() -> dict[str, Any]:
    """The audit as plain data (null where a value cannot be read)."""
    cpu = probe.cpuinfo() or {}
    flags = list(cpu.get("flags") or [])  # type: ignore[call-overload]
    lsc = lscpu()
    mem = probe.meminfo() or {}
    nodes = probe.numa_nodes()
    sockets = lsc.get("Socket(s)") if lsc else None
    per_socket = lsc.get("Core(s) per socket") if lsc else None
    cores = cpu.get("cores") or (
        int(per_socket) * int(sockets)
        if per_socket and sockets and per_socket.isdigit() and sockets.isdigit()
        else None
    )
    return {
        "cpu": {
            "model": cpu.get("model") or (lsc or {}).get("Model name"),
            "cores": cores,
            "threads": cpu.get("threads"),
            "sockets": int(sockets) if sockets and sockets.isdigit() else None,
            "isa": sorted(f for f in flags if f.startswith(ISA_PREFIXES)),
            "avx2": "avx2" in flags if flags else None,
            "avx512": any(f.startswith("avx512") for f in flags) if flags else None,
            "amx": any(f.startswith("amx") for f in flags) if flags else None,
        },
        "lscpu": lsc,
        "numa": {
            "nodes": nodes,
            "count": len(nodes) if nodes else None,
            "balancing": probe.read_int(probe.NUMA_BALANCING_PATH),
        },
        "memory": {
            "total_gb": round(mem["MemTotal"] / probe.GB, 2) if "MemTotal" in mem else None,
            "available_gb": round(mem["MemAvailable"] / probe.GB, 2) if "MemAvailable" in mem else None,
            "hugepages_total": mem.get("HugePages_Total"),
            "hugepages_free": mem.get("HugePages_Free"),
            "hugepage_size_kb": mem["Hugepagesize"] // 1024 if "Hugepagesize" in mem else None,
            "thp": probe.thp(),
        },
        "kernel": {
            "release": os.uname().release,
            "governors": probe.governors(),
            "perf_event_paranoid": probe.read_int(probe.PARANOID_PATH),
        },
        "compilers": {name: tool_version(name) for name in COMPILERS},
        "llama_cpp_system_info": llama_system_info(),
    }


def _llama_features(info: str | None) -> dict[str, str]:
    """'AVX2 = 1 | AVX512 = 1' -> {'AVX2': '1', ...} (for the OBSERVE line)."""
    return dict(re.findall(r"([A-Z0-9_]+) = (\w+)", info or ""))


def run_audit(cfg: Config, log: Any = None) -> tuple[dict[str, Any], str]:
    """Collect, save `<root>/system/audit-<UTC time>.json` atomically, log OBSERVE events."""
    from ..errors import StorageError
    from ..fileio import write_json_atomic

    if not os.path.isdir(cfg.root):
        raise StorageError(
            f"storage root {cfg.root} does not exist",
            hint="create it (`epyc-agent session start --init`) or set EPYC_AGENT_ROOT",
        )
    data = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "host": os.uname().nodename, **collect()}
    path = os.path.join(cfg.root, "system", time.strftime("audit-%Y%m%dT%H%M%SZ.json", time.gmtime()))
    write_json_atomic(path, data)
    if log is not None:
        cpu, mem = data["cpu"], data["memory"]
        log.observe(
            "cpu",
            f"{cpu['model']}; {cpu['cores']} cores / {cpu['threads']} threads; avx512={cpu['avx512']} amx={cpu['amx']}",
            data={"cpu": cpu},
        )
        log.observe(
            "memory",
            f"{mem['total_gb']} GB; hugepages {mem['hugepages_total']}; thp {mem['thp']}",
            data={"memory": mem, "numa": data["numa"]},
        )
        kern = data["kernel"]
        log.observe(
            "kernel",
            f"governors {kern['governors']}; numa_balancing {data['numa']['balancing']}; "
            f"perf_event_paranoid {kern['perf_event_paranoid']}",
            data={"kernel": kern},
        )
        log.observe(
            "compilers",
            "; ".join(f"{k}: {v or 'missing'}" for k, v in data["compilers"].items()),
            data={"compilers": data["compilers"]},
        )
        log.observe(
            "llama.cpp build",
            data["llama_cpp_system_info"] or "unavailable",
            data={"features": _llama_features(data["llama_cpp_system_info"])},
        )
        log.file_modify(path, "create", "system audit saved")
    return data, path
