"""One renderer: data as JSON (`--json`) or as aligned, optionally colored text.

Data goes to stdout, diagnostics to stderr. Color only on a terminal and never
when NO_COLOR is set. click is imported only to paint: the fast `log analyze` modes print
plain text without it.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence
from typing import Any

STATUS_COLORS = {
    "PASS": "green",
    "OK": "green",
    "ALLOWED": "green",
    "INFO": "cyan",
    "WARN": "yellow",
    "SKIP": "blue",
    "FAIL": "red",
    "ERROR": "red",
    "REFUSED": "red",
    "CRITICAL": "red",
}


def use_color(stream: Any = None) -> bool:
    stream = stream or sys.stdout
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return bool(getattr(stream, "isatty", lambda: False)())


def paint(text: str, color: str | None = None, bold: bool = False) -> str:
    if not color and not bold:
        return text
    if not use_color():
        return text
    import click

    return click.style(text, fg=color, bold=bold)


def status(word: str) -> str:
    return paint(word, STATUS_COLORS.get(word.strip().upper()), bold=True)


def emit_json(data: Any) -> None:
    echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def print_json(data: Any) -> None:
    """Large analyzer results as indented JSON (orjson: several times faster than json)."""
    import orjson

    sys.stdout.flush()
    out = sys.stdout.buffer
    try:
        body = orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS, default=str)
    except orjson.JSONEncodeError:  # a lone surrogate from a log line (`"\ud800"`): json escapes it
        body = json.dumps(data, indent=2, default=str).encode()
    out.write(body + b"\n")
    out.flush()


def echo(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def warn(text: str) -> None:
    sys.stderr.write(f"epyc-agent: {text}\n")


def table(
    rows: Iterable[Sequence[Any]], headers: Sequence[str] | None = None, colorize: dict[int, Any] | None = None
) -> str:
    """Aligned columns; `colorize` maps a column index to a function applied after padding."""
    rows = [["" if c is None else str(c) for c in r] for r in rows]
    allrows = ([list(headers)] if headers else []) + rows
    if not allrows:
        return ""
    widths = [max(len(r[i]) for r in allrows if i < len(r)) for i in range(max(map(len, allrows)))]
    out = []
    for n, r in enumerate(allrows):
        cells = []
        for i, c in enumerate(r):
            padded = c.ljust(widths[i]) if i < len(r) - 1 else c
            if headers and n == 0:
                padded = paint(padded, bold=True)
            elif colorize and i in colorize:
                padded = colorize[i](padded)
            cells.append(padded)
        out.append("  ".join(cells).rstrip())
    return "\n".join(out)


def kv(pairs: Iterable[tuple[str, Any]]) -> str:
    """`key: value` lines with the keys aligned."""
    pairs = list(pairs)
    w = max((len(k) for k, _ in pairs), default=0)
    return "\n".join(f"{paint(k.ljust(w), bold=True)}  {v}" for k, v in pairs)
