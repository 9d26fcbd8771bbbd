"""The token-level split for a line of bash that no rewrite makes bashlex parse.

It still finds command words and redirections (and, through the walker's `emit`,
wrappers, nested shells and cwd changes), but not what is inside substitutions;
every command it finds is `uncertain`, so a target it cannot place is refused.
"""

from __future__ import annotations

import os
import shlex

from .shell import WRITE_REDIRECTS, Cmd, Parsed, Word

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .shell import _Walker

SEPARATORS = {";", "&&", "||", "|", "&", "(", ")", "|&", ";;", ";&", ";;&", "\n", "{", "}", "!", "((", "))"}
RESERVED = {"if", "then", "else", "elif", "fi", "do", "done", "while", "until", "esac", "time", "coproc", "select"}
PUNCT = set(";&|()<>")
OPERATORS = (";;&", "&>>", "<<<", "&&", "||", ";;", ";&", "|&", "&>", ">>", ">|", "<<", "<>", ">&", "<&", "((", "))")


def _split_ops(token: str) -> list[str]:
    """A run of punctuation shlex kept together (`);`, `)>`) -> the operators bash reads in it."""
    out, i = [], 0
    while i < len(token):
        op = next((o for o in OPERATORS if token.startswith(o, i)), token[i])
        out.append(op)
        i += len(op)
    return out


class Fallback:
    """Token-level split for a line no rewrite makes parsable: finds commands and
    redirections, marked `uncertain` (their unplaceable targets are refused)."""

    def __init__(self, out: Parsed, walker: _Walker) -> None:
        self.out, self.walker, self.env = out, walker, walker.env

    def run(self, command: str, state: dict[str, Any]) -> None:
        lex = shlex.shlex(command, posix=True, punctuation_chars=True)
        lex.whitespace_split = True
        lex.commenters = ""
        try:
            tokens = list(lex)
        except ValueError as e:
            self.out.note(f"unbalanced quoting ({e}); checked word by word")
            tokens = command.split()
        tokens = [op for t in tokens for op in (_split_ops(t) if t and set(t) <= PUNCT else [t])]
        if "$(" in command or "`" in command or "<(" in command or ">(" in command:
            self.out.note("command substitutions are not seen by the fallback parser")
        words: list[Word] = []
        redirects: list[tuple[str, Word]] = []
        i = 0
        while i <= len(tokens):
            t = tokens[i] if i < len(tokens) else ";"
            if t in SEPARATORS or t in ("[[", "]]") or (not words and t in RESERVED):
                if words:
                    self.walker.emit(words, redirects, state, uncertain=True)
                elif redirects:
                    self.out.cmds.append(Cmd([], redirects, state.get("cwd"), [], True))
                words, redirects = [], []
            elif t and set(t) <= set("<>&|;") and ">" in t:
                op = t.lstrip("0123456789")
                target = tokens[i + 1] if i + 1 < len(tokens) else ""
                i += 1
                if not (op.endswith("&") and target.isdigit()) and target != "-":
                    redirects.append((op if op in WRITE_REDIRECTS else ">", self.word(target)))
            elif t.isdigit() and i + 1 < len(tokens) and tokens[i + 1].startswith((">", "<")):
                pass  # fd number of the redirection that follows
            elif t and set(t) <= set("<>&|;"):
                pass
            else:
                words.append(self.word(t))
            i += 1

    def word(self, t: str) -> Word:
        dynamic = "$" in t or "`" in t
        if t.startswith("~"):
            t = (self.env.get("HOME") or os.path.expanduser("~")) + t[1:] if t[:2] in ("~", "~/") else t
        if dynamic:
            for k, v in self.env.items():
                for form in ("${" + k + "}", "$" + k):
                    if form in t and (form.startswith("${") or not _ident_continues(t, t.find(form) + len(form))):
                        t = t.replace(form, v)
            dynamic = "$" in t or "`" in t
        return Word(t, dynamic)


def _ident_continues(t: str, i: int) -> bool:
    return i < len(t) and (t[i].isalnum() or t[i] == "_")
