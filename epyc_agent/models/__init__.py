"""Models: GGUF discovery and inventory, tested/untested bookkeeping, draft compatibility,
the optional model registry, a folder watcher and the built-in default models.

The library never imports click; `epyc_agent.cli.models_cmd` is the thin CLI over it.
Modules:
- `gguf_header`: header-only GGUF parser (never reads tensor data).
- `inventory`: `scan(cfg)`, `load_inventory(cfg)`, `resolve_model(cfg, name_or_path)`.
- `compat`: `check_draft(target, draft, registry)`, `drafts_for(...)`, `default_draft(...)`.
- `registry`: `load_registry(cfg)`, `decide(entry, registry)` (each method's verdict and the rule
  that decided it), `forbidden_methods(entry, registry)`.
- `lab_registry`: the lab's own orchestration/model_registry.yaml, read as it is.
- `tested`: `record_test(...)`, `untested(cfg)`, the `session start` priority provider; the file
  is the lab's `{"tested": [...]}` layout.
- `watch`: add models to the inventory as they appear.
- `defaults`: `fetch_default(cfg)` (gemma-3-270m, SmolLM2-135M) under `<root>/models`.
"""
