"""The container's filesystem view: from a merged overlay to its own ``/``.

These functions run inside the container's new mount namespace, before the
program starts, in this order (the same one runc follows):

1. :func:`make_private` — stop mount events from leaking back to the host;
2. :func:`bind_self` — make the rootfs a mount of its own (pivot_root(2)
   needs a mount point);
3. :func:`mount_proc`, :func:`mount_dev`, :func:`mount_sys` — the kernel
   filesystems a Linux program expects, each a *new* instance: ``/proc``
   shows only the container's PID namespace;
4. :func:`bind` — volumes and the ``/etc/hosts``-style files;
5. :func:`mask` and :func:`make_readonly` — hide or freeze parts of ``/proc``
   and ``/sys`` that tell too much about the host (Docker's lists);
6. :func:`pivot` — swap the root mount and drop the host's tree entirely.

Paths a container controls are resolved with :func:`secure_join`, so a
symlink planted in the image (``/etc/hosts -> /etc/shadow``) cannot redirect
a mount or a file creation outside the rootfs.
"""

from __future__ import annotations

import errno
import os
import stat

from labkit.linux import syscalls
from labkit.linux.syscalls import MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RDONLY, MS_REC, MS_REMOUNT
from labkit.model import container as container_model

#: Device nodes every container gets (name, major, minor), as runc creates them.
DEVICES: tuple[tuple[str, int, int], ...] = (
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
)

#: Symlinks in ``/dev`` (name, target).
DEV_LINKS: tuple[tuple[str, str], ...] = (
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
)

# Docker's masked paths (files get ``/dev/null`` bound over them, directories an empty
# read-only tmpfs) and read-only paths (bound onto themselves, then remounted read-only):
# one list, the one inspect's HostConfig shows.
MASKED_PATHS = container_model.MASKED_PATHS
READONLY_PATHS = container_model.READONLY_PATHS

_MAX_SYMLINKS = 40


def secure_join(root: str, path: str) -> str:
    """Resolve ``path`` as the container would see it, never leaving ``root``.

    Symlinks are followed as if ``root`` were ``/`` (an absolute target
    restarts at ``root``; ``..`` stops at ``root``). Components that do not
    exist yet are kept as written, so the result can be created afterwards.

    Args:
        root: The host path of the container's root.
        path: A path inside the container, absolute or relative to its root.

    Returns:
        The host path that ``path`` names inside the container.

    Raises:
        OSError: ELOOP if symlinks nest deeper than 40.
    """
    pending = list(reversed(path.split("/")))
    resolved: list[str] = []
    links = 0
    while pending:
        part = pending.pop()
        if part in ("", "."):
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        host = os.path.join(root, *resolved, part)
        try:
            st = os.lstat(host)
        except FileNotFoundError:
            resolved.append(part)
            continue
        if not stat.S_ISLNK(st.st_mode):
            resolved.append(part)
            continue
        links += 1
        if links > _MAX_SYMLINKS:
            raise OSError(errno.ELOOP, f"too many levels of symbolic links in {path}", path)
        target = os.readlink(host)
        if target.startswith("/"):
            resolved = []
        pending.extend(reversed(target.split("/")))
    return os.path.join(root, *resolved)


def make_private() -> None:
    """Make every mount private, so nothing mounted here propagates to the host (mount_namespaces(7))."""
    syscalls.mount(None, "/", None, MS_REC | syscalls.MS_PRIVATE)


def bind_self(root: str) -> None:
    """Bind ``root`` onto itself so that it is a mount point, as pivot_root(2) requires."""
    syscalls.mount(root, root, None, MS_BIND | MS_REC)


def _mkdir(path: str, mode: int = 0o755) -> None:
    try:
        os.mkdir(path, mode)
    except FileExistsError:
        if not os.path.isdir(path):
            raise NotADirectoryError(errno.ENOTDIR, f"mount point {path} is not a directory", path) from None


def mount_proc(root: str) -> None:
    """Mount a new procfs at ``/proc``; it lists only the PIDs of the caller's PID namespace (proc(5))."""
    target = secure_join(root, "/proc")
    _mkdir(target)
    syscalls.mount("proc", target, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)


def mount_dev(root: str, host_devices: bool = False, tty_gid: int | None = 5, host_dev: str = "/dev") -> None:
    """Build ``/dev``: a small tmpfs with the usual devices, a private devpts, shm and mqueue.

    ``devpts`` is mounted with ``newinstance`` so the container's terminals
    are its own (Documentation/filesystems/devpts.rst); ``/dev/ptmx`` points
    into it. The device nodes are made with mknod(2): the tmpfs is not
    ``nodev``, and CAP_MKNOD is still held at this point.

    Args:
        root: The container's rootfs.
        host_devices: Rootless: mknod(2) of a device is refused in a user
            namespace, so each node is an empty file with the host's node
            (from ``host_dev``) bind-mounted over it, as rootless runc does.
        tty_gid: The group of new terminals (``tty``, 5); None leaves it out,
            for a user namespace where group 5 is not mapped (devpts would
            refuse the mount with EINVAL).
    """
    dev = secure_join(root, "/dev")
    _mkdir(dev)
    syscalls.mount("tmpfs", dev, "tmpfs", MS_NOSUID | syscalls.MS_STRICTATIME, "mode=755,size=65536k")
    old_umask = os.umask(0)
    try:
        for name, major, minor in DEVICES:
            if host_devices:
                os.close(os.open(f"{dev}/{name}", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o666))
                syscalls.mount(f"{host_dev}/{name}", f"{dev}/{name}", None, MS_BIND)
            else:
                os.mknod(f"{dev}/{name}", stat.S_IFCHR | 0o666, os.makedev(major, minor))
    finally:
        os.umask(old_umask)
    for name, target in DEV_LINKS:
        os.symlink(target, f"{dev}/{name}")
    os.mkdir(f"{dev}/pts", 0o755)
    gid = "" if tty_gid is None else f",gid={tty_gid}"
    syscalls.mount("devpts", f"{dev}/pts", "devpts", MS_NOSUID | MS_NOEXEC, f"newinstance,ptmxmode=0666,mode=0620{gid}")
    os.mkdir(f"{dev}/shm", 0o1777)
    syscalls.mount("shm", f"{dev}/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k")
    os.mkdir(f"{dev}/mqueue", 0o755)
    syscalls.mount("mqueue", f"{dev}/mqueue", "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC)


def mount_sys(root: str, host_sys: str = "/sys") -> None:
    """Mount sysfs read-only at ``/sys``; in a new network namespace it shows only that namespace's devices.

    In a user namespace the kernel may refuse a new sysfs (it needs a network
    namespace of that user namespace, and a host sysfs not partly hidden);
    then the host's ``/sys`` is bound read-only instead, as rootless runc does.
    """
    target = secure_join(root, "/sys")
    _mkdir(target)
    try:
        syscalls.mount("sysfs", target, "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY)
    except PermissionError:
        syscalls.mount(host_sys, target, None, MS_BIND | MS_REC)
        syscalls.mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | _locked_flags(target))


def bind(root: str, source: str, destination: str, readonly: bool = False) -> None:
    """Bind the host path ``source`` at ``destination`` inside the container.

    The mount point is created like Docker does: a directory for a directory,
    an empty file for anything else. A read-only bind needs a second call,
    because the kernel ignores MS_RDONLY on the first MS_BIND (mount(2)).
    """
    target = secure_join(root, destination)
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if not os.path.lexists(target):
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))
    syscalls.mount(source, target, None, MS_BIND | MS_REC)
    if readonly:
        syscalls.mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | _locked_flags(target))


def _locked_flags(path: str) -> int:
    """The nosuid/nodev/noexec flags ``path``'s mount has now, to keep on a read-only remount.

    In a user namespace, a mount that came from the host has these flags
    *locked*: a remount that would clear one is refused with EPERM
    (mount_namespaces(7), "Restrictions on mount namespaces").
    """
    flags = os.statvfs(path).f_flag
    return ((MS_NOSUID if flags & os.ST_NOSUID else 0) | (MS_NODEV if flags & os.ST_NODEV else 0)
            | (MS_NOEXEC if flags & os.ST_NOEXEC else 0))


def mask(root: str, paths: tuple[str, ...] = MASKED_PATHS, null: str = "/dev/null") -> None:
    """Hide ``paths``: bind ``null`` over files, an empty read-only tmpfs over directories; skip missing ones.

    ``null`` is a path inside the container (its own ``/dev/null``, made by
    :func:`mount_dev`), so the masks look the same as under Docker.
    """
    null = secure_join(root, null)
    for path in paths:
        target = root + path
        try:
            st = os.lstat(target)
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(st.st_mode):
            syscalls.mount("tmpfs", target, "tmpfs", MS_RDONLY)
        else:
            syscalls.mount(null, target, None, MS_BIND)


def make_readonly(root: str, paths: tuple[str, ...] = READONLY_PATHS) -> None:
    """Bind each existing path onto itself and remount it read-only (keeping procfs's nosuid/nodev/noexec)."""
    for path in paths:
        target = root + path
        if not os.path.lexists(target):
            continue
        syscalls.mount(target, target, None, MS_BIND | MS_REC)
        syscalls.mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)


def pivot(root: str) -> None:
    """Make ``root`` the container's ``/`` and detach the host's tree from this namespace.

    ``pivot_root(".", ".")`` stacks the old root on top of the new one at the
    same place; unmounting ``.`` lazily then removes the old root, so no path
    leads back to the host (the trick pivot_root(2) documents).
    """
    os.chdir(root)
    syscalls.pivot_root(".", ".")
    syscalls.umount2(".", syscalls.MNT_DETACH)
    os.chdir("/")


def remount_root_readonly() -> None:
    """Make the container's ``/`` read-only (``--read-only``); the mounts on top keep their own flags."""
    syscalls.mount(None, "/", None, MS_BIND | MS_REMOUNT | MS_RDONLY)
