"""`epyc-agent log analyze --tail N | --commands [--limit N] [--json]` without click.

The old toolkit's `--tail` and `--commands` are a `tail` and a `grep | sort | uniq` that users
call in loops and watch scripts; like the one-line log verbs, they skip click's import (about
20 ms, more than the work). Anything else (filters, other modes, `--opt=value`, a value that
is not a number) is left to the click command, which parses and reports it.
"""

from __future__ import annotations

import os
import sys

from .errors import EpycAgentError

DEFAULT_LIMIT = 50  # also the click command's default


def parse(args: list[str]) -> tuple[str, int, bool] | None:
    """(mode, N, as_json) when `args` are only these options, else None."""
    mode, n, limit, as_json = None, 0, DEFAULT_LIMIT, False
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--json":
            as_json = True
        elif a == "--commands" and mode is None:
            mode = "commands"
        elif a in ("--tail", "--limit") and i + 1 < len(args) and args[i + 1].isdigit():
            i += 1
            v = int(args[i])
            if a == "--limit":
                limit = v
            elif mode is None and v >= 1:
                mode, n = "tail", v
            else:
                return None
        else:
            return None
        i += 1
    if mode is None:
        return None
    return mode, (n if mode == "tail" else limit), as_json


def main(mode: str, n: int, as_json: bool) -> int:
    from .analyze import render
    from .analyze.filters import Query
    from .config import load_config
    from .output import print_json

    try:
        log_dir = load_config().log_dir
        if mode == "tail":
            from .analyze.listing import tail

            data = tail(log_dir, n, Query())
        else:
            from .analyze.aggregate import commands

            data = commands(log_dir, Query(), n)
        if as_json:
            print_json(data)
        else:
            render.RENDERERS[mode](data)
        sys.stdout.flush()
    except EpycAgentError as e:
        print(f"epyc-agent: {e.render()}", file=sys.stderr)
        return e.exit_code
    except BrokenPipeError:  # `| head`: the reader has all it wants; no second error at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0
