"""Models: GGUF discovery and inventory, tested/untested bookkeeping, draft compatibility,
the optional model registry, a folder watcher and the built-in default models.

The library never imports click; `epyc_agent.cli.models_cmd` is the thin CLI over it.
Modules:
- `gguf_header`: header-only GGUF parser (never reads tensor data).
- `inventory`: `scan(cfg)`, `load_inventory(cfg)`, `resolve_model(cfg, name_or_path)`.
- `compat`: `check_draft(target, draft, registry)`, `drafts_for(...)`.
- `registry`: `load_registry(cfg)`, `forbidden_methods(entry, registry)`.
- `tested`: `record_test(...)`, `untested(cfg)`, the `session start` priority provider.
- `watch`: add models to the inventory as they appear.
- `defaults`: `fetch_default(cfg)` (gemma-3-270m, SmolLM2-135M) under `<root>/models`.
"""
