"""Run the real Claude Code CLI against the scripted API, with our hooks installed.

Each run gets a throwaway HOME, project folder and storage root; `epyc-agent hooks install
--project` registers the hooks as a user would, and the root comes from the user's config file
(`~/.config/epyc-agent/config.yaml`). The CLI runs non-interactively (`-p`, stream-json).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .scripted_api import ScriptedAPI, Turn

CHECKOUT = Path(__file__).resolve().parents[2]
EPYC = Path(sys.executable).parent / "epyc-agent"
PINNED = json.loads((Path(__file__).parent / "package.json").read_text())["dependencies"]["@anthropic-ai/claude-code"]


def claude_bin() -> Path:
    """The CLI `make claude-code` installed ($EPYC_AGENT_CLAUDE_BIN names another one)."""
    named = os.environ.get("EPYC_AGENT_CLAUDE_BIN")
    path = Path(named) if named else CHECKOUT / "tools" / f"claude-code-{PINNED}" / "node_modules" / ".bin" / "claude"
    if not path.exists():
        pytest.fail(f"Claude Code CLI not found at {path}: run `make claude-code` (or `make test`, which does)")
    return path


def claude_version() -> str:
    out = subprocess.run([str(claude_bin()), "--version"], capture_output=True, text=True, timeout=60)
    return out.stdout.split()[0] if out.stdout.split() else ""


@dataclass
class Run:
    """What one CLI run left behind: its stream, what the model was sent, and the audit log."""

    api: ScriptedAPI
    proc: subprocess.CompletedProcess[str]
    log_dir: Path
    stream: list[dict[str, Any]] = field(default_factory=list)

    def events(self) -> list[dict[str, Any]]:
        """Every audit-log event of every shard, in file order per shard."""
        out: list[dict[str, Any]] = []
        for shard in sorted(self.log_dir.glob("agent_audit*.log")):
            out += [json.loads(line) for line in shard.read_text().splitlines() if line.strip()]
        return out

    def of(self, cat: str, **data: Any) -> list[dict[str, Any]]:
        """Events of one category whose `data` has these values."""
        return [
            e
            for e in self.events()
            if e.get("cat") == cat and all((e.get("data") or {}).get(k) == v for k, v in data.items())
        ]

    def result(self) -> dict[str, Any]:
        return next((m for m in self.stream if m.get("type") == "result"), {})


class Lab:
    """One throwaway user: HOME, a project, a storage root and a folder outside it."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.home, self.project, self.root, self.outside = (base / n for n in ("home", "project", "root", "outside"))
        for d in (self.home, self.project, self.root, self.outside):
            d.mkdir(parents=True, exist_ok=True)
        self.log_dir = self.root / "logs"
        cfg = self.home / ".config" / "epyc-agent" / "config.yaml"
        cfg.parent.mkdir(parents=True)
        cfg.write_text(f"root: {self.root}\n")

    def env(self, api_url: str = "", **more: str) -> dict[str, str]:
        """The environment a user's shell would give the CLI: PATH and HOME, nothing of ours."""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "LANG": "C.UTF-8",
            "ANTHROPIC_API_KEY": "sk-ant-scripted",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
            # the CLI refuses --dangerously-skip-permissions as root unless told it is sandboxed;
            # tests run as root here, and the hooks (not Claude's prompts) are what is tested
            "IS_SANDBOX": "1",
        }
        if api_url:
            env["ANTHROPIC_BASE_URL"] = api_url
        env.update(more)
        return env

    def install_hooks(self, *extra: str) -> None:
        out = subprocess.run(
            [str(EPYC), "hooks", "install", "--project", str(self.project), *extra],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr

    def run(
        self,
        turns: list[Turn],
        prompt: str = "Do the task.",
        *args: str,
        summary: str | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 240,
        skip_permissions: bool = True,
    ) -> Run:
        """Run `claude -p PROMPT` once against a scripted API serving `turns` (with Claude's own
        permission prompts skipped unless told otherwise: in `-p` nobody can answer them)."""
        api = ScriptedAPI(turns, **({"summary": summary} if summary else {}))
        with api:
            cmd = [str(claude_bin()), "-p", prompt, "--output-format", "stream-json", "--verbose"]
            cmd += [*(["--dangerously-skip-permissions"] if skip_permissions else []), *args]
            proc = subprocess.run(
                cmd,
                cwd=self.project,
                env=self.env(api.url, **(env or {})),
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
            )
        stream = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
        return Run(api, proc, self.log_dir, stream)
