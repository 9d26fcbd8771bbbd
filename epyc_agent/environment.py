"""The environment an agent session runs with: every cache and temp dir under the root.

Libraries default to `~/.cache`, `/tmp` and friends; exporting these variables
keeps pip, Hugging Face, torch, npm, cargo and Claude Code inside the root.
"""

from __future__ import annotations

import json
import os
import shlex

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .config import Config

SHELLS = ("bash", "zsh", "fish", "json")


def env_vars(cfg: Config) -> dict[str, str]:
    """Variable -> folder, all derived from the config (cache and tmp dirs, root)."""
    j = os.path.join
    cache, tmp, root = cfg.cache_dir, cfg.tmp_dir, cfg.root
    hf = j(cache, "huggingface")
    dirs = {
        "HF_HOME": hf,
        "TRANSFORMERS_CACHE": j(hf, "transformers"),
        "HF_DATASETS_CACHE": j(hf, "datasets"),
        "PIP_CACHE_DIR": j(cache, "pip"),
        "TMPDIR": tmp,
        "TMP": tmp,
        "TEMP": tmp,
        "XDG_CACHE_HOME": cache,
        "XDG_DATA_HOME": j(root, "share"),
        "XDG_STATE_HOME": j(root, "state"),
        "TORCH_HOME": j(cache, "torch"),
        "npm_config_cache": j(cache, "npm"),
        "CARGO_HOME": j(root, "cargo"),
        "CLAUDE_CODE_TMPDIR": j(tmp, "claude"),
    }
    return {**dirs, **markers(cfg)}


def markers(cfg: Config) -> dict[str, str]:
    """Variables that tell our own tools (and the old toolkit's `LLM_ROOT`) where things are."""
    return {"EPYC_AGENT_ROOT": cfg.root, "LLM_ROOT": cfg.root, "EPYC_AGENT_LOG_DIR": cfg.log_dir}


def env_dirs(cfg: Config) -> list[str]:
    """The folders behind the exported variables."""
    skip = markers(cfg)
    return list(dict.fromkeys(v for k, v in env_vars(cfg).items() if k not in skip))


def create_env_dirs(cfg: Config) -> None:
    for d in env_dirs(cfg):
        os.makedirs(d, exist_ok=True)


def render(variables: dict[str, str], shell: str = "bash") -> str:
    """Export lines that `eval` (bash/zsh) or `source` (fish) accepts; JSON for tools."""
    if shell == "json":
        return json.dumps(variables, indent=2)
    if shell == "fish":
        return "\n".join(f"set -gx {k} {shlex.quote(v)};" for k, v in variables.items())
    if shell in ("bash", "zsh"):
        return "\n".join(f"export {k}={shlex.quote(v)}" for k, v in variables.items())
    raise ValueError(f"unknown shell {shell!r}")
