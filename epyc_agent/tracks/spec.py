"""Loading and validating `research/tracks.yaml`: the lab's tracks as data, checked once on load."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ..errors import EpycAgentError

STATUSES = ("production", "active", "planned", "deprecated")
PARAM_TYPES = {"int": int, "float": float, "str": str, "bool": bool}
RESEARCH_ENV = "EPYC_AGENT_RESEARCH_DIR"


def research_dir() -> str:
    """The folder holding tracks.yaml and workloads/: `$EPYC_AGENT_RESEARCH_DIR`, else the
    checkout's, else the installed package's."""
    from ..shipped import shipped_path

    env = os.environ.get(RESEARCH_ENV)
    return os.path.abspath(env) if env else shipped_path("research")


@dataclass(frozen=True)
class Param:
    name: str
    type: str
    default: Any
    sweep: list[Any]
    help: str = ""

    def parse(self, text: str) -> Any:
        """One value from `--param k=v` text, typed as the track declares."""
        try:
            if self.type == "bool":
                if text.lower() not in ("1", "0", "true", "false", "yes", "no"):
                    raise ValueError(text)
                return text.lower() in ("1", "true", "yes")
            return PARAM_TYPES[self.type](text)
        except ValueError:
            raise EpycAgentError(
                f"parameter {self.name}: {text!r} is not a {self.type}",
                hint=f"e.g. --param {self.name}={self.sweep[0] if self.sweep else 1}",
            ) from None


@dataclass(frozen=True)
class Track:
    id: int
    name: str
    method: str
    status: str
    summary: str
    expected_gain: str
    speculative: bool
    needs_draft: bool = False
    needs_moe: bool = False
    binary: str | None = None
    params: dict[str, Param] = field(default_factory=dict)
    references: list[str] = field(default_factory=list)

    def as_dict(self, method_defaults: dict[str, Any] | None = None) -> dict[str, Any]:
        """JSON-able; a parameter without its own default shows the engine's (`method_defaults`)."""
        md = method_defaults or {}
        return {
            "id": self.id,
            "name": self.name,
            "method": self.method,
            "status": self.status,
            "summary": self.summary,
            "expected_gain": self.expected_gain,
            "speculative": self.speculative,
            "needs_draft": self.needs_draft,
            "needs_moe": self.needs_moe,
            "binary": self.binary,
            "params": {
                n: {
                    "type": p.type,
                    "default": md.get(n) if p.default is None else p.default,
                    "sweep": p.sweep,
                    "help": p.help,
                }
                for n, p in self.params.items()
            },
            "references": self.references,
        }


def _param(tid: int, name: str, raw: Any) -> Param:
    where = f"track {tid} parameter {name}"
    if not isinstance(raw, dict) or raw.get("type") not in PARAM_TYPES:
        raise EpycAgentError(f"tracks.yaml: {where}: needs a type ({', '.join(PARAM_TYPES)})")
    sweep = raw.get("sweep", [])
    if not isinstance(sweep, list) or not sweep:
        raise EpycAgentError(f"tracks.yaml: {where}: needs a non-empty sweep list")
    want = PARAM_TYPES[raw["type"]]
    for v in [*sweep, *([raw["default"]] if raw.get("default") is not None else [])]:
        ok = isinstance(v, want) or (want is float and isinstance(v, int))
        if not ok or isinstance(v, bool) != (want is bool):
            raise EpycAgentError(f"tracks.yaml: {where}: value {v!r} is not a {raw['type']}")
    return Param(name, raw["type"], raw.get("default"), list(sweep), str(raw.get("help", "")))


def parse_tracks(data: Any, source: str = "tracks.yaml") -> dict[int, Track]:
    """Validate the parsed YAML; any defect names the track and the key."""
    if not isinstance(data, dict) or not isinstance(data.get("tracks"), list):
        raise EpycAgentError(f"{source}: expected a mapping with a `tracks` list")
    out: dict[int, Track] = {}
    for raw in data["tracks"]:
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), int):
            raise EpycAgentError(f"{source}: every track needs an integer id, got {raw!r}")
        tid = raw["id"]
        missing = [k for k in ("name", "method", "status", "summary", "expected_gain") if not raw.get(k)]
        if missing:
            raise EpycAgentError(f"{source}: track {tid} lacks {', '.join(missing)}")
        if raw["status"] not in STATUSES:
            raise EpycAgentError(f"{source}: track {tid}: status {raw['status']!r} not one of {', '.join(STATUSES)}")
        if tid in out:
            raise EpycAgentError(f"{source}: track id {tid} appears twice")
        params = raw.get("params") or {}
        if not isinstance(params, dict):
            raise EpycAgentError(f"{source}: track {tid}: params must be a mapping")
        out[tid] = Track(
            id=tid,
            name=str(raw["name"]),
            method=str(raw["method"]),
            status=raw["status"],
            summary=str(raw["summary"]),
            expected_gain=str(raw["expected_gain"]),
            speculative=bool(raw.get("speculative", False)),
            needs_draft=bool(raw.get("needs_draft", False)),
            needs_moe=bool(raw.get("needs_moe", False)),
            binary=raw.get("binary"),
            params={n: _param(tid, n, p) for n, p in params.items()},
            references=[str(r) for r in raw.get("references") or []],
        )
    return dict(sorted(out.items()))


def load_tracks(path: str | None = None) -> dict[int, Track]:
    """All tracks by id, from `path` or the research folder's tracks.yaml."""
    import yaml

    path = path or os.path.join(research_dir(), "tracks.yaml")
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise EpycAgentError(
            f"tracks file not found: {path}",
            hint=f"set {RESEARCH_ENV} to a folder holding tracks.yaml, or reinstall epyc-agent",
        ) from None
    except yaml.YAMLError as e:
        raise EpycAgentError(f"{path}: invalid YAML: {e}") from None
    return parse_tracks(data, path)


def get_track(track_id: str | int, path: str | None = None) -> Track:
    tracks = load_tracks(path)
    try:
        tid = int(track_id)
    except (TypeError, ValueError):
        tid = -1
    if tid not in tracks:
        raise EpycAgentError(f"no track {track_id!r}", hint=f"known tracks: {', '.join(map(str, tracks))}")
    return tracks[tid]
