"""A layer directory as an OCI layer tar: the form that names a layer.

On disk a layer is a directory in overlayfs's own format, ready to be a
``lowerdir``: a deleted name is a *whiteout* (a character device 0/0) and a
directory that hides everything below it carries the xattr
``trusted.overlay.opaque="y"`` (Documentation/filesystems/overlayfs.rst,
"whiteouts and opaque directories").

The OCI image spec (layer.md, "Whiteouts") writes the same facts as plain tar
entries: ``.wh.<name>`` deletes ``<name>``, ``<dir>/.wh..wh..opq`` hides every
lower child of ``<dir>``. :func:`write_tar` translates the directory into that
form the way Docker's overlay2 driver does on ``docker save``, and
:func:`digest` hashes the tar. The tar is deterministic (entries sorted,
parents first; owner, mode, mtime and a file's capabilities and ``user.*``
xattrs kept; no atime, no user names), so the same content always gets the
same ``sha256:`` digest and identical layers are stored once.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
#: How a tar names an extended attribute: a PAX record ``SCHILY.xattr.<name>`` (star's, which Go's tar and Docker use).
XATTR_PAX = "SCHILY.xattr."


def kept_xattr(name: str) -> bool:
    """Whether a layer keeps the extended attribute ``name`` in its tar: a file's capabilities
    (``security.capability``, capabilities(7)) and a user's own (``user.*``), never overlayfs's bookkeeping
    (``*.overlay.*``, whose whiteout and opaque facts the tar says in its own words)."""
    return name == "security.capability" or (name.startswith("user.") and not name.startswith("user.overlay."))


def _xattr_records(path: str) -> dict[str, str]:
    """``path``'s kept extended attributes as PAX records, sorted (tarfile writes the bytes back exactly:
    a value that is not UTF-8 goes out with ``hdrcharset=BINARY``)."""
    try:
        names = sorted(n for n in os.listxattr(path, follow_symlinks=False) if kept_xattr(n))
    except OSError:  # a filesystem without xattrs holds none
        return {}
    return {XATTR_PAX + n: os.getxattr(path, n, follow_symlinks=False).decode("utf-8", "surrogateescape")
            for n in names}


@dataclass(frozen=True)
class TreeStats:
    """What a layer directory holds.

    Attributes:
        size: Bytes in regular files (a hard-linked file counts once).
        files: Entries below the root: files, directories, links, whiteouts.
    """

    size: int
    files: int


def is_whiteout(st: os.stat_result) -> bool:
    """Whether ``st`` is overlayfs's whiteout: a character device with device number 0/0."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque(path: str, xattr_prefix: str | None = None) -> bool:
    """Whether the directory ``path`` carries ``<prefix>.overlay.opaque="y"``.

    Args:
        path: A directory inside a layer.
        xattr_prefix: ``trusted`` for a root mount, ``user`` for a rootless
            mount with ``userxattr`` (overlayfs.rst, "Non-root users"); None for
            either (a layer read without knowing which kind of mount wrote it).
    """
    for prefix in (xattr_prefix,) if xattr_prefix else ("trusted", "user"):
        try:
            if os.getxattr(path, f"{prefix}.overlay.opaque", follow_symlinks=False) == b"y":
                return True
        except OSError:
            continue
    return False


def _walk(root: str) -> Iterator[tuple[str, str, os.stat_result]]:
    """Yield ``(relative path, absolute path, lstat)`` below ``root``: sorted by name, each directory before its children."""
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        abs_dir = os.path.join(root, rel_dir) if rel_dir else root
        names = sorted(os.listdir(abs_dir), key=os.fsencode)
        subdirs = []
        for name in names:
            rel = f"{rel_dir}/{name}" if rel_dir else name
            full = os.path.join(abs_dir, name)
            st = os.lstat(full)
            yield rel, full, st
            if stat.S_ISDIR(st.st_mode):
                subdirs.append(rel)
        # Depth-first, in name order: push in reverse so the first name pops first.
        # A directory's own subtree follows all its direct entries, which keeps
        # whiteouts and opaque markers ahead of anything deeper.
        stack.extend(reversed(subdirs))


#: Host ids → the ids a container sees (rootless: the user namespace's map); None keeps them.
Owners = Callable[[int, int], tuple[int, int]] | None


def _header(name: str, st: os.stat_result, kind: bytes, owners: Owners = None) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = owners(st.st_uid, st.st_gid) if owners else (st.st_uid, st.st_gid)
    info.uname = ""
    info.gname = ""
    info.mtime = int(st.st_mtime)
    return info


def _entries(root: str, xattr_prefix: str, owners: Owners = None) -> Iterator[tuple[tarfile.TarInfo, str | None]]:
    """The tar headers of ``root`` in OCI form, each with the file whose data follows it (or ``None``)."""
    seen_inodes: dict[tuple[int, int], str] = {}
    for rel, full, st in _walk(root):
        parent, _, name = rel.rpartition("/")
        if is_whiteout(st):
            # Docker's overlay2 diff: a 0/0 device becomes an empty regular file
            # ".wh.<name>" with mode 0600, keeping owner and mtime.
            info = _header(
                f"{parent}/{WHITEOUT_PREFIX}{name}" if parent else WHITEOUT_PREFIX + name, st, tarfile.REGTYPE, owners
            )
            info.mode = 0o600
            yield info, None
        elif stat.S_ISDIR(st.st_mode):
            info = _header(rel, st, tarfile.DIRTYPE, owners)
            info.pax_headers = _xattr_records(full)
            yield info, None
            if is_opaque(full, xattr_prefix):
                marker = _header(f"{rel}/{OPAQUE_MARKER}", st, tarfile.REGTYPE, owners)
                marker.mode = stat.S_IMODE(st.st_mode) & 0o777
                yield marker, None
        elif stat.S_ISLNK(st.st_mode):
            info = _header(rel, st, tarfile.SYMTYPE, owners)
            info.linkname = os.readlink(full)
            yield info, None
        elif stat.S_ISREG(st.st_mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in seen_inodes:
                info = _header(rel, st, tarfile.LNKTYPE, owners)
                info.linkname = seen_inodes[key]
                yield info, None
                continue
            seen_inodes[key] = rel
            info = _header(rel, st, tarfile.REGTYPE, owners)
            info.size = st.st_size
            info.pax_headers = _xattr_records(full)
            yield info, full
        else:
            kinds = {stat.S_IFCHR: tarfile.CHRTYPE, stat.S_IFBLK: tarfile.BLKTYPE, stat.S_IFIFO: tarfile.FIFOTYPE}
            kind = kinds.get(stat.S_IFMT(st.st_mode))
            if kind is None:  # sockets are not content; tar and Docker skip them too
                continue
            info = _header(rel, st, kind, owners)
            info.devmajor = os.major(st.st_rdev)
            info.devminor = os.minor(st.st_rdev)
            yield info, None


def write_tar(root: str, out: BinaryIO, xattr_prefix: str = "trusted", owners: Owners = None) -> None:
    """Write the layer directory ``root`` to ``out`` as a deterministic OCI layer tar.

    Args:
        root: The layer directory (overlayfs format). Its own entry is not
            written, as in Docker's layer tars.
        out: Any binary stream with ``write``; the tar is streamed, never kept.
        xattr_prefix: Where the opaque marker lives: ``trusted`` or ``user``.
        owners: Turns each entry's host owner into the one a container sees
            (rootless, the user's own ids are root inside); None keeps them.
    """
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for info, data_path in _entries(root, xattr_prefix, owners):
            if data_path is None:
                tar.addfile(info)
            else:
                with open(data_path, "rb") as data:
                    tar.addfile(info, data)


class _Sha256Writer(io.RawIOBase):
    """A write-only stream that hashes what passes through it."""

    def __init__(self) -> None:
        self.hash = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[override]
        self.hash.update(data)
        return len(data)


def digest(root: str, xattr_prefix: str = "trusted", owners: Owners = None) -> str:
    """The layer's ``sha256:<hex>``: the hash of :func:`write_tar`'s output (its OCI ``diff_id``)."""
    sink = _Sha256Writer()
    write_tar(root, sink, xattr_prefix, owners)  # type: ignore[arg-type]
    return "sha256:" + sink.hash.hexdigest()


class _HashingFile(io.RawIOBase):
    """A write-only stream that writes to a file and hashes what passes through it."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.hash = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[override]
        self.hash.update(data)
        self.out.write(data)
        return len(data)


def write_tar_file(root: str, dest: str, xattr_prefix: str = "trusted", owners: Owners = None) -> str:
    """Write :func:`write_tar`'s output for ``root`` to the new file ``dest``; return its ``sha256:<hex>``
    (what ``save`` puts in an archive: the bytes whose hash is the layer's digest)."""
    with open(dest, "xb") as out:
        sink = _HashingFile(out)
        write_tar(root, sink, xattr_prefix, owners)  # type: ignore[arg-type]
    return "sha256:" + sink.hash.hexdigest()


def tree_stats(root: str) -> TreeStats:
    """Count the entries below ``root`` and their bytes as Docker's layer store counts a layer's (moby's
    ``directory.Size``): every entry but a directory (a symlink's bytes are its target's length), a file with
    several hard links once."""
    size = files = 0
    seen: set[tuple[int, int]] = set()
    for _rel, _full, st in _walk(root):
        files += 1
        if not stat.S_ISDIR(st.st_mode) and (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            size += st.st_size
    return TreeStats(size=size, files=files)


def tar_names(root: str, xattr_prefix: str = "trusted") -> list[str]:
    """The entry names :func:`write_tar` would write, in order (for pictures and tests)."""
    return [info.name for info, _ in _entries(root, xattr_prefix)]
