"""Atomic file writes: a temp file in the same folder, then a rename, so a reader (or a crash)
never sees half a file. Lean on purpose: the hook writes session state through this."""

from __future__ import annotations

import json
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def write_text_atomic(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.{os.getpid()}.{os.urandom(2).hex()}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_json_atomic(path: str, data: Any) -> None:
    """Indented UTF-8 JSON with a final newline."""
    write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def project_dir(project: str | None = None) -> str:
    """The Claude Code project folder: DIR, else $CLAUDE_PROJECT_DIR, else the cwd. It must exist:
    installing into a mistyped path would create a stray folder and leave the real project bare."""
    from .errors import EpycAgentError

    base = os.path.abspath(os.path.expanduser(project or os.environ.get("CLAUDE_PROJECT_DIR") or os.getcwd()))
    if not os.path.isdir(base):
        raise EpycAgentError(f"project folder {base} does not exist", hint="pass an existing folder to --project")
    return base
