"""Install epyc-agent into Claude Code's settings.json, and take exactly that out again.

`install` merges into `.claude/settings.json` (project) or `~/.claude/settings.json`
(user): one `epyc-agent hook` handler per event, the `env` block of `epyc-agent env`
(every cache and temp dir under the root, EPYC_AGENT_LOG_DIR for the config cache),
`sandbox.filesystem.allowWrite` for the root, and `permissions.deny` Edit rules for
the system folders. Every other key, hook and rule is kept; running it twice changes
nothing; the previous file is copied to `settings.json.bak-<time>` first; a file that is
not valid JSON is refused untouched.

What was added is recorded in `<log_dir>/.state/hooks-install-<hash>.json`, so
`uninstall` removes exactly our entries (an env value the user changed since is kept).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from typing import Any

from ..config import Config
from ..environment import env_vars
from ..errors import ConfigError
from ..fileio import project_dir, write_json_atomic

# What `hooks install` registers (Claude Code 2.1.328 fires 33 events). Not registered:
# WorktreeCreate, since a hook there replaces the CLI's own `git worktree add` (it must create
# the worktree and print its path), and the display-only or MCP events (MessageDisplay,
# Elicitation*, *ModelSwitch, TeammateIdle, DirectoryAdded, UserPromptExpansion).
EVENTS = (
    "SessionStart",
    "UserPromptSubmit",
    "PreToolUse",
    "PostToolUse",
    "PostToolUseFailure",
    "PostToolBatch",
    "PermissionRequest",
    "PermissionDenied",
    "PreCompact",
    "PostCompact",
    "Stop",
    "StopFailure",
    "SubagentStart",
    "SubagentStop",
    "SessionEnd",
    "Notification",
    "CwdChanged",
    "ConfigChange",
    "FileChanged",
    "InstructionsLoaded",
    "Setup",
    "TaskCreated",
    "TaskCompleted",
    "WorktreeRemove",
)
# Every hook event Claude Code 2.1.328 fires (from its settings schema), the version tested
TESTED_CLI = "2.1.328"
CLI_EVENTS = (
    *EVENTS,
    "WorktreeCreate",
    "UserPromptExpansion",
    "PreModelSwitch",
    "PostModelSwitch",
    "TeammateIdle",
    "Elicitation",
    "ElicitationResult",
    "DirectoryAdded",
    "MessageDisplay",
)
# keys Claude Code ignores in a project's settings `env` block (its debug log says so)
PROJECT_ENV_IGNORED = frozenset(
    {"TMPDIR", "TMP", "TEMP", "XDG_CACHE_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "CLAUDE_CODE_TMPDIR"}
)
TOOL_EVENTS = ("PreToolUse", "PostToolUse", "PostToolUseFailure", "PermissionRequest", "PermissionDenied")
SYSTEM_DIRS = (
    "/etc",
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib64",
    "/boot",
    "/opt",
    "/var",
    "/srv",
    "/root",
    "/sys",
    "/proc",
)
TIMEOUT_S = 30


def settings_path(project: str | None = None, user: bool = False) -> str:
    if user:
        return os.path.join(os.path.expanduser("~"), ".claude", "settings.json")
    return os.path.join(project_dir(project), ".claude", "settings.json")


def hook_command() -> str:
    """The installed console script, by absolute path (Claude Code's PATH may differ from ours)."""
    exe = shutil.which("epyc-agent") or os.path.join(os.path.dirname(sys.executable), "epyc-agent")
    return f"{exe} hook" if os.path.exists(exe) else "epyc-agent hook"


def is_ours(handler: Any) -> bool:
    cmd = handler.get("command") if isinstance(handler, dict) else None
    if not isinstance(cmd, str):
        return False
    parts = cmd.split()
    return len(parts) == 2 and parts[1] == "hook" and os.path.basename(parts[0]) == "epyc-agent"


def read_settings(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read: {e}") from None
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except ValueError as e:
        raise ConfigError(
            f"{path}: invalid JSON ({e})", hint="fix the file or move it aside; nothing was changed"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: the top level is a JSON {type(data).__name__}, not an object",
            hint="fix the file or move it aside; nothing was changed",
        )
    return data


def record_path(cfg: Config, path: str) -> str:
    h = hashlib.sha256(os.path.abspath(path).encode()).hexdigest()[:16]
    return os.path.join(cfg.log_dir, ".state", f"hooks-install-{h}.json")


def _obj(d: dict[str, Any], key: str, path: str) -> dict[str, Any]:
    v = d.setdefault(key, {})
    if not isinstance(v, dict):
        raise ConfigError(f"{path}: '{key}' is not an object", hint="fix the file; nothing was changed")
    return v


def _list(d: dict[str, Any], key: str, path: str) -> list[Any]:
    v = d.setdefault(key, [])
    if not isinstance(v, list):
        raise ConfigError(f"{path}: '{key}' is not a list", hint="fix the file; nothing was changed")
    return v


def merge(
    settings: dict[str, Any],
    cfg: Config,
    command: str,
    path: str,
    enable_sandbox: bool = False,
    kernel_sandbox: bool = False,
) -> dict[str, Any]:
    """Add our entries to `settings` in place; return what was added (for uninstall)."""
    added: dict[str, Any] = {"env": {}, "allowWrite": [], "deny": [], "sandbox_enabled": False}
    hooks = _obj(settings, "hooks", path)
    for event in EVENTS:
        groups = _list(hooks, event, path)
        mine = [
            h
            for g in groups
            if isinstance(g, dict) and isinstance(g.get("hooks"), list)
            for h in g["hooks"]
            if is_ours(h)
        ]
        want = _handler(cfg, event, command)
        if len(mine) == 1 and mine[0] == want:
            continue  # already installed: leave it where it is
        for g in groups:  # drop our old handler (an older command path), keep everything else
            if isinstance(g, dict) and isinstance(g.get("hooks"), list):
                g["hooks"] = [h for h in g["hooks"] if not is_ours(h)]
        groups[:] = [g for g in groups if not (isinstance(g, dict) and g.get("hooks") == [])]
        entry: dict[str, Any] = {"hooks": [want]}
        if event in TOOL_EVENTS:
            entry = {"matcher": "*", **entry}
        groups.append(entry)
    env = _obj(settings, "env", path)
    wanted = env_vars(cfg)
    if cfg.config_file:  # the hook never looks in its cwd: the file a person chose is named here
        wanted["EPYC_AGENT_CONFIG"] = os.path.abspath(cfg.config_file)
    if kernel_sandbox:
        from ..shellwrap import prefix_env

        wanted.update(prefix_env(kernel_write_dirs(cfg, path)))
    for k, v in wanted.items():
        if env.get(k) != v:
            if k not in env:
                added["env"][k] = v
            env[k] = v
    sandbox = _obj(settings, "sandbox", path)
    if enable_sandbox and sandbox.get("enabled") is not True:
        sandbox["enabled"] = True
        added["sandbox_enabled"] = True
    allow = _list(_obj(sandbox, "filesystem", path), "allowWrite", path)
    if cfg.root not in allow:
        allow.append(cfg.root)
        added["allowWrite"].append(cfg.root)
    deny = _list(_obj(settings, "permissions", path), "deny", path)
    for d in SYSTEM_DIRS:
        rule = f"Edit(/{d}/**)"
        if rule not in deny:
            deny.append(rule)
            added["deny"].append(rule)
    return added


def _handler(cfg: Config, event: str, command: str) -> dict[str, Any]:
    """Our handler entry for one event. With `guards.fail_closed`, a PreToolUse hook that cannot
    run, crashes or times out blocks the call (`onFailure: block`) instead of letting it through."""
    h: dict[str, Any] = {"type": "command", "command": command, "timeout": 60 if event == "PreCompact" else TIMEOUT_S}
    if event == "PreToolUse" and cfg.guards.get("fail_closed"):
        h["onFailure"] = "block"
    return h


def dropped_hooks(cfg: Config, path: str) -> list[str]:
    """The events whose epyc-agent hook a settings file no longer has, if `hooks install` wrote
    them there (a file that never registered ours, or cannot be read, drops nothing)."""
    try:
        settings = read_settings(path)
    except ConfigError:
        return []
    hooks = settings.get("hooks") if isinstance(settings.get("hooks"), dict) else {}
    present = {e for e, groups in hooks.items() if any(is_ours(h) for h in _handlers(groups))}
    if not os.path.exists(record_path(cfg, path)):
        return []
    return [e for e in ("PreToolUse", "PostToolUse", "SessionStart") if e not in present]


def _handlers(groups: Any) -> list[Any]:
    if not isinstance(groups, list):
        return []
    return [h for g in groups if isinstance(g, dict) and isinstance(g.get("hooks"), list) for h in g["hooks"]]


def _write(path: str, settings: dict[str, Any], old_text: str | None) -> str | None:
    """Back up the old file (if any), then write atomically; return the backup path."""
    backup = None
    if old_text is not None:
        backup = f"{path}.bak-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}"
        with open(backup, "w", encoding="utf-8") as f:
            f.write(old_text)
    write_json_atomic(path, settings)
    return backup


def _old_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return None


def kernel_write_dirs(cfg: Config, settings_path: str) -> list[str]:
    """What the kernel lets the agent's shell write: the root and our folders, `allow_write`,
    and a project install's own folder when `guards.allow_project_dir` (the parser's allowlist
    too). Not `~/.claude`: the user's settings, which register the hooks, live there."""
    from ..sandbox import write_dirs_for

    dirs = write_dirs_for(cfg)
    claude_dir = os.path.dirname(os.path.abspath(settings_path))
    user_dir = os.path.join(os.path.expanduser("~"), ".claude")
    if cfg.guards.get("allow_project_dir", True) and os.path.realpath(claude_dir) != os.path.realpath(user_dir):
        dirs.append(os.path.realpath(os.path.dirname(claude_dir)))
    return list(dict.fromkeys(dirs))


def kernel_sandbox_available() -> bool:
    from ..sandbox import abi_version

    return abi_version() >= 1


def install(cfg: Config, path: str, enable_sandbox: bool = False, kernel_sandbox: bool | None = None) -> dict[str, Any]:
    """Merge our entries into the settings file at `path`. `kernel_sandbox` None: on where
    this kernel has Landlock."""
    settings = read_settings(path)
    before = json.dumps(settings, sort_keys=True)
    if kernel_sandbox is None:
        kernel_sandbox = kernel_sandbox_available()
    added = merge(settings, cfg, hook_command(), path, enable_sandbox, kernel_sandbox)
    if json.dumps(settings, sort_keys=True) == before:
        return {"path": path, "changed": False, "backup": None, "added": added}
    backup = _write(path, settings, _old_text(path))
    rec_path = record_path(cfg, path)
    prev = {}
    try:
        with open(rec_path, encoding="utf-8") as f:
            prev = json.load(f)
    except (OSError, ValueError):
        pass
    for key in ("env",):
        added[key] = {**prev.get(key, {}), **added[key]}
    for key in ("allowWrite", "deny"):
        added[key] = list(dict.fromkeys([*prev.get(key, []), *added[key]]))
    added["sandbox_enabled"] = added["sandbox_enabled"] or prev.get("sandbox_enabled", False)
    write_json_atomic(rec_path, {"settings": path, **added})
    return {"path": path, "changed": True, "backup": backup, "added": added}


def uninstall(cfg: Config, path: str) -> dict[str, Any]:
    settings = read_settings(path)
    if not settings:
        return {"path": path, "changed": False, "removed": 0}
    before = json.dumps(settings, sort_keys=True)
    removed = 0
    hooks = settings.get("hooks")
    if isinstance(hooks, dict):
        for event in list(hooks):
            groups = hooks[event]
            if not isinstance(groups, list):
                continue
            for g in groups:
                if isinstance(g, dict) and isinstance(g.get("hooks"), list):
                    n = len(g["hooks"])
                    g["hooks"] = [h for h in g["hooks"] if not is_ours(h)]
                    removed += n - len(g["hooks"])
            groups[:] = [g for g in groups if not (isinstance(g, dict) and g.get("hooks") == [])]
            if not groups:
                del hooks[event]
        if not hooks:
            del settings["hooks"]
    rec_path = record_path(cfg, path)
    try:
        with open(rec_path, encoding="utf-8") as f:
            rec = json.load(f)
    except (OSError, ValueError):
        rec = {}
    env = settings.get("env")
    if isinstance(env, dict):
        for k, v in rec.get("env", {}).items():
            if env.get(k) == v:
                del env[k]
        if not env:
            del settings["env"]
    sandbox = settings.get("sandbox")
    if isinstance(sandbox, dict):
        fs = sandbox.get("filesystem")
        if isinstance(fs, dict) and isinstance(fs.get("allowWrite"), list):
            fs["allowWrite"] = [a for a in fs["allowWrite"] if a not in rec.get("allowWrite", [])]
            if not fs["allowWrite"]:
                del fs["allowWrite"]
            if not fs:
                del sandbox["filesystem"]
        if rec.get("sandbox_enabled") and sandbox.get("enabled") is True:
            del sandbox["enabled"]
        if not sandbox:
            del settings["sandbox"]
    perms = settings.get("permissions")
    if isinstance(perms, dict) and isinstance(perms.get("deny"), list):
        perms["deny"] = [r for r in perms["deny"] if r not in rec.get("deny", [])]
        if not perms["deny"]:
            del perms["deny"]
        if not perms:
            del settings["permissions"]
    if json.dumps(settings, sort_keys=True) == before:
        return {"path": path, "changed": False, "removed": 0}
    backup = _write(path, settings, _old_text(path))
    try:
        os.unlink(rec_path)
    except OSError:
        pass
    return {"path": path, "changed": True, "removed": removed, "backup": backup}


def claude_version() -> str | None:
    """The installed Claude Code's version (`$EPYC_AGENT_CLAUDE_BIN`, else `claude` on PATH)."""
    exe = os.environ.get("EPYC_AGENT_CLAUDE_BIN") or shutil.which("claude")
    if not exe:
        return None
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return None
    return out[0] if out else None


def cli_tools() -> list[str] | None:
    """The tool names the installed Claude Code offers, from the init message it prints before
    its first API request (pointed at a closed local port, so nothing leaves the machine)."""
    exe = os.environ.get("EPYC_AGENT_CLAUDE_BIN") or shutil.which("claude")
    if not exe:
        return None
    env = {**os.environ, "ANTHROPIC_BASE_URL": "http://127.0.0.1:9", "ANTHROPIC_API_KEY": "probe"}
    cmd = [exe, "-p", "probe", "--output-format", "stream-json", "--verbose", "--no-session-persistence"]
    try:
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=env, text=True
        )
    except OSError:
        return None
    try:
        for line in proc.stdout or ():
            msg = json.loads(line) if line.startswith("{") else {}
            if msg.get("type") == "system" and isinstance(msg.get("tools"), list):
                return [t for t in msg["tools"] if isinstance(t, str)]
    except ValueError:
        pass
    finally:
        proc.kill()
        proc.wait()
    return None


def events_check(registered: tuple[str, ...]) -> tuple[str, str, str]:
    """Events registered and handled against those the installed Claude Code fires."""
    from .dispatch import HANDLERS

    version = claude_version()
    unhandled = [e for e in registered if e not in HANDLERS]
    left = [e for e in CLI_EVENTS if e not in registered]
    detail = (
        f"Claude Code {version or '(not found)'}: {len(registered)} of the {len(CLI_EVENTS)} events of "
        f"{TESTED_CLI} registered, {len(registered) - len(unhandled)} handled"
        + (f" (no handler: {', '.join(unhandled)})" if unhandled else "")
        + f"; not registered: {', '.join(left)}"
    )
    status = "FAIL" if unhandled else "WARN" if version not in (None, TESTED_CLI) else "PASS"
    if status == "WARN":
        detail += f"; tested with {TESTED_CLI} only"
    return ("events", status, detail)


def doctor(cfg: Config, path: str) -> list[tuple[str, str, str]]:
    """(check, PASS|WARN|FAIL, detail) for the installed state, plus dry payloads through the hook."""
    out: list[tuple[str, str, str]] = []
    try:
        settings = read_settings(path)
    except ConfigError as e:
        return [("settings", "FAIL", e.render())]
    if not settings:
        return [("settings", "FAIL", f"{path} missing or empty (run `epyc-agent hooks install`)")]
    out.append(("settings", "PASS", f"{path} is valid JSON"))
    hooks = settings.get("hooks") if isinstance(settings.get("hooks"), dict) else {}
    commands: set[str] = set()
    missing = []
    for event in EVENTS:
        mine = [h for g in hooks.get(event, []) if isinstance(g, dict) for h in (g.get("hooks") or []) if is_ours(h)]
        if not mine:
            missing.append(event)
        commands.update(h["command"] for h in mine)
    out.append(
        (
            "hooks",
            "FAIL" if missing else "PASS",
            f"missing for {', '.join(missing)}" if missing else f"registered for {len(EVENTS)} events",
        )
    )
    out.append(events_check(EVENTS if not missing else tuple(e for e in EVENTS if e not in missing)))
    env = settings.get("env") if isinstance(settings.get("env"), dict) else {}
    want = env_vars(cfg)
    wrong = [k for k, v in want.items() if env.get(k) != v]
    out.append(
        (
            "env",
            "WARN" if wrong else "PASS",
            f"differs from `epyc-agent env`: {', '.join(wrong)}" if wrong else "matches `epyc-agent env`",
        )
    )
    ignored = [k for k in env if k in PROJECT_ENV_IGNORED]
    if ignored and os.path.realpath(path) != os.path.realpath(settings_path(user=True)):
        out.append(
            (
                "env (project)",
                "WARN",
                f"Claude Code ignores {', '.join(ignored)} in a project's env block: the SessionStart hook "
                "exports them to the agent's Bash through CLAUDE_ENV_FILE, but hooks and MCP servers the CLI "
                "starts do not get them (a user-level install, `hooks install --user`, sets them for all)",
            )
        )
    allow = ((settings.get("sandbox") or {}).get("filesystem") or {}).get("allowWrite") or []
    out.append(
        (
            "sandbox",
            "PASS" if cfg.root in allow else "WARN",
            f"allowWrite has {cfg.root}" if cfg.root in allow else f"allowWrite lacks {cfg.root}",
        )
    )
    if not commands:
        return out
    exe = sorted(commands)[-1].split()[0]
    if not (os.path.isabs(exe) and os.access(exe, os.X_OK)) and shutil.which(exe) is None:
        out.append(("command", "FAIL", f"{exe} is not an executable"))
        return out
    # its own agent id: the dry session must not take over the user's current-session pointer
    run_env = {**os.environ, **{k: str(v) for k, v in want.items()}, "EPYC_AGENT_ID": "hooks-doctor"}
    for name, cmd, expect_deny in (
        ("dry run (harmless)", "ls -la", False),
        ("dry run (write to /etc)", "echo x > /etc/epyc-agent-doctor", True),
    ):
        payload = {
            "session_id": "epyc-agent-doctor",
            "hook_event_name": "PreToolUse",
            "tool_name": "Bash",
            "tool_input": {"command": cmd},
            "tool_use_id": "doctor",
            "cwd": cfg.root,
            "transcript_path": "",
        }
        t = time.monotonic()
        r = subprocess.run(
            [exe, "hook"], input=json.dumps(payload), capture_output=True, text=True, env=run_env, timeout=60
        )
        ms = (time.monotonic() - t) * 1000
        denied = '"deny"' in r.stdout
        ok = r.returncode == 0 and denied == expect_deny
        out.append(
            (
                name,
                "PASS" if ok else "FAIL",
                f"exit {r.returncode}, {'denied' if denied else 'allowed'} in {ms:.0f} ms"
                + (f"; stderr: {r.stderr.strip()[:200]}" if r.stderr.strip() else ""),
            )
        )
    return out
