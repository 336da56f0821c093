"""Copying and reading layer directories without losing what overlayfs needs.

A layer is more than file contents: owners, modes, times, hard links,
whiteouts (character devices 0/0) and the opaque xattr all change what a
container sees. ``shutil.copytree`` keeps none of the last three, so layers
are copied here, and a path is looked up through a stack of layers the way
overlayfs does it (topmost entry wins; a whiteout or opaque directory stops
the search; Documentation/filesystems/overlayfs.rst, "Directories").
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Sequence

from labkit.images.oci import is_opaque, is_whiteout

# Overlayfs's private xattrs that describe the *build* mount (origin file
# handles, redirects, metacopy, "impure" directories). Only the opaque marker
# still means something once the directory is a read-only lower layer.
OVERLAY_XATTR_KEEP = ("overlay.opaque",)


def _copy_xattrs(src: str, dst: str) -> None:
    try:
        names = os.listxattr(src, follow_symlinks=False)
    except OSError:
        return
    for name in names:
        try:
            os.setxattr(dst, name, os.getxattr(src, name, follow_symlinks=False), follow_symlinks=False)
        except OSError:
            # security.selinux and friends may be refused on the target; content is what counts.
            continue


def _chown(path: str, uid: int, gid: int) -> None:
    """chown(2) where allowed: without CAP_CHOWN (a build as a normal user) files keep the builder's ids.

    ``path`` was just made by this process, so it is the builder's: a refused chown to that
    very uid (only the group can have been refused) is an error, not a missing capability.
    """
    try:
        os.chown(path, uid, gid, follow_symlinks=False)
    except PermissionError:
        if os.lstat(path).st_uid == uid:
            raise


def _set_meta(path: str, st: os.stat_result, uid: int | None = None, gid: int | None = None) -> None:
    _chown(path, st.st_uid if uid is None else uid, st.st_gid if gid is None else gid)
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(path, stat.S_IMODE(st.st_mode))
    os.utime(path, ns=(st.st_mtime_ns, st.st_mtime_ns), follow_symlinks=False)


def copy_entry(
    src: str, dst: str, st: os.stat_result, links: dict, uid: int | None = None, gid: int | None = None
) -> None:
    """Copy one non-directory entry (file, symlink, device, whiteout, fifo) with its metadata.

    Args:
        src: The entry to copy.
        dst: Where to create it; must not exist.
        st: ``os.lstat(src)``.
        links: ``{(dev, ino): copied path}``, shared across one copy so hard links stay links.
        uid: Owner to set instead of the source's (``COPY --chown``).
        gid: Group to set instead of the source's.
    """
    mode = st.st_mode
    key = (st.st_dev, st.st_ino)
    if stat.S_ISREG(mode) and st.st_nlink > 1 and key in links:
        os.link(links[key], dst)
        return
    if stat.S_ISREG(mode):
        shutil.copyfile(src, dst, follow_symlinks=False)
        links[key] = dst
    elif stat.S_ISLNK(mode):
        os.symlink(os.readlink(src), dst)
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
        # mknod(2); a 0/0 character device is a whiteout and needs no
        # CAP_MKNOD since Linux 5.8.
        os.mknod(dst, stat.S_IFMT(mode) | 0o600, st.st_rdev)
    else:
        return  # sockets belong to a running process, not to an image
    _set_meta(dst, st, uid, gid)
    if not stat.S_ISLNK(mode):
        _copy_xattrs(src, dst)


def copy_tree(src: str, dst: str, uid: int | None = None, gid: int | None = None) -> None:
    """Copy the directory ``src`` to ``dst`` (created, or merged into if it exists), keeping layer semantics.

    Owners, modes, mtimes, hard links, whiteouts and xattrs (the opaque marker
    among them) are kept; ``uid``/``gid`` override the owner of everything
    copied, the way ``COPY --chown`` does.
    """
    links: dict = {}
    dirs: list[tuple[str, os.stat_result, str]] = []
    for cur, subdirs, names in os.walk(src):
        rel = os.path.relpath(cur, src)
        target = dst if rel == "." else os.path.join(dst, rel)
        st = os.lstat(cur)
        if not os.path.isdir(target):
            os.mkdir(target)
        dirs.append((target, st, cur))
        for name in sorted(names + [d for d in subdirs if os.path.islink(os.path.join(cur, d))]):
            s = os.path.join(cur, name)
            copy_entry(s, os.path.join(target, name), os.lstat(s), links, uid, gid)
        subdirs[:] = sorted(d for d in subdirs if not os.path.islink(os.path.join(cur, d)))
    # Directory times last: creating children changed them.
    for target, st, source in reversed(dirs):
        _set_meta(target, st, uid, gid)
        _copy_xattrs(source, target)


def clean_overlay_xattrs(root: str, prefix: str = "trusted") -> list[str]:
    """Drop overlayfs bookkeeping xattrs from a finished upper dir so it can serve as a lower layer.

    Returns:
        The xattrs that change what a lower layer means and cannot be kept
        faithfully (``redirect``, ``metacopy``), as ``path: name``; empty when
        the upper dir came from a mount with ``redirect_dir=off,metacopy=off``.
    """
    trouble = []
    for cur, subdirs, names in os.walk(root):
        for name in [cur] + [os.path.join(cur, n) for n in subdirs + names]:
            try:
                attrs = os.listxattr(name, follow_symlinks=False)
            except OSError:
                continue
            for attr in attrs:
                if not attr.startswith(f"{prefix}.overlay."):
                    continue
                short = attr[len(prefix) + 1 :]
                if short in OVERLAY_XATTR_KEEP:
                    continue
                if short in ("overlay.redirect", "overlay.metacopy"):
                    trouble.append(f"{os.path.relpath(name, root)}: {attr}")
                os.removexattr(name, attr, follow_symlinks=False)
    return trouble


def lookup(lowerdirs: Sequence[str], rel: str) -> str | None:
    """Find what overlayfs would show at ``/rel`` over ``lowerdirs`` (top first), or ``None``.

    Returns the real path of the topmost entry; a whiteout, or an opaque
    directory or a non-directory on the way, hides everything beneath it.
    """
    parts = [p for p in rel.strip("/").split("/") if p]
    if not parts:
        return lowerdirs[0] if lowerdirs else None
    for layer in lowerdirs:
        path = layer
        under_opaque = False
        for i, part in enumerate(parts):
            path = os.path.join(path, part)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                break  # not in this layer; look lower unless an opaque directory forbids it
            if is_whiteout(st):
                return None
            if i == len(parts) - 1:
                return path
            if not stat.S_ISDIR(st.st_mode):
                return None  # a non-directory hides the directory path beneath it
            under_opaque = under_opaque or is_opaque(path)
        if under_opaque:
            return None
    return None


def make_dirs(
    layer_root: str,
    rel: str,
    lowerdirs: Sequence[str],
    uid: int = 0,
    gid: int = 0,
    mtime: float | None = None,
    made: dict[str, int] | None = None,
) -> str:
    """Create directory ``/rel`` (and its parents) inside ``layer_root``.

    A directory that already exists in the image below takes that
    directory's owner, mode and mtime, because in a merged overlay the
    topmost copy's metadata is what every process sees; a new one is
    ``0755`` owned by ``uid:gid``, with mtime ``mtime`` (default: now).
    Each created directory's intended mtime (ns) goes into ``made``: adding
    entries later changes it, and the caller puts it back with
    :func:`restore_times`.

    Returns:
        The created (or existing) directory's path.
    """
    path = layer_root
    sofar = ""
    for part in [p for p in rel.strip("/").split("/") if p]:
        sofar = f"{sofar}/{part}"
        path = os.path.join(path, part)
        if os.path.isdir(path) and not os.path.islink(path):
            continue
        os.mkdir(path)
        below = lookup(lowerdirs, sofar)
        if below is not None and os.path.isdir(below) and not os.path.islink(below):
            _set_meta(path, os.lstat(below))
        else:
            _chown(path, uid, gid)
            os.chmod(path, 0o755)
            if mtime is not None:
                os.utime(path, (mtime, mtime))
        if made is not None:
            made[path] = os.lstat(path).st_mtime_ns
    return path


def restore_times(made: dict[str, int]) -> None:
    """Put back the mtimes :func:`make_dirs` chose, deepest first (creating children changed them)."""
    for path in sorted(made, key=lambda p: p.count("/"), reverse=True):
        os.utime(path, ns=(made[path], made[path]), follow_symlinks=False)
