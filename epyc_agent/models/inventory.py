"""The model inventory: every GGUF (split sets as one model) and Hugging Face source folder
under the configured model folders, from headers only, written to `<log_dir>/model_inventory.json`.

The old toolkit built this JSON by string concatenation, counted each split shard as a model
and guessed the architecture from the file name; here every value comes from the GGUF header
(or config.json) and keeps its type. A rescan reuses entries whose files are unchanged
(same size and mtime), so `session start` and the watcher can afford to call it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from typing import TYPE_CHECKING, Any

from ..errors import EpycAgentError
from .gguf_header import GGUFError, quantization_name, read_header

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from ..config import Config

INVENTORY_NAME = "model_inventory.json"
INVENTORY_VERSION = 1
SPLIT_RE = re.compile(r"^(?P<base>.+)-(?P<no>\d{5})-of-(?P<total>\d{5})\.gguf$", re.IGNORECASE)
TEMP_SUFFIXES = (".part", ".incomplete", ".tmp", ".partial", ".download", ".crdownload")
# weight files that are not GGUF: listed with the reason (outside Hugging Face source folders)
OTHER_WEIGHTS = (".bin", ".ggml", ".safetensors", ".pt", ".pth", ".onnx", ".gguf.bak")

# GGUF architectures with recurrent (SSM / linear-attention) state: llama.cpp cannot roll their
# state back to a rejected draft position, so no speculative decoding or prompt lookup.
SSM_ARCHS = frozenset(
    {
        "mamba",
        "mamba2",
        "rwkv6",
        "rwkv6qwen2",
        "rwkv7",
        "arwkv7",
        "jamba",
        "falcon-h1",
        "qwen3next",
        "qwen35",
        "qwen35moe",
        "plamo2",
        "granitehybrid",
        "lfm2",
        "lfm2moe",
        "nemotron_h",
        "nemotron_h_moe",
        "kimi-linear",
    }
)
SSM_KEY_PARTS = (".ssm.", ".wkv.", ".shortconv.", ".kda.")
# Hugging Face `model_type`s of the same families
HF_SSM_TYPES = frozenset(
    {
        "mamba",
        "mamba2",
        "rwkv",
        "rwkv5",
        "rwkv6",
        "rwkv7",
        "jamba",
        "falcon_h1",
        "qwen3_next",
        "plamo2",
        "granitemoehybrid",
        "lfm2",
        "nemotron_h",
        "zamba",
        "zamba2",
        "bamba",
        "kimi_linear",
    }
)

FIELDS = (
    "id",
    "kind",
    "path",
    "shards",
    "name",
    "arch",
    "size_label",
    "param_count",
    "file_type",
    "quantization",
    "context_length",
    "block_count",
    "embedding_length",
    "expert_count",
    "expert_used_count",
    "is_moe",
    "vocab_size",
    "tokenizer_model",
    "tokenizer_pre",
    "bos_id",
    "eos_id",
    "add_bos",
    "add_eos",
    "vocab_hash",
    "vocab_check_from",
    "vocab_tail_hashes",
    "ssm_or_hybrid",
    "ssm_reason",
    "vocab_only",
    "tensor_count",
    "gguf_version",
    "header_bytes",
    "size_bytes",
    "mtime",
    "sha256",
    "error",
)

Entry = dict[str, Any]


class ModelNotFound(EpycAgentError):
    """A model name or path matched nothing in the inventory."""


class Inventory:
    """The scanned models, sorted by id. `models` are plain JSON-able dicts (see FIELDS);
    `kind` is `gguf`, `hf_source`, or `other` (a weight file that is not GGUF, with `error`)."""

    def __init__(
        self,
        models: list[Entry],
        scanned_at: str | None = None,
        model_dirs: list[str] | None = None,
        path: str | None = None,
    ) -> None:
        self.models = sorted(models, key=lambda e: e["id"].lower())
        self.scanned_at = scanned_at
        self.model_dirs = model_dirs or []
        self.path = path

    def get(self, model_id: str) -> Entry | None:
        low = model_id.lower()
        return next((e for e in self.models if e["id"].lower() == low), None)

    def runnable(self) -> list[Entry]:
        """GGUF models llama.cpp can load: readable, with tensors."""
        return [e for e in self.models if is_runnable(e)]

    def counts(self) -> dict[str, int]:
        return {
            "gguf": sum(e["kind"] == "gguf" and not e["error"] for e in self.models),
            "hf_source": sum(e["kind"] == "hf_source" and not e["error"] for e in self.models),
            "errors": sum(bool(e["error"]) for e in self.models),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": INVENTORY_VERSION,
            "scanned_at": self.scanned_at,
            "model_dirs": self.model_dirs,
            "counts": self.counts(),
            "models": self.models,
        }


def file_stem(path: str) -> str:
    """A GGUF's name without folder, extension or split suffix (`X-00001-of-00003.gguf` -> `X`)."""
    base = os.path.basename(path)
    m = SPLIT_RE.match(base)
    return m["base"] if m else os.path.splitext(base)[0]


def is_runnable(entry: Entry) -> bool:
    return entry["kind"] == "gguf" and not entry["error"] and not entry.get("vocab_only")


def inventory_path(cfg: Config) -> str:
    return os.path.join(cfg.log_dir, INVENTORY_NAME)


# --- one file ----------------------------------------------------------------------


def _blank(kind: str, path: str) -> Entry:
    e: Entry = dict.fromkeys(FIELDS)
    e.update(kind=kind, path=path, name=os.path.basename(path))
    return e


def _stat(e: Entry, paths: list[str]) -> None:
    sts = [os.stat(p) for p in paths]
    e["size_bytes"] = sum(st.st_size for st in sts)
    e["mtime"] = max(st.st_mtime for st in sts)


def ssm_reason(arch: str | None, keys: Iterable[str]) -> str | None:
    """Why a GGUF architecture is SSM/hybrid (no speculative decoding), or None."""
    if arch in SSM_ARCHS:
        return f"architecture {arch} is SSM/hybrid (recurrent state cannot be rolled back)"
    if arch:
        hit = next((k for k in keys if k.startswith(f"{arch}.") and any(p in k for p in SSM_KEY_PARTS)), None)
        if hit:
            return f"has recurrent-state key {hit} (SSM/hybrid)"
    return None


def gguf_entry(path: str, shards: list[str] | None = None, with_hash: bool = False) -> Entry:
    """Inventory entry for one GGUF (or a split set: metadata from the first shard)."""
    shards = shards or [path]
    e = _blank("gguf", path)
    if len(shards) > 1:
        e["shards"] = shards
    try:
        _stat(e, shards)
    except OSError as err:
        e["error"] = f"unreadable: {err.strerror or err}"
        return e
    try:
        h = read_header(path)
        params = h["param_count"] + sum(read_header(p)["param_count"] for p in shards[1:])
    except GGUFError as err:
        e["error"] = str(err)
        return e
    kv = h["kv"]
    arch = kv.get("general.architecture")

    def a(key: str) -> Any:
        return kv.get(f"{arch}.{key}")

    expert_count = a("expert_count")
    e.update(
        name=kv.get("general.name") or e["name"],
        arch=arch,
        size_label=kv.get("general.size_label"),
        param_count=params,
        file_type=kv.get("general.file_type"),
        quantization=quantization_name(kv.get("general.file_type"), h["tensor_types"]),
        context_length=a("context_length"),
        block_count=a("block_count"),
        embedding_length=a("embedding_length"),
        expert_count=expert_count,
        expert_used_count=a("expert_used_count"),
        is_moe=isinstance(expert_count, int) and expert_count > 1,
        vocab_size=h.get("vocab_size") or a("vocab_size"),
        tokenizer_model=kv.get("tokenizer.ggml.model"),
        tokenizer_pre=kv.get("tokenizer.ggml.pre"),
        bos_id=kv.get("tokenizer.ggml.bos_token_id"),
        eos_id=kv.get("tokenizer.ggml.eos_token_id"),
        add_bos=kv.get("tokenizer.ggml.add_bos_token"),
        add_eos=kv.get("tokenizer.ggml.add_eos_token"),
        vocab_hash=h.get("vocab_hash"),
        vocab_check_from=h.get("vocab_check_from"),
        vocab_tail_hashes=h.get("vocab_tail_hashes"),
        vocab_only=h["tensor_count"] == 0,
        tensor_count=h["tensor_count"],
        gguf_version=h["version"],
        header_bytes=h["header_bytes"],
    )
    reason = ssm_reason(arch, kv)
    e["ssm_or_hybrid"], e["ssm_reason"] = reason is not None, reason
    if with_hash:
        e["sha256"] = sha256_files(shards)
    return e


def hf_entry(folder: str) -> Entry:
    """Inventory entry for a Hugging Face source folder (config.json): listed, not runnable."""
    e = _blank("hf_source", folder)
    files = [os.path.join(folder, n) for n in os.listdir(folder) if not n.startswith(".")]
    files = [p for p in files if os.path.isfile(p)]
    try:
        _stat(e, files)
        with open(os.path.join(folder, "config.json"), encoding="utf-8") as f:
            conf = json.load(f)
        if not isinstance(conf, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as err:
        e["error"] = f"config.json unreadable: {err}"
        return e
    text = conf.get("text_config") if isinstance(conf.get("text_config"), dict) else conf
    mtype = conf.get("model_type")
    experts = next((text[k] for k in ("num_experts", "num_local_experts", "n_routed_experts") if k in text), None)
    e.update(
        name=_hf_name(folder),
        arch=mtype,
        vocab_size=text.get("vocab_size"),
        context_length=text.get("max_position_embeddings"),
        block_count=text.get("num_hidden_layers"),
        embedding_length=text.get("hidden_size"),
        expert_count=experts,
        expert_used_count=text.get("num_experts_per_tok"),
        is_moe=isinstance(experts, int) and experts > 1,
        bos_id=_first_int(text.get("bos_token_id")),
        eos_id=_first_int(text.get("eos_token_id")),
    )
    if mtype in HF_SSM_TYPES:
        e["ssm_or_hybrid"], e["ssm_reason"] = True, f"model_type {mtype} is SSM/hybrid"
    else:
        e["ssm_or_hybrid"] = False
    return e


def _first_int(v: Any) -> int | None:
    if isinstance(v, list):
        v = v[0] if v else None
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _hf_name(folder: str) -> str:
    """`org/name` for a hub cache snapshot (models--org--name/snapshots/<rev>), else the folder name."""
    parts = os.path.normpath(folder).split(os.sep)
    if len(parts) >= 3 and parts[-2] == "snapshots" and parts[-3].startswith("models--"):
        return parts[-3][len("models--") :].replace("--", "/")
    return parts[-1]


def sha256_files(paths: list[str], on_bytes: Callable[[int], None] | None = None) -> str:
    """sha256 over the files' bytes in order (a split set hashes as its concatenation); `on_bytes`
    hears the bytes read so far (0 first), as hashing 60 GB takes a minute."""
    h = hashlib.sha256()
    done = 0
    if on_bytes:
        on_bytes(0)
    for p in paths:
        with open(p, "rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
                done += len(block)
                if on_bytes:
                    on_bytes(done)
    return h.hexdigest()


def _other_entry(path: str) -> Entry:
    e = _blank("other", path)
    try:
        _stat(e, [path])
    except OSError:
        pass
    ext = os.path.splitext(path)[1]
    e["error"] = f"not a GGUF file ({ext} weights): convert it with llama.cpp's convert_hf_to_gguf.py"
    return e


# --- walking the folders -------------------------------------------------------------


def is_temp(name: str) -> bool:
    """A file still being written (download or copy in progress), or hidden."""
    return name.startswith(".") or name.lower().endswith(TEMP_SUFFIXES)


def _candidates(dirs: list[str]) -> tuple[list[tuple[str, list[str]]], list[str], list[str]]:
    """(GGUF path, shards) pairs, Hugging Face folders and other weight files under `dirs`."""
    ggufs: list[tuple[str, list[str]]] = []
    hf: list[str] = []
    other: list[str] = []
    seen: set[str] = set()
    for top in dirs:
        for folder, subdirs, names in os.walk(top):
            subdirs[:] = sorted(d for d in subdirs if not d.startswith(".") and d != "blobs")
            real = os.path.realpath(folder)
            if real in seen:
                continue
            seen.add(real)
            is_hf = "config.json" in names
            if is_hf:
                hf.append(folder)
            splits: dict[tuple[str, int], dict[int, str]] = {}
            for name in sorted(names):
                if is_temp(name):
                    continue
                path = os.path.join(folder, name)
                low = name.lower()
                m = SPLIT_RE.match(name)
                if m:
                    splits.setdefault((m["base"], int(m["total"])), {})[int(m["no"])] = path
                elif low.endswith(".gguf"):
                    ggufs.append((path, [path]))
                elif not is_hf and low.endswith(OTHER_WEIGHTS):
                    other.append(path)
            for (base, total), parts in splits.items():
                first = parts.get(1) or os.path.join(folder, f"{base}-00001-of-{total:05d}.gguf")
                ggufs.append((first, [parts[n] for n in sorted(parts)]))
    return ggufs, hf, other


def _split_error(first: str, shards: list[str]) -> str | None:
    m = SPLIT_RE.match(os.path.basename(first))
    if not m:
        return None
    have = sorted(int(SPLIT_RE.match(os.path.basename(p))["no"]) for p in shards)  # type: ignore[index]
    total = int(m["total"])
    if have != list(range(1, total + 1)):
        return f"incomplete split set: have shard(s) {', '.join(map(str, have))} of {total}"
    return None


def _assign_ids(entries: list[Entry], root: str) -> None:
    """Short ids (file stem, split suffix dropped); colliding stems get their path under the root."""

    def stem(e: Entry) -> str:
        if e["kind"] == "hf_source":
            return str(e["name"])
        return file_stem(e["path"])

    stems = [stem(e) for e in entries]
    counts: dict[str, int] = {}
    for s in stems:
        counts[s.lower()] = counts.get(s.lower(), 0) + 1
    for e, s in zip(entries, stems, strict=True):
        if counts[s.lower()] > 1:
            rel = os.path.relpath(e["path"], root) if e["path"].startswith(root + os.sep) else e["path"]
            s = os.path.join(os.path.dirname(rel), s) if e["kind"] == "gguf" else rel
        e["id"] = s


def _unchanged(old: Entry | None, paths: list[str], with_hash: bool) -> bool:
    if old is None or (with_hash and not old.get("sha256")):
        return False
    try:
        sts = [os.stat(p) for p in paths]
    except OSError:
        return False
    return old.get("size_bytes") == sum(s.st_size for s in sts) and old.get("mtime") == max(s.st_mtime for s in sts)


def build_entries(dirs: list[str], previous: Inventory | None = None, with_hash: bool = False) -> list[Entry]:
    """Entries for everything under `dirs`, reusing unchanged entries from `previous`."""
    old = {(e["kind"], e["path"]): e for e in previous.models} if previous else {}
    ggufs, hf, other = _candidates([d for d in dirs if os.path.isdir(d)])
    entries: list[Entry] = []
    for first, shards in ggufs:
        err = _split_error(first, shards)
        if err:
            e = _blank("gguf", first)
            e.update(shards=shards, error=err)
            entries.append(e)
            continue
        prev = old.get(("gguf", first))
        entries.append(dict(prev) if _unchanged(prev, shards, with_hash) else gguf_entry(first, shards, with_hash))
    entries += [hf_entry(f) for f in hf]
    entries += [_other_entry(p) for p in other]
    return entries


# --- the inventory file -----------------------------------------------------------------


def scan(cfg: Config, hash: bool = False, reuse: bool = True) -> Inventory:  # noqa: A002 - the CLI flag's name
    """Scan the configured model folders and write the inventory atomically.

    `hash=True` adds each model's sha256 (reads whole files: slow). `reuse` keeps entries of
    files whose size and mtime are unchanged since the last scan.
    """
    from ..fileio import write_json_atomic

    previous = load_inventory(cfg) if reuse else None
    entries = build_entries(list(cfg.model_dirs), previous, with_hash=hash)
    _assign_ids(entries, cfg.root)
    inv = Inventory(
        entries, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), list(cfg.model_dirs), inventory_path(cfg)
    )
    write_json_atomic(inv.path, inv.to_dict())  # type: ignore[arg-type]
    return inv


def load_inventory(cfg: Config) -> Inventory | None:
    """The last scan's inventory, or None if there is none (or it is unreadable)."""
    path = inventory_path(cfg)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        models = data["models"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if data.get("version") != INVENTORY_VERSION or not isinstance(models, list):
        return None
    return Inventory(models, data.get("scanned_at"), data.get("model_dirs"), path)


def load_or_scan(cfg: Config) -> Inventory:
    """The inventory, scanning first if there is none yet (header-only scans are fast)."""
    return load_inventory(cfg) or scan(cfg)


def resolve_model(cfg: Config, name_or_path: str) -> Entry:
    """An inventory entry by id (case-insensitive), general.name, or path to a GGUF file.

    A path that is not in the inventory is read directly, so any GGUF can be named. A name
    not found triggers one rescan (a model may have appeared since) before giving up.
    """
    candidate = os.path.abspath(os.path.expanduser(name_or_path))
    if os.path.isfile(candidate) or os.path.isdir(candidate):
        inv = load_inventory(cfg)
        real = os.path.realpath(candidate)
        for e in inv.models if inv else []:
            if real in {os.path.realpath(p) for p in (e["shards"] or [e["path"]])}:
                return e
        e = hf_entry(candidate) if os.path.isdir(candidate) else gguf_entry(candidate, _shards_of(candidate))
        _assign_ids([e], cfg.root)
        return e
    for attempt in (load_inventory(cfg), None):
        inv = attempt or scan(cfg)
        e = inv.get(name_or_path)
        if e is None:
            named = [m for m in inv.models if str(m["name"]).lower() == name_or_path.lower()]
            e = named[0] if len(named) == 1 else None
        if e is not None:
            return e
        if attempt is None:
            break
    known = ", ".join(m["id"] for m in inv.runnable()[:8]) or "none"
    raise ModelNotFound(
        f"no model {name_or_path!r} in the inventory (known: {known})",
        hint="run `epyc-agent models scan`, or pass a path to a .gguf file",
    )


def _shards_of(path: str) -> list[str]:
    """All shards of a split set given any one of them (else just the file)."""
    m = SPLIT_RE.match(os.path.basename(path))
    if not m:
        return [path]
    folder, total = os.path.dirname(path), int(m["total"])
    shards = [os.path.join(folder, f"{m['base']}-{n:05d}-of-{total:05d}.gguf") for n in range(1, total + 1)]
    return shards if all(os.path.isfile(p) for p in shards) else [path]
