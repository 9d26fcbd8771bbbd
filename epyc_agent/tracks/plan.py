"""Preparing a run: resolve and validate everything before a single token is generated.

`prepare_run` refuses what cannot give an honest number: an unbuilt, planned or deprecated method,
a missing model (the path is named), a speculative method on an SSM/hybrid model (unless the model
registry validates it there), an incompatible draft (with the compatibility reason), track 2 on a
dense model; each refusal names the rule that decided. A draft-model run without --draft takes the
registry's pairing for the target (and its k). The resulting `RunPlan` holds everything
`config.json` needs to repeat the run, and the lines saying which registry rules shaped it.
"""

from __future__ import annotations

import itertools
import os
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import EpycAgentError, MethodRefused, NotBuiltError
from .spec import Track, get_track
from .workloads import DEFAULT_WORKLOAD, Workload, load_workload, suite_dirs

if TYPE_CHECKING:
    from ..config import Config

BACKENDS = ("auto", "embedded", "binaries")
MOE_METHOD = "moe_reduction"
MOE_KEY = "expert_used_count"
DRAFT_K = "draft_k"  # the draft-model track's K, which the lab's registry gives per pairing


@dataclass
class RunRequest:
    """What the user asked for (the CLI's options), kept verbatim for `track rerun`."""

    track: str
    model: str
    draft: str | None = None
    workload: str = DEFAULT_WORKLOAD
    prompts: int | None = None
    reps: int = 3
    max_tokens: int = 128
    threads: int | None = None
    params: list[str] = field(default_factory=list)  # "k=v" or "k=v1,v2" (a sweep)
    backend: str = "auto"
    n_ctx: int = 4096
    seed: int = 0
    draft_from: str | None = None  # the registry rule that chose the draft when none was given

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class RunPlan:
    """A validated run: the track, resolved models, prompts, and one entry per method configuration."""

    run_id: str
    request: RunRequest
    track: Track
    model: dict[str, Any]
    draft: dict[str, Any] | None
    workload: Workload
    configs: list[dict[str, Any]]  # each {"label", "params"}; the baseline is implicit
    threads: int
    backend: str
    llama_cpp_bin: str | None
    created: str
    decisions: list[str] = field(default_factory=list)  # registry rules that allowed or shaped the run


def parse_params(track: Track, pairs: list[str], method_params: dict[str, Any]) -> dict[str, list[Any]]:
    """`k=v` / `k=v1,v2` into typed value lists; names must be the track's or the method's."""
    out: dict[str, list[Any]] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        name = name.strip()
        if not sep or not name or not text:
            raise EpycAgentError(f"--param {pair!r}: expected NAME=VALUE or NAME=V1,V2", hint="e.g. --param pl_k=8,16")
        if name in track.params:
            values = [track.params[name].parse(t.strip()) for t in text.split(",")]
        elif name in method_params:
            values = [_like(method_params[name], t.strip(), name) for t in text.split(",")]
        else:
            known = sorted({*track.params, *method_params})
            raise EpycAgentError(
                f"track {track.id} has no parameter {name!r}", hint=f"known: {', '.join(known) or 'none'}"
            )
        out[name] = values
    return out


def _like(default: Any, text: str, name: str) -> Any:
    """Parse `text` as the type of the method's default value."""
    kind = type(default) if default is not None else str
    try:
        if kind is bool:
            return text.lower() in ("1", "true", "yes")
        return kind(text)
    except ValueError:
        raise EpycAgentError(f"parameter {name}: {text!r} is not a {kind.__name__}") from None


def sweep_configs(base: dict[str, Any], sweeps: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """The cartesian product of swept values over the base parameters, one config per point."""
    names = sorted(sweeps)
    configs = []
    for values in itertools.product(*(sweeps[n] for n in names)) if names else [()]:
        params = {**base, **dict(zip(names, values, strict=True))}
        label = ",".join(f"{n}={v}" for n, v in zip(names, values, strict=True)) or "default"
        configs.append({"label": label, "params": params})
    return configs


def method_catalog() -> dict[str, dict[str, Any]]:
    """The engine's built methods (name -> default parameters); empty until the engine has them."""
    try:
        from ..inference.methods import METHODS
    except ImportError:
        return {}
    return {str(k): dict(v.get("params") or {}) for k, v in METHODS.items()}


def check_buildable(track: Track, backend: str) -> dict[str, Any]:
    """Refuse tracks whose method does not exist yet; return the method's default parameters."""
    if track.status == "deprecated":
        raise EpycAgentError(
            f"track {track.id} ({track.name}) is deprecated: {track.expected_gain}",
            hint=f"the lab dropped it; see `epyc-agent track show {track.id}`",
        )
    if track.method == MOE_METHOD:
        return {}
    if backend == "binaries":
        if not track.binary:
            raise NotBuiltError(
                f"track {track.id} ({track.name}) has no llama.cpp tool: not built yet for the binaries backend",
                hint="run it with --backend embedded",
            )
        return {}
    catalog = method_catalog()
    if track.method not in catalog:
        state = "planned, " if track.status == "planned" else ""
        raise NotBuiltError(
            f"track {track.id} ({track.name}): method {track.method!r} is {state}not built yet",
            hint="no numbers are produced for a method that does not exist",
        )
    return catalog[track.method]


def resolve_entry(cfg: Config, name_or_path: str, role: str) -> dict[str, Any]:
    """A model's inventory entry; a missing file is named with its path."""
    looks_like_path = os.sep in name_or_path or name_or_path.endswith(".gguf")
    if looks_like_path and not os.path.isfile(name_or_path):
        raise EpycAgentError(
            f"{role} model not found: {os.path.abspath(name_or_path)}",
            hint="check the path, or `epyc-agent models scan` to list known models",
        )
    from ..models.inventory import resolve_model

    entry = dict(resolve_model(cfg, name_or_path))
    path = entry.get("path")
    if not path or not os.path.isfile(path):
        raise EpycAgentError(
            f"{role} model not found: {path or name_or_path}",
            hint="the inventory is stale: run `epyc-agent models scan`",
        )
    return entry


def check_constraints(
    track: Track, model: dict[str, Any], draft: dict[str, Any] | None, cfg: Config, registry: Any = None
) -> list[str]:
    """The lab's model rules (and the registry's), enforced before anything loads. Returns the
    lines naming the registry rules that allowed the run, for its record."""
    from ..models.registry import DEFAULT_RULE, SSM_RULE, decide, load_registry

    registry = registry or load_registry(cfg)
    name = os.path.basename(model["path"])
    details = {"track": track.id, "method": track.method, "model": model["path"], "draft": None}
    verdict = decide(model, registry).get(track.method)
    if verdict is not None and not verdict.allowed:
        hint = (
            "SSM/hybrid models get speculative methods only where the model registry validates them"
            if verdict.rule == SSM_RULE
            else "track 2 needs a MoE model, e.g. Qwen3-30B-A3B"
            if track.needs_moe
            else "see `epyc-agent models show`"
        )
        raise MethodRefused(
            f"{name} ({model.get('arch')}): track {track.id} ({track.name}) refused: {verdict.reason} "
            f"[rule: {verdict.rule}]",
            hint=hint,
            details={} if track.needs_moe and not model.get("is_moe") else details,  # a wrong track, not a quirk
        )
    lines = []
    if verdict is not None and verdict.rule != DEFAULT_RULE:
        lines.append(f"track {track.id} ({track.method}) on {name}: allowed, {verdict.reason} [rule: {verdict.rule}]")
    if track.needs_draft and draft is None:
        raise EpycAgentError(f"track {track.id} ({track.name}) needs a draft model", hint=_draft_hint(model, registry))
    if draft is not None:
        from ..models.compat import check_draft, pairing_note

        ok, why = check_draft(model, draft, registry)
        if not ok:
            raise MethodRefused(
                f"draft {os.path.basename(draft['path'])} is incompatible with {name}: {why}",
                hint="use a draft with the same tokenizer",
                details={**details, "draft": draft["path"]},
            )
        pair = registry.pairing(model, draft)
        if pair:
            lines.append(f"draft {os.path.basename(draft['path'])}: {pairing_note(pair)}")
    return lines


def _draft_hint(model: dict[str, Any], registry: Any) -> str:
    """Pass --draft; and the registry's pairings for the model, none of which is in the inventory."""
    named = [p["draft_role"] or p["path"] for p in registry.pairings(model)]
    if not named:
        return "pass --draft PATH"
    return f"pass --draft PATH; the model registry pairs it with {', '.join(named[:3])}, none in the inventory"


def with_registry_draft(cfg: Config, request: RunRequest, registry: Any = None) -> RunRequest:
    """A draft-model request without --draft, given the registry's pairing for its target (the
    lab's draft_role, else a draft whose compatible_targets name it) when that model is in the
    inventory and compatible; any other request unchanged. Errors are left for the planner."""
    from dataclasses import replace

    from ..models.compat import default_draft
    from ..models.inventory import load_or_scan
    from ..models.registry import load_registry

    try:
        if request.draft or not get_track(request.track).needs_draft:
            return request
        model = resolve_entry(cfg, request.model, "target")
        picked = default_draft(model, load_or_scan(cfg), registry or load_registry(cfg))
    except EpycAgentError:
        return request
    if picked is None:
        return request
    return replace(request, draft=picked[0]["path"], draft_from=picked[1]["where"])


def moe_sweep(track: Track, model: dict[str, Any], given: list[Any] | None) -> list[int]:
    """Expert counts to try: the given ones, else the track's sweep below the model's trained count."""
    trained = int(model.get("expert_used_count") or 0)
    n_experts = int(model.get("expert_count") or 0)
    counts = (
        [int(v) for v in given]
        if given
        else [int(v) for v in track.params[MOE_KEY].sweep if 0 < int(v) < trained] or [max(1, trained // 2)]
    )
    for c in counts:
        if c < 1 or (n_experts and c > n_experts):
            raise EpycAgentError(f"expert_used_count={c} is out of range for a model with {n_experts} experts")
    return counts


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "model"


def prepare_run(cfg: Config, request: RunRequest) -> RunPlan:
    """Resolve and validate a request into a `RunPlan`; raises `EpycAgentError` with the reason."""
    from ..inference.model import default_threads

    if request.reps < 1 or request.max_tokens < 1:
        raise EpycAgentError("--reps and --max-tokens must be at least 1")
    if request.backend not in BACKENDS:
        raise EpycAgentError(f"unknown backend {request.backend!r}", hint=f"one of {', '.join(BACKENDS)}")
    backend = request.backend
    if backend == "auto":
        backend = "binaries" if cfg.llama_cpp_bin else "embedded"
    if backend == "binaries" and not cfg.llama_cpp_bin:
        raise EpycAgentError(
            "the binaries backend needs llama_cpp_bin",
            hint="set llama_cpp_bin in the config or EPYC_AGENT_LLAMA_CPP_BIN (make llama-tools)",
        )
    from ..models.registry import load_registry

    track = get_track(request.track)
    method_params = check_buildable(track, backend)
    registry = load_registry(cfg)
    request = with_registry_draft(cfg, request, registry)
    model = resolve_entry(cfg, request.model, "target")
    draft = resolve_entry(cfg, request.draft, "draft") if request.draft else None
    decisions = check_constraints(track, model, draft, cfg, registry)
    workload = load_workload(request.workload, suite_dirs(cfg)).head(request.prompts)
    sweeps = parse_params(track, request.params, method_params)
    if track.method == MOE_METHOD:
        sweeps[MOE_KEY] = moe_sweep(track, model, sweeps.get(MOE_KEY))
        base: dict[str, Any] = {}
    else:
        engine = (
            method_params
            if backend == "embedded"
            else {n: v for n, v in method_catalog().get(track.method, {}).items() if n in track.params}
        )
        base = {**engine, **{n: p.default for n, p in track.params.items() if p.default is not None}}
    pair = registry.pairing(model, draft) if draft else None
    if pair and pair["k"] and DRAFT_K in track.params and DRAFT_K not in sweeps:
        base[DRAFT_K] = pair["k"]
        decisions.append(f"{DRAFT_K}={pair['k']} from the registry pairing [rule: {pair['where']}]")
    from .results import new_run_id

    model_name = _safe(os.path.splitext(os.path.basename(model["path"]))[0])
    return RunPlan(
        run_id=new_run_id(cfg, track.id, model_name),
        request=request,
        track=track,
        model=model,
        draft=draft,
        workload=workload,
        configs=sweep_configs(base, sweeps),
        threads=request.threads or default_threads(),
        backend=backend,
        llama_cpp_bin=cfg.llama_cpp_bin if backend == "binaries" else None,
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        decisions=decisions,
    )
