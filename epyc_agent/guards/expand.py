"""One bash word's source text -> its text after quote removal and the expansions known
before run time.

bashlex's own `word` text keeps quotes in mixed forms (`"$R/"'..'` comes out as
`$R/'..'`, `'a''b'` as `a''b`), which hides `..` from the path check, so words are
re-read from their source here with bash's rules: single quotes literal, double
quotes with `\\$ \\\\ \\" \\``, backslash escapes, `$'...'`, `~` at the start.
`$NAME`/`${NAME}` take the value `lookup` knows; `$(pwd)` and `` `pwd` `` the tracked
cwd; any other expansion stays in the text as written and makes the word dynamic.
"""

from __future__ import annotations

import os
import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
DEFAULTING = re.compile(r"([A-Za-z_][A-Za-z0-9_]*):?[-=?].*", re.S)
PWD_COMMANDS = ("pwd", "pwd -P", "pwd -L", "/bin/pwd")
ANSI = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "a": "\a", "e": "\x1b", "0": "\0"}


class Expander:
    """Expands one word; `lookup(name)` is a variable's value or None if unknown, `home` is ~."""

    def __init__(self, lookup: Callable[[str], str | None], cwd: str | None, home: str) -> None:
        self.lookup, self.cwd, self.home = lookup, cwd, home
        self.unknown: list[str] = []  # names of variables met without a known value

    def word(self, src: str, assignment: bool = False) -> tuple[str, bool]:
        """(text, dynamic) of the word whose source is `src`."""
        out: list[str] = []
        dynamic = False
        i = 0
        if assignment:
            eq = src.find("=")
            out.append(src[: eq + 1])
            i = eq + 1
        if src.startswith("~", i):
            i, dynamic = self.tilde(src, i, out)
        while i < len(src):
            c = src[i]
            if c == "'":
                j = src.find("'", i + 1)
                j = len(src) if j == -1 else j
                out.append(src[i + 1 : j])
                i = j + 1
            elif c == "\\":
                if src[i + 1 : i + 2] != "\n":
                    out.append(src[i + 1 : i + 2])
                i += 2
            elif c == '"':
                i, dyn = self.double(src, i + 1, out)
                dynamic = dynamic or dyn
            elif src.startswith("$'", i):
                i = _ansi(src, i + 2, out)
            elif src.startswith('$"', i):
                i, dyn = self.double(src, i + 2, out)
                dynamic = dynamic or dyn
            elif c in "$`":
                i, dyn = self.expansion(src, i, out)
                dynamic = dynamic or dyn
            else:
                out.append(c)
                i += 1
        return "".join(out), dynamic

    def tilde(self, src: str, i: int, out: list[str]) -> tuple[int, bool]:
        """A leading `~`, `~user`, `~+` ($PWD) or `~-` ($OLDPWD, unknown); the index after it."""
        end = src.find("/", i)
        end = len(src) if end == -1 else end
        head = src[i:end]
        if head == "~":
            out.append(self.home)
        elif head == "~+" and self.cwd:
            out.append(self.cwd)
        elif head == "~-":
            out.append("$OLDPWD")
            self.unknown.append("OLDPWD")
            return end, True
        elif NAME.fullmatch(head[1:].replace("-", "_")):
            out.append(os.path.expanduser(head))
        else:
            return i, False
        return end, False

    def double(self, src: str, i: int, out: list[str]) -> tuple[int, bool]:
        """Read a double-quoted string from src[i] (after the quote); the index after it."""
        dynamic = False
        while i < len(src) and src[i] != '"':
            c = src[i]
            if c == "\\" and src[i + 1 : i + 2] in ("$", "`", '"', "\\", "\n"):
                out.append("" if src[i + 1] == "\n" else src[i + 1])
                i += 2
            elif c in "$`":
                i, dyn = self.expansion(src, i, out)
                dynamic = dynamic or dyn
            else:
                out.append(c)
                i += 1
        return i + 1, dynamic

    def expansion(self, src: str, i: int, out: list[str]) -> tuple[int, bool]:
        """A `$...` or backtick expansion at src[i]: its value if known, else its source (dynamic)."""
        from .rewrite import _match_paren

        if src[i] == "`" or src.startswith("$(", i):
            if src[i] == "`":
                j = src.find("`", i + 1)
                j = len(src) - 1 if j == -1 else j
                inner = src[i + 1 : j]
            else:
                j = _match_paren(src, i + 1)
                j = len(src) - 1 if j == -1 else j
                inner = src[i + 2 : j]
            known = self.cwd is not None and inner.strip() in PWD_COMMANDS
            out.append(self.cwd if known and self.cwd else src[i : j + 1])  # `$(pwd)` is the cwd
            return j + 1, not known
        if src.startswith("${", i):
            j = src.find("}", i)
            j = len(src) - 1 if j == -1 else j
            name = src[i + 2 : j]
            return j + 1, self.variable(name, src[i : j + 1], out)
        m = NAME.match(src, i + 1)
        if m:
            return m.end(), self.variable(m.group(), src[i : m.end()], out)
        if src[i + 1 : i + 2].isdigit():  # `sh -c '... $1' _ ARG`: the positional the caller passed
            return i + 2, self.variable(src[i + 1], src[i : i + 2], out)
        if src[i + 1 : i + 2] and src[i + 1] in "$#?!@*-":
            out.append(src[i : i + 2])
            self.unknown.append(src[i + 1])
            return i + 2, True
        out.append("$")
        return i + 1, False

    def variable(self, name: str, source: str, out: list[str]) -> bool:
        """Append the value of `name` if known (True: unknown, the source is kept).
        `${N:-x}`, `${N:?}`, `${N:=x}` (and without `:`) are N's value when N is known and set."""
        m = DEFAULTING.fullmatch(name)
        if m and self.lookup(m.group(1)):
            name = m.group(1)
        value = self.lookup(name) if NAME.fullmatch(name) or name.isdigit() else None
        if value is None:
            self.unknown.append(name)
            out.append(source)
            return True
        out.append(value)
        return False


def _ansi(src: str, i: int, out: list[str]) -> int:
    """Read a `$'...'` string from src[i] (after the quote); the index after it."""
    while i < len(src) and src[i] != "'":
        if src[i] == "\\" and i + 1 < len(src):
            nxt = src[i + 1]
            if nxt == "x":
                m = re.match(r"[0-9a-fA-F]{1,2}", src[i + 2 :])
                if m:
                    out.append(chr(int(m.group(), 16)))
                    i += 2 + len(m.group())
                    continue
            out.append(ANSI.get(nxt, "\\" + nxt))
            i += 2
        else:
            out.append(src[i])
            i += 1
    return i + 1
