"""Thin ctypes wrappers for the system calls Python's ``os`` module lacks.

Python 3.11 has ``os.unshare``-less, ``os.setns``-less, ``mount``-less
bindings, so labkit calls libc directly. Each wrapper does exactly one system
call and, when it fails, raises :class:`OSError` with the errno and a message
that names the call and its path (``mount(proc, /rootfs/proc, proc): Operation
not permitted``), so a learner sees which step the kernel refused.

The wrappers are safe to call between ``fork()`` and ``execve()``: they only
build ctypes arguments and call libc, they take no locks and start no threads.
"""

from __future__ import annotations

import ctypes
import os

# mount(2) flags, from <linux/mount.h>.
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000

# umount2(2) flags.
MNT_DETACH = 0x2

# unshare(2): give the calling thread a root, working directory and umask of its own (<linux/sched.h>).
CLONE_FS = 0x200

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]


def _b(value: str | os.PathLike[str] | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


def _check(result: int, what: str, path: str | os.PathLike[str] | None = None) -> None:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}", None if path is None else os.fspath(path))


def mount(
    source: str | os.PathLike[str] | None,
    target: str | os.PathLike[str],
    fstype: str | None,
    flags: int = 0,
    data: str | None = None,
) -> None:
    """Attach a filesystem (or a bind of a path) at ``target``; see mount(2)."""
    result = _libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data))
    _check(result, f"mount({source}, {target}, {fstype})", target)


# The new mount API (fsopen(2), fsconfig(2), fsmount(2), move_mount(2)): one number on every
# architecture (asm-generic/unistd.h), since these calls came after the tables were unified.
_SYS_MOVE_MOUNT, _SYS_FSOPEN, _SYS_FSCONFIG, _SYS_FSMOUNT = 429, 430, 431, 432
_FSOPEN_CLOEXEC = _FSMOUNT_CLOEXEC = 0x1
_FSCONFIG_SET_FLAG, _FSCONFIG_SET_STRING, _FSCONFIG_CMD_CREATE = 0, 1, 6
_MOVE_MOUNT_F_EMPTY_PATH = 0x4
_AT_FDCWD = -100


def mount_by_parts(fstype: str, target: str | os.PathLike[str], options: list[tuple[str, str | None]]) -> None:
    """Mount a new ``fstype`` at ``target``, its options given one by one through the new mount API.

    mount(2) copies at most one page of options; fsconfig(2) takes each option on its own, and
    some keys may repeat (overlayfs's ``lowerdir+`` appends one lower layer per call). A
    ``(key, None)`` option is a flag. See fsopen(2), fsconfig(2), fsmount(2), move_mount(2).
    """
    fs = _libc.syscall(ctypes.c_long(_SYS_FSOPEN), _b(fstype), ctypes.c_uint(_FSOPEN_CLOEXEC))
    _check(fs, f"fsopen({fstype})", target)
    try:
        for key, value in options:
            command = _FSCONFIG_SET_FLAG if value is None else _FSCONFIG_SET_STRING
            result = _libc.syscall(ctypes.c_long(_SYS_FSCONFIG), ctypes.c_int(fs), ctypes.c_uint(command), _b(key),
                                   _b(value), ctypes.c_int(0))
            _check(result, f"fsconfig({fstype}, {key}={value})", value)
        result = _libc.syscall(ctypes.c_long(_SYS_FSCONFIG), ctypes.c_int(fs), ctypes.c_uint(_FSCONFIG_CMD_CREATE),
                               None, None, ctypes.c_int(0))
        _check(result, f"fsconfig({fstype}, create)", target)
        mnt = _libc.syscall(ctypes.c_long(_SYS_FSMOUNT), ctypes.c_int(fs), ctypes.c_uint(_FSMOUNT_CLOEXEC),
                            ctypes.c_uint(0))
        _check(mnt, f"fsmount({fstype})", target)
        try:
            result = _libc.syscall(ctypes.c_long(_SYS_MOVE_MOUNT), ctypes.c_int(mnt), b"", ctypes.c_int(_AT_FDCWD),
                                   _b(target), ctypes.c_uint(_MOVE_MOUNT_F_EMPTY_PATH))
            _check(result, f"move_mount({fstype}, {target})", target)
        finally:
            os.close(mnt)
    finally:
        os.close(fs)


def umount2(target: str | os.PathLike[str], flags: int = 0) -> None:
    """Detach the mount at ``target``; ``MNT_DETACH`` makes it lazy; see umount2(2)."""
    _check(_libc.umount2(_b(target), flags), f"umount2({target})", target)


def unshare(flags: int) -> None:
    """Move the calling process into new namespaces given by CLONE_NEW* ``flags``; see unshare(2)."""
    _check(_libc.unshare(flags), f"unshare({flags:#x})")


def setns(fd: int, nstype: int = 0) -> None:
    """Join the namespace that the open ``/proc/PID/ns/*`` file ``fd`` names; see setns(2)."""
    _check(_libc.setns(fd, nstype), f"setns({fd}, {nstype:#x})")


def is_mountpoint(path: str | os.PathLike[str]) -> bool:
    """Whether something is mounted on ``path``: its device differs from its parent's (or it is its parent).

    What :func:`os.path.ismount` answers, without the realpath(3) walk it does to find the parent
    (an lstat(2) of every component): the paths labkit asks about are its own, with no symlink in
    them, so the parent is the path's own directory part. Two lstat(2)s in all.
    """
    path = os.fspath(path).rstrip("/") or "/"
    try:
        st = os.lstat(path)
        if (st.st_mode & 0o170000) == 0o120000:  # a symlink is never a mountpoint (S_ISLNK)
            return False
        parent = os.lstat(os.path.dirname(path) or "/")
    except (OSError, ValueError):
        return False
    return st.st_dev != parent.st_dev or st.st_ino == parent.st_ino
