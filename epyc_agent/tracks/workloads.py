"""Workloads: small versioned prompt sets under `research/workloads/`, hashed so a run names exactly
which prompts it measured."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any

from ..errors import EpycAgentError
from .spec import research_dir

DEFAULT_WORKLOAD = "summarization"


@dataclass(frozen=True)
class Workload:
    name: str
    version: int
    description: str
    prompts: list[dict[str, str]]  # each {"id", "text"}
    path: str

    @property
    def sha256(self) -> str:
        """Hash of the prompt texts and ids (not of the file's comments or layout)."""
        canon = json.dumps([self.name, self.version, self.prompts], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canon.encode()).hexdigest()

    def head(self, n: int | None) -> Workload:
        """The first `n` prompts (a smaller run of the same workload)."""
        if not n or n >= len(self.prompts):
            return self
        return Workload(self.name, self.version, self.description, self.prompts[:n], self.path)

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "prompts": len(self.prompts),
            "sha256": self.sha256,
            "path": self.path,
        }


def workloads_dir() -> str:
    return os.path.join(research_dir(), "workloads")


def list_workloads() -> list[str]:
    try:
        return sorted(f[:-5] for f in os.listdir(workloads_dir()) if f.endswith(".yaml"))
    except FileNotFoundError:
        return []


def _expand(name: str, data: dict[str, Any]) -> list[dict[str, str]]:
    """Literal `prompts`, or a `template` filled from each entry of `vars` (ids from `id_format`)."""
    if "prompts" in data:
        prompts = data["prompts"]
        if not isinstance(prompts, list):
            raise EpycAgentError(f"workload {name}: prompts must be a list")
        out = []
        for p in prompts:
            if not isinstance(p, dict) or not p.get("id") or not isinstance(p.get("text"), str):
                raise EpycAgentError(f"workload {name}: every prompt needs an id and a text, got {p!r}")
            out.append({"id": str(p["id"]), "text": p["text"]})
        return out
    template, variables = data.get("template"), data.get("vars")
    if not isinstance(template, str) or not isinstance(variables, list):
        raise EpycAgentError(f"workload {name}: needs `prompts`, or `template` and `vars`")
    id_format = str(data.get("id_format", f"{name}-{{n:02d}}"))
    try:
        return [{"id": id_format.format(n=n, **v), "text": template.format(**v)} for n, v in enumerate(variables, 1)]
    except (KeyError, TypeError, ValueError) as e:
        raise EpycAgentError(f"workload {name}: template and vars do not match: {e}") from None


def load_workload(name_or_path: str) -> Workload:
    """A workload by name (`research/workloads/<name>.yaml`) or by file path."""
    import yaml

    path = (
        name_or_path
        if name_or_path.endswith((".yaml", ".yml"))
        else os.path.join(workloads_dir(), f"{name_or_path}.yaml")
    )
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        known = ", ".join(list_workloads()) or "none found"
        raise EpycAgentError(f"workload not found: {path}", hint=f"known workloads: {known}") from None
    except yaml.YAMLError as e:
        raise EpycAgentError(f"{path}: invalid YAML: {e}") from None
    if not isinstance(data, dict) or not data.get("name") or not isinstance(data.get("version"), int):
        raise EpycAgentError(f"{path}: a workload needs a name and an integer version")
    prompts = _expand(data["name"], data)
    if not prompts:
        raise EpycAgentError(f"{path}: the workload has no prompts")
    ids = [p["id"] for p in prompts]
    if len(set(ids)) != len(ids):
        raise EpycAgentError(f"{path}: prompt ids are not unique")
    return Workload(
        str(data["name"]), data["version"], str(data.get("description", "")), prompts, os.path.abspath(path)
    )
