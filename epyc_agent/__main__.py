"""Entry point. The hook and the one-line log verbs run once per agent action (and `log
analyze --tail/--commands` in users' loops), so they skip click entirely (a whole process
must stay under ~35-60 ms on the lab's VMs); everything else goes through the click CLI.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if hasattr(sys.stdout, "reconfigure"):  # a lone surrogate read from a log prints as `\ud800`
        sys.stdout.reconfigure(errors="backslashreplace")
    fast = _fast_path(args)
    if fast is not None:
        return fast()
    from .cli import run

    return run(args)


def _fast_path(args: list[str]):  # noqa: ANN202 - returns a thunk or None
    """A thunk for the lean commands, or None to use click (help, options, anything else)."""
    if not args or any(a in ("--help", "-h") for a in args):
        return None
    if args[0] == "hook" and len(args) == 1:
        from .hooks import fastpath

        return fastpath.main
    if args[:2] == ["log", "analyze"]:
        from . import quickanalyze

        parsed = quickanalyze.parse(args[2:])
        return None if parsed is None else lambda: quickanalyze.main(*parsed)
    if args[:2] == ["log", "serve"]:
        from . import logserve

        return lambda: logserve.main(args[2:])
    if args[0] == "log" and len(args) >= 2:
        from .events.verbs import VERBS

        if args[1] in VERBS:
            from . import quicklog

            return (lambda: quicklog.main(args[1], args[2:])) if quicklog.plain(args[2:]) else None
    return None


if __name__ == "__main__":
    sys.exit(main())
