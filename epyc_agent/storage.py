"""Storage guard: may this path be written?

A path is resolved the way the kernel would walk it when the write happens:
relative to the caller's cwd, `..` applied after symlinks, every existing
symlink followed (including dangling ones and those among the parents of a
file that does not exist yet). The write is allowed only if the resolved path
is the root, lies under it, or lies under an allowlisted path.

A path the kernel cannot walk (a symlink loop, a name too long, a parent the
user may not enter) is refused with the reason: where it would land is unknown.

What this cannot see: hard links (a hard link under the root to a file outside
it is the same inode), bind mounts, symlinks created between the check and the
write, and paths a program computes at run time.
"""

from __future__ import annotations

import errno
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

    from .config import Config
    from .guards.host import HostRules
    from .guards.protect import Protected


class PathVerdict:
    """The answer for one path: allowed or not, and why."""

    __slots__ = ("path", "resolved", "allowed", "reason")

    def __init__(self, path: str, resolved: str, allowed: bool, reason: str) -> None:
        self.path, self.resolved, self.allowed, self.reason = path, resolved, allowed, reason

    def as_dict(self) -> dict[str, object]:
        return {"path": self.path, "resolved": self.resolved, "allowed": self.allowed, "reason": self.reason}


def resolve(path: str | os.PathLike[str], cwd: str | os.PathLike[str] | None = None) -> str:
    """The absolute path a write to `path` would land on (symlinks followed, non-strict)."""
    p = os.fspath(path)
    p = os.path.expanduser(p) if p.startswith("~") else p
    if not os.path.isabs(p):
        p = os.path.join(os.fspath(cwd) if cwd is not None else os.getcwd(), p)
    return os.path.realpath(p)


UNRESOLVABLE = {
    errno.ELOOP: "a symlink loop (ELOOP); remove or repoint the symlinks along it",
    errno.ENAMETOOLONG: "a name too long (ENAMETOOLONG); shorten it",
    errno.EACCES: "a parent folder that may not be entered (EACCES); fix its permissions",
}


def unresolvable(resolved: str, follow: bool = True) -> str | None:
    """Why the kernel cannot walk to `resolved`, or None (a path that does not exist yet is fine).

    `follow=False` is for removals, which act on a final symlink itself (removing a loop is the fix).
    """
    try:
        os.stat(resolved) if follow else os.lstat(resolved)
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        why = UNRESOLVABLE.get(e.errno or 0, f"{e.strerror}; fix the path")
        return f"cannot be resolved, {why}"
    return None


def is_under(resolved: str, base: str) -> bool:
    """True if `resolved` is `base` or inside it (never a prefix twin like base2)."""
    if resolved == base:
        return True
    prefix = base if base.endswith(os.sep) else base + os.sep
    return resolved.startswith(prefix)


class StorageGuard:
    """Answers whether paths may be written, given a root and an allowlist."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        allow: Iterable[str | os.PathLike[str]] = (),
        protected: Protected | None = None,
    ) -> None:
        self.root = os.fspath(root)
        self.root_resolved = os.path.realpath(self.root)
        self.allow = tuple(dict.fromkeys(os.path.realpath(os.fspath(a)) for a in allow))
        self.protected = protected  # files no tool call may change, even under the root
        self.host: HostRules | None = None  # the lab's host rules, for a hook call (guards/host.py)

    def check(
        self, path: str | os.PathLike[str], cwd: str | os.PathLike[str] | None = None, follow: bool = True
    ) -> PathVerdict:
        raw = os.fspath(path)
        if not raw or "\0" in raw:
            return PathVerdict(raw, "", False, "empty path or NUL byte in path")
        resolved = resolve(raw, cwd)
        stuck = unresolvable(resolved, follow)
        if stuck:
            return PathVerdict(raw, resolved, False, stuck)
        why = self.protected.why(resolved) if self.protected else None
        if why:
            return PathVerdict(raw, resolved, False, f"{why}; the agent may not change it")
        if is_under(resolved, self.root_resolved):
            return PathVerdict(raw, resolved, True, "under the storage root")
        for a in self.allow:
            if is_under(resolved, a):
                return PathVerdict(raw, resolved, True, f"allowlisted ({a})")
        how = f" (resolves to {resolved})" if resolved != raw else ""
        return PathVerdict(
            raw,
            resolved,
            False,
            f"outside the storage root {self.root_resolved}{how}; write under {self.root_resolved} instead",
        )

    def allowed(self, path: str | os.PathLike[str], cwd: str | os.PathLike[str] | None = None) -> bool:
        return self.check(path, cwd).allowed


def guard_for(cfg: Config, extra_allow: Iterable[str | os.PathLike[str]] = ()) -> StorageGuard:
    """The guard for a `Config`: its root, the configured allowlist and any extras."""
    return StorageGuard(cfg.root, [*cfg.allow_write, *extra_allow])
