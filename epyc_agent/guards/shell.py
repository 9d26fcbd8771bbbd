"""Bash command text -> the simple commands it runs, with their words and redirections.

`parse()` uses bashlex (a port of bash's own grammar) so quoting, lists, pipelines,
subshells, compound commands, command/process substitutions and here-documents are
seen the way bash sees them. bashlex costs ~150 ms to import, so the hook calls it
only after `prescan.needs_parse()` says a command could write or destroy.

Syntax bashlex rejects (`<<'EOF'`, `$(( ))`, `[[ ]]`, `case`, `for ((;;))`, arrays,
extglob, the `time` keyword) is rewritten first (`rewrite`); a script that still
fails is parsed line by line (a quote or here-document may span lines), and only the
lines no parser reads go to a token-level split whose commands are `uncertain`: a
target they cannot place is refused, never let through.

Words are re-read from their source with bash's quoting rules (`expand`): `~`,
variables known from the hook's environment and from assignments earlier in the
command, `$PWD` and `$(pwd)` (the tracked cwd), `$1` of `sh -c '...' _ ARG`. The cwd
is followed through `cd` (`-P`, CDPATH), `pushd`/`popd`, `env -C`, `sudo -D`; a
subshell's does not leak out. Wrappers (`wrappers.TABLE`: sudo, env, numactl, flock,
strace, su, script, watch, ...) are peeled off with their options; what a command
runs is parsed recursively up to MAX_DEPTH, past which it is refused: `bash -c`,
`eval`, `trap`, `find -exec`, `su -c`, `env -S`, a here-document, here-string or
`echo`/`printf` pipe fed to a shell.

What no static parse can see (`Parsed.blind` says when it met one): variables set
at run time or by sourced files, output of command substitutions used as paths,
aliases and shell functions defined elsewhere, loop variables, what scripts and
programs the command runs do (`python x.py`, `make`, `curl | sh`), and symlinks
created by the command itself.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

SHELLS = {"bash", "sh", "dash", "zsh", "ksh"}
WRITE_REDIRECTS = {">", ">>", ">|", "&>", "&>>", "<>", ">&"}
MAX_DEPTH = 4  # nested bash -c / eval
MAX_LOOP_ITEMS = 16  # a longer `for` list is walked once, its variable unknown


class Word:
    """One word after quote removal; `dynamic` if part of it is only known at run time."""

    __slots__ = ("text", "dynamic")

    def __init__(self, text: str, dynamic: bool = False) -> None:
        self.text, self.dynamic = text, dynamic

    def __repr__(self) -> str:
        return f"Word({self.text!r}{', dynamic' if self.dynamic else ''})"


class Cmd:
    """A simple command: its words (wrappers removed), write redirections and cwd."""

    __slots__ = ("argv", "redirects", "cwd", "wrapped", "uncertain")

    def __init__(
        self,
        argv: list[Word],
        redirects: list[tuple[str, Word]],
        cwd: str | None,
        wrapped: list[str],
        uncertain: bool = False,
    ) -> None:
        self.argv, self.redirects, self.cwd, self.wrapped = argv, redirects, cwd, wrapped
        self.uncertain = uncertain  # found by the token-level fallback: a target it cannot place is refused

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
        self.refusals: list[str] = []  # what could not be checked and so is refused outright

    def refuse(self, why: str) -> None:
        if why not in self.refusals:
            self.refusals.append(why)

    def note(self, what: str) -> None:
        if what not in self.blind:
            self.blind.append(what)


def parse(
    command: str,
    cwd: str | None,
    env: Mapping[str, str] | None = None,
    tables_dir: str | None = None,
    depth: int = 0,
) -> Parsed:
    """Parse `command` as bash would run it from `cwd` (`tables_dir`: see bashlex_tables).

    Syntax bashlex rejects is first rewritten (see `rewrite`); what still fails is
    split into lines, each line parsed on its own where it can be, so one odd line
    never hides the commands after it. Lines no parser reads go to the token-level
    fallback, whose commands are `uncertain` (a target they cannot place is refused)."""
    env = dict(os.environ if env is None else env)
    out = Parsed("bashlex")
    walker = _Walker(out, env, depth, tables_dir)
    state: dict[str, Any] = {"cwd": cwd, "dirs": []}
    parsed = _bashlex(command, tables_dir)
    if parsed is not None:
        walker.walk(*parsed, state)
        return out
    out.parser = "bashlex+shlex"
    lines = command.split("\n")
    start = 0
    while start < len(lines):
        end = _parsable_prefix(lines, start, tables_dir)
        if end is None:
            out.note("a line bashlex cannot parse was split into tokens (fallback); its unplaced writes are refused")
            from .fallback import Fallback

            Fallback(out, walker).run(lines[start], state)
            start += 1
            continue
        walker.walk(*(_bashlex("\n".join(lines[start:end]), tables_dir) or ([], "", frozenset())), state)
        start = end
    return out


MAX_CHUNK_LINES = 200  # a longer unparsable script is read line by line only


def _bashlex(command: str, tables_dir: str | None) -> tuple[list[Any], str, frozenset[int]] | None:
    """bashlex's trees for `command`, the text they index (`command` after `rewrite`) and
    where its quoted here-documents start; None if bashlex cannot parse it."""
    from .rewrite import rewrite

    text, quoted = rewrite(command)
    try:
        from .bashlex_tables import load

        return list(load(tables_dir).parse(text)), text, quoted
    except Exception:  # noqa: BLE001 - bashlex raises several types, incl. NotImplementedError
        return None


def _parsable_prefix(lines: list[str], start: int, tables_dir: str | None) -> int | None:
    """The smallest end such that lines[start:end] parse (a quote or here-document may span
    lines), or None if no such end exists within MAX_CHUNK_LINES."""
    for end in range(start + 1, min(len(lines), start + MAX_CHUNK_LINES) + 1):
        if not "\n".join(lines[start:end]).strip():
            return end
        if _bashlex("\n".join(lines[start:end]), tables_dir) is not None:
            return end
    return None


# --- bashlex tree walk ------------------------------------------------------------


class _Walker:
    def __init__(self, out: Parsed, env: dict[str, str], depth: int, tables_dir: str | None = None) -> None:
        self.out, self.env, self.depth, self.tables_dir = out, env, depth, tables_dir
        self.source = ""  # the text bashlex parsed (node positions index into it)
        self.quoted: frozenset[int] = frozenset()
        self.data: list[tuple[int, int]] = []  # spans of quoted here-document bodies

    def walk(self, trees: list[Any], source: str, quoted: frozenset[int], state: dict[str, Any]) -> None:
        """Walk parsed trees; `quoted`: where here-documents whose bodies are data start."""
        self.source, self.quoted = source, quoted
        self.data = [span for tree in trees for span in _data_spans(tree, quoted)]
        for tree in trees:
            self.node(tree, state)

    def node(self, n: Any, state: dict[str, Any]) -> None:
        kind = n.kind
        if kind == "command":
            self.command(n, state)
        elif kind == "list":
            for p in n.parts:
                self.node(p, state)
        elif kind == "pipeline":
            self.pipeline(n, state)
        elif kind == "compound":
            inner = _subshell(state) if n.list and getattr(n.list[0], "word", "") == "(" else state
            for p in n.list:
                self.node(p, inner)
            self.redirects(getattr(n, "redirects", []) or [], state, None)
        elif kind == "for":
            self.loop(n, state)
        elif kind in ("if", "while", "until", "function"):
            if kind == "function":
                self.out.note("defines a shell function (its body is checked, not its calls)")
            for p in n.parts:
                self.node(p, state)
        # operator, pipe, reservedword, word (loop items): nothing to run

    def loop(self, n: Any, state: dict[str, Any]) -> None:
        """`for V in ITEMS; do BODY; done`: the body once per item with V set, when the items are
        known and few (so `for d in a b; do rm -rf $d; done` is checked as `rm -rf a`, `rm -rf b`);
        else once with V unknown."""
        parts = n.parts
        name = parts[1].word if len(parts) > 1 and parts[1].kind == "word" else ""
        i = 3 if len(parts) > 2 and getattr(parts[2], "word", "") == "in" else len(parts)
        items: list[Word] = []
        while i < len(parts) and parts[i].kind == "word":
            items.extend(braces(self.word(parts[i], state)))
            i += 1
        body = [p for p in parts if p.kind not in ("word", "reservedword")]
        known = i < len(parts) and items and len(items) <= MAX_LOOP_ITEMS and not any(w.dynamic for w in items)
        if not known or not name.isidentifier():
            self.out.note("loop variables are not expanded")
            self.env.pop(name, None)
            for p in body:
                self.node(p, state)
            return
        for item in items:
            self.env[name] = item.text
            for p in body:
                self.node(p, state)

    def pipeline(self, n: Any, state: dict[str, Any]) -> None:
        """Each part in its own subshell; a shell reading the pipe gets the text an `echo` or
        `printf` before it prints, when that text is known (`echo 'rm -rf /x' | bash`)."""
        stdin: str | None = None
        for p in n.parts:
            if p.kind == "pipe":
                continue
            sub = _subshell(state)
            sub["stdin"] = stdin if stdin is not None else "?"
            self.node(p, sub)
            stdin = sub.get("printed")

    def word(self, w: Any, state: dict[str, Any]) -> Word:
        """The word after quote removal and known expansions (re-read from the source: see
        `expand`); substitutions in it are walked as commands of their own."""
        from .expand import Expander

        pos = getattr(w, "pos", None)
        src = self.source[pos[0] : pos[1]] if self.source and pos else w.word
        cwd = state.get("cwd")
        home = self.env.get("HOME") or os.path.expanduser("~")
        ex = Expander(lambda name: cwd if name == "PWD" else self.env.get(name), cwd, home)
        text, dynamic = ex.word(src, w.kind == "assignment")
        for name in ex.unknown:
            self.out.note(f"${name} is not known before run time")
        for p in getattr(w, "parts", []) or []:
            if any(a <= p.pos[0] < b for a, b in self.data):
                continue  # `$(...)` text in a quoted here-document's body (a commit message): data
            if p.kind in ("commandsubstitution", "processsubstitution") and not (cwd and _is_pwd(p.command)):
                dynamic = True
                self.out.note("command substitution output is not known before run time")
                self.node(p.command, _subshell(state))
        return Word(text, dynamic)

    def redirects(self, nodes: list[Any], state: dict[str, Any], into: list[tuple[str, Word]] | None) -> None:
        for r in nodes:
            if r.kind != "redirect":
                continue
            if r.type == "<<<" and not isinstance(r.output, int):
                state["stdin"] = self.word(r.output, state).text
                continue
            if getattr(r, "heredoc", None) is not None:
                body = r.heredoc.value
                state["stdin"] = body.rsplit("\n", 1)[0] if "\n" in body else ""
                if r.pos[0] not in self.quoted:  # an unquoted body's substitutions run
                    from .rewrite import substitutions

                    for inner in substitutions(state["stdin"]):
                        self.nested(Word(inner), state)
                continue
            if r.type not in WRITE_REDIRECTS or isinstance(r.output, int):  # 2>&1: fd duplication
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
        saved = state.get("stdin")  # a here-document or here-string feeds this command only
        for p in n.parts:
            if p.kind == "word":
                words.extend(braces(self.word(p, state)))
            elif p.kind == "assignment":
                name, _, _ = p.word.partition("=")
                val = self.word(p, state)
                assigns.append((name, Word(val.text.partition("=")[2], val.dynamic)))
            elif p.kind == "redirect":
                self.redirects([p], state, redirects)
        if not words:  # bare assignments set variables for what follows
            for name, val in assigns:
                _assign(self.env, name, val)
            if redirects:
                self.out.cmds.append(Cmd([], redirects, state.get("cwd"), []))
        else:
            self.emit(words, redirects, state, dict(assigns))
        state["stdin"] = saved

    def emit(
        self,
        words: list[Word],
        redirects: list[tuple[str, Word]],
        state: dict[str, Any],
        assigns: dict[str, Word] | None = None,
        uncertain: bool = False,
    ) -> None:
        """Record one simple command and follow what it does to the shell (cd, variables)
        and what it runs (nested shells, eval, trap, find -exec, wrappers' shell strings)."""
        from .wrappers import unwrap

        u = unwrap(words)
        if not u.runs:
            return
        cwd = state.get("cwd")
        if u.chdir is not None:
            cwd = None if u.chdir.dynamic else _join(cwd, u.chdir.text)
        redirects = redirects + [("-o", w) for w in u.writes]
        argv = _xargs(u, state.get("stdin")) if "xargs" in u.wrapped else u.words
        cmd = Cmd(argv, redirects, cwd, u.wrapped, uncertain)
        self.out.cmds.append(cmd)
        if argv is u.words and "xargs" in u.wrapped:
            self.out.note("xargs appends arguments known only at run time")
        env = {**self.env, **{k: v.text for k, v in {**(assigns or {}), **u.assigns}.items() if not v.dynamic}}
        for script in u.scripts:
            self.nested(script, {**state, "cwd": cwd}, env)
        self.follow(cmd, {**state, "cwd": cwd} if u.chdir is not None else state, env)

    def follow(self, cmd: Cmd, state: dict[str, Any], env: dict[str, str]) -> None:
        """What a command does beyond its own writes: moves the shell, sets variables, runs scripts."""
        name, words = cmd.name, cmd.argv
        if name in ("cd", "pushd"):
            if name == "pushd":
                state.setdefault("dirs", []).append(state.get("cwd"))
            state["cwd"] = _cd(words, state.get("cwd"), self.env, self.out)
        elif name == "popd":
            dirs = state.get("dirs") or []
            state["cwd"] = dirs.pop() if dirs else None
        elif name in ("export", "declare", "typeset", "local", "readonly"):
            for w in words[1:]:
                k, eq, v = w.text.partition("=")
                if eq and k.isidentifier():
                    _assign(self.env, k, Word(v, w.dynamic))
        elif name in ("echo", "printf"):
            if not any(w.dynamic for w in words[1:]):
                state["printed"] = _printed(words)
        elif name == "cat" and len(words) == 1 and state.get("stdin") not in (None, "?"):
            state["printed"] = state["stdin"]  # `cat <<EOF | bash`
        elif name in SHELLS:
            self.shell(words, state, env)
        elif name == "eval":
            self.nested(Word(" ".join(w.text for w in words[1:]), any(w.dynamic for w in words[1:])), state, env)
        elif name == "trap" and len(words) > 2 and words[1].text not in ("-p", "-l"):
            self.nested(words[1], state, env)
        elif name == "find":
            self.find_exec(cmd, state, env)
        elif name in SCRIPT_OPTIONS:
            for script in _option_scripts(name, words):
                self.nested(script, state, env)
        elif name in ("source", ".") and len(words) > 1 and words[1].text in ("/dev/stdin", "/proc/self/fd/0"):
            self.shell(words[:1], state, env)  # `. /dev/stdin <<< '...'`: the shell reads its stdin
        elif name in ("source", "."):
            self.out.note("sourced files are not read")

    def shell(self, words: list[Word], state: dict[str, Any], env: dict[str, str]) -> None:
        """`bash -c STR`, or a shell reading a script from a here-document, a here-string or a pipe."""
        script, has_file = _shell_script(words)
        if script is not None:
            after = words[words.index(script) + 1 :]
            positional = {str(n): w.text for n, w in enumerate(after) if not w.dynamic}
            outer = {k: v for k, v in env.items() if not k.isdigit()}  # a new shell has its own $1
            self.nested(script, state, {**outer, **positional})
        elif not has_file:
            stdin = state.get("stdin")
            if stdin == "?":
                self.out.refuse(
                    f"`{' '.join(w.text for w in words)}` runs a script piped in from a command whose output "
                    "is not known (save it under the root, read it, then run `bash FILE`)"
                )
            elif stdin is not None:
                self.nested(Word(stdin), state, env)
        else:
            self.out.note("a shell runs a script file (not read)")

    def find_exec(self, cmd: Cmd, state: dict[str, Any], env: dict[str, str]) -> None:
        """Each `-exec CMD {} ;` of a find runs CMD on what it finds under each start folder."""
        from .bash import _find_filters, find_parts

        starts, execs = find_parts(cmd)
        below = "/x" if _find_filters(cmd, exec_counts=False) else ""  # unfiltered: the start itself matches
        for inner in execs:
            for s in starts:
                found = s.text.rstrip("/") + below if below else s.text
                sub = [Word(x.text.replace("{}", found), x.dynamic or s.dynamic) for x in inner]
                self.emit(sub, [], dict(state), uncertain=cmd.uncertain)

    def nested(self, script: Word, state: dict[str, Any], env: dict[str, str] | None = None) -> None:
        """Parse a script a command runs (`bash -c`, `eval`, `trap`); past MAX_DEPTH, refuse."""
        if self.depth >= MAX_DEPTH:
            self.out.refuse(f"scripts nested more than {MAX_DEPTH} deep cannot be followed")
            return
        if script.dynamic:
            self.out.note("a script assembled at run time is not known")
        inner = parse(script.text, state.get("cwd"), self.env if env is None else env, self.tables_dir, self.depth + 1)
        self.out.cmds.extend(inner.cmds)
        for b in inner.blind:
            self.out.note(b)
        for r in inner.refusals:
            self.out.refuse(r)


# options whose value is a command line the program runs through a shell
SCRIPT_OPTIONS = {
    "tar": (
        "--to-command",
        "--checkpoint-action=exec",
        "--use-compress-program",
        "-I",
        "--info-script",
        "--new-volume-script",
        "--rsh-command",
    ),
    "rsync": ("-e", "--rsh"),
    "ssh": ("-oProxyCommand", "ProxyCommand", "-oLocalCommand", "LocalCommand"),
    "scp": ("-oProxyCommand", "ProxyCommand", "-S"),
}


def _option_scripts(name: str, words: list[Word]) -> list[Word]:
    """The command lines given to SCRIPT_OPTIONS (`tar --to-command='...'`, `rsync -e '...'`)."""
    out: list[Word] = []
    for i, w in enumerate(words[1:], 1):
        for opt in SCRIPT_OPTIONS[name]:
            if w.text == opt and i + 1 < len(words):
                out.append(words[i + 1])
            elif w.text.startswith(opt + "=") or (opt == "-I" and w.text.startswith("-I") and len(w.text) > 2):
                out.append(Word(w.text[len(opt) + (w.text[len(opt) : len(opt) + 1] == "=") :], w.dynamic))
    return out


def _xargs(u: Any, stdin: str | None) -> list[Word]:
    """The command xargs runs when its input is known (`echo /x | xargs rm -rf`): the input's
    words appended, or put in place of the `-I` string; else the command as written."""
    if stdin is None or stdin == "?" or u.argfile:
        return u.words  # type: ignore[no-any-return]
    items = [Word(t) for t in stdin.split()]
    if u.replace:
        return [Word(w.text.replace(u.replace, " ".join(t.text for t in items)), w.dynamic) for w in u.words]
    return [*u.words, *items]


def _data_spans(n: Any, quoted: frozenset[int]) -> list[tuple[int, int]]:
    """The body spans of the here-documents in tree `n` whose `<<` is at a `quoted` index."""
    spans: list[tuple[int, int]] = []
    stack = [n]
    while stack:
        node = stack.pop()
        heredoc = getattr(node, "heredoc", None) if getattr(node, "kind", "") == "redirect" else None
        if heredoc is not None and node.pos[0] in quoted:
            spans.append((heredoc.pos[0], heredoc.pos[1]))
        for attr in ("parts", "list", "command", "output", "heredoc"):
            child = getattr(node, attr, None)
            if isinstance(child, list):
                stack.extend(child)
            elif child is not None and hasattr(child, "kind"):
                stack.append(child)
    return spans


def _subshell(state: dict[str, Any]) -> dict[str, Any]:
    return {**state, "dirs": list(state.get("dirs") or [])}


def _assign(env: dict[str, str], name: str, val: Word) -> None:
    if val.dynamic:
        env.pop(name, None)
    else:
        env[name] = val.text


def _is_pwd(n: Any) -> bool:
    parts = getattr(n, "parts", None) or []
    return n.kind == "command" and bool(parts) and all(p.kind == "word" for p in parts) and parts[0].word == "pwd"


def _printed(words: list[Word]) -> str:
    """What `echo ARGS` / `printf FMT ARGS` prints, near enough to parse as a script."""
    args = [w.text for w in words[1:]]
    while args and args[0].startswith("-") and words[0].text == "echo":
        args = args[1:]
    return " ".join(args).replace("\\n", "\n")


def braces(w: Word) -> list[Word]:
    """Bash brace expansion, one level: `{rm,-rf,/x}` -> rm -rf /x, `f{,.bak}` -> f f.bak.
    (Quoting is already removed, so a quoted `{a,b}` is expanded too: the cautious side.)"""
    i = w.text.find("{")
    j = w.text.find("}", i + 1)
    if i == -1 or j == -1 or "," not in w.text[i:j] or "{" in w.text[i + 1 : j] or w.text[i - 1 : i] == "$":
        return [w]
    head, tail = w.text[:i], w.text[j + 1 :]
    return [Word(head + part + tail, w.dynamic) for part in w.text[i + 1 : j].split(",")]


SHELL_VALUE_OPTS = {"-o", "-O", "+o", "+O", "--rcfile", "--init-file"}


def _shell_script(words: list[Word]) -> tuple[Word | None, bool]:
    """For `bash [opts] -c STR` the script STR (`-c --`, `-xc`, `-o pipefail -c` too); else
    (None, whether a script file is named)."""
    dash_c = False
    i = 1
    while i < len(words):
        t = words[i].text
        if t == "--":
            i += 1
            break
        if t in SHELL_VALUE_OPTS:
            i += 2
            continue
        if t[:1] in "-+" and len(t) > 1:
            dash_c = dash_c or (not t.startswith("--") and "c" in t)
            i += 1
            continue
        break
    if dash_c:
        return (words[i] if i < len(words) else None), False
    return None, i < len(words)


def _join(cwd: str | None, target: str) -> str | None:
    if os.path.isabs(target):
        return os.path.normpath(target)
    return os.path.normpath(os.path.join(cwd, target)) if cwd else None


def _cd(words: list[Word], cwd: str | None, env: Mapping[str, str], out: Parsed) -> str | None:
    """The folder `cd`/`pushd` moves to: `-P` resolves symlinks first (`cd -P link/..` is the
    link target's parent), CDPATH is searched for a bare relative name, `-` is unknown."""
    opts = [w.text for w in words[1:] if w.text.startswith("-") and w.text != "-"]
    args = [w for w in words[1:] if not w.text.startswith("-") or w.text == "-"]
    if not args:
        return env.get("HOME") or cwd
    if words[0].text == "pushd" and (not args or any(w.text[1:].isdigit() for w in words[1:])):
        return None  # `pushd`, `pushd +1`: a rotation of the stack
    target = args[0]
    if target.dynamic or target.text == "-":
        return None  # unknown from here on
    text = target.text
    cdpath = env.get("CDPATH")
    if cdpath and not os.path.isabs(text) and not text.startswith(("./", "../")) and text not in (".", ".."):
        for base in cdpath.split(":"):
            cand = _join(cwd, os.path.join(base or ".", text))
            if cand and os.path.isdir(cand):
                out.note("cd followed CDPATH")
                return cand
    physical = any(o.startswith("-") and not o.startswith("--") and "P" in o for o in opts)
    if physical:
        joined = text if os.path.isabs(text) else (os.path.join(cwd, text) if cwd else None)
        return os.path.realpath(joined) if joined else None
    return _join(cwd, text)
