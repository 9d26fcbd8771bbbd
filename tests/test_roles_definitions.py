"""Role definitions: the shipped files validate; broken fixtures fail with one line per problem."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import run_cli

from epyc_agent.roles import ROLES, definitions

SHIPPED = Path(__file__).resolve().parent.parent / "agents"


@pytest.fixture
def agents(tmp_path: Path) -> Path:
    """A copy of the shipped role files that a test may break (links resolve as in the checkout)."""
    d = tmp_path / "checkout" / "agents"
    shutil.copytree(SHIPPED, d)
    shutil.copytree(SHIPPED.parent / "research", tmp_path / "checkout" / "research")
    return d


def _validate(d: Path) -> tuple[int, list[str]]:
    r = run_cli("agents", "validate", "--dir", str(d))
    assert "Traceback" not in r.stderr
    return r.returncode, r.stdout.splitlines()


def test_shipped_roles_validate() -> None:
    """The six shipped roles pass schema, section and reference checks."""
    r = run_cli("agents", "validate")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == f"6 roles valid: {', '.join(sorted(ROLES))}"


def test_shipped_roles_state_the_lab_policies() -> None:
    """The policies the pipeline enforces are written in the roles' guardrails."""
    roles = {r.name: r for r in definitions.load_roles(str(SHIPPED))[0]}
    assert set(roles) == set(ROLES)
    assert "fewer than 3 repetitions" in roles["benchmark-analyst"].sections["Guardrails"]
    assert "mismatched controls" in roles["benchmark-analyst"].sections["Guardrails"]
    guard = roles["safety-reviewer"].sections["Guardrails"]
    assert "outside the root" in guard and "4th retry" in guard and "rollback plan" in guard


def test_missing_section_fails(agents: Path) -> None:
    """A role without its Guardrails section is one problem line and exit 1."""
    p = agents / "sysadmin.md"
    text = p.read_text()
    p.write_text(text[: text.index("## Guardrails")])
    rc, lines = _validate(agents)
    assert rc == 1 and [ln for ln in lines if ln.startswith("sysadmin.md")] == [
        "sysadmin.md: missing section '## Guardrails'"
    ]


def test_empty_section_fails(agents: Path) -> None:
    """A heading with nothing under it is a problem."""
    p = agents / "model-engineer.md"
    p.write_text(p.read_text().replace("## Outputs\n", "## Outputs\n\n## Ignored\n", 1))
    rc, lines = _validate(agents)
    assert rc == 1 and "model-engineer.md: section '## Outputs' is empty" in lines


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("name: sysadmin", "name: admin", "sysadmin.md: name 'admin' does not match the file name 'sysadmin'"),
        (
            "tools: [shell, read, search]",
            "tools: [shell, teleport]",
            "sysadmin.md: unknown tool 'teleport' (known: shell, read, search, edit, write, web, todo)",
        ),
        (
            "tools: [shell, read, search]",
            "tools: [shell, read, search]\ncolor: red",
            "sysadmin.md: unknown front matter key 'color' (known: name, description, tools, actions)",
        ),
        ("tools: [shell, read, search]", "tools: [shell, read, search", None),
    ],
)
def test_bad_front_matter_fails(agents: Path, old: str, new: str, expected: str | None) -> None:
    """Name mismatch, unknown tool, unknown key and broken YAML each fail validation."""
    p = agents / "sysadmin.md"
    p.write_text(p.read_text().replace(old, new, 1))
    rc, lines = _validate(agents)
    assert rc == 1
    mine = [ln for ln in lines if ln.startswith("sysadmin.md")]
    if expected:
        assert mine == [expected]
    else:
        assert len(mine) == 1 and mine[0].startswith("sysadmin.md: front matter is not valid YAML")


def test_bad_references_fail(agents: Path) -> None:
    """An unknown command in actions or prose, and a broken relative link, are each reported."""
    p = agents / "research-engineer.md"
    text = p.read_text().replace("actions: [", "actions: [system reboot, ", 1)
    text = text.replace("## Outputs\n", "## Outputs\n- run `epyc-agent frobnicate --all` and see [x](missing.md)\n", 1)
    p.write_text(text)
    rc, lines = _validate(agents)
    assert rc == 1
    for expected in (
        "research-engineer.md: action 'system reboot': 'reboot' is not a command of `epyc-agent system`",
        "research-engineer.md: `epyc-agent frobnicate --all`: 'frobnicate' is not a command of `epyc-agent`",
        "research-engineer.md: broken link 'missing.md' (no such file)",
    ):
        assert expected in lines
    assert not any("tracks.yaml" in ln for ln in lines)  # the good link still resolves


def test_command_words_stop_at_arguments() -> None:
    """Options, placeholders and quoted arguments end the command words of a mention."""
    assert definitions.command_words("system health --profile batch") == ["system", "health"]
    assert definitions.command_words('log rollback "<change>" x') == ["log", "rollback"]
    assert definitions.command_words("storage check PATH") == ["storage", "check"]


def test_show_and_list(agents: Path) -> None:
    """`agents show` prints the mapped Claude tools; `agents list --json` has all six roles."""
    r = run_cli("agents", "show", "safety-reviewer", "--dir", str(agents))
    assert r.returncode == 0 and "Claude Code: Read, Bash" in r.stdout and "## Guardrails" in r.stdout
    r = run_cli("agents", "show", "janitor", "--dir", str(agents))
    assert r.returncode == 2 and "no role 'janitor'" in r.stderr and "sysadmin" in r.stderr
    import json

    listed = json.loads(run_cli("agents", "list", "--json", "--dir", str(agents)).stdout)
    assert sorted(r["name"] for r in listed) == sorted(ROLES)
