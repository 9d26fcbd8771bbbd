"""The embedded backend: the engine's own greedy loops on llama-cpp-python, in this process."""

from __future__ import annotations

import platform
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ...errors import EpycAgentError
from . import GEN_FIELDS, Record, Skip, Tick, todo_reps

if TYPE_CHECKING:
    from ..plan import RunPlan

N_BATCH = 512
DRAFT_LENGTH_PARAMS = ("pl_k", "suffix_k", "draft_k")  # a longer draft must not be capped at the default 64


def info(plan: RunPlan) -> dict[str, Any]:
    """Backend versions and llama.cpp's system info, for config.json."""
    from importlib.metadata import version

    from ...inference.model import system_info
    from ...system.builds import embedded_build

    return {
        "backend": "embedded",
        "llama_cpp_python": version("llama-cpp-python"),
        "build": embedded_build(),
        "llama_cpp_system_info": system_info(),
        "python": platform.python_version(),
        "n_batch": N_BATCH,
    }


def _load(plan: RunPlan, path: str, kv_overrides: dict[str, Any] | None = None) -> Any:
    from ...inference.model import load_model

    return load_model(
        path,
        n_ctx=plan.request.n_ctx,
        n_threads=plan.threads,
        n_batch=N_BATCH,
        kv_overrides=kv_overrides,
        seed=plan.request.seed,
    )


def _tokenize(plan: RunPlan, llm: Any) -> list[list[int]]:
    """Prompt tokens (with BOS); refuses prompts that do not fit the context with max_tokens."""
    out = []
    for p in plan.workload.prompts:
        toks = llm.tokenize(p["text"].encode("utf-8"), add_bos=True, special=False)
        need = len(toks) + plan.request.max_tokens + 32
        if need > plan.request.n_ctx:
            raise EpycAgentError(
                f"prompt {p['id']} needs {need} context tokens > n_ctx {plan.request.n_ctx}",
                hint="lower --max-tokens or use a smaller workload",
            )
        out.append(toks)
    return out


def _record(plan: RunPlan, kind: str, cfg: dict[str, Any], prompt_id: str, rep: int, res: Any) -> Record:
    import psutil

    rec: Record = {"config": cfg["label"], "kind": kind, "params": cfg["params"], "prompt_id": prompt_id, "rep": rep}
    rec.update({k: getattr(res, k) for k in GEN_FIELDS})
    rec["rss_mb"] = round(psutil.Process().memory_info().rss / 2**20, 1)
    rec["accepted_by_source"] = dict(res.accepted_by_source)
    rec["text"] = res.text
    rec["tokens"] = list(res.tokens)
    rec["margins"] = res.margins
    return rec


def _reps(
    plan: RunPlan,
    kind: str,
    cfg: dict[str, Any],
    prompts: list[list[int]],
    gen: Any,
    tick: Tick,
    skip: Skip,
    new_rep: Any = None,
) -> Iterator[Record]:
    """One warm-up generation, then every prompt of each rep still to measure; margins recorded on
    the baseline's rep 0. `new_rep()` runs before the warm-up and each rep (fresh drafting state for
    every rep)."""
    reps = todo_reps(plan, cfg["label"], skip)
    for rep in [-1, *reps] if reps else []:
        if new_rep:
            new_rep()
        if rep < 0:
            gen(prompts[0], False)
            tick(f"{cfg['label']} warm-up")
            continue
        for p, toks in zip(plan.workload.prompts, prompts, strict=True):
            res = gen(toks, kind == "baseline" and rep == 0)
            yield _record(plan, kind, cfg, p["id"], rep, res)


def generations(plan: RunPlan, tick: Tick, skip: Skip = frozenset()) -> Iterator[Record]:
    """Baseline records, then each method configuration's records (the reps in `skip` left out)."""
    from ...inference.generate import generate_plain
    from ..plan import MOE_METHOD

    max_tokens = plan.request.max_tokens
    llm = _load(plan, plan.model["path"])
    prompts = _tokenize(plan, llm)

    def plain(model: Any) -> Any:
        return lambda toks, margins: generate_plain(model, toks, max_tokens, record_margins=margins)

    yield from _reps(plan, "baseline", {"label": "baseline", "params": {}}, prompts, plain(llm), tick, skip)
    if plan.track.method == MOE_METHOD:
        del llm
        key = f"{plan.model['arch']}.expert_used_count"
        for cfg in plan.configs:
            if not todo_reps(plan, cfg["label"], skip):
                continue
            moe = _load(plan, plan.model["path"], {key: int(cfg["params"]["expert_used_count"])})
            yield from _reps(plan, "method", cfg, prompts, plain(moe), tick, skip)
            del moe
        return
    yield from _speculative(plan, llm, prompts, tick, skip)


def _speculative(plan: RunPlan, llm: Any, prompts: list[list[int]], tick: Tick, skip: Skip) -> Iterator[Record]:
    """Each configuration with fresh drafting state (e.g. suffix trees) per rep, so reps are comparable."""
    from ...inference.methods import make_sources
    from ...inference.speculative import generate_speculative

    draft_llm = _load(plan, plan.draft["path"]) if plan.draft else None
    max_tokens = plan.request.max_tokens
    for cfg in plan.configs:
        state: dict[str, Any] = {}

        def new_rep(cfg: dict[str, Any] = cfg, state: dict[str, Any] = state) -> None:
            state["sources"] = make_sources(plan.track.method, cfg["params"], draft_llm=draft_llm)

        k = max([64, *(int(v) for n, v in cfg["params"].items() if n in DRAFT_LENGTH_PARAMS)])

        select = str(cfg["params"].get("select", "first"))

        def spec(
            toks: list[int], _margins: bool, state: dict[str, Any] = state, k: int = k, select: str = select
        ) -> Any:
            return generate_speculative(llm, toks, max_tokens, state["sources"], max_draft=k, select=select)

        yield from _reps(plan, "method", cfg, prompts, spec, tick, skip, new_rep)
