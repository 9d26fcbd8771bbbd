"""How to undo a file edit, decided before the edit runs.

- a new file: `rm PATH`;
- an existing file tracked by git with no uncommitted change: `git -C REPO checkout -- PATH`;
- any other existing file: a backup copy under `<root>/backups/edits/<session>/` and `cp` back.
Files over MAX_BACKUP_BYTES are not copied; the plan says so. The backup folder is opened one
component at a time from the root with O_NOFOLLOW, and the copy created with O_EXCL|O_NOFOLLOW: a
symlink the agent plants under the root cannot send a backup (a copy of any file it edits) elsewhere.

git runs via `os.posix_spawn` and files are copied by hand: importing subprocess or
shutil (which pulls in zlib, bz2 and lzma) would cost the hook several ms per edit.
"""

from __future__ import annotations

import os
import shlex
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..config import Config

MAX_BACKUP_BYTES = 64 * 1024 * 1024


def _repo_of(path: str) -> str | None:
    d = os.path.dirname(path)
    while True:
        if os.path.exists(os.path.join(d, ".git")):
            return d
        parent = os.path.dirname(d)
        if parent == d:
            return None
        d = parent


def _which(name: str) -> str | None:
    for d in os.environ.get("PATH", os.defpath).split(os.pathsep):
        p = os.path.join(d or ".", name)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


def _copy(src: str, dir_fd: int, name: str) -> None:
    """Contents, mode and times (what shutil.copy2 keeps that matters for an undo) into a new file."""
    out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
    with open(src, "rb") as f, open(out, "wb") as g:
        while chunk := f.read(1 << 20):
            g.write(chunk)
        st = os.fstat(f.fileno())
        os.fchmod(g.fileno(), st.st_mode & 0o7777)
        g.flush()
        os.utime(g.fileno(), ns=(st.st_atime_ns, st.st_mtime_ns))


def _open_dirs(root: str, parts: list[str]) -> int:
    """A descriptor for root/parts..., each folder made if missing and opened without following a symlink."""
    fd = os.open(os.path.realpath(root), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for name in parts:
            try:
                os.mkdir(name, 0o755, dir_fd=fd)
            except FileExistsError:
                pass
            nxt = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd


def git_clean(repo: str, path: str) -> bool:
    """True if `path` is tracked and unmodified (`git status --porcelain` prints nothing, exit 0)."""
    git = _which("git")
    if git is None:
        return False
    r, w = os.pipe()
    null = os.open(os.devnull, os.O_RDWR)
    try:
        pid = os.posix_spawn(
            git,
            [git, "-C", repo, "status", "--porcelain", "--ignored", "--", path],
            os.environ,
            file_actions=[(os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, w, 1), (os.POSIX_SPAWN_DUP2, null, 2)],
        )
    except OSError:
        os.close(r)
        return False
    finally:
        os.close(w)
        os.close(null)
    with os.fdopen(r, "rb") as f:
        out = f.read(4096)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0 and not out.strip()  # untracked: `??`, ignored: `!!`


def plan(cfg: Config, session: str, path: str, tool: str) -> tuple[str, str]:
    """(action, undo command) for an edit of `path` that is about to happen."""
    q = shlex.quote(path)
    if not os.path.lexists(path):
        return "create", f"rm {q}"
    if not os.path.isfile(path):
        return "edit", f"(no undo: {path} is not a regular file)"
    repo = _repo_of(os.path.realpath(path))
    if repo is not None and git_clean(repo, path):
        return "edit", f"git -C {shlex.quote(repo)} checkout -- {q}"
    size = os.path.getsize(path)
    if size > MAX_BACKUP_BYTES:
        return "edit", f"(no backup: {path} is {size // 1_000_000} MB, over the backup limit)"
    safe_session = "".join(c if c.isalnum() or c in "._-" else "_" for c in session)[:80]
    parts = ["backups", "edits", safe_session]
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"-{time.time_ns() % 1_000_000:06d}"
    name = f"{stamp}-{os.path.basename(path)}"
    fd = _open_dirs(cfg.root, parts)
    try:
        _copy(path, fd, name)
    finally:
        os.close(fd)
    return "edit", f"cp {shlex.quote(os.path.join(cfg.root, *parts, name))} {q}"
