"""Rewrite bash syntax bashlex rejects into syntax it parses, keeping what runs.

bashlex 0.18 raises on quoted here-document delimiters (`<<'EOF'`), arithmetic
expansion (`$((1+1))`), `[[ ... ]]` and `case` patterns. Each rewrite keeps every
command that would run and every substitution that would be expanded, so the
walker still sees them; only syntax that runs nothing is replaced:

- `<<'EOF'`, `<<"EOF"`, `<<\\EOF` -> `<<EOF` (the body stays; bodies are data to
  the walker unless fed to a shell, which is parsed either way);
- `$(( EXPR ))` -> `${EPYC_ARITH}` (an unknown value), or `$(: EXPR)` when EXPR
  holds a command substitution, so that substitution is still checked;
- `[[ EXPR ]]` -> `[ EXPR ]` with `&&`, `||`, `<`, `>`, `(`, `)` made plain words;
- `case W in P) BODY;; ... esac` -> `{ : W; BODY; ...; }`: every branch is
  checked, as if each could run;
- `for ((...))` -> `for EPYC_ARITH in 1`, `$[...]` -> `${EPYC_ARITH}`, `a=(x y)` ->
  `a=$(: x y)`, extglob `!(keep)` -> `*`, and the `time` keyword is dropped.
"""

from __future__ import annotations

import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

HEREDOC_QUOTED = re.compile(r"""(?<!<)<<(?!<)(-?)[ \t]*(?:'([^'\n]+)'|"([^"\n]+)"|\\(\w+))""")
_WORD_END = " \t\n;&|()<>"


# (pattern, replacement) applied to the whole text: a match inside a quoted string only
# changes that string's text, never what runs
SIMPLE = (
    (re.compile(r"\bfor\s*\(\((?:[^()]|\([^()]*\))*\)\)"), "for EPYC_ARITH in 1"),  # for ((i=0; i<n; i++))
    (re.compile(r"\$\[[^\[\]]*\]"), "${EPYC_ARITH}"),  # $[1+1], the old arithmetic form
    (
        re.compile(r"(?<![\w$])([A-Za-z_]\w*(?:\[[^\]]*\])?\+?=)\("),
        r"\1$(: ",
    ),  # a=(1 $(x)): the elements' substitutions
    (re.compile(r"(?<![\w$\\])[?*+@!]\([^()\s]*\)"), "*"),  # extglob !(keep): any name
    (re.compile(r"(?:(?<=^)|(?<=[\n;&|({]))(\s*)time(?:\s+-p)?(?=\s+[^-\s])", re.M), r"\1"),  # the `time` keyword
)


def rewrite(command: str) -> tuple[str, frozenset[int]]:
    """`command` with the constructs bashlex rejects rewritten (see the module docstring), and
    where (the index of `<<` in the result) each here-document with a quoted delimiter starts:
    their bodies are data, while an unquoted one's `$(...)` runs."""
    text = command
    for pattern, replacement in SIMPLE:
        text = pattern.sub(replacement, text)
    text = _case(_dbracket(_arith(text)))
    quoted: list[int] = []
    out: list[str] = []
    last = 0
    for m in HEREDOC_QUOTED.finditer(text):
        out.append(text[last : m.start()])
        quoted.append(sum(len(x) for x in out))
        out.append("<<" + m.group(1) + (m.group(2) or m.group(3) or m.group(4)))
        last = m.end()
    out.append(text[last:])
    return "".join(out), frozenset(quoted)


def substitutions(text: str) -> list[str]:
    """The commands of the `$(...)` and backtick substitutions in `text` (an unquoted
    here-document's body), outermost only."""
    found, i = [], 0
    while i < len(text):
        if text[i] == "\\":
            i += 2
        elif text.startswith("$((", i):
            i += 3
        elif text.startswith("$(", i):
            end = _match_paren(text, i + 1)
            end = len(text) if end == -1 else end
            found.append(text[i + 2 : end])
            i = end + 1
        elif text[i] == "`":
            end = text.find("`", i + 1)
            end = len(text) if end == -1 else end
            found.append(text[i + 1 : end])
            i = end + 1
        else:
            i += 1
    return found


def _skip_quoted(text: str, i: int) -> int:
    """Index just past the quoted string or escape starting at text[i] (or i+1)."""
    ch = text[i]
    if ch == "\\":
        return i + 2
    if ch == "'":
        j = text.find("'", i + 1)
        return len(text) if j == -1 else j + 1
    if ch == '"':
        j = i + 1
        while j < len(text) and text[j] != '"':
            j += 2 if text[j] == "\\" else 1
        return j + 1
    return i + 1


def _match_paren(text: str, i: int) -> int:
    """Index of the `)` closing the `(` at text[i], skipping quotes; -1 if none."""
    depth, j = 0, i
    while j < len(text):
        ch = text[j]
        if ch in "'\"\\":
            j = _skip_quoted(text, j)
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return j
        j += 1
    return -1


def _arith(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch == "'" or ch == "\\":
            j = _skip_quoted(text, i)
            out.append(text[i:j])
            i = j
            continue
        if text.startswith("$((", i):
            end = _match_paren(text, i + 1)
            if end > 0 and text[end - 1] == ")":
                expr = _arith(text[i + 3 : end - 1])
                if "$(" in expr or "`" in expr:
                    out.append("$(: " + re.sub(r"[<>&|;]", " ", expr) + ")")
                else:
                    out.append("${EPYC_ARITH}")
                i = end + 1
                continue
        out.append(ch)
        i += 1
    return "".join(out)


def _at_word_start(text: str, i: int, word: str) -> bool:
    before = text[i - 1] if i else " "
    after = text[i + len(word)] if i + len(word) < len(text) else " "
    return text.startswith(word, i) and before in _WORD_END and after in _WORD_END


def _each_word(text: str, word: str, replace: Callable[[str, int], tuple[str, int]], command_only: bool = False) -> str:
    """`text` with every `word` outside quotes (at a command's start, with `command_only`)
    replaced: `replace(text, index after the word)` gives the new text and where to go on."""
    out, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch in "'\"\\":
            j = _skip_quoted(text, i)
            out.append(text[i:j])
            i = j
        elif _at_word_start(text, i, word) and (not command_only or _command_position(text, i)):
            piece, i = replace(text, i + len(word))
            out.append(piece)
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _dbracket(text: str) -> str:
    """Every `[[ ... ]]` as a `[ ... ]` bashlex can parse."""

    def plain(t: str, i: int) -> tuple[str, int]:
        body, j = _dbracket_body(t, i)
        return "[ " + body + " ]", j

    return _each_word(text, "[[", plain)


def _dbracket_body(text: str, i: int) -> tuple[str, int]:
    """The test expression after `[[` as plain words, and the index after `]]`."""
    out = []
    plain = {"&&": " -a ", "||": " -o ", "<": " -lt ", ">": " -gt ", "(": " ", ")": " "}
    while i < len(text):
        ch = text[i]
        if _at_word_start(text, i, "]]"):
            return "".join(out), i + 2
        if ch in "'\"\\":
            j = _skip_quoted(text, i)
            out.append(text[i:j])
            i = j
        elif text.startswith("$(", i):
            j = _match_paren(text, i + 1)
            j = len(text) - 1 if j == -1 else j
            out.append(text[i : j + 1])
            i = j + 1
        elif text[i : i + 2] in plain:
            out.append(plain[text[i : i + 2]])
            i += 2
        elif ch in plain:
            out.append(plain[ch])
            i += 1
        else:
            out.append(ch)
            i += 1
    return "".join(out), i


def _case(text: str) -> str:
    """Every `case` turned into a brace group of its branches (nested ones too)."""
    return _each_word(text, "case", _case_group, command_only=True)


def _command_position(text: str, i: int) -> bool:
    head = text[:i].rstrip(" \t")
    return not head or head[-1] in "\n;&|({" or head.endswith(("then", "do", "else", "in"))


def _case_group(text: str, i: int) -> tuple[str, int]:
    """From just after `case`: `{ : WORD;` + branches + `}`, and the index after `esac`."""
    m = re.compile(r"\s+in\b").search(text, i)
    if m is None:
        return "case", i
    out = ["{ :", text[i : m.start()], ";"]
    i = m.end()
    while i < len(text):
        i = _skip_space(text, i)
        if _at_word_start(text, i, "esac"):
            return "".join(out) + "\n}", i + 4
        close = _pattern_end(text, i)
        if close == -1:
            break
        out.append("\n:;")
        i = close + 1
        body, i = _case_body(text, i)
        out.append(body + "\n")
    return "".join(out) + "\n}", len(text)


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\n;":
        if text[i] == ";" and not text.startswith(";;", i):
            break
        i += 1
    return i


def _pattern_end(text: str, i: int) -> int:
    """Index of the `)` that ends the pattern starting at text[i]."""
    if i < len(text) and text[i] == "(":
        i += 1
    while i < len(text):
        if text[i] in "'\"\\":
            i = _skip_quoted(text, i)
        elif text[i] == ")":
            return i
        elif text[i] == "\n":
            return -1
        else:
            i += 1
    return -1


def _case_body(text: str, i: int) -> tuple[str, int]:
    """A branch's commands (nested `case` rewritten) and the index after its `;;`/`;&`."""
    out = []
    while i < len(text):
        ch = text[i]
        if ch in "'\"\\":
            j = _skip_quoted(text, i)
            out.append(text[i:j])
            i = j
        elif text.startswith(";;&", i):
            return "".join(out), i + 3
        elif text.startswith(";;", i) or text.startswith(";&", i):
            return "".join(out), i + 2
        elif _at_word_start(text, i, "esac"):
            return "".join(out), i
        elif _at_word_start(text, i, "case") and _command_position(text, i):
            group, i = _case_group(text, i + 4)
            out.append(group)
        elif text.startswith("$(", i) or ch == "(":
            j = _match_paren(text, i + (1 if ch == "$" else 0))
            j = len(text) - 1 if j == -1 else j
            out.append(_case(text[i : j + 1]))
            i = j + 1
        else:
            out.append(ch)
            i += 1
    return "".join(out), i
