"""The Bash guards on real command texts: what is refused, by which guard, and what passes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from epyc_agent.guards.check import check_bash
from epyc_agent.guards.prescan import needs_parse
from epyc_agent.guards.retry import check_retry, command_key, overridden
from epyc_agent.storage import StorageGuard


@pytest.fixture
def guard(root: Path, tmp_path: Path) -> StorageGuard:
    proj = tmp_path / "proj"
    proj.mkdir()
    return StorageGuard(root, ["/dev/null", "/dev/tty", str(proj)])


def guards_for(command: str, guard: StorageGuard, tmp_path: Path) -> list[str]:
    env = {"HOME": str(tmp_path / "home"), "EPYC_AGENT_ROOT": guard.root}
    findings, _info = check_bash(command, str(tmp_path / "proj"), guard, env)
    return sorted({f.guard for f in findings})


ALLOWED = [
    "ls -la",
    "git status",
    "git log --oneline | head",
    "pytest -q 2>&1 | tail -5",
    "make -j2 > /dev/null 2>&1",
    "ls 2>/dev/null",
    "grep -rn 'x > /etc/passwd' src",
    'echo "a > /etc/x"',
    "echo 'rm -rf /'",
    "echo hi > out.txt",
    "mkdir -p build && touch build/x",
    "rm -rf build",
    "cat a | tee log.txt",
    "cp a {root}/models/",
    "rm -rf {root}/tmp/x",
    "dd if=/dev/zero of=/dev/null count=1",
    "cd {root} && touch f",
    'D={root}/tmp; echo > "$D/x"',
    "tar czf {root}/a.tgz src",
    "kill 12345",
    "find . -name '*.pyc' -delete",
    "sed -n 1,5p /etc/hosts",
    "curl -o {root}/x.html http://example.com",
    "chmod -R u+w {root}/tmp",
    "echo $(date) > {root}/tmp/stamp",
    "ln -s /etc/hosts {root}/tmp/hosts",
]

DENIED = [
    ("echo x > /etc/passwd", "bash"),
    ("cd /tmp && touch f", "bash"),
    ("cat a | tee /etc/x", "bash"),
    ("cp a /mnt/raid0/llm2/", "bash"),
    ("mv /etc/hosts {root}/", "bash"),
    ("rm -rf /", "destructive"),
    ('rm -rf "{root}"', "destructive"),
    ("rm -rf {root}/", "destructive"),
    ("rm -rf {root}/*", "destructive"),
    ('rm -rf "$EPYC_AGENT_ROOT"', "destructive"),
    ('rm -rf "$UNSET_VAR/"', "destructive"),
    ("rm -r /var/tmp/x", "destructive"),
    ("rm /etc/motd", "bash"),
    ("dd if=x of=/dev/sda", "destructive"),
    ("pkill -f python", "destructive"),
    ("killall python", "destructive"),
    ("mkfs.ext4 /dev/sdb", "destructive"),
    ("chmod -R 777 /usr", "destructive"),
    ("chown user /etc/hosts", "bash"),
    ("sed -i s/a/b/ /etc/hosts", "bash"),
    ("bash -c 'echo x > /etc/y'", "bash"),
    ('sh -c "rm -rf /"', "destructive"),
    ("eval 'touch /etc/z'", "bash"),
    ("echo $(touch /etc/q)", "bash"),
    ("sudo tee /etc/x < a", "bash"),
    ("cat <<EOF > /etc/h\nx\nEOF", "bash"),
    ("echo x >> ~/.bashrc", "bash"),
    ("[[ -f x ]] && echo > /etc/z", "bash"),
    ("find /var/log -delete", "destructive"),
    ("find . -name x -exec cp {} /etc/ \\;", "bash"),
    ("tar xzf a.tgz -C /opt", "bash"),
    ("curl -o /usr/local/bin/x http://example.com", "bash"),
    ("ln -s {root}/a /usr/bin/a", "bash"),
    ("(cd /etc; touch x)", "bash"),
    ("for f in a b; do echo > /etc/$f; done", "bash"),
    ("echo x 2>/dev/null > /etc/y", "bash"),
    ("{rm,-rf,/}", "destructive"),
    ("r\\m -rf /", "destructive"),
    ("'r'm -rf /", "destructive"),
    ("cp /etc/hosts{,.bak}", "bash"),
]


@pytest.mark.parametrize("command", ALLOWED)
def test_allowed_commands(command: str, guard: StorageGuard, root: Path, tmp_path: Path) -> None:
    """Harmless commands and writes under the root or the project produce no finding."""
    assert guards_for(command.replace("{root}", str(root)), guard, tmp_path) == []


@pytest.mark.parametrize(("command", "expected"), DENIED)
def test_denied_commands(command: str, expected: str, guard: StorageGuard, root: Path, tmp_path: Path) -> None:
    """Writes outside the root and destructive commands are found by the right guard."""
    assert expected in guards_for(command.replace("{root}", str(root)), guard, tmp_path)


def test_reason_says_what_to_do(guard: StorageGuard, tmp_path: Path) -> None:
    """A finding names the path, the root and an alternative."""
    findings, _ = check_bash("echo x > /etc/passwd", str(tmp_path), guard, {})
    assert "/etc/passwd" in findings[0].reason and guard.root_resolved in findings[0].reason
    assert "temp files" in findings[0].reason


def test_dynamic_targets_are_reported_blind(guard: StorageGuard, tmp_path: Path) -> None:
    """A write target known only at run time is not guessed but listed as unseen."""
    findings, info = check_bash('echo x > "$SOMEWHERE/f"', str(tmp_path), guard, {})
    assert findings == [] and any("SOMEWHERE" in b for b in info["blind"])


@pytest.mark.parametrize(
    "command",
    [
        "ls -la",
        "git status",
        "pytest -q 2>&1",
        "make >/dev/null",
        "grep -i foo bar.txt",
        "cat a | head",
        "python -m pytest tests",
    ],
)
def test_prescan_skips_harmless(command: str) -> None:
    """Everyday read-only commands never pay for the full parse."""
    assert not needs_parse(command)


@pytest.mark.parametrize(
    "command",
    [
        "echo x > f",
        "echo '>' x",
        "ls `pwd`",
        "ls $(pwd)",
        "rm x",
        "/bin/rm x",
        "a|tee b",
        "x;cp a b",
        "cat <<E",
        "dd of=x",
        "mkfs.xfs d",
        "sed -i s/a/b/ f",
        "ls >&f",
        "bash -c ls",
        "xargs rm",
        "find . -delete",
        "r\\m -rf /",
        "'r'm x",
        "{rm,-rf,/}",
    ],
)
def test_prescan_sends_risky_to_parser(command: str) -> None:
    """Anything that might write goes to the full parser."""
    assert needs_parse(command)


def test_retry_counting() -> None:
    """The 4th attempt after 3 failures is refused; the override prefix does not change the key."""
    key = command_key("make   -j2")
    assert key == command_key("EPYC_AGENT_ALLOW_RETRY=1 make -j2") == "make -j2"
    assert check_retry({key: 2}, "make -j2", 3) is None
    finding = check_retry({key: 3}, "make -j2", 3)
    assert finding is not None and "root cause" in finding.reason
    assert overridden("EPYC_AGENT_ALLOW_RETRY=1 make -j2", {}) and overridden("make", {"EPYC_AGENT_ALLOW_RETRY": "1"})
    assert not overridden("make -j2", {})


def test_cached_bashlex_tables_parse_identically(tmp_path: Path) -> None:
    """The parser built from cached tables gives the same trees as bashlex's own build."""
    commands = [
        'cd /tmp && touch f > "$HOME/x" 2>&1',
        "echo $(rm -rf /) 'a > b' | tee -a /etc/x",
        "cat <<EOF > /etc/x\nhi\nEOF",
        "for f in a b; do rm $f; done > /tmp/o",
        "f() { rm -rf /; }",
        "x=$(date) y=2 cmd < <(ls) >(tee /x)",
        "a && b || c; d & e | f",
    ]
    code = (
        "import sys, json; from epyc_agent.guards.bashlex_tables import load; "
        "m = load(sys.argv[1] or None); "
        "print(json.dumps([[t.dump() for t in m.parse(c)] for c in json.loads(sys.argv[2])]))"
    )

    def run(tables: str) -> list:
        r = subprocess.run(
            [sys.executable, "-c", code, tables, json.dumps(commands)], capture_output=True, text=True, timeout=60
        )
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    plain = run("")
    assert run(str(tmp_path)) == plain  # builds and writes the cache
    assert (tmp_path / "bashlex-tables.json").exists()
    assert run(str(tmp_path)) == plain  # reads the cache


WORDS = [
    "rm",
    "-rf",
    "/",
    "cp",
    "tee",
    "echo",
    ">",
    ">>",
    "2>&1",
    "&&",
    "||",
    ";",
    "|",
    "$(",
    ")",
    "`",
    "'",
    '"',
    "<<EOF",
    "EOF\n",
    "cd",
    "/etc",
    "$X",
    "${Y}",
    "{a,b}",
    "find",
    ".",
    "-exec",
    "{}",
    "\\;",
    "bash",
    "-c",
    "eval",
    "sudo",
    "dd",
    "of=/dev/sda",
    "for",
    "in",
    "do",
    "done",
    "if",
    "then",
    "fi",
    "(",
    "[[",
    "]]",
]


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=60), st.lists(st.sampled_from(WORDS), max_size=12).map(" ".join)))
def test_guard_never_raises(command: str) -> None:
    """Any text, shell-like or not, is evaluated without an exception."""
    g = StorageGuard("/nonexistent-root", ["/dev/null"])
    findings, info = check_bash(command, "/tmp", g, {"HOME": "/root"})
    assert info["parser"] in ("prescan", "bashlex", "bashlex+shlex")


def test_git_worktree_add_checks_the_new_trees_path(guard: StorageGuard, tmp_path: Path) -> None:
    """`git worktree add PATH` writes a checkout at PATH (relative to -C DIR when given)."""
    root = guard.root
    assert guards_for("git worktree add /var/tmp/wt", guard, tmp_path) == ["bash"]
    assert guards_for(f"git -C {root} worktree add -b spec ../wt main", guard, tmp_path) == ["bash"]
    assert guards_for(f"git worktree add -B spec {root}/worktrees/a main", guard, tmp_path) == []
    assert guards_for("git worktree list", guard, tmp_path) == []
