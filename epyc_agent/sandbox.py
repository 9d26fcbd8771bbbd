"""Kernel-enforced storage rule: Landlock (Linux >= 5.13, no root needed).

`prepare(paths)` builds a Landlock ruleset in the parent that handles every
write-type access (write, truncate, create, remove, rename/link across folders)
and allows them only beneath the given folders (and on the given device files
such as /dev/null). `Sandbox.apply()` runs in the child between fork and exec
(`execution.run_logged(preexec=...)`): it sets no_new_privs and restricts the
process, and everything it starts inherits the restriction. Reads and execution
stay unrestricted. File descriptors opened before (stdout/stderr pipes) keep
working: Landlock checks paths when they are opened.

Syscalls via ctypes (numbers 444-446 are the same on every Linux architecture).
"""

from __future__ import annotations

import ctypes
import os

from .errors import EpycAgentError

SYS_CREATE_RULESET, SYS_ADD_RULE, SYS_RESTRICT_SELF = 444, 445, 446
CREATE_RULESET_VERSION = 1
RULE_PATH_BENEATH = 1
PR_SET_NO_NEW_PRIVS = 38

WRITE_FILE, REMOVE_DIR, REMOVE_FILE = 1 << 1, 1 << 4, 1 << 5
MAKE_CHAR, MAKE_DIR, MAKE_REG, MAKE_SOCK, MAKE_FIFO, MAKE_BLOCK, MAKE_SYM = (1 << n for n in range(6, 13))
REFER, TRUNCATE = 1 << 13, 1 << 14  # ABI 2, ABI 3
DEVICE_FILES = ("/dev/null", "/dev/tty", "/dev/zero", "/dev/full")


class SandboxError(EpycAgentError):
    """Landlock is unavailable or the ruleset could not be built."""


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _syscall(nr: int, *args: object) -> int:
    rc = _libc.syscall(ctypes.c_long(nr), *args)
    if rc < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return int(rc)


def abi_version() -> int:
    """Landlock ABI version, 0 if the kernel lacks it (or it is disabled at boot)."""
    try:
        return _syscall(SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(CREATE_RULESET_VERSION))
    except OSError:
        return 0


class Sandbox:
    """A prepared ruleset; `apply` is the preexec function."""

    def __init__(self, fd: int, abi: int, paths: list[str]) -> None:
        self.fd, self.abi, self.paths = fd, abi, paths

    def apply(self) -> None:  # runs in the forked child: no allocation-heavy work here
        if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
        _syscall(SYS_RESTRICT_SELF, ctypes.c_int(self.fd), ctypes.c_uint32(0))

    def close(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass


def prepare(write_dirs: list[str], write_files: tuple[str, ...] = DEVICE_FILES) -> Sandbox:
    """A ruleset allowing writes only beneath `write_dirs` (and to `write_files`)."""
    abi = abi_version()
    if abi < 1:
        raise SandboxError(
            "Landlock is not available on this kernel (Linux >= 5.13 with Landlock enabled "
            f"is needed; this is {os.uname().release})",
            hint="run without --sandbox, or with --allow-unsandboxed to run unguarded",
        )
    handled = (
        WRITE_FILE
        | REMOVE_DIR
        | REMOVE_FILE
        | MAKE_CHAR
        | MAKE_DIR
        | MAKE_REG
        | MAKE_SOCK
        | MAKE_FIFO
        | MAKE_BLOCK
        | MAKE_SYM
    )
    file_rights = WRITE_FILE
    if abi >= 2:
        handled |= REFER
    if abi >= 3:
        handled |= TRUNCATE
        file_rights |= TRUNCATE
    attr = _RulesetAttr(handled)
    try:
        fd = _syscall(SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)), ctypes.c_uint32(0))
    except OSError as e:
        raise SandboxError(f"cannot create a Landlock ruleset: {e.strerror}") from None
    added: list[str] = []
    try:
        for path, rights in [*((d, handled) for d in write_dirs), *((f, file_rights) for f in write_files)]:
            if not os.path.exists(path):
                continue
            if not os.path.isdir(path):
                rights &= WRITE_FILE | TRUNCATE
            pfd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            try:
                rule = _PathBeneath(rights, pfd)
                _syscall(
                    SYS_ADD_RULE,
                    ctypes.c_int(fd),
                    ctypes.c_uint32(RULE_PATH_BENEATH),
                    ctypes.byref(rule),
                    ctypes.c_uint32(0),
                )
                added.append(path)
            finally:
                os.close(pfd)
    except OSError as e:
        os.close(fd)
        raise SandboxError(f"cannot add a Landlock rule: {e.strerror}") from None
    return Sandbox(fd, abi, added)


def write_dirs_for(cfg: object) -> list[str]:
    """The folders a sandboxed command may write: the root and our own folders (even if outside it)."""
    dirs = [getattr(cfg, k) for k in ("root", "tmp_dir", "cache_dir", "log_dir")]
    dirs += [p for p in getattr(cfg, "allow_write", []) if p not in DEVICE_FILES and not p.startswith("/dev/std")]
    return list(dict.fromkeys(os.path.realpath(d) for d in dirs))
