"""Draft-model compatibility, by llama.cpp's own rule (common/speculative.cpp) plus the lab's:
same tokenizer model and pre-tokenizer, same BOS/EOS ids, vocabulary sizes within 128, and the
same token texts from id 5 up to the smaller vocabulary (checked with the inventory's
fingerprints, not by loading either model). SSM/hybrid models neither draft nor get drafted for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .gguf_header import VOCAB_CHECK_START, VOCAB_MAX_DIFF, tail_hash
from .inventory import is_runnable
from .registry import forbidden_methods

if TYPE_CHECKING:
    from .inventory import Entry, Inventory
    from .registry import Registry


def _unusable(entry: Entry) -> str | None:
    if entry.get("error"):
        return f"unreadable: {entry['error']}"
    if entry.get("kind") != "gguf":
        return "a Hugging Face source model, not a GGUF"
    if entry.get("vocab_only"):
        return "a vocabulary-only GGUF (no tensors)"
    if entry.get("vocab_size") is None or entry.get("vocab_tail_hashes") is None:
        return "no tokenizer.ggml.tokens in the GGUF"
    return None


def check_draft(target: Entry, draft: Entry, registry: Registry | None = None) -> tuple[bool, str]:
    """Can `draft` draft for `target`? (ok, reason): the first failing check, or why it is compatible."""
    for role, e in (("target", target), ("draft", draft)):
        why = _unusable(e)
        if why:
            return False, f"{role} {e.get('id')} is {why}"
    t_forbid = forbidden_methods(target, registry).get("draft_model")
    if t_forbid:
        return False, f"target {target['id']}: {t_forbid}"
    if draft.get("ssm_or_hybrid"):
        return False, f"draft {draft['id']}: {draft.get('ssm_reason') or 'SSM/hybrid'}"
    quirks_t = registry.for_entry(target) if registry else {}
    quirks_d = registry.for_entry(draft) if registry else {}
    if quirks_d.get("no_draft"):
        return False, f"draft {draft['id']}: {quirks_d['no_draft']} (model registry)"
    for key, label, default in (
        ("tokenizer_model", "tokenizer model", None),
        ("tokenizer_pre", "pre-tokenizer", "default"),
    ):  # llama.cpp's default pre
        t_val, d_val = target.get(key) or default, draft.get(key) or default
        if t_val != d_val:
            return False, f"{label} differs: target {t_val!r}, draft {d_val!r}"
    nt, nd = int(target["vocab_size"]), int(draft["vocab_size"])
    if abs(nt - nd) > VOCAB_MAX_DIFF:
        return False, (
            f"vocabulary sizes differ by {abs(nt - nd):,} ({nt:,} vs {nd:,}); llama.cpp allows at most {VOCAB_MAX_DIFF}"
        )
    for key, label, quirk in (("bos_id", "BOS", "bos_quirk"), ("eos_id", "EOS", None)):
        if target.get(key) != draft.get(key):
            extra = [q for q in (quirks_t.get(quirk), quirks_d.get(quirk)) if quirk and q]
            return False, (
                f"{label} id differs: target {target.get(key)}, draft {draft.get(key)}"
                + (f" ({'; '.join(extra)})" if extra else "")
            )
    for key, label in (("add_bos", "add_bos_token"), ("add_eos", "add_eos_token")):
        if target.get(key) is not None and draft.get(key) is not None and target[key] != draft[key]:
            return False, f"{label} differs: target {target[key]}, draft {draft[key]}"
    m = min(nt, nd)
    if m > VOCAB_CHECK_START:
        ht, hd = tail_hash(target, m), tail_hash(draft, m)
        if ht is None or hd is None or ht != hd:
            return False, f"token texts differ (vocabulary fingerprint of ids {VOCAB_CHECK_START}..{m - 1})"
    notes = []
    if target.get("vocab_hash") == draft.get("vocab_hash"):
        notes.append("identical vocabulary")
    else:
        notes.append(f"vocabularies agree on ids {VOCAB_CHECK_START}..{m - 1} ({nt:,} vs {nd:,} tokens)")
    if target.get("path") == draft.get("path"):
        notes.append("the model itself: exercises the path, no speedup expected")
    elif (draft.get("param_count") or 0) >= (target.get("param_count") or 0) > 0:
        notes.append("draft is not smaller than the target: no speedup expected")
    return (
        True,
        f"compatible: same tokenizer ({target.get('tokenizer_model')}/{target.get('tokenizer_pre')}), "
        f"BOS {target.get('bos_id')}, EOS {target.get('eos_id')}; {'; '.join(notes)}",
    )


def drafts_for(target: Entry, inventory: Inventory, registry: Registry | None = None) -> list[dict[str, Any]]:
    """Every inventory model as a draft candidate for `target`: compatible ones first, smallest first."""
    rows = []
    for e in inventory.models:
        ok, reason = check_draft(target, e, registry)
        rows.append(
            {
                "id": e["id"],
                "path": e["path"],
                "ok": ok,
                "reason": reason,
                "param_count": e.get("param_count"),
                "size_bytes": e.get("size_bytes"),
                "runnable": is_runnable(e),
            }
        )
    rows.sort(key=lambda r: (not r["ok"], r["param_count"] or 0, r["id"].lower()))
    return rows
