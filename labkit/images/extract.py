"""A layer tar from elsewhere, unpacked safely into a layer of the store.

A layer tar (OCI image spec, layer.md) is a filesystem diff whose deletions are
``.wh.<name>`` files and whose opaque directories hold ``.wh..wh..opq``.
:func:`extract_layer` turns one into a layer directory in overlayfs's format (a
whiteout is a character device 0/0, an opaque directory carries
``<prefix>.overlay.opaque="y"``; overlayfs.rst, "whiteouts and opaque
directories"), which is what :mod:`labkit.images.oci` turns back into a tar;
:func:`layer_from_tar` commits it to the store. ``load`` and ``import``
(:mod:`labkit.images.archive`) read every layer through here.

Safety: a tar is data from elsewhere. No member is written outside the layer
being made: names are joined below it and refused if ``..`` leads out, a member
is never written through a symbolic link (a parent that is not a real directory
refuses the archive), a hard link must name an earlier member, and device nodes
are made only when the store keeps the host's ids (as root); a rootless store
leaves them out, as rootless Docker does. A bad tar raises :class:`BadArchive`
(an :class:`~labkit.errors.InvalidArgument`) in one sentence, and whatever was
made of it is removed first.
"""

from __future__ import annotations

import bz2
import contextlib
import errno
import gzip
import io
import lzma
import os
import shutil
import stat
import sys
import tarfile
import zlib
from dataclasses import dataclass
from typing import IO, Any

from labkit.errors import InvalidArgument, LabkitError
from labkit.images import oci
from labkit.images.layers import Layer
from labkit.images.oci import OPAQUE_MARKER, WHITEOUT_PREFIX
from labkit.images.store import ImageStore

#: The OCI media type of a zstd-compressed layer (image-spec media-types.md).
ZSTD_LAYER = "application/vnd.oci.image.layer.v1.tar+zstd"
PY = ".".join(map(str, sys.version_info[:2]))

#: What ``docker load`` reads when the archive is not what it expects, said once for every refusal.
LOAD_HINT = "labkit loads what 'docker save' or 'labkit save' writes"


class BadArchive(InvalidArgument):
    """The tar cannot be read as what it was given as (a layer, an image archive)."""


def _member_path(root: str, name: str) -> tuple[str, str]:
    """``(relative, absolute)`` for a member name, joined below ``root`` as Docker's archive package does
    (``filepath.Clean``, then ``Join``: a leading ``/`` stays inside).

    Raises:
        BadArchive: ``..`` leads out of ``root``.
    """
    clean = os.path.normpath(name) if name else "."
    if clean == ".." or clean.startswith("../"):
        raise BadArchive(f"the archive member {name!r} is outside of the layer", LOAD_HINT)
    rel = clean.lstrip("/")
    rel = "" if rel == "." else rel
    return rel, os.path.join(root, rel) if rel else root


def _real_parent(root: str, rel: str) -> str:
    """The parent directory of ``rel`` below ``root``, made if missing; every step a real directory.

    Raises:
        BadArchive: A parent is a symbolic link or not a directory (writing there could leave the layer).
    """
    parent = root
    for part in rel.split("/")[:-1]:
        parent = os.path.join(parent, part)
        try:
            st = os.lstat(parent)
        except FileNotFoundError:
            os.mkdir(parent, 0o755)
            continue
        if not stat.S_ISDIR(st.st_mode):
            raise BadArchive(f"the archive writes below {rel.rsplit('/', 1)[0]!r}, which is not a directory in the "
                             "layer (a link out of it is refused)", LOAD_HINT)
    return parent


def _clear(path: str, keep_dir: bool) -> None:
    """Remove what is at ``path`` so a later member can take its place (a directory stays for a directory)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        if not keep_dir:
            shutil.rmtree(path)
    else:
        os.unlink(path)


@dataclass
class _Owners:
    """Who each extracted entry belongs to, set once everything is written (see :func:`extract_layer`)."""

    by_owner: dict[tuple[int, int], list[str]]
    dirs: list[tuple[str, int, int]]  # (path, mode, mtime), applied last: children change them


def extract_layer(tar: tarfile.TarFile, root: str, store: ImageStore) -> None:
    """Write the layer tar ``tar`` (opened for reading, streamed) into the empty directory ``root``.

    OCI whiteouts become overlayfs's: ``.wh.<name>`` a character device 0/0 at
    ``<name>`` (mknod(2) allows it without privilege since Linux 5.8), and
    ``.wh..wh..opq`` the opaque xattr on its directory, under the store's
    prefix (``trusted`` as root, ``user`` rootless). Owners, modes, mtimes and
    the tar's extended attributes (``SCHILY.xattr.*`` PAX records, as Docker
    writes ``security.capability``) are kept; an xattr the filesystem or this
    user may not set is left out, as Docker's own extraction leaves it
    (ENOTSUP, EPERM), and overlayfs's own are never taken from a tar.

    Raises:
        BadArchive: A member would land outside ``root`` or through a link, a
            hard link names nothing before it, or the tar is damaged.
    """
    owners = _Owners({}, [])
    links: dict[str, str] = {}
    devices = not store.ownership.mapped
    xattrs: list[tuple[str, str, bytes]] = []
    try:
        for member in tar:
            _extract_one(tar, member, root, store, owners, links, devices)
            xattrs += _xattrs_of(member, root)
    except (tarfile.TarError, EOFError, zlib_error(), lzma.LZMAError, OSError) as err:
        if isinstance(err, PermissionError):
            raise
        raise BadArchive(f"the layer tar is damaged: {err}", LOAD_HINT) from None
    for (uid, gid), paths in owners.by_owner.items():
        if store.ownership.mapped:
            if (uid, gid) != (0, 0):
                store.ownership.chown(paths, uid, gid)
        else:
            for path in paths:
                os.lchown(path, uid, gid)
    # After the owners: chown(2) clears a file's security.capability (capabilities(7), "File capabilities").
    for path, name, value in xattrs:
        try:
            os.setxattr(path, name, value, follow_symlinks=False)
        except OSError as err:
            if err.errno not in (errno.ENOTSUP, errno.EPERM, errno.ENOENT):
                raise
    for path, mode, mtime in reversed(owners.dirs):
        os.chmod(path, mode)
        os.utime(path, (mtime, mtime), follow_symlinks=False)


def _xattrs_of(member: tarfile.TarInfo, root: str) -> list[tuple[str, str, bytes]]:
    """The extended attributes a tar member carries as ``SCHILY.xattr.NAME`` PAX records (their values' bytes,
    which tarfile read as UTF-8 with surrogateescape), for the path it was extracted to; none of overlayfs's."""
    found = []
    for key, value in (member.pax_headers or {}).items():
        if not key.startswith(oci.XATTR_PAX) or os.path.basename(member.name.rstrip("/")).startswith(WHITEOUT_PREFIX):
            continue
        name = key[len(oci.XATTR_PAX):]
        if not oci.kept_xattr(name):
            continue
        rel, path = _member_path(root, member.name)
        if rel:
            found.append((path, name, value.encode("utf-8", "surrogateescape")))
    return found


def zlib_error() -> type[Exception]:
    """gzip's error for damaged data (zlib.error), named once for the except clauses."""
    return zlib.error


def _extract_one(tar: tarfile.TarFile, member: tarfile.TarInfo, root: str, store: ImageStore, owners: _Owners,
                 links: dict[str, str], devices: bool) -> None:
    rel, path = _member_path(root, member.name)
    if not rel:  # the layer's root itself: LayerStore.commit_layer gives it the usual owner and mode
        return
    base = os.path.basename(rel)
    parent = _real_parent(root, rel)
    mode = stat.S_IMODE(member.mode)
    if base == OPAQUE_MARKER:
        with contextlib.suppress(FileExistsError):
            os.mkdir(parent, 0o755)
        os.setxattr(parent, f"{store.xattr_prefix}.overlay.opaque", b"y", follow_symlinks=False)
        return
    if base.startswith(WHITEOUT_PREFIX):
        if base.startswith(WHITEOUT_PREFIX + WHITEOUT_PREFIX):
            return  # aufs's own bookkeeping (.wh..wh.plnk and friends): nothing a container sees
        hidden = base[len(WHITEOUT_PREFIX):]
        if hidden in ("", ".", ".."):
            raise BadArchive(f"the archive member {member.name!r} is not a whiteout of a name", LOAD_HINT)
        target = os.path.join(parent, hidden)
        _clear(target, keep_dir=False)
        os.mknod(target, stat.S_IFCHR | 0o600, os.makedev(0, 0))
        owners.by_owner.setdefault((member.uid, member.gid), []).append(target)
        os.utime(target, (member.mtime, member.mtime), follow_symlinks=False)
        return
    if member.isdir():
        _clear(path, keep_dir=True)
        if not os.path.isdir(path):
            os.mkdir(path, 0o700)
        owners.dirs.append((path, mode, int(member.mtime)))
    elif member.isreg():
        _clear(path, keep_dir=False)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as out:
            data = tar.extractfile(member)
            if data is not None:
                shutil.copyfileobj(data, out, 1 << 20)
        os.chmod(path, mode)
    elif member.issym():
        _clear(path, keep_dir=False)
        os.symlink(member.linkname, path)  # its target is read inside the container's root, never here
    elif member.islnk():
        link_rel, source = _member_path(root, member.linkname)
        if link_rel not in links:
            raise BadArchive(f"the archive's hard link {member.name!r} names {member.linkname!r}, which is not "
                             "an earlier file of the layer", LOAD_HINT)
        _clear(path, keep_dir=False)
        os.link(source, path, follow_symlinks=False)
        links[rel] = path
        return  # the link shares its inode's owner, mode and time
    elif member.ischr() or member.isblk() or member.isfifo():
        if not member.isfifo() and not devices:
            return  # a device node needs CAP_MKNOD on the host: a rootless store leaves it out
        _clear(path, keep_dir=False)
        kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK if member.isblk() else stat.S_IFIFO
        os.mknod(path, kind | mode, os.makedev(member.devmajor, member.devminor) if kind != stat.S_IFIFO else 0)
    else:
        return  # GNU sparse and other kinds Docker's layers do not use
    links[rel] = path
    owners.by_owner.setdefault((member.uid, member.gid), []).append(path)
    if not member.isdir():
        os.utime(path, (member.mtime, member.mtime), follow_symlinks=False)


def _decompressed(stream: IO[bytes]) -> IO[bytes]:
    """``stream`` itself, or a reader that decompresses it (gzip, bzip2, xz, by their magic bytes; zstd
    where the standard library has it, Python 3.14's ``compression.zstd``).

    Raises:
        BadArchive: zstd, which this Python cannot read: one sentence naming the media type and what to do.
    """
    head = stream.read(6)
    whole = _Prefixed(head, stream)
    if head.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=whole)  # type: ignore[return-value]
    if head.startswith(b"BZh"):
        return bz2.BZ2File(whole)  # type: ignore[return-value]
    if head.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(whole)  # type: ignore[arg-type]
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        try:
            from compression import zstd  # type: ignore[import-not-found]  # Python 3.14's standard library
        except ImportError:
            raise BadArchive(f"a layer is {ZSTD_LAYER} (zstd-compressed), which this Python {PY} cannot "
                             "decompress: save the image again with gzip or uncompressed layers",
                             "e.g. 'docker save' writes uncompressed layers; 'skopeo copy "
                             "--dest-compress-format gzip' converts an OCI archive") from None
        return zstd.ZstdFile(whole)  # type: ignore[no-any-return]
    return whole  # type: ignore[return-value]


class _Prefixed(io.RawIOBase):
    """A stream that gives ``head`` back before the rest of ``rest`` (what sniffing the magic bytes read)."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self.head, self.rest = head, rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.head:
            n = min(len(buffer), len(self.head))
            buffer[:n] = self.head[:n]
            self.head = self.head[n:]
            return n
        data = self.rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def layer_from_tar(store: ImageStore, stream: IO[bytes], created_by: str = "", comment: str = "") -> tuple[Layer, bool]:
    """Commit the layer tar read from ``stream`` (plain or compressed) to ``store``.

    Returns:
        The layer, and whether the store did not hold it before (the caller removes a new one if what it
        was for fails).

    Raises:
        BadArchive: The tar is damaged or unsafe; nothing of it is left in the store.
    """
    work = store.mkdtemp("extract-")
    try:
        root = os.path.join(work, "layer")
        os.mkdir(root, 0o755)
        try:
            with tarfile.open(fileobj=_decompressed(stream), mode="r|") as tar:
                extract_layer(tar, root, store)
        except (tarfile.TarError, EOFError, lzma.LZMAError, zlib_error()) as err:
            raise BadArchive(f"the layer tar is damaged: {err}", LOAD_HINT) from None
        except OSError as err:
            if isinstance(err, (PermissionError, LabkitError)):
                raise
            raise BadArchive(f"the layer tar is damaged: {err}", LOAD_HINT) from None
        before = set(os.listdir(os.path.join(store.root, "layers")))
        layer = store.commit_layer(root, created_by, comment)
        return layer, layer.digest.split(":", 1)[1] not in before
    finally:
        store.ownership.remove_tree(work)
