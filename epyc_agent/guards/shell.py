"""Bash command text -> the simple commands it runs, with their words and redirections.

`parse()` uses bashlex (a port of bash's own grammar) so quoting, lists, pipelines,
subshells, compound commands, command/process substitutions and here-documents are
seen the way bash sees them. bashlex costs ~150 ms to import, so the hook calls it
only after `prescan.needs_parse()` says a command could write or destroy.

Expansion is partial: `~`, `$HOME`-style variables known from the hook's
environment and assignments earlier in the same command (`D=/x; rm -r "$D"`) are
substituted; `cd DIR` is followed for the commands after it. `bash -c STR`,
`sh -c STR` and `eval ARGS` are parsed recursively; `sudo`, `env`, `nice`, `nohup`,
`time`, `timeout`, `xargs`, `command`, `exec` are unwrapped.

What no static parse can see (`Parsed.blind` says when it met one): variables set
at run time or by sourced files, output of command substitutions used as paths,
aliases and shell functions defined elsewhere, what scripts and programs the
command runs do (`python x.py`, `make`), and symlinks created by the command itself.
Syntax bashlex rejects (`[[ ]]`, `$(( ))`, some `case` forms) falls back to a
token-level split (`shlex`) that still finds redirections and command words but
cannot see inside substitutions.
"""

from __future__ import annotations

import os
import shlex

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

WRAPPERS = {
    "sudo",
    "env",
    "nice",
    "nohup",
    "time",
    "timeout",
    "command",
    "exec",
    "builtin",
    "stdbuf",
    "ionice",
    "chrt",
    "taskset",
    "numactl",
    "xargs",
    "doas",
    "unbuffer",
}
SHELLS = {"bash", "sh", "dash", "zsh", "ksh"}
WRITE_REDIRECTS = {">", ">>", ">|", "&>", "&>>", "<>", ">&"}
MAX_DEPTH = 4  # nested bash -c / eval


class Word:
    """One word after quote removal; `dynamic` if part of it is only known at run time."""

    __slots__ = ("text", "dynamic")

    def __init__(self, text: str, dynamic: bool = False) -> None:
        self.text, self.dynamic = text, dynamic

    def __repr__(self) -> str:
        return f"Word({self.text!r}{', dynamic' if self.dynamic else ''})"


class Cmd:
    """A simple command: its words (wrappers removed), write redirections and cwd."""

    __slots__ = ("argv", "redirects", "cwd", "wrapped")

    def __init__(
        self, argv: list[Word], redirects: list[tuple[str, Word]], cwd: str | None, wrapped: list[str]
    ) -> None:
        self.argv, self.redirects, self.cwd, self.wrapped = argv, redirects, cwd, wrapped

    @property
    def name(self) -> str:
        return os.path.basename(self.argv[0].text) if self.argv else ""

    def __repr__(self) -> str:
        return f"Cmd({[w.text for w in self.argv]}, redirects={self.redirects}, cwd={self.cwd!r})"


class Parsed:
    """Every simple command found, and notes on what the parse could not see."""

    def __init__(self, parser: str) -> None:
        self.parser = parser
        self.cmds: list[Cmd] = []
        self.blind: list[str] = []

    def note(self, what: str) -> None:
        if what not in self.blind:
            self.blind.append(what)


def parse(command: str, cwd: str | None, env: Mapping[str, str] | None = None, tables_dir: str | None = None) -> Parsed:
    """Parse `command` as bash would run it from `cwd` (`tables_dir`: see bashlex_tables)."""
    env = dict(os.environ if env is None else env)
    try:
        from .bashlex_tables import load

        trees = load(tables_dir).parse(command)
    except Exception as e:  # noqa: BLE001 - bashlex raises several types, incl. NotImplementedError
        out = Parsed("shlex")
        out.note(f"bashlex could not parse ({type(e).__name__}: {str(e)[:80]}); token-level fallback used")
        _Fallback(out, env).run(command, cwd)
        return out
    out = Parsed("bashlex")
    walker = _Walker(out, env, 0)
    state = {"cwd": cwd}
    for tree in trees:
        walker.node(tree, state)
    return out


# --- bashlex tree walk ------------------------------------------------------------


class _Walker:
    def __init__(self, out: Parsed, env: dict[str, str], depth: int) -> None:
        self.out, self.env, self.depth = out, env, depth

    def node(self, n: Any, state: dict[str, Any]) -> None:
        kind = n.kind
        if kind == "command":
            self.command(n, state)
        elif kind == "list":
            for p in n.parts:
                self.node(p, state)
        elif kind == "pipeline":
            for p in n.parts:
                self.node(p, dict(state))
        elif kind == "compound":
            inner = dict(state) if n.list and getattr(n.list[0], "word", "") == "(" else state
            for p in n.list:
                self.node(p, inner)
            self.redirects(getattr(n, "redirects", []) or [], state, None)
        elif kind in ("if", "for", "while", "until", "function"):
            if kind == "function":
                self.out.note("defines a shell function (its body is checked, not its calls)")
            if kind == "for":
                self.out.note("loop variables are not expanded")
            for p in n.parts:
                self.node(p, state)
        # operator, pipe, reservedword, word (loop items): nothing to run

    def word(self, w: Any, state: dict[str, Any]) -> Word:
        text, dynamic = w.word, False
        for p in getattr(w, "parts", []) or []:
            if p.kind == "parameter":
                name = p.value
                val = self.env.get(name) if name.isidentifier() else None
                if val is None:
                    dynamic = True
                    self.out.note(f"${name} is not known before run time")
                    continue
                text = (
                    text.replace("${" + name + "}", val, 1)
                    if "${" + name + "}" in text
                    else text.replace("$" + name, val, 1)
                )
            elif p.kind == "tilde":
                home = self.env.get("HOME") or os.path.expanduser("~")
                if text.startswith(p.value):
                    text = (home if p.value == "~" else os.path.expanduser(p.value)) + text[len(p.value) :]
            elif p.kind in ("commandsubstitution", "processsubstitution"):
                dynamic = True
                self.out.note("command substitution output is not known before run time")
                self.node(p.command, dict(state))
        return Word(text, dynamic)

    def redirects(self, nodes: list[Any], state: dict[str, Any], into: list[tuple[str, Word]] | None) -> None:
        for r in nodes:
            if r.kind != "redirect" or r.type not in WRITE_REDIRECTS:
                continue
            if isinstance(r.output, int):  # 2>&1 and friends: fd duplication
                continue
            target = self.word(r.output, state)
            if r.type == ">&" and target.text.isdigit():
                continue
            if into is None:
                self.out.cmds.append(Cmd([], [(r.type, target)], state.get("cwd"), []))
            else:
                into.append((r.type, target))

    def command(self, n: Any, state: dict[str, Any]) -> None:
        words: list[Word] = []
        redirects: list[tuple[str, Word]] = []
        assigns: list[tuple[str, Word]] = []
        for p in n.parts:
            if p.kind == "word":
                words.extend(braces(self.word(p, state)))
            elif p.kind == "assignment":
                name, _, _ = p.word.partition("=")
                val = self.word(p, state)
                assigns.append((name, Word(val.text.partition("=")[2], val.dynamic)))
            elif p.kind == "redirect":
                self.redirects([p], state, redirects)
                heredoc = getattr(p, "heredoc", None)
                if heredoc is not None:
                    self.out.note("here-document bodies are data (not checked as commands)")
        if not words:  # bare assignments set variables for what follows
            for name, val in assigns:
                if val.dynamic:
                    self.env.pop(name, None)
                else:
                    self.env[name] = val.text
            if redirects:
                self.out.cmds.append(Cmd([], redirects, state.get("cwd"), []))
            return
        self.emit(words, redirects, state)

    def emit(self, words: list[Word], redirects: list[tuple[str, Word]], state: dict[str, Any]) -> None:
        words, wrapped = unwrap(words)
        cmd = Cmd(words, redirects, state.get("cwd"), wrapped)
        self.out.cmds.append(cmd)
        if "xargs" in wrapped:
            self.out.note("xargs appends arguments known only at run time")
        name = cmd.name
        if name == "cd":
            state["cwd"] = _cd(words, state.get("cwd"), self.env)
        elif name in ("export", "declare", "typeset", "local", "readonly"):
            for w in words[1:]:
                k, eq, v = w.text.partition("=")
                if eq and k.isidentifier():
                    if w.dynamic:
                        self.env.pop(k, None)
                    else:
                        self.env[k] = v
        elif name in SHELLS:
            script = _dash_c(words)
            if script is not None:
                self.nested(script.text, state)
        elif name == "eval":
            self.nested(" ".join(w.text for w in words[1:]), state)
        elif name in ("source", "."):
            self.out.note("sourced files are not read")

    def nested(self, script: str, state: dict[str, Any]) -> None:
        if self.depth >= MAX_DEPTH:
            self.out.note("nesting too deep to follow")
            return
        inner = parse(script, state.get("cwd"), self.env)
        self.out.cmds.extend(inner.cmds)
        for b in inner.blind:
            self.out.note(b)


def braces(w: Word) -> list[Word]:
    """Bash brace expansion, one level: `{rm,-rf,/x}` -> rm -rf /x, `f{,.bak}` -> f f.bak.
    (Quoting is already removed, so a quoted `{a,b}` is expanded too: the cautious side.)"""
    i = w.text.find("{")
    j = w.text.find("}", i + 1)
    if i == -1 or j == -1 or "," not in w.text[i:j] or "{" in w.text[i + 1 : j] or w.text[i - 1 : i] == "$":
        return [w]
    head, tail = w.text[:i], w.text[j + 1 :]
    return [Word(head + part + tail, w.dynamic) for part in w.text[i + 1 : j].split(",")]


def _dash_c(words: list[Word]) -> Word | None:
    for i, w in enumerate(words[1:-1], 1):
        if w.text.startswith("-") and not w.text.startswith("--") and "c" in w.text:
            return words[i + 1]
    return None


def _cd(words: list[Word], cwd: str | None, env: Mapping[str, str]) -> str | None:
    args = [w for w in words[1:] if not w.text.startswith("-")]
    if not args:
        return env.get("HOME") or cwd
    if args[0].dynamic:
        return None  # unknown from here on
    target = args[0].text
    if os.path.isabs(target):
        return os.path.normpath(target)
    return os.path.normpath(os.path.join(cwd, target)) if cwd else None


def unwrap(words: list[Word]) -> tuple[list[Word], list[str]]:
    """Strip leading wrappers (`sudo -u x`, `env A=1`, `timeout 5`, `xargs -0`) off argv."""
    wrapped: list[str] = []
    i = 0
    while i < len(words):
        name = os.path.basename(words[i].text)
        if name not in WRAPPERS:
            break
        wrapped.append(name)
        i += 1
        while i < len(words):
            t = words[i].text
            if t.startswith("-"):
                # options that take a value (sudo -u U, timeout -s SIG, nice -n N, xargs -I R ...)
                if t in ("-u", "-g", "-n", "-s", "-k", "-I", "-L", "-P", "-d", "-C", "-p", "-c"):
                    i += 1
                i += 1
            elif (
                (name == "env" and "=" in t)
                or (name == "timeout" and t[:1].isdigit())
                or (name in ("taskset", "chrt", "ionice") and t[:1].isdigit())
            ):
                i += 1
            else:
                break
    return words[i:], wrapped


# --- fallback ---------------------------------------------------------------------

SEPARATORS = {";", "&&", "||", "|", "&", "(", ")", "|&", ";;", "\n", "{", "}", "!"}


class _Fallback:
    """Token-level split for syntax bashlex rejects: finds commands and redirections."""

    def __init__(self, out: Parsed, env: dict[str, str]) -> None:
        self.out, self.env = out, env

    def run(self, command: str, cwd: str | None) -> None:
        lex = shlex.shlex(command, posix=True, punctuation_chars=True)
        lex.whitespace_split = True
        lex.commenters = ""
        try:
            tokens = list(lex)
        except ValueError as e:
            self.out.note(f"unbalanced quoting ({e}); checked word by word")
            tokens = command.split()
        if "$(" in command or "`" in command or "<(" in command or ">(" in command:
            self.out.note("command substitutions are not seen by the fallback parser")
        state = {"cwd": cwd}
        walker = _Walker(self.out, self.env, MAX_DEPTH)
        words: list[Word] = []
        redirects: list[tuple[str, Word]] = []
        i = 0
        while i <= len(tokens):
            t = tokens[i] if i < len(tokens) else ";"
            if t in SEPARATORS or t in ("[[", "]]"):
                if words:
                    walker.emit(words, redirects, state)
                elif redirects:
                    self.out.cmds.append(Cmd([], redirects, state.get("cwd"), []))
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
