"""Files that ship with epyc-agent: `research/` (tracks, workloads, model registry) and `agents/`
(role definitions). A source checkout's copies win, so an edit there takes effect at once; an
installed wheel carries the same files under `epyc_agent/data/` (setup.py copies them in at build
time, so the checkout stays their one source).

On the hook's path (guards.protect): os only, and the checkout test reads one small file once.
"""

from __future__ import annotations

import os

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
DATA_DIR = os.path.join(PACKAGE_DIR, "data")
_checkout: list[str | None] = []


def checkout_dir() -> str | None:
    """The source checkout this package runs from, else None. The parent folder must hold our own
    pyproject.toml: an installed package's parent is site-packages, where an unrelated top-level
    `agents` package may sit."""
    if not _checkout:
        parent = os.path.dirname(PACKAGE_DIR)
        try:
            with open(os.path.join(parent, "pyproject.toml"), encoding="utf-8") as f:
                ours = 'name = "epyc-agent"' in f.read(4096)
        except OSError:
            ours = False
        _checkout.append(parent if ours else None)
    return _checkout[0]


def shipped_path(rel: str) -> str:
    """`rel` (e.g. `agents`, `research/model_registry.yaml`) from the checkout when it has it,
    else the installed copy (which may be absent: callers report that)."""
    top = checkout_dir()
    if top and os.path.exists(os.path.join(top, rel)):
        return os.path.join(top, rel)
    return os.path.join(DATA_DIR, rel)
