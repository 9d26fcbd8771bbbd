"""Which llama.cpp build a timed run measures: every binary or library it runs, by path, version
line and sha256. A figure is only comparable with another from the same build, so each run
records its build in config.json, and `measurement.llama_cpp_sha256` / `llama_cpp_version` in the
config pin it: a run on any other build is refused before it starts (a rebuilt or swapped
binary, a second llama.cpp earlier on the path).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config import Config

EMBEDDED_LIBS = ("libllama.so", "libggml.so", "libggml-base.so", "libggml-cpu.so")
_DIGESTS: dict[tuple[str, int, int], str] = {}


def sha256(path: str) -> str:
    """The file's sha256, once per (path, size, mtime) in this process."""
    st = os.stat(path)
    key = (path, st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        with open(path, "rb") as f:
            _DIGESTS[key] = hashlib.file_digest(f, "sha256").hexdigest()
    return _DIGESTS[key]


def identity(path: str, version: str) -> dict[str, str]:
    real = os.path.realpath(path)
    return {"path": real, "version": version, "sha256": sha256(real)}


def embedded_build() -> list[dict[str, str]]:
    """llama-cpp-python's own libraries (the code that generates), with the package version."""
    from importlib.metadata import version
    from importlib.util import find_spec

    spec = find_spec("llama_cpp")
    lib_dir = os.path.join(os.path.dirname(spec.origin or ""), "lib") if spec else ""
    ver = f"llama-cpp-python {version('llama-cpp-python')}"
    return [identity(p, ver) for n in EMBEDDED_LIBS if os.path.isfile(p := os.path.join(lib_dir, n))]


def binaries_build(bin_dir: str, tools: dict[str, str]) -> list[dict[str, str]]:
    """The tools a binaries run uses (each with its `--version` line) and the shared libraries
    beside them (a shared build loads its libllama.so from there)."""
    out = [identity(p, version_line(p)) for p in tools.values()]
    try:
        libs = sorted(n for n in os.listdir(bin_dir) if n.startswith(("libllama", "libggml")) and n.endswith(".so"))
    except OSError:
        libs = []
    line = out[0]["version"] if out else ""
    return out + [identity(os.path.join(bin_dir, n), line) for n in libs]


def build_for(plan: Any) -> list[dict[str, str]]:
    """The build a planned run executes, for its backend."""
    if plan.backend == "binaries":
        from ..tracks.backends.binaries import used_tools

        return binaries_build(plan.llama_cpp_bin or "", used_tools(plan.llama_cpp_bin or ""))
    return embedded_build()


def version_line(tool: str) -> str:
    """The first line a llama.cpp tool prints for --version ('version: 7404 (52392291b)'), or ''."""
    from ..tracks.backends.binaries import tool_env

    try:
        p = subprocess.run([tool, "--version"], capture_output=True, text=True, timeout=30, env=tool_env())
    except (OSError, subprocess.TimeoutExpired):
        return ""
    lines = [ln.strip() for ln in (p.stdout + p.stderr).splitlines() if ln.strip()]
    return next((ln for ln in lines if ln.startswith("version")), lines[0] if lines else "")


def pin_problem(cfg: Config, build: list[dict[str, str]]) -> str | None:
    """Why this build is not the pinned one (None: no pin, or it matches)."""
    pins = {p.lower() for p in cfg.measurement.get("llama_cpp_sha256") or []}
    want = cfg.measurement.get("llama_cpp_version") or ""
    if not (pins or want):
        return None
    if not build:
        return "no llama.cpp binary or library was found to check against measurement.llama_cpp_* in the config"
    for b in build:
        if pins and b["sha256"] not in pins:
            return (f"{b['path']} has sha256 {b['sha256'][:16]}..., not one pinned in measurement.llama_cpp_sha256 "
                    "(a rebuilt or different llama.cpp)")  # fmt: skip
        if want and want not in b["version"]:
            return f"{b['path']} reports {b['version']!r}, not the pinned version {want!r}"
    return None
