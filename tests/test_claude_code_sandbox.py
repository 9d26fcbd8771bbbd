"""The kernel floor and the storage environment, under the real Claude Code CLI.

`hooks install` (Landlock available) makes `epyc-agent-shell` Claude Code's shell prefix: every
Bash command runs under Landlock, so a write outside the root fails in the kernel even when the
parser guards are switched off. The storage environment reaches the agent's Bash through
$CLAUDE_ENV_FILE, which a project install can use (its settings `env` block cannot set TMPDIR).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from claude_code.harness import Lab
from claude_code.scripted_api import text, tool

from epyc_agent.sandbox import abi_version

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(abi_version() < 1, reason="this kernel has no Landlock"),
]

# (attack, in-root twin) pairs: {D} is the target folder, outside the root or under it
PAIRS = [
    "echo x > {D}/redirect.txt",
    "cp /etc/hostname {D}/copied.txt",
    "touch {D}/touched.txt",
    "cat > {D}/heredoc.txt <<'EOF'\nline\nEOF",
    "python3 -c \"open('{D}/python.txt', 'w').write('x')\"",
    "mkdir {D}/newdir",
    "rm -rf {D}/keep",
    "mv {D}/movable.txt {D}/moved.txt",
    "ln -s /etc/passwd {D}/link",
]


def _seed(d: Path) -> None:
    (d / "keep").mkdir()
    (d / "keep" / "precious").write_text("p")
    (d / "movable.txt").write_text("m")


def _tree(d: Path) -> list[str]:
    return sorted(str(p.relative_to(d)) for p in d.rglob("*"))


def test_install_puts_the_shell_prefix_in_place(lab: Lab) -> None:
    """The project's settings name epyc-agent-shell as the prefix, with the root among the folders."""
    env = json.loads((lab.project / ".claude" / "settings.json").read_text())["env"]
    assert env["CLAUDE_CODE_SHELL_PREFIX"].endswith("/epyc-agent-shell")
    assert str(lab.root) in env["EPYC_AGENT_SANDBOX_WRITE"].split(":")


def test_storage_environment_reaches_the_agents_bash(lab: Lab) -> None:
    """$TMPDIR and $XDG_CACHE_HOME in the agent's Bash point under the root after a project install."""
    call = tool("Bash", command='echo "$TMPDIR|$XDG_CACHE_HOME|$EPYC_AGENT_SESSION"', description="env")
    run = lab.run([[call], [text("ok")]])
    tmp, cache, session = run.api.result_text(call["id"]).split("|")
    assert tmp.startswith(str(lab.root)) and cache.startswith(str(lab.root)), (tmp, cache)
    assert session == f"cc-{run.result()['session_id']}"


def test_kernel_stops_every_attack_with_the_parser_off(lab: Lab) -> None:
    """With the Bash and destructive guards off, each attack fails in the kernel and writes
    nothing outside the root, while its in-root twin works."""
    (lab.home / ".config" / "epyc-agent" / "config.yaml").write_text(
        f"root: {lab.root}\nguards: {{bash: off, destructive: off}}\n"
    )
    work = lab.root / "work"
    work.mkdir()
    for d in (lab.outside, work):
        _seed(d)
    before = _tree(lab.outside)
    calls = [tool("Bash", command=c.format(D=d), description="t") for c in PAIRS for d in (lab.outside, work)]
    run = lab.run([[c] for c in calls] + [[text("Done.")]])
    assert _tree(lab.outside) == before, run.api.tool_results()
    assert (lab.outside / "keep" / "precious").read_text() == "p"
    for c in calls[0::2]:
        assert "ermission denied" in run.api.result_text(c["id"]) or "Operation not permitted" in run.api.result_text(
            c["id"]
        ), (c["input"], run.api.result_text(c["id"]))
    for name in ("redirect.txt", "copied.txt", "touched.txt", "heredoc.txt", "python.txt", "newdir", "moved.txt"):
        assert (work / name).exists(), (name, _tree(work))
    assert not (work / "keep").exists() and (work / "link").is_symlink()


def test_cwd_tracking_and_hooks_still_work_under_the_prefix(lab: Lab) -> None:
    """`cd` carries over to the next command (the CLI's cwd file is allowed), and the hook
    (exempt, it is ours) still logs every call. (The CLI itself resets a cwd outside the project.)"""
    sub = lab.project / "sub"
    sub.mkdir()
    first = tool("Bash", command=f"cd {sub}", description="go")
    second = tool("Bash", command="pwd", description="where")
    run = lab.run([[first], [second], [text("ok")]])
    assert run.api.result_text(second["id"]) == str(sub)
    assert run.of("CMD_RESULT", tool_use_id=second["id"])
