"""Workloads: small versioned prompt sets, hashed so a run names exactly which prompts it measured.

Two file shapes are read: ours (`research/workloads/<name>.yaml`: `name`, integer `version`,
`prompts: [{id, text}]` or a `template` filled from `vars`) and the lab's v1 prompt suites
(`benchmarks/prompts/v1/<domain>.yaml`: `version`, `domain`, `prompts: {id: {prompt, tier, expected,
scoring}}`). A suite's prompt text is what runs; its tier, expected answer and scoring rubric travel
with each prompt into the run's output, so the lab can score the answers later.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import EpycAgentError
from .spec import research_dir

if TYPE_CHECKING:
    from ..config import Config

DEFAULT_WORKLOAD = "summarization"
OURS, LAB_V1 = "epyc-agent", "lab-v1"
LAB_SUITES = os.path.join("benchmarks", "prompts", "v1")  # under the lab's research checkout
SUITE_KEPT = ("tier", "name", "expected", "scoring", "auto_score")  # per prompt, into output.jsonl
SHAPES = (
    "ours (`name`, integer `version`, `prompts: [{id, text}]` or `template` + `vars`) or the lab's v1 suite "
    "(`version`, `domain`, `prompts: {id: {prompt, tier, expected, scoring}}`)"
)


@dataclass(frozen=True)
class Workload:
    name: str
    version: int
    description: str
    prompts: list[dict[str, str]]  # each {"id", "text"}
    path: str
    format: str = OURS
    meta: dict[str, dict[str, Any]] = field(default_factory=dict)  # prompt id -> SUITE_KEPT fields
    settings: dict[str, Any] = field(default_factory=dict)  # a suite's inference_params: recorded, not applied

    @property
    def sha256(self) -> str:
        """Hash of the prompt texts and ids (not of the file's comments, layout or scoring rubrics)."""
        canon = json.dumps([self.name, self.version, self.prompts], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canon.encode()).hexdigest()

    def head(self, n: int | None) -> Workload:
        """The first `n` prompts (a smaller run of the same workload)."""
        if not n or n >= len(self.prompts):
            return self
        prompts = self.prompts[:n]
        meta = {p["id"]: self.meta[p["id"]] for p in prompts if p["id"] in self.meta}
        return dataclasses.replace(self, prompts=prompts, meta=meta)

    def summary(self) -> dict[str, Any]:
        out = {
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "prompts": len(self.prompts),
            "sha256": self.sha256,
            "path": self.path,
            "format": self.format,
        }
        if self.settings:
            out["suite_inference_params"] = self.settings
        return out


def workloads_dir() -> str:
    return os.path.join(research_dir(), "workloads")


def lab_suites_dir(lab_research_dir: str) -> str:
    return os.path.join(lab_research_dir, LAB_SUITES)


def suite_dirs(cfg: Config) -> list[str]:
    """Where a workload name is looked up after research/workloads/: the lab's v1 suites."""
    return [lab_suites_dir(cfg.lab_research_dir)]


def list_workloads(folder: str | None = None) -> list[str]:
    try:
        return sorted(f[:-5] for f in os.listdir(folder or workloads_dir()) if f.endswith(".yaml"))
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


def _suite(path: str, data: dict[str, Any]) -> Workload:
    """The lab's v1 suite; a prompt the text backends cannot run as written is refused by id."""
    name = str(data["domain"])
    out, meta = [], {}
    for pid, p in data["prompts"].items():
        if not isinstance(p, dict) or not isinstance(p.get("prompt"), str) or not p["prompt"].strip():
            raise EpycAgentError(f"{path}: prompt {pid!r} has no `prompt` text", hint=f"expected {SHAPES}")
        if p.get("image_path"):
            raise EpycAgentError(
                f"{path}: prompt {pid!r} needs an image ({p['image_path']}); text-only runs cannot pass it",
                hint="choose a text suite (general, coder, math, ...)",
            )
        if p.get("context_tokens"):
            raise EpycAgentError(
                f"{path}: prompt {pid!r} needs a {p['context_tokens']}-token generated context "
                "(context_tokens) that the suite file does not hold",
                hint="the lab's rubric script generates it; choose another suite",
            )
        out.append({"id": str(pid), "text": p["prompt"]})
        meta[str(pid)] = {k: p[k] for k in SUITE_KEPT if k in p}
    version = data["version"]
    if isinstance(version, str) and version.isdigit():
        version = int(version)
    if not isinstance(version, int) or isinstance(version, bool):
        raise EpycAgentError(f"{path}: suite version must be an integer, got {version!r}")
    settings = data.get("inference_params") if isinstance(data.get("inference_params"), dict) else {}
    return Workload(
        name, version, str(data.get("description", "")), out, os.path.abspath(path), LAB_V1, meta, dict(settings)
    )


def _ours(path: str, data: dict[str, Any]) -> Workload:
    if not isinstance(data.get("version"), int):
        raise EpycAgentError(f"{path}: a workload needs a name and an integer version")
    prompts = _expand(str(data["name"]), data)
    return Workload(
        str(data["name"]), data["version"], str(data.get("description", "")), prompts, os.path.abspath(path)
    )


def _find(name_or_path: str, extra_dirs: Sequence[str]) -> str:
    """A path as given; a name from research/workloads/, then the extra folders (the lab's suites)."""
    if name_or_path.endswith((".yaml", ".yml")):
        return name_or_path
    folders = [workloads_dir(), *extra_dirs]
    for folder in folders:
        path = os.path.join(folder, f"{name_or_path}.yaml")
        if os.path.isfile(path):
            return path
    known = sorted({n for d in folders for n in list_workloads(d)})
    raise EpycAgentError(
        f"workload not found: {name_or_path} (looked in {', '.join(folders)})",
        hint=f"known workloads: {', '.join(known) or 'none found'}",
    )


def load_workload(name_or_path: str, extra_dirs: Sequence[str] = ()) -> Workload:
    """A workload by name or by file path, in either shape (see the module docstring)."""
    import yaml

    path = _find(name_or_path, extra_dirs)
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise EpycAgentError(f"workload not found: {path}", hint="check the path") from None
    except (OSError, UnicodeDecodeError) as e:
        why = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
        raise EpycAgentError(f"{path}: cannot read the workload: {why}", hint="pass a workload YAML file") from None
    except yaml.YAMLError as e:
        raise EpycAgentError(f"{path}: invalid YAML: {e}") from None
    if isinstance(data, dict) and data.get("domain") and isinstance(data.get("prompts"), dict) and "version" in data:
        wl = _suite(path, data)
    elif isinstance(data, dict) and data.get("name"):
        wl = _ours(path, data)
    else:
        kind = (
            f" (a `benchmark_type: {data['benchmark_type']}` file)"
            if isinstance(data, dict) and data.get("benchmark_type")
            else ""
        )
        raise EpycAgentError(f"{path}: not a workload{kind}", hint=f"expected {SHAPES}")
    if not wl.prompts:
        raise EpycAgentError(f"{path}: the workload has no prompts")
    ids = [p["id"] for p in wl.prompts]
    if len(set(ids)) != len(ids):
        raise EpycAgentError(f"{path}: prompt ids are not unique")
    return wl
