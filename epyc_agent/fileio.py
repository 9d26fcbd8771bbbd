"""Atomic file writes: a temp file in the same folder, then a rename, so a reader (or a crash)
never sees half a file. Lean on purpose: the hook writes session state through this.

Signed JSON: files under `<log_dir>/.state/` that change a guard's verdict (the retry state, the
bashlex parse tables) live where the agent may write. They carry a MAC (keyed BLAKE2b, RFC 7693's
MAC mode: HMAC's guarantee without loading OpenSSL into the hook) keyed by a secret
in the user's state folder, outside the storage root, so a forged or edited file reads as missing
(rebuilt, never trusted). See `secret_key` for where the key lives and why.
"""

from __future__ import annotations

import json
import os

try:  # hashlib and hmac load OpenSSL (~15-25 ms at every hook start); blake2 is built in
    from _blake2 import blake2b as _blake2b
except ImportError:  # pragma: no cover - an interpreter without the builtin module
    from hashlib import blake2b as _blake2b
try:
    from _operator import _compare_digest as _same
except ImportError:  # pragma: no cover
    from hmac import compare_digest as _same

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def write_text_atomic(path: str, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.{os.getpid()}.{os.urandom(2).hex()}.tmp"
    try:
        with open(tmp, "xb") as f:  # x: a planted symlink at the temp name is not followed
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_json_atomic(path: str, data: Any) -> None:
    """Indented UTF-8 JSON with a final newline."""
    write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


SECRET_NAME = "hook-secret"
_key_cache: dict[str, bytes | None] = {}


def secret_dir(log_dir: str) -> str:
    """`${XDG_STATE_HOME:-~/.local/state}/epyc-agent`, unless the agent may write there.

    The agent may write the storage root and so the log dir. `epyc-agent env` (and so the hooks'
    settings `env` block, which also sets $EPYC_AGENT_ROOT) points XDG_STATE_HOME under the root,
    where a key could be replaced: an XDG_STATE_HOME under the log dir, $EPYC_AGENT_ROOT or
    $LLM_ROOT is passed over for `~/.local/state` (the home folder is the user's own).
    """
    env = os.environ
    home_state = os.path.join(os.path.expanduser("~"), ".local", "state")
    xdg = env.get("XDG_STATE_HOME")
    if xdg and os.path.isabs(xdg):
        d = os.path.realpath(xdg) + "/"
        fences = (
            os.path.realpath(w).rstrip("/") + "/"
            for w in (log_dir, env.get("EPYC_AGENT_ROOT"), env.get("LLM_ROOT"))
            if w
        )
        if not any(d.startswith(f) for f in fences):
            home_state = xdg
    return os.path.join(home_state, "epyc-agent")


def secret_key(log_dir: str, create: bool = True) -> bytes | None:
    """The 32-byte MAC key for files under `log_dir`, created (mode 0600) on first use unless
    `create` is False (a checker must not mint the key it checks with); None if it cannot be had
    safely (a key owned by someone else, readable by others or reached through a symlink is
    refused). Without a key nothing signed is trusted: that costs speed, never safety.
    """
    path = os.path.join(secret_dir(log_dir), SECRET_NAME)
    if path not in _key_cache:
        if not create and not os.path.lexists(path):
            return None
        try:
            _key_cache[path] = _read_or_create_key(path)
        except OSError:
            _key_cache[path] = None
    return _key_cache[path]


def _read_or_create_key(path: str) -> bytes | None:
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    if not os.path.lexists(path):  # first use: a fresh key, published whole (link fails if one exists)
        tmp = f"{path}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            try:
                os.write(fd, os.urandom(32))
            finally:
                os.close(fd)
            os.link(tmp, path)
        except FileExistsError:
            pass  # another hook made it first: use theirs
        finally:
            os.unlink(tmp)
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if st.st_uid != os.getuid() or st.st_mode & 0o077:
            return None
        key = os.read(fd, 64)
    finally:
        os.close(fd)
    return key if len(key) == 32 else None


# A signed file is `{"mac":"<64 hex>","data":<body>}`: still JSON, and the MAC covers the body's exact
# bytes, so checking it costs one hash pass and no re-serialization.
_HEAD = b'{"mac":"'
_MID = b'","data":'
_BODY_AT = len(_HEAD) + 64 + len(_MID)


def _mac(key: bytes, body: bytes) -> bytes:
    return _blake2b(body, key=key, digest_size=32).hexdigest().encode()


def write_json_signed(path: str, data: Any, key: bytes | None) -> None:
    """Atomic signed JSON. Without a key it is not written: an unsigned file would never be trusted."""
    if key is None:
        return
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass")
    write_bytes_atomic(path, _HEAD + _mac(key, body) + _MID + body + b"}\n")


def read_json_signed(path: str, key: bytes | None) -> Any:
    """The signed data, or None if missing, unreadable, a symlink, unsigned or forged."""
    if key is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with open(fd, "rb") as f:
            raw = f.read()
    except OSError:
        return None
    body = raw[_BODY_AT:-2]
    if not (raw.startswith(_HEAD) and raw[_BODY_AT - len(_MID) : _BODY_AT] == _MID and raw.endswith(b"}\n")):
        return None
    if not _same(raw[len(_HEAD) : len(_HEAD) + 64], _mac(key, body)):
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def project_dir(project: str | None = None) -> str:
    """The Claude Code project folder: DIR, else $CLAUDE_PROJECT_DIR, else the cwd. It must exist:
    installing into a mistyped path would create a stray folder and leave the real project bare."""
    from .errors import EpycAgentError

    base = os.path.abspath(os.path.expanduser(project or os.environ.get("CLAUDE_PROJECT_DIR") or os.getcwd()))
    if not os.path.isdir(base):
        raise EpycAgentError(f"project folder {base} does not exist", hint="pass an existing folder to --project")
    return base
