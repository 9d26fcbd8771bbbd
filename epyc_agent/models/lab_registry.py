"""The lab's model registry (`orchestration/model_registry.yaml` in epyc-orchestrator), read as
it is: `roles` (each a model with its acceleration, constraints and draft pairing),
`runtime_quirks`, `deprecated_models` and `command_templates`, turned into the rules `registry`
applies. Its other sections (server mode, timeouts, routing) are not about which method may run
on which model and are ignored.

The lab's terms, as our method names: speculative_decoding -> draft_model, prompt_lookup (and
`acceleration.lookup`) -> prompt_lookup, eagle -> eagle, moe_expert_reduction -> moe_reduction;
`baseline` and `none` name no method. A forbid for a method we do not have is kept and shown,
never applied. What allows a method: a role that runs it (`acceleration.type`, `lookup: true`,
`alternative`), and a role's `constraints.forbid` list, which is the lab's verdict for that model:
speculative_decoding and prompt_lookup, when the list does not name them, are allowed (the lab
forbids only eagle on its Qwen3.5 hybrids). A deprecated role still forbids, but never allows or
pairs a draft.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import glob
import os
import re
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .registry import Decision, blank_rule, entry_names

if TYPE_CHECKING:
    from .inventory import Entry

LAB_KEYS = ("roles", "runtime_quirks", "deprecated_models", "command_templates")
LAB_METHODS = {
    "speculative_decoding": "draft_model",
    "prompt_lookup": "prompt_lookup",
    "eagle": "eagle",
    "moe_expert_reduction": "moe_reduction",
}
OMISSION_ALLOWS = ("draft_model", "prompt_lookup")  # allowed where a forbid list leaves them out
FORBID_FIELDS = (  # (where the lab writes a forbid, the section holding it, where its reason is)
    ("constraints.forbid", "constraints", "forbid"),
    ("forbidden_configs", None, "forbidden_configs"),
    ("acceleration.disallowed", "acceleration", "disallowed"),
)
# the method a command template runs (None: any runnable model; "mmproj": a role with a projector)
TEMPLATE_NEEDS = {
    "baseline": None,
    "server_start": None,
    "speculative_decoding": "draft_model",
    "prompt_lookup": "prompt_lookup",
    "moe_expert_reduction": "moe_reduction",
    "server_start_moe": "moe_reduction",
    "vision": "mmproj",
}
PLACEHOLDER = re.compile(r"\{(\w+)\}")
NAME_END = re.compile(r"^[a-z][a-z-]*$")  # a plain lower-case word ends a model name in a description
HINT = "the format of orchestration/model_registry.yaml in pestopoppa/epyc-orchestrator"


def _text(v: Any) -> str:
    return " ".join(str(v).split())


def _plain(v: Any) -> Any:
    """JSON-able: YAML dates become ISO strings."""
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


def _mapping(v: Any, where: str) -> dict[str, Any]:
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise ConfigError(f"{where} must be a mapping, not {type(v).__name__}", hint=HINT)
    return v


def _strings(v: Any, where: str) -> list[str]:
    if v is None:
        return []
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ConfigError(f"{where} must be a list of names", hint=HINT)
    return v


def _model(path: str, name: str, role: Any) -> dict[str, Any]:
    where = f"{path}: roles.{name}"
    if not isinstance(role, dict) or not isinstance(role.get("model"), dict):
        raise ConfigError(f"{where}: expected a mapping with a `model:` mapping (name, path)", hint=HINT)
    model = role["model"]
    for key in ("name", "path"):
        if model.get(key) is not None and not isinstance(model[key], str):
            raise ConfigError(f"{where}.model.{key} must be a string", hint=HINT)
    return model


def _patterns(model: dict[str, Any]) -> list[str]:
    """A role's model is matched by its file name or its name (as a file stem), exactly."""
    pats = []
    if str(model.get("path") or "").lower().endswith(".gguf"):
        pats.append(glob.escape(os.path.basename(model["path"]).lower()))
    if str(model.get("name") or "").strip():
        pats.append(glob.escape(model["name"].strip().lower()))
    return pats


def _deprecation(role: dict[str, Any]) -> str | None:
    if not role.get("deprecated"):
        return None
    why = _text(role.get("deprecated_reason") or role.get("deprecation_reason") or "deprecated in the lab's registry")
    return why + (f" (since {role['deprecated_date']})" if role.get("deprecated_date") else "")


def _k(acc: dict[str, Any], where: str) -> int | None:
    k = acc.get("k")
    if k is not None and (not isinstance(k, int) or isinstance(k, bool) or k < 1):
        raise ConfigError(f"{where}.acceleration.k must be a positive integer, not {k!r}", hint=HINT)
    return k


def _allows(acc: dict[str, Any], con: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(method, reason, field) for what a live role runs or its forbid list leaves out."""
    out = []
    kind, k = acc.get("type"), acc.get("k")
    draft = acc.get("draft_role") or acc.get("draft_model")
    if kind == "speculative_decoding" and draft:
        out.append(("draft_model", f"the lab runs it with draft {draft}" + (f", k={k}" if k else ""), "acceleration"))
    alt = acc.get("alternative") if isinstance(acc.get("alternative"), dict) else {}
    if kind == "prompt_lookup" or acc.get("lookup") is True or alt.get("type") == "prompt_lookup":
        out.append(("prompt_lookup", "the lab runs prompt lookup on it", "acceleration"))
    if kind == "moe_expert_reduction":
        out.append(("moe_reduction", f"the lab runs it with {acc.get('experts')} experts", "acceleration"))
    forbid = con.get("forbid")
    if isinstance(forbid, list) and forbid:
        named = ", ".join(map(str, forbid))
        out += [(m, f"the lab's forbid list for it names only {named}", "constraints.forbid") for m in OMISSION_ALLOWS]
    return out


def _role_rule(path: str, name: str, role: dict[str, Any], models: dict[str, dict[str, Any]]) -> dict[str, Any]:
    where = f"{path}: roles.{name}"
    model = models[name]
    acc = _mapping(role.get("acceleration"), f"{where}.acceleration")
    con = _mapping(role.get("constraints"), f"{where}.constraints")
    rule = blank_rule(where, path, _patterns(model))
    deprecated = _deprecation(role)
    rule.update(role=name, deprecated=deprecated, model_path=model.get("path"), mmproj=model.get("mmproj_path"))
    rule["acceleration"] = {k: acc[k] for k in ("type", "draft_role", "k", "override_key", "experts") if k in acc}
    rule["notes"] = [f"role {name}: {_text(role['description'])}"] if role.get("description") else []
    rule["notes"] += [_text(n) for n in (role.get("notes"), con.get("notes")) if isinstance(n, str)]
    n_forbids = 0
    sections: dict[str | None, dict[str, Any]] = {"constraints": con, "acceleration": acc, None: role}
    for field, section, key in FORBID_FIELDS:
        holder = sections[section]
        for lab in _strings(holder.get(key), f"{where}.{field}"):
            n_forbids += 1
            method = LAB_METHODS.get(lab)
            if method is None:
                rule["unmapped_forbids"].append(lab)
                continue
            why = _text(holder.get("reason") or f"the lab forbids {lab} on this model")
            rule["verdicts"].setdefault(method, Decision(False, why, f"{where} {field}"))
    if acc.get("lookup") is False:
        why = "the lab disabled prompt lookup for this model (acceleration.lookup: false)"
        rule["verdicts"].setdefault("prompt_lookup", Decision(False, why, f"{where} acceleration.lookup"))
    k = _k(acc, where)
    if not deprecated:
        for method, why, field in _allows(acc, con):
            rule["verdicts"].setdefault(method, Decision(True, why, f"{where} {field}"))
        rule["compatible_targets"] = [
            t.lower() for t in _strings(role.get("compatible_targets"), f"{where}.compatible_targets")
        ]
        rule["drafts"] = _drafts(where, acc, k, models)
    quirks = _mapping(role.get("launch_quirks"), f"{where}.launch_quirks")
    if quirks.get("jinja_required"):
        rule["launch_flags"] = ["--jinja"]
    rule["notes"] += [f"launch quirk: {q}" for q, on in quirks.items() if on and q != "jinja_required"]
    rule["n_forbids"] = n_forbids
    return rule


def _drafts(where: str, acc: dict[str, Any], k: int | None, models: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The draft a speculative role names: a draft_role of the file, or a draft_path."""
    if acc.get("type") != "speculative_decoding":
        return []
    role = acc.get("draft_role")
    if isinstance(role, str) and role in models:
        m = models[role]
        return [
            {
                "draft_role": role,
                "k": k,
                "patterns": _patterns(m),
                "path": m.get("path"),
                "where": f"{where} acceleration.draft_role",
            }
        ]
    if isinstance(acc.get("draft_path"), str):
        m = {"path": acc["draft_path"], "name": acc.get("draft_model")}
        return [
            {
                "draft_role": None,
                "k": k,
                "patterns": _patterns(m),
                "path": m["path"],
                "where": f"{where} acceleration.draft_path",
            }
        ]
    return []


def quirk_patterns(description: str) -> list[str]:
    """Globs for the model names a runtime_quirks description starts with ("Qwen2.5-72B-Instruct
    and Qwen2.5-Math-72B", "MiniMax M2.1 (230B MoE ...)", "Gemma-3 family ...")."""
    pats = []
    for part in description.split(" (")[0].split(" and "):
        words = []
        for w in part.split():
            if NAME_END.match(w):
                break
            words.append(w)
        name = "-".join(words).lower()
        if any(c.isdigit() for c in name):
            pats.append(f"*{name}*")
    return pats


def _quirks(path: str, data: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(model quirks, tool quirks): `general_*` entries are about a llama.cpp tool, not a model."""
    models, tools = [], []
    for key, q in _mapping(data.get("runtime_quirks"), f"{path}: runtime_quirks").items():
        where = f"{path}: runtime_quirks.{key}"
        q = _mapping(q, where)
        items = q.get("quirks") or []
        if not isinstance(items, list):
            raise ConfigError(f"{where}.quirks must be a list", hint=HINT)
        desc = _text(q.get("description") or key)
        entry = {"key": str(key), "description": desc, "items": _plain(items), "where": where}
        if str(key).startswith("general_"):
            first = desc.split()[0] if desc else ""
            tools.append({**entry, "tool": first if first.startswith("llama-") else None})
        else:
            models.append({**entry, "patterns": quirk_patterns(desc)})
    return models, tools


def _deprecated(path: str, data: dict[str, Any]) -> list[dict[str, Any]]:
    """deprecated_models entries as matchers: the model as a file stem, path_was as files or folders."""
    items = data.get("deprecated_models") or []
    if not isinstance(items, list):
        raise ConfigError(f"{path}: deprecated_models must be a list", hint=HINT)
    out = []
    for n, d in enumerate(items, 1):
        where = f"{path}: deprecated_models[{n}]"
        if not isinstance(d, dict) or not isinstance(d.get("model"), str):
            raise ConfigError(f"{where}: each entry needs `model:`", hint=HINT)
        files, folders = [], []
        for p in str(d.get("path_was") or "").split(","):
            p = p.strip().lower()
            parts = [x for x in p.split("/") if x]
            if p.endswith(".gguf"):
                files.append(os.path.basename(p))
            elif p.startswith("/") and len(parts) >= 2:  # publisher/folder: a bare "hf/" would match too much
                folders.append("/" + "/".join(parts[-2:]) + "/")
        reason = _text(d.get("reason") or "deprecated") + (f" (deleted {d['deleted']})" if d.get("deleted") else "")
        out.append(
            {
                "model": d["model"],
                "stem": d["model"].split(" (")[0].strip().lower(),
                "files": files,
                "folders": folders,
                "reason": reason,
                "where": where,
            }
        )
    return out


def deprecated_match(d: dict[str, Any], entry: Entry) -> bool:
    path = str(entry.get("path") or "")
    if d["stem"] in entry_names(entry) or any(
        fnmatch.fnmatchcase(os.path.basename(path).lower(), f) for f in d["files"]
    ):
        return True
    low = "/" + os.path.realpath(path).lower().lstrip("/")
    return any(f in low for f in d["folders"])


def _templates(path: str, data: dict[str, Any]) -> dict[str, str]:
    tpl = _mapping(data.get("command_templates"), f"{path}: command_templates")
    bad = [k for k, v in tpl.items() if not isinstance(v, str)]
    if bad:
        raise ConfigError(f"{path}: command_templates.{bad[0]} must be a command string", hint=HINT)
    return {str(k): v for k, v in tpl.items()}


def parse_lab(path: str, data: dict[str, Any]) -> dict[str, Any]:
    """The lab's registry file as rules and sections, with counts of what it holds."""
    roles = _mapping(data.get("roles"), f"{path}: roles")
    models = {str(name): _model(path, str(name), role) for name, role in roles.items()}
    rules = [_role_rule(path, str(name), role, models) for name, role in roles.items()]
    warnings = [
        f"roles.{r['role']}: draft_role {r['acceleration']['draft_role']} is not a role of the file"
        for r in rules
        if r["acceleration"].get("draft_role") and r["acceleration"]["draft_role"] not in models
    ]
    quirks, tools = _quirks(path, data)
    deprecated = _deprecated(path, data)
    templates = _templates(path, data)

    def paired(r: dict[str, Any]) -> bool:
        return bool(r["acceleration"].get("draft_role")) and r["acceleration"].get("k") is not None

    counts = {
        "roles": len(rules),
        "deprecated_roles": sum(bool(r["deprecated"]) for r in rules),
        "forbids": sum(r["n_forbids"] for r in rules),
        "unmapped_forbids": sum(len(r["unmapped_forbids"]) for r in rules),
        "allows": sum(v.allowed for r in rules for v in r["verdicts"].values()),
        "pairings": sum(paired(r) for r in rules),
        "pairings_live": sum(paired(r) and not r["deprecated"] for r in rules),
        "runtime_quirks": len(quirks) + len(tools),
        "deprecated_models": len(deprecated),
        "command_templates": len(templates),
    }
    return {
        "path": path,
        "format": "lab",
        "rules": rules,
        "quirks": quirks,
        "tool_quirks": tools,
        "deprecated": deprecated,
        "templates": templates,
        "counts": counts,
        "warnings": warnings,
    }


def fill_templates(
    templates: dict[str, str],
    source: str,
    entry: Entry,
    rules: list[dict[str, Any]],
    decisions: dict[str, Decision],
    tool_quirks: list[dict[str, Any]],
    draft_path: str | None = None,
) -> list[dict[str, Any]]:
    """The templates for what this model may run, its own values filled in (path, draft, k,
    override key, experts); machine values ({threads}, {port}, ...) stay for the user."""
    values: dict[str, Any] = {"model_path": entry.get("path")}
    if draft_path:
        values["draft_path"] = draft_path
    for r in rules:
        for key in ("k", "override_key", "experts"):
            if r["acceleration"].get(key) is not None:
                values.setdefault(key, r["acceleration"][key])
        if r["mmproj"]:
            values.setdefault("mmproj_path", r["mmproj"])
    if entry.get("is_moe") and entry.get("arch"):
        values.setdefault("override_key", f"{entry['arch']}.expert_used_count")
    out = []
    for name, text in templates.items():
        need = TEMPLATE_NEEDS.get(name, "?")
        if need == "?" or (need == "mmproj" and "mmproj_path" not in values):
            continue
        if need in decisions and not decisions[need].allowed:
            continue
        out.append(
            {
                "name": name,
                "command": PLACEHOLDER.sub(lambda m: str(values.get(m[1], m[0])), text).rstrip(),
                "where": f"{source}: command_templates.{name}",
                "tool_quirks": [q for q in tool_quirks if q["tool"] and q["tool"] in text],
            }
        )
    return out


def duplicate_keys(node: Any, path: str = "", seen: set[int] | None = None) -> list[str]:
    """Mapping keys given twice, with their lines (an alias is walked once)."""
    import yaml

    seen = set() if seen is None else seen
    if id(node) in seen:
        return []
    seen.add(id(node))
    out: list[str] = []
    if isinstance(node, yaml.MappingNode):
        lines: dict[str, list[int]] = {}
        for k, v in node.value:
            key = str(k.value)
            lines.setdefault(key, []).append(k.start_mark.line + 1)
            out += duplicate_keys(v, f"{path}.{key}" if path else key, seen)
        dups = [
            f"{path + '.' if path else ''}{key} is given {len(ls)} times (lines {', '.join(map(str, ls))}); "
            "YAML keeps only the last"
            for key, ls in lines.items()
            if len(ls) > 1
        ]
        out = dups + out
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value, 1):
            out += duplicate_keys(v, f"{path}[{i}]", seen)
    return out
