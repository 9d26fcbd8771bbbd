"""Role definitions: `agents/<role>.md`, YAML front matter plus six required sections.

The front matter says what a role may use: `tools` (our names, mapped to Claude
Code's on install) and `actions` (epyc-agent commands). Validation checks the
schema, the sections and every reference (an `epyc-agent <cmd>` mention must be a
real command, a relative link must exist), so the files cannot drift from the
tool they describe. Command lookup is passed in: the library never imports click.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import EpycAgentError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

AGENTS_ENV = "EPYC_AGENT_AGENTS_DIR"
SECTIONS = ("Mission", "Use This Role When", "Inputs Required", "Outputs", "Workflow", "Guardrails")
# our tool names -> Claude Code tool names
TOOLS: dict[str, tuple[str, ...]] = {
    "shell": ("Bash",),
    "read": ("Read",),
    "search": ("Grep", "Glob"),
    "edit": ("Edit", "MultiEdit"),
    "write": ("Write",),
    "web": ("WebFetch", "WebSearch"),
    "todo": ("TodoWrite",),
}
# the tools Claude Code 2.1.328 reports (its stream-json init message), for when no CLI is found
CLI_TOOLS = frozenset(
    [
        "Task",
        "Bash",
        "CronCreate",
        "CronDelete",
        "CronList",
        "Edit",
        "EnterWorktree",
        "ExitWorktree",
        "ListAgents",
        "Monitor",
        "NotebookEdit",
        "Read",
        "ReportFindings",
        "ScheduleWakeup",
        "SendMessage",
        "Skill",
        "TaskStop",
        "ToolSearch",
        "WebFetch",
        "WebSearch",
        "Workflow",
        "Write",
    ]
)
FRONT_KEYS = ("name", "description", "tools", "actions")

_FRONT = re.compile(r"\A---\n(.*?)\n---\n?(.*)\Z", re.DOTALL)
_HEADING = re.compile(r"^## +(.+?) *$", re.MULTILINE)
_CMD = re.compile(r"`epyc-agent ([^`]*)`")
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


@dataclass
class Role:
    name: str
    path: str
    description: str
    tools: list[str]
    actions: list[str]
    body: str
    sections: dict[str, str] = field(default_factory=dict)
    front: dict[str, Any] = field(default_factory=dict)

    def claude_tools(self, available: Iterable[str] | None = None) -> list[str]:
        """Claude Code tool names for `tools`, in a stable order without duplicates, keeping only
        those the installed CLI has (2.1.x has no MultiEdit, Grep, Glob or TodoWrite)."""
        have = frozenset(CLI_TOOLS if available is None else available)
        return list(dict.fromkeys(t for name in self.tools for t in TOOLS.get(name, ()) if t in have))

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "tools": self.tools,
            "actions": self.actions,
            "path": self.path,
        }


def agents_dir(explicit: str | None = None) -> str:
    """`--dir`, else `$EPYC_AGENT_AGENTS_DIR`, else the checkout's `agents/`, else the installed copy."""
    from ..shipped import shipped_path

    if explicit:
        return os.path.abspath(explicit)
    if os.environ.get(AGENTS_ENV):
        return os.path.abspath(os.environ[AGENTS_ENV])
    return shipped_path("agents")


def role_files(directory: str) -> list[str]:
    try:
        names = sorted(n for n in os.listdir(directory) if n.endswith(".md") and not n.startswith("."))
    except FileNotFoundError:
        raise EpycAgentError(f"no agents folder at {directory}", hint=f"pass --dir or set {AGENTS_ENV}") from None
    return [os.path.join(directory, n) for n in names]


def parse(path: str) -> tuple[Role | None, list[str]]:
    """Parse one file; returns the role (None if unusable) and the problems found."""
    import yaml

    where = os.path.basename(path)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read().replace("\r\n", "\n")
    except (OSError, UnicodeDecodeError) as e:
        return None, [f"{where}: cannot read: {e}"]
    m = _FRONT.match(text)
    if not m:
        return None, [f"{where}: no YAML front matter (a '---' block at the top)"]
    try:
        front = yaml.safe_load(m.group(1))
    except yaml.YAMLError as e:
        return None, [f"{where}: front matter is not valid YAML: {str(e).splitlines()[0]}"]
    if not isinstance(front, dict):
        return None, [f"{where}: front matter must be a mapping"]
    body = m.group(2)
    parts = _HEADING.split(body)
    sections = {parts[i].strip(): parts[i + 1].strip() for i in range(1, len(parts) - 1, 2)}
    role = Role(
        name=str(front.get("name", "")),
        path=path,
        description=str(front.get("description") or ""),
        tools=front.get("tools") if isinstance(front.get("tools"), list) else [],
        actions=front.get("actions") if isinstance(front.get("actions"), list) else [],
        body=body,
        sections=sections,
        front=front,
    )
    return role, _schema_problems(where, path, front, sections)


def _schema_problems(where: str, path: str, front: dict[str, Any], sections: dict[str, str]) -> list[str]:
    problems = []
    stem = os.path.splitext(os.path.basename(path))[0]
    for key in front:
        if key not in FRONT_KEYS:
            problems.append(f"{where}: unknown front matter key '{key}' (known: {', '.join(FRONT_KEYS)})")
    if front.get("name") != stem:
        problems.append(f"{where}: name {front.get('name')!r} does not match the file name {stem!r}")
    if not isinstance(front.get("description"), str) or not front["description"].strip():
        problems.append(f"{where}: description missing or empty")
    tools = front.get("tools")
    if not isinstance(tools, list) or not tools:
        problems.append(f"{where}: tools must be a non-empty list (known: {', '.join(TOOLS)})")
    else:
        problems += [f"{where}: unknown tool {t!r} (known: {', '.join(TOOLS)})" for t in tools if t not in TOOLS]
    actions = front.get("actions")
    if not isinstance(actions, list) or not all(isinstance(a, str) and a.strip() for a in actions):
        problems.append(f"{where}: actions must be a list of epyc-agent commands, e.g. [system health]")
    for name in SECTIONS:
        if name not in sections:
            problems.append(f"{where}: missing section '## {name}'")
        elif not sections[name]:
            problems.append(f"{where}: section '## {name}' is empty")
    return problems


def reference_problems(role: Role, command_check: Callable[[list[str]], str | None]) -> list[str]:
    """Actions and `epyc-agent ...` mentions must be real commands; relative links must exist."""
    where = os.path.basename(role.path)
    problems = []
    mentions = [(f"action {a!r}", a) for a in role.actions if isinstance(a, str)]
    mentions += [(f"`epyc-agent {m}`", m) for m in dict.fromkeys(_CMD.findall(role.body))]
    for label, text in mentions:
        problem = command_check(command_words(text))
        if problem:
            problems.append(f"{where}: {label}: {problem}")
    base = os.path.dirname(role.path)
    for target in _LINK.findall(role.body):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # URLs and in-page anchors
        local = target.split("#", 1)[0]
        if local and not os.path.exists(os.path.join(base, local)):
            problems.append(f"{where}: broken link {target!r} (no such file)")
    return problems


def command_words(text: str) -> list[str]:
    """The command words of a mention: stop at the first option, placeholder or argument."""
    words = []
    for w in text.split():
        if not re.fullmatch(r"[a-z][a-z0-9-]*", w):
            break
        words.append(w)
    return words


def load_roles(directory: str | None = None) -> tuple[list[Role], list[str]]:
    """All roles in the folder (unparseable ones left out) and every schema problem."""
    roles, problems = [], []
    for path in role_files(agents_dir(directory)):
        role, probs = parse(path)
        problems += probs
        if role is not None:
            roles.append(role)
    return roles, problems


def validate(
    directory: str | None = None, command_check: Callable[[list[str]], str | None] | None = None
) -> tuple[list[Role], list[str]]:
    """Schema, sections and (with `command_check`) references; one line per problem."""
    roles, problems = load_roles(directory)
    if not roles and not problems:
        problems.append(f"{agents_dir(directory)}: no role files (*.md)")
    if command_check is not None:
        problems += [p for role in roles for p in reference_problems(role, command_check)]
    return roles, problems


def get_role(name: str, directory: str | None = None) -> Role:
    path = os.path.join(agents_dir(directory), f"{name}.md")
    if not os.path.isfile(path):
        known = ", ".join(os.path.splitext(os.path.basename(p))[0] for p in role_files(agents_dir(directory)))
        raise EpycAgentError(f"no role {name!r}", hint=f"known roles: {known}")
    role, problems = parse(path)
    if role is None:
        raise EpycAgentError(problems[0], hint="run `epyc-agent agents validate`")
    return role
