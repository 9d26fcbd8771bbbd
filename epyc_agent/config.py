"""Configuration: one resolved `Config`, and where each value came from.

Precedence: flag > environment > file > default. The file is found via
`--config`, `$EPYC_AGENT_CONFIG`, `./epyc-agent.yaml`, then
`~/.config/epyc-agent/config.yaml`. Relative paths in the file resolve against
the file's folder; relative paths from flags and the environment against the
current directory.

This module is on the hook's path (a new process per agent tool call), so it
avoids pathlib, dataclasses and typing (each costs 10-20 ms to import on the
lab's VMs) and imports PyYAML only when it must parse a file. A parsed file
is cached as JSON in `<log_dir>/.state/` keyed by path, size and mtime, and
reused when `$EPYC_AGENT_LOG_DIR` points there (as `epyc-agent env` and the
installed hooks arrange).
"""

from __future__ import annotations

import os

from .errors import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

DEFAULT_ROOT = "/mnt/raid0/llm"
CONFIG_ENV = "EPYC_AGENT_CONFIG"
ROOT_ENVS = ("EPYC_AGENT_ROOT", "LLM_ROOT")  # the new name wins over the old toolkit's
LOG_DIR_ENV = "EPYC_AGENT_LOG_DIR"
BIN_ENV = "EPYC_AGENT_LLAMA_CPP_BIN"
GUARD_MODES = ("enforce", "warn", "off")
RESULT_LAYOUTS = ("epyc-agent", "lab")  # run folders: <root>/benchmarks/runs/, or the lab's checkout
DEFAULT_ALLOW_WRITE = ("/dev/null", "/dev/tty", "/dev/stdout", "/dev/stderr", "/dev/shm")
CACHE_NAME = "config-cache.json"


# --- schema -------------------------------------------------------------------


def _is_str(v: Any) -> str:
    if not isinstance(v, str) or not v:
        raise TypeError("expected a non-empty string")
    return v


def _is_num(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise TypeError("expected a number")
    return float(v)


def _is_int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError("expected an integer")
    return v


def _at_least(low: float, check: Callable[[Any], Any] = _is_int) -> Callable[[Any], Any]:
    """`check`, then a lower bound: a count of 0 or a negative limit would switch a rule off unseen."""

    def at_least(v: Any) -> Any:
        n = check(v)
        if n < low:
            raise ValueError(f"expected at least {low:g}")
        return n

    return at_least


def _is_pct(v: Any) -> float:
    n = _is_num(v)
    if not 0 <= n <= 100:
        raise ValueError("expected a percentage from 0 to 100")
    return n


def _is_bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise TypeError("expected true or false")
    return v


def _is_str_list(v: Any) -> list[str]:
    if isinstance(v, str) and v:
        return [v]
    if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
        raise TypeError("expected a list of strings")
    return list(v)


def _is_layout(v: Any) -> str:
    if v not in RESULT_LAYOUTS:
        raise TypeError(f"expected one of {', '.join(RESULT_LAYOUTS)}")
    return str(v)


def _is_mode(v: Any) -> str:
    if isinstance(v, bool):  # YAML 1.1 reads a bare `off` / `on` as a boolean
        return "enforce" if v else "off"
    if v not in GUARD_MODES:
        raise TypeError(f"expected one of {', '.join(GUARD_MODES)}")
    return str(v)


# Top-level keys: name -> (validator, holds paths)
SCALARS: dict[str, tuple[Callable[[Any], Any], bool]] = {
    "root": (_is_str, True),
    "log_dir": (_is_str, True),
    "model_dirs": (_is_str_list, True),
    "cache_dir": (_is_str, True),
    "tmp_dir": (_is_str, True),
    "llama_cpp_bin": (_is_str, True),
    "allow_write": (_is_str_list, True),
    "lab_research_dir": (_is_str, True),
}

# Sections: name -> {key: (validator, default)}
SECTIONS: dict[str, dict[str, tuple[Callable[[Any], Any], Any]]] = {
    "disk": {
        "warn_used_pct": (_is_pct, 85.0),
        "critical_used_pct": (_is_pct, 95.0),
        "min_free_gb": (_at_least(0, _is_num), 5.0),
    },
    "guards": {
        "storage": (_is_mode, "enforce"),
        "bash": (_is_mode, "enforce"),
        "destructive": (_is_mode, "enforce"),
        "retry": (_is_mode, "enforce"),
        "protect": (_is_mode, "enforce"),
        "privileged": (_is_mode, "enforce"),
        "unbounded": (_is_mode, "enforce"),
        "pytest_workers": (_is_mode, "enforce"),
        "live_bench": (_is_mode, "enforce"),
        "backup": (_is_mode, "enforce"),
        "pytest_max_workers": (_at_least(1), 16),
        "allow_commands": (_is_str_list, []),
        "retry_limit": (_at_least(1), 3),
        "fail_closed": (_is_bool, True),
        "allow_project_dir": (_is_bool, True),
        "allow_claude_dir": (_is_bool, True),
    },
    "loops": {
        "retry_storm": (_at_least(2), 3),  # the bounds of `log analyze`'s overrides, where it has them
        "repeat": (_at_least(2), 4),
        "alternation": (_at_least(4), 6),
        "burst": (_at_least(1), 30),
        "burst_window_s": (_at_least(1, _is_num), 60.0),
        "churn": (_at_least(2), 3),
        "cycle": (_at_least(2), 3),
        "mistake_streak": (_at_least(2), 3),
        "compaction_loop": (_at_least(2), 3),
        "text_loop": (_at_least(2), 3),
        "text_repeat": (_at_least(2), 5),
        "exempt": (_is_str_list, []),
        "warn": (_is_bool, True),
    },
    "results": {
        "layout": (_is_layout, "epyc-agent"),
        "near_tie_margin": (_at_least(0, _is_num), 0.5),
    },
    "measurement": {  # a timed run refuses a llama.cpp build other than the pinned one
        "llama_cpp_sha256": (_is_str_list, []),
        "llama_cpp_version": (_is_str, ""),
    },
}


class Config:
    """Resolved configuration; paths are absolute strings. `sources[key]` says where
    each value came from: `flag`, `env:NAME`, `file:PATH` or `default`."""

    __slots__ = (
        "root",
        "log_dir",
        "model_dirs",
        "cache_dir",
        "tmp_dir",
        "llama_cpp_bin",
        "allow_write",
        "lab_research_dir",
        "disk",
        "guards",
        "loops",
        "results",
        "measurement",
        "config_file",
        "sources",
    )

    root: str
    log_dir: str
    model_dirs: list[str]
    cache_dir: str
    tmp_dir: str
    llama_cpp_bin: str | None
    allow_write: list[str]
    lab_research_dir: str
    disk: dict[str, Any]
    guards: dict[str, Any]
    loops: dict[str, Any]
    results: dict[str, Any]
    measurement: dict[str, Any]
    config_file: str | None
    sources: dict[str, str]

    def __init__(self, **values: Any) -> None:
        for k in self.__slots__:
            setattr(self, k, values[k])

    def as_dict(self) -> dict[str, Any]:
        """The resolved values (JSON-able), for `config show --json`."""
        return {k: getattr(self, k) for k in (*SCALARS, *SECTIONS)}

    def __repr__(self) -> str:
        return f"Config(root={self.root!r}, log_dir={self.log_dir!r}, config_file={self.config_file!r})"


# --- finding and reading the file -----------------------------------------------


def find_config_file(
    flag: str | None = None, env: Mapping[str, str] | None = None, discover_cwd: bool = True
) -> str | None:
    """The config file to read; an explicitly named one must exist. `discover_cwd` False (the
    hook): never `./epyc-agent.yaml`, which the agent could plant in its own cwd."""
    env = os.environ if env is None else env
    if flag:
        p = os.path.expanduser(os.fspath(flag))
        if not os.path.isfile(p):
            raise ConfigError(f"config file {p} not found", hint="check the --config path")
        return os.path.abspath(p)
    if env.get(CONFIG_ENV):
        p = os.path.expanduser(env[CONFIG_ENV])
        if not os.path.isfile(p):
            raise ConfigError(f"config file {p} (from ${CONFIG_ENV}) not found", hint=f"fix or unset {CONFIG_ENV}")
        return os.path.abspath(p)
    if discover_cwd and os.path.isfile("epyc-agent.yaml"):
        return os.path.abspath("epyc-agent.yaml")
    home = env.get("HOME") or os.path.expanduser("~")
    p = os.path.join(home, ".config", "epyc-agent", "config.yaml")
    return p if os.path.isfile(p) else None


def read_config_file(path: str) -> dict[str, Any]:
    """Parse and validate a config file into flat `key` / `section.key` values."""
    import yaml  # lazy: 25 ms on the lab's VMs, and most hook calls hit the cache

    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read: {e}") from None
    try:
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{mark.line + 1}:" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{path}:{where} invalid YAML: {problem}", hint="fix the YAML syntax") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, not {type(data).__name__}")
    return validate(path, data)


def validate(path: str, data: dict[str, Any]) -> dict[str, Any]:
    """Check keys and types; relative paths become absolute against the file's folder."""
    out: dict[str, Any] = {}
    base = os.path.dirname(path)
    for key, value in data.items():
        if key in SCALARS:
            check, _is_path = SCALARS[key]
            try:
                v = check(value)
            except (TypeError, ValueError) as e:
                raise ConfigError(f"{path}: key '{key}': {e}, got {value!r}") from None
            out[key] = [_abs(x, base) for x in v] if isinstance(v, list) else _abs(v, base)
        elif key in SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: key '{key}': expected a mapping, got {value!r}")
            spec = SECTIONS[key]
            for sub, sv in value.items():
                if sub not in spec:
                    raise _unknown(path, f"{key}.{sub}", [f"{key}.{k}" for k in spec])
                try:
                    out[f"{key}.{sub}"] = spec[sub][0](sv)
                except (TypeError, ValueError) as e:
                    raise ConfigError(f"{path}: key '{key}.{sub}': {e}, got {sv!r}") from None
        else:
            raise _unknown(path, str(key), [*SCALARS, *SECTIONS])
    _check_disk(path, out)
    return out


def _unknown(path: str, key: str, known: list[str]) -> ConfigError:
    """An unknown key, with the closest known one (a key of a section written at the top level
    points to its section)."""
    import difflib

    leaf = key.rsplit(".", 1)[-1]
    homes = [f"{name}.{leaf}" for name, spec in SECTIONS.items() if leaf in spec and f"{name}.{leaf}" != key]
    close = homes or difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'?" if close else f"known: {', '.join(known)}"
    return ConfigError(f"{path}: unknown key '{key}'", hint=hint)


def _check_disk(path: str, values: dict[str, Any]) -> None:
    """The warning level must come before the critical one, or the warning is never seen."""
    warn = values.get("disk.warn_used_pct", SECTIONS["disk"]["warn_used_pct"][1])
    critical = values.get("disk.critical_used_pct", SECTIONS["disk"]["critical_used_pct"][1])
    if warn > critical:
        raise ConfigError(
            f"{path}: disk.warn_used_pct {warn:g} is above disk.critical_used_pct {critical:g}",
            hint="set the warning level at or below the critical one",
        )


def _abs(p: str, base: str) -> str:
    return os.path.normpath(os.path.join(base, os.path.expanduser(p)))


def _file_values(path: str, env: Mapping[str, str]) -> dict[str, Any]:
    """Validated file values, from the JSON cache when it is fresh."""
    st = os.stat(path)
    key = [path, st.st_size, st.st_mtime_ns, os.stat(__file__).st_mtime_ns]  # new code: validate again
    log_dir = env.get(LOG_DIR_ENV)
    cache = os.path.join(log_dir, ".state", CACHE_NAME) if log_dir else None
    if cache:  # signed: the agent may write the log dir, and these values decide the guards
        from .fileio import read_json_signed, secret_key

        cached = read_json_signed(cache, secret_key(log_dir or ""))
        if isinstance(cached, dict) and cached.get("key") == key and isinstance(cached.get("values"), dict):
            return dict(cached["values"])
    values = read_config_file(path)
    if cache:
        _write_cache(cache, {"key": key, "values": values}, log_dir or "")
    return values


def _write_cache(cache: str, payload: dict[str, Any], log_dir: str) -> None:
    """Best effort: a cache that cannot be written only costs speed."""
    from .fileio import secret_key, write_json_signed

    try:
        os.makedirs(os.path.dirname(cache), exist_ok=True)
        write_json_signed(cache, payload, secret_key(log_dir))
    except OSError:
        pass


# --- resolving ---------------------------------------------------------------------


def load_config(
    config_file: str | None = None,
    root: str | None = None,
    env: Mapping[str, str] | None = None,
    discover_cwd: bool = True,
) -> Config:
    """Resolve the configuration from flag, environment, file and defaults."""
    env = os.environ if env is None else env
    path = find_config_file(config_file, env, discover_cwd)
    fvals = _file_values(path, env) if path else {}
    fsrc = f"file:{path}" if path else "default"
    sources: dict[str, str] = {}

    def pick(key: str, flag_val: str | None, env_names: tuple[str, ...], default: Any) -> Any:
        if flag_val:
            sources[key] = "flag"
            return os.path.abspath(os.path.expanduser(os.fspath(flag_val)))
        for name in env_names:
            if env.get(name):
                sources[key] = f"env:{name}"
                return os.path.abspath(os.path.expanduser(env[name]))
        if key in fvals:
            sources[key] = fsrc
            return fvals[key]
        sources[key] = "default"
        return default

    r = pick("root", root, ROOT_ENVS, DEFAULT_ROOT)
    values: dict[str, Any] = {
        "root": r,
        "log_dir": pick("log_dir", None, (LOG_DIR_ENV,), os.path.join(r, "logs")),
        "cache_dir": pick("cache_dir", None, (), os.path.join(r, "cache")),
        "tmp_dir": pick("tmp_dir", None, (), os.path.join(r, "tmp")),
        "model_dirs": pick(
            "model_dirs",
            None,
            (),
            [os.path.join(r, "models"), os.path.join(r, "lmstudio", "models"), os.path.join(r, "hf")],
        ),
        "llama_cpp_bin": pick("llama_cpp_bin", None, (BIN_ENV,), None),
        "allow_write": [*DEFAULT_ALLOW_WRITE, *pick("allow_write", None, (), [])],
        "lab_research_dir": pick("lab_research_dir", None, (), os.path.join(r, "epyc-inference-research")),
        "config_file": path,
        "sources": sources,
    }
    for name, spec in SECTIONS.items():
        section = {}
        for sub, (_check, default) in spec.items():
            k = f"{name}.{sub}"
            section[sub], sources[k] = (fvals[k], fsrc) if k in fvals else (default, "default")
        values[name] = section
    return Config(**values)
