"""The optional model registry (`research/model_registry.yaml`): per-model quirks the GGUF header
cannot tell, e.g. Qwen3-Coder's BOS being a comma, methods that must not run on a model, and
flags it needs. `forbidden_methods` joins those rules with what the header does tell
(SSM/hybrid, not MoE, not runnable), so compat and the track runner refuse the same things.

Files read, all of them, rules in this order: `$EPYC_AGENT_MODEL_REGISTRY`,
`$EPYC_AGENT_RESEARCH_DIR/model_registry.yaml`, `<root>/research/model_registry.yaml`, and the
checkout's `research/model_registry.yaml`. The format is documented in that file's header.
"""

from __future__ import annotations

import fnmatch
import os
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..config import Config
    from .inventory import Entry

REGISTRY_ENV = "EPYC_AGENT_MODEL_REGISTRY"
RESEARCH_ENV = "EPYC_AGENT_RESEARCH_DIR"  # the same folder research/tracks.yaml is read from
REGISTRY_NAME = "model_registry.yaml"

# method names as research/tracks.yaml spells them, by track number
TRACK_METHODS = {1: "draft_model", 2: "moe_reduction", 3: "eagle", 6: "suffix", 7: "cas_spec", 8: "prompt_lookup"}
METHODS = tuple(TRACK_METHODS.values())
SPECULATIVE = frozenset(m for m in METHODS if m != "moe_reduction")
RULE_KEYS = {"match", "arch", "forbidden_methods", "launch_flags", "bos_quirk", "no_draft", "notes"}


class Registry:
    """Rules from the registry files; `for_entry` gives the merged quirks of one model."""

    def __init__(self, rules: list[dict[str, Any]] | None = None, sources: list[str] | None = None) -> None:
        self.rules = rules or []
        self.sources = sources or []

    def matching(self, entry: Entry) -> list[dict[str, Any]]:
        names = [str(entry.get(k) or "").lower() for k in ("id", "name")]
        names.append(os.path.basename(str(entry.get("path") or "")).lower())
        return [
            r
            for r in self.rules
            if any(fnmatch.fnmatchcase(n, r["match"]) for n in names if n)
            and (r.get("arch") is None or r["arch"] == entry.get("arch"))
        ]

    def for_entry(self, entry: Entry) -> dict[str, Any]:
        """Merged quirks: forbidden_methods {method: reason}, launch_flags, bos_quirk, no_draft, notes."""
        out: dict[str, Any] = {
            "forbidden_methods": {},
            "launch_flags": [],
            "bos_quirk": None,
            "no_draft": None,
            "notes": [],
        }
        for r in self.matching(entry):
            for m, why in r.get("forbidden_methods", {}).items():
                out["forbidden_methods"].setdefault(m, why)
            out["launch_flags"] += r.get("launch_flags", [])
            out["bos_quirk"] = out["bos_quirk"] or r.get("bos_quirk")
            out["no_draft"] = out["no_draft"] or r.get("no_draft")
            if r.get("notes"):
                out["notes"].append(r["notes"])
        return out


def registry_paths(cfg: Config) -> list[str]:
    """Registry files that exist, in precedence order (duplicates removed)."""
    checkout = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    cands = [os.environ.get(REGISTRY_ENV)]
    if os.environ.get(RESEARCH_ENV):
        cands.append(os.path.join(os.environ[RESEARCH_ENV], REGISTRY_NAME))
    cands += [os.path.join(cfg.root, "research", REGISTRY_NAME), os.path.join(checkout, "research", REGISTRY_NAME)]
    out: list[str] = []
    for p in cands:
        if p and os.path.isfile(p) and os.path.realpath(p) not in map(os.path.realpath, out):
            out.append(p)
    if os.environ.get(REGISTRY_ENV) and not os.path.isfile(os.environ[REGISTRY_ENV]):
        raise ConfigError(
            f"model registry {os.environ[REGISTRY_ENV]} (from ${REGISTRY_ENV}) not found",
            hint=f"fix or unset {REGISTRY_ENV}",
        )
    return out


def load_registry(cfg: Config) -> Registry:
    """All registry files' rules (an absent registry is an empty one)."""
    rules: list[dict[str, Any]] = []
    paths = registry_paths(cfg)
    for p in paths:
        rules += parse_registry(p)
    return Registry(rules, paths)


def parse_registry(path: str) -> list[dict[str, Any]]:
    """Validate one registry file; errors name the file, the rule and the fix."""
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(
            f"{path}: cannot read the model registry: {str(e).splitlines()[0]}", hint="fix the YAML"
        ) from None
    if data is None:
        return []
    if not isinstance(data, dict) or not isinstance(data.get("models", []), list):
        raise ConfigError(
            f"{path}: expected a mapping with a `models:` list", hint="see the file header for the format"
        )
    rules = []
    for n, raw in enumerate(data.get("models") or [], 1):
        where = f"{path}: models[{n}]"
        if not isinstance(raw, dict) or not isinstance(raw.get("match"), str):
            raise ConfigError(f"{where}: each rule needs `match: <glob>`", hint='e.g. match: "qwen3-coder*"')
        unknown = set(raw) - RULE_KEYS
        if unknown:
            raise ConfigError(
                f"{where}: unknown key(s) {', '.join(sorted(unknown))}", hint=f"known: {', '.join(sorted(RULE_KEYS))}"
            )
        fm = raw.get("forbidden_methods") or {}
        if isinstance(fm, list):
            fm = dict.fromkeys(fm, "forbidden by the model registry")
        if not isinstance(fm, dict) or set(fm) - set(METHODS):
            raise ConfigError(
                f"{where}: forbidden_methods must map method names to reasons", hint=f"methods: {', '.join(METHODS)}"
            )
        flags = raw.get("launch_flags") or []
        if not isinstance(flags, list) or not all(isinstance(x, str) for x in flags):
            raise ConfigError(f"{where}: launch_flags must be a list of strings")
        rule = {
            **raw,
            "match": raw["match"].lower(),
            "forbidden_methods": {k: str(v) for k, v in fm.items()},
            "launch_flags": flags,
            "source": path,
        }
        rules.append(rule)
    return rules


def forbidden_methods(entry: Entry, registry: Registry | None = None) -> dict[str, str]:
    """Methods that must not run on this model, each with the reason (empty: everything allowed)."""
    if entry.get("error"):
        return dict.fromkeys(METHODS, f"model unreadable: {entry['error']}")
    if entry.get("kind") != "gguf":
        return dict.fromkeys(METHODS, "a Hugging Face source model: convert it to GGUF first")
    if entry.get("vocab_only"):
        return dict.fromkeys(METHODS, "a vocabulary-only GGUF (no tensors)")
    out: dict[str, str] = {}
    if registry is not None:
        out.update(registry.for_entry(entry)["forbidden_methods"])
    if entry.get("ssm_or_hybrid"):
        for m in SPECULATIVE:
            out.setdefault(m, f"{entry.get('ssm_reason') or 'SSM/hybrid'}: no speculative decoding or prompt lookup")
    if not entry.get("is_moe"):
        out.setdefault("moe_reduction", "not a mixture-of-experts model (no expert_count > 1)")
    return dict(sorted(out.items()))
