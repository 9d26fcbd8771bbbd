"""Draft-model compatibility, by llama.cpp's own rule (common/speculative.cpp) plus the lab's:
same tokenizer model and pre-tokenizer, same BOS/EOS ids, vocabulary sizes within 128, and the
same token texts from id 5 up to the smaller vocabulary (checked with the inventory's
fingerprints, not by loading either model). SSM/hybrid models neither draft nor get drafted for,
unless the model registry says otherwise: a target the registry allows draft_model on, and a draft
the registry pairs with the target (the lab's draft_role or compatible_targets). The registry never
lifts a tokenizer mismatch: those are facts of the files.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .gguf_header import VOCAB_CHECK_START, VOCAB_MAX_DIFF, tail_hash
from .inventory import is_runnable
from .registry import SSM_RULE, decide, matches

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
    verdict = decide(target, registry)["draft_model"]
    if not verdict.allowed:
        return False, f"target {target['id']}: {verdict.reason} [rule: {verdict.rule}]"
    pair = registry.pairing(target, draft) if registry else None
    if draft.get("ssm_or_hybrid") and pair is None:
        return False, f"draft {draft['id']}: {draft.get('ssm_reason') or 'SSM/hybrid'} [rule: {SSM_RULE}]"
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
    if pair is not None:
        notes.append(pairing_note(pair) + ("; its SSM/hybrid rule lifted" if draft.get("ssm_or_hybrid") else ""))
    return (
        True,
        f"compatible: same tokenizer ({target.get('tokenizer_model')}/{target.get('tokenizer_pre')}), "
        f"BOS {target.get('bos_id')}, EOS {target.get('eos_id')}; {'; '.join(notes)}",
    )


def pairing_note(pair: dict[str, Any]) -> str:
    """One line naming a registry pairing and the rule it comes from."""
    what = f"draft_role {pair['draft_role']}" if pair["draft_role"] else f"draft {pair['path']}"
    return f"registry pairing: {what}" + (f", k={pair['k']}" if pair.get("k") else "") + f" [rule: {pair['where']}]"


def _public(pair: dict[str, Any]) -> dict[str, Any]:
    return {k: pair[k] for k in ("draft_role", "k", "path", "where", "kind")}


def drafts_for(target: Entry, inventory: Inventory, registry: Registry | None = None) -> list[dict[str, Any]]:
    """Every inventory model as a draft candidate for `target`: compatible ones first, the
    registry's pairings first among them, then smallest first."""
    rows = []
    for e in inventory.models:
        ok, reason = check_draft(target, e, registry)
        pair = registry.pairing(target, e) if registry else None
        rows.append(
            {
                "id": e["id"],
                "path": e["path"],
                "ok": ok,
                "reason": reason,
                "pairing": _public(pair) if pair else None,
                "param_count": e.get("param_count"),
                "size_bytes": e.get("size_bytes"),
                "runnable": is_runnable(e),
            }
        )
    rows.sort(key=lambda r: (not r["ok"], r["pairing"] is None, r["param_count"] or 0, r["id"].lower()))
    return rows


def registry_pairings(target: Entry, inventory: Inventory, registry: Registry) -> list[dict[str, Any]]:
    """The registry's pairings for `target`, each with the inventory model it names (or None)."""
    out = []
    for pair in registry.pairings(target):
        found = next(
            (e for e in inventory.runnable() if e["path"] != target["path"] and matches(pair["patterns"], e)), None
        )
        out.append(
            {**_public(pair), "draft": found["id"] if found else None, "draft_path": found["path"] if found else None}
        )
    return out


def default_draft(target: Entry, inventory: Inventory, registry: Registry) -> tuple[Entry, dict[str, Any]] | None:
    """The draft a run uses when the user names none: the first registry pairing present in the
    inventory and compatible by the checks above (draft_role pairings before compatible_targets)."""
    for pair in registry.pairings(target):
        for e in inventory.runnable():
            if e["path"] != target["path"] and matches(pair["patterns"], e) and check_draft(target, e, registry)[0]:
                return e, pair
    return None
