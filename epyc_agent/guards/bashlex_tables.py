"""Import bashlex without rebuilding its LALR tables on every run.

bashlex 0.18's bundled yacc computes the parse tables at import time, every time
(~150 ms of the ~200 ms import here; its `parsetab.py` is never read). The hook
is a new process per tool call, so the tables are cached as JSON in
`<log_dir>/.state/bashlex-tables.json`, keyed by the Python version and the size
and mtime of bashlex's parser and yacc modules, and the parser object is built
from them. A missing, stale or unreadable cache falls back to bashlex's own build
(and rewrites the cache); the parse itself is bashlex's, unchanged.

The folder is agent-writable and forged tables would change what the bash guard sees, so the
cache is signed (`fileio.write_json_signed`, key outside the root): a file that fails the check is
rebuilt over, never used.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types

from ..fileio import read_json_signed, secret_key, write_json_signed

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

CACHE_NAME = "bashlex-tables.json"


class _Production:
    """What bashlex's LRParser reads from a production while parsing."""

    __slots__ = ("name", "len", "func", "str", "callable")

    def __init__(self, name: str, length: int, func: str | None, text: str, pdict: dict[str, Any]) -> None:
        self.name, self.len, self.func, self.str = name, length, func, text
        self.callable = pdict[func] if func else None


class _Tables:
    def __init__(self, data: dict[str, Any], pdict: dict[str, Any]) -> None:
        self.lr_productions = [_Production(*p, pdict) for p in data["productions"]]
        self.lr_action = {int(k): v for k, v in data["action"].items()}
        self.lr_goto = {int(k): v for k, v in data["goto"].items()}


def _key(spec: Any) -> list[Any]:
    base = list(spec.submodule_search_locations)[0]
    key: list[Any] = [sys.version]
    for name in ("parser.py", "yacc.py"):
        st = os.stat(os.path.join(base, name))
        key += [st.st_size, st.st_mtime_ns]
    return key


def load(state_dir: str | None) -> types.ModuleType:
    """The bashlex package, its parser built from cached tables when possible."""
    if "bashlex" in sys.modules:
        return sys.modules["bashlex"]
    if state_dir is None:
        import bashlex

        return bashlex
    spec = importlib.util.find_spec("bashlex")
    if spec is None or spec.loader is None:
        raise ImportError("bashlex is not installed")
    key = _key(spec)
    pkg = importlib.util.module_from_spec(spec)
    sys.modules["bashlex"] = pkg
    try:
        from bashlex import yacc as y  # the submodule alone: the package body has not run yet

        original = y.yacc
        y.yacc = _cached_yacc(original, y, os.path.join(state_dir, CACHE_NAME), key)
        try:
            spec.loader.exec_module(pkg)
        finally:
            y.yacc = original
    except BaseException:
        for name in [n for n in sys.modules if n == "bashlex" or n.startswith("bashlex.")]:
            del sys.modules[name]
        raise
    return pkg


def _cached_yacc(original: Any, y: Any, path: str, key: list[Any]) -> Any:
    def yacc(**kw: Any) -> Any:
        pdict = sys._getframe(1).f_globals  # bashlex.parser's namespace: the p_* grammar functions
        secret = secret_key(os.path.dirname(os.path.dirname(path)))
        data = read_json_signed(path, secret)
        try:
            if isinstance(data, dict) and data.get("key") == key:
                return y.LRParser(_Tables(data, pdict), pdict["p_error"])
        except (ValueError, KeyError, TypeError, AttributeError):
            pass
        parser = original(module=types.SimpleNamespace(**pdict), **kw)
        _save(path, key, parser, secret)
        return parser

    return yacc


def _save(path: str, key: list[Any], parser: Any, secret: bytes | None) -> None:
    """Best effort: a cache that cannot be written (or signed) only costs speed."""
    data = {
        "key": key,
        "productions": [[p.name, p.len, p.func, p.str] for p in parser.productions],
        "action": {str(k): v for k, v in parser.action.items()},
        "goto": {str(k): v for k, v in parser.goto.items()},
    }
    try:
        write_json_signed(path, data, secret)
    except (OSError, ValueError):
        pass
