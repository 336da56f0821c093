"""Images and containers as tar files: Docker's ``save``/``load``, ``export``/``import``, and layer tars.

Three kinds of tar cross the store's edge:

* **A layer tar** (OCI image spec, layer.md): a filesystem diff whose deletions
  are ``.wh.<name>`` files and whose opaque directories hold ``.wh..wh..opq``.
  :func:`extract_layer` turns one into a layer directory in overlayfs's format
  (a whiteout is a character device 0/0, an opaque directory carries
  ``<prefix>.overlay.opaque="y"``; overlayfs.rst, "whiteouts and opaque
  directories"), which is what :mod:`labkit.images.oci` turns back into a tar.
* **An image archive**, what ``docker save`` writes and ``docker load`` reads.
  :func:`save` writes the layout Docker 25 and later write: an OCI image layout
  (``oci-layout``, ``index.json``, ``blobs/sha256/<hex>``) with Docker's
  ``manifest.json`` and ``repositories`` beside it, which Docker 20.10's
  ``load`` reads through ``manifest.json`` and newer ones either way. Each layer
  blob is the layer's own deterministic tar, so its sha256 is the ``diff_id``
  the config names, as ``docker load`` checks. :func:`load` reads that, the
  older docker-archive (``<id>/layer.tar``, ``<hex>.json``, symlinked duplicate
  layers) and a bare OCI layout, plain or gzip/bzip2/xz-compressed, with
  gzip-compressed layer blobs as containerd keeps them.
* **A filesystem tar**: ``export`` writes a container's merged view
  (:func:`write_merged`), ``import`` reads any tar as a one-layer image.

Safety: an archive is data from elsewhere. No member is written outside the
layer being made: names are joined below it and refused if ``..`` leads out, a
member is never written through a symbolic link (a parent that is not a real
directory refuses the archive), a hard link must name an earlier member, and
device nodes are made only when the store keeps the host's ids (as root); a
rootless store leaves them out, as rootless Docker does. A bad archive raises
:class:`~labkit.errors.InvalidArgument` in one sentence, and whatever was made
of it is removed first.
"""

from __future__ import annotations

import bz2
import contextlib
import errno
import gzip
import hashlib
import io
import json
import lzma
import os
import shutil
import stat
import sys
import tarfile
import tempfile
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any

from labkit.errors import InvalidArgument, LabkitError
from labkit.images import oci
from labkit.images.oci import OPAQUE_MARKER, WHITEOUT_PREFIX
from labkit.images.store import Image, ImageStore, Layer, parse_ref, rfc3339_nano

#: The OCI media type of a zstd-compressed layer (image-spec media-types.md).
ZSTD_LAYER = "application/vnd.oci.image.layer.v1.tar+zstd"
PY = ".".join(map(str, sys.version_info[:2]))

#: What ``docker load`` reads when the archive is not what it expects, said once for every refusal.
LOAD_HINT = "labkit loads what 'docker save' or 'labkit save' writes"


class BadArchive(InvalidArgument):
    """The tar cannot be read as what it was given as (a layer, an image archive)."""


# -- reading a layer tar into a layer directory ----------------------------------------------------


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
    if not rel:  # the layer's root itself: ImageStore.commit_layer gives it the usual owner and mode
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


# -- an archive on disk, whatever form it came in --------------------------------------------------


@contextlib.contextmanager
def spooled(stream: IO[bytes], store: ImageStore) -> Iterator[str]:
    """The archive in ``stream`` as a file under the store's ``tmp/`` (stdin cannot seek back), removed after."""
    fd, path = tempfile.mkstemp(prefix="archive-", dir=store.tmp_root)
    try:
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(stream, out, 1 << 20)
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


class _Archive:
    """The members of an image archive by name (``./`` and ``/`` dropped), read on demand."""

    def __init__(self, path: str) -> None:
        if os.path.getsize(path) == 0:
            raise BadArchive("the archive is empty", LOAD_HINT)
        try:
            self.tar = tarfile.open(path, "r:*")
            self.members = {os.path.normpath(m.name).lstrip("/"): m for m in self.tar.getmembers()}
        except (tarfile.TarError, EOFError, lzma.LZMAError, zlib_error(), OSError) as err:
            first = str(err).splitlines()[0].rstrip(":") if str(err) else type(err).__name__
            raise BadArchive(f"the input is not a tar archive ({first})", LOAD_HINT) from None
        if not self.members:
            raise BadArchive("the archive is empty", LOAD_HINT)

    def _member(self, name: str, depth: int = 0) -> tarfile.TarInfo:
        key = os.path.normpath(name).lstrip("/")
        member = self.members.get(key)
        if member is None or key.startswith(".."):
            raise BadArchive(f"the archive has no {name}", LOAD_HINT)
        if member.issym() or member.islnk():
            if depth > 8:
                raise BadArchive(f"the archive's {name} is a loop of links", LOAD_HINT)
            target = member.linkname if member.islnk() else os.path.join(os.path.dirname(key), member.linkname)
            return self._member(target, depth + 1)
        if not member.isreg():
            raise BadArchive(f"the archive's {name} is not a file", LOAD_HINT)
        return member

    def has(self, name: str) -> bool:
        return os.path.normpath(name).lstrip("/") in self.members

    def open(self, name: str) -> IO[bytes]:
        stream = self.tar.extractfile(self._member(name))
        assert stream is not None  # a regular member always has a stream
        return stream  # type: ignore[return-value]

    def json(self, name: str, limit: int = 64 << 20) -> Any:
        member = self._member(name)
        if member.size > limit:
            raise BadArchive(f"the archive's {name} is too large to be image metadata", LOAD_HINT)
        try:
            return json.loads(self.open(name).read())
        except ValueError:
            raise BadArchive(f"the archive's {name} is not JSON", LOAD_HINT) from None


@dataclass
class _Entry:
    """One image the archive holds: its config, its layer members bottom first, its tags."""

    config: dict
    layers: list[str]
    tags: list[str]


def _entries(archive: _Archive) -> list[_Entry]:
    """What the archive holds, from ``manifest.json`` (docker-archive, Docker 25+) or ``index.json`` (OCI).

    Raises:
        BadArchive: Neither is there, or what they name is missing or malformed.
    """
    if archive.has("manifest.json"):
        manifest = archive.json("manifest.json")
        if not isinstance(manifest, list):
            raise BadArchive("the archive's manifest.json is not a list of images", LOAD_HINT)
        out = []
        for item in manifest:
            if not isinstance(item, dict) or not isinstance(item.get("Config"), str) \
                    or not isinstance(item.get("Layers", []), list):
                raise BadArchive("an entry of the archive's manifest.json has no Config or Layers", LOAD_HINT)
            tags = [t for t in item.get("RepoTags") or [] if isinstance(t, str)]
            out.append(_Entry(archive.json(item["Config"]), [str(x) for x in item.get("Layers") or []], tags))
        return out
    if archive.has("index.json"):
        return _oci_entries(archive, archive.json("index.json"), 0)
    raise BadArchive("the archive has neither manifest.json nor index.json, so it is not an image archive", LOAD_HINT)


def _blob(digest: Any) -> str:
    if not isinstance(digest, str) or not digest.startswith("sha256:") or "/" in digest:
        raise BadArchive(f"the archive names a blob by {digest!r}, not sha256:<hex>", LOAD_HINT)
    return "blobs/sha256/" + digest[7:]


def _oci_entries(archive: _Archive, index: Any, depth: int) -> list[_Entry]:
    """The images an OCI index names (nested indexes followed; the host's platform where there are several)."""
    if depth > 4 or not isinstance(index, dict):
        raise BadArchive("the archive's index.json is not an OCI image index", LOAD_HINT)
    out: list[_Entry] = []
    for desc in index.get("manifests") or []:
        media = desc.get("mediaType", "")
        doc = archive.json(_blob(desc.get("digest")))
        if "index" in media or "manifest.list" in media or "manifests" in doc:
            out.extend(_oci_entries(archive, doc, depth + 1))
            continue
        platform = desc.get("platform") or {}
        if platform and platform.get("os", "linux") != "linux":
            continue
        name = (desc.get("annotations") or {}).get("io.containerd.image.name", "")
        ref = (desc.get("annotations") or {}).get("org.opencontainers.image.ref.name", "")
        tags = [name] if name else ([ref] if ref and not ref[0].isdigit() and ":" in ref else [])
        layers = [_blob(x.get("digest")) for x in doc.get("layers") or []]
        out.append(_Entry(archive.json(_blob((doc.get("config") or {}).get("digest"))), layers, tags))
    if not out:
        raise BadArchive("the archive's index.json names no image for linux", LOAD_HINT)
    return out


@dataclass(frozen=True)
class Loaded:
    """What ``load`` did, in the lines ``docker load`` prints.

    Attributes:
        lines: ``Loaded image: busybox:latest`` (or ``Loaded image ID: sha256:…`` for an untagged
            image), each preceded by ``The image … already exists, renaming the old one …`` where a
            tag moved.
        images: The images, as stored.
    """

    lines: tuple[str, ...]
    images: tuple[Image, ...]


def load(store: ImageStore, stream: IO[bytes]) -> Loaded:
    """``docker load``: every image of the archive in ``stream`` into ``store``, with its tags.

    A layer whose re-made tar hashes to the ``diff_id`` the config names (an
    image labkit saved, or one Docker saved after loading it from labkit)
    keeps the config as it is, and so its image id; a layer written by another
    tar writer gets labkit's digest, and the config the new ``diff_ids``.

    Raises:
        BadArchive: The archive cannot be read or is unsafe; nothing of it is left in the store.
    """
    new_layers: list[str] = []
    try:
        with spooled(stream, store) as path:
            archive = _Archive(path)
            with archive.tar:
                entries = _entries(archive)
                docs = []
                for entry in entries:
                    config = entry.config
                    if not isinstance(config, dict) or not isinstance(config.get("rootfs"), dict):
                        raise BadArchive("an image config in the archive has no rootfs", LOAD_HINT)
                    diff_ids = config["rootfs"].get("diff_ids") or []
                    if len(diff_ids) != len(entry.layers):
                        raise BadArchive("an image config in the archive names "
                                         f"{len(diff_ids)} layers, its manifest {len(entry.layers)}", LOAD_HINT)
                    for tag in entry.tags:
                        parse_ref(tag)
                    digests = []
                    for member in entry.layers:
                        layer, made = layer_from_tar(store, archive.open(member))
                        if made:
                            new_layers.append(layer.digest)
                        digests.append(layer.digest)
                    docs.append((entry, _with_layers(config, digests)))
        lines, images = [], []
        for entry, doc in docs:
            image = store.add_config(doc)
            for tag in entry.tags:
                name, t = parse_ref(tag)
                old = _holder(store, f"{name}:{t}")
                if old and old != image.id:
                    lines.append(f"The image {name}:{t} already exists, renaming the old one with ID {old} "
                                 "to empty string")
                store.tag(image.id, f"{name}:{t}")
                lines.append(f"Loaded image: {name}:{t}")
            if not entry.tags:
                lines.append(f"Loaded image ID: {image.id}")
            images.append(store.get(image.id))
        return Loaded(tuple(lines), tuple(images))
    except BaseException:
        store.prune_layers(new_layers)
        raise


def _holder(store: ImageStore, tag: str) -> str:
    try:
        return store.resolve(tag)
    except LabkitError:
        return ""


def _with_layers(config: dict, digests: list[str]) -> dict:
    """The config with ``rootfs.diff_ids`` set to what the store holds (unchanged when they agree)."""
    if list(config["rootfs"].get("diff_ids") or []) == digests:
        return config
    doc = json.loads(json.dumps(config))
    doc["rootfs"] = {"type": "layers", "diff_ids": digests}
    hist = doc.get("history") or []
    if hist and sum(1 for h in hist if not h.get("empty_layer")) != len(digests):
        doc.pop("history")  # a history that does not match the layers would be refused; Docker's omits it too
    return doc


# -- writing an image archive ----------------------------------------------------------------------


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mtime: int) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    info.mtime = mtime
    tar.addfile(info, io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, name: str, mtime: int) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    info.mtime = mtime
    tar.addfile(info)


def save(store: ImageStore, refs: Sequence[str], out: IO[bytes]) -> None:
    """``docker save``: the images ``refs`` name, with their layers and tags, as one archive on ``out``.

    An image named by id is saved without tags; one named by a tag carries
    that tag (named by several, all of them), as ``docker save`` does.

    Raises:
        NoSuchImage: A reference names no image (nothing is written).
        BadArchive: A layer no longer hashes to its digest (it was changed after its commit).
    """
    chosen: dict[str, list[str]] = {}
    for ref in refs:
        image_id = store.resolve(ref)
        tags = chosen.setdefault(image_id, [])
        tag = _named_tag(store, ref, image_id)
        if tag and tag not in tags:
            tags.append(tag)
    images = [(store.get(i), tags) for i, tags in chosen.items()]
    mtime = int(time.time())
    work = store.mkdtemp("save-")
    try:
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            _add_dir(tar, "blobs", mtime)
            _add_dir(tar, "blobs/sha256", mtime)
            written: set[str] = set()
            manifest: list[dict[str, Any]] = []
            index: list[dict[str, Any]] = []
            repositories: dict[str, dict[str, str]] = {}
            for img, tags in images:
                layer_descs = []
                for layer in img.layers:
                    hexd = layer.digest.split(":", 1)[1]
                    blob = os.path.join(work, hexd)
                    if hexd not in written:
                        got = store.ownership.write_tar(layer.path, blob)
                        if got != layer.digest:
                            raise BadArchive(f"the layer {layer.digest[:19]} changed after its commit, so it cannot "
                                             "be saved under its digest", "Build the image again")
                        tar.add(blob, f"blobs/sha256/{hexd}", filter=lambda i: _owned_by_root(i, mtime))
                        written.add(hexd)
                    layer_descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar",
                                        "digest": layer.digest, "size": os.path.getsize(blob)})
                config = store.config_bytes(img.id)
                chex = img.id.split(":", 1)[1]
                if chex not in written:
                    _add_bytes(tar, f"blobs/sha256/{chex}", config, mtime)
                    written.add(chex)
                oci_manifest = json.dumps({
                    "schemaVersion": 2,
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": img.id,
                               "size": len(config)},
                    "layers": layer_descs,
                }, separators=(",", ":")).encode()
                mhex = hashlib.sha256(oci_manifest).hexdigest()
                if mhex not in written:
                    _add_bytes(tar, f"blobs/sha256/{mhex}", oci_manifest, mtime)
                    written.add(mhex)
                for tag in tags or [""]:
                    desc: dict[str, Any] = {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                            "digest": f"sha256:{mhex}", "size": len(oci_manifest)}
                    if tag:
                        name, t = tag.rsplit(":", 1)
                        full = name if "/" in name.split(":")[0] and "." in name.split("/")[0] else \
                            f"docker.io/{name}" if "/" in name else f"docker.io/library/{name}"
                        desc["annotations"] = {"io.containerd.image.name": f"{full}:{t}",
                                               "org.opencontainers.image.ref.name": t}
                        if img.layers:
                            repositories.setdefault(name, {})[t] = img.layers[-1].digest.split(":", 1)[1]
                    index.append(desc)
                manifest.append({"Config": f"blobs/sha256/{chex}", "RepoTags": tags or None,
                                 "Layers": [f"blobs/sha256/{x.digest.split(':', 1)[1]}" for x in img.layers]})
            _add_bytes(tar, "index.json", json.dumps({
                "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": index,
            }, separators=(",", ":")).encode() + b"\n", mtime)
            _add_bytes(tar, "manifest.json", json.dumps(manifest, separators=(",", ":")).encode() + b"\n", mtime)
            _add_bytes(tar, "oci-layout", b'{"imageLayoutVersion": "1.0.0"}', mtime)
            if repositories:
                _add_bytes(tar, "repositories", json.dumps(repositories, separators=(",", ":")).encode() + b"\n",
                           mtime)
    finally:
        store.ownership.remove_tree(work)


def _named_tag(store: ImageStore, ref: str, image_id: str) -> str:
    """``name:tag`` when ``ref`` reached ``image_id`` through a tag, ``""`` when it is an id or id prefix."""
    if ref.startswith("sha256:"):
        return ""
    try:
        name, t = parse_ref(ref)
    except LabkitError:
        return ""
    return f"{name}:{t}" if image_id in store.image_ids_tagged(f"{name}:{t}") else ""


def _owned_by_root(info: tarfile.TarInfo, mtime: int) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = 0o644
    info.mtime = mtime
    return info


# -- a container's filesystem as one tar, and any tar as an image -----------------------------------


def _merged(layers: Sequence[str], rel: str) -> Iterator[tuple[str, str, os.stat_result]]:
    """``(relative path, path, lstat)`` of the merged view below ``rel`` of ``layers``: the layers, top
    first, in which ``rel`` is a directory of the merge. By overlayfs's lookup rules the topmost entry
    wins, a whiteout hides the name, a non-directory hides everything below it, and an opaque directory
    stops the merge (overlayfs.rst, "Directories")."""
    names: set[str] = set()
    for layer in layers:
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            names.update(os.listdir(os.path.join(layer, rel) if rel else layer))
    for name in sorted(names, key=os.fsencode):
        child = f"{rel}/{name}" if rel else name
        top: tuple[str, os.stat_result] | None = None
        stack: list[str] = []
        for layer in layers:
            full = os.path.join(layer, child)
            try:
                st = os.lstat(full)
            except FileNotFoundError:
                continue
            if not stat.S_ISDIR(st.st_mode):
                if top is None:
                    top = (full, st)
                break  # a file or a whiteout hides the rest, or ends the directory's merge
            top = top or (full, st)
            stack.append(layer)
            if _opaque(full):
                break
        if top is None or oci.is_whiteout(top[1]):
            continue
        yield child, top[0], top[1]
        if stack:
            yield from _merged(stack, child)


def _opaque(path: str) -> bool:
    """Whether the directory is opaque, marked as a root mount or a rootless (``userxattr``) one marks it."""
    return oci.is_opaque(path, "trusted") or oci.is_opaque(path, "user")


#: What Docker's ``<id>-init`` layer holds (moby daemon/initlayer/setup_unix.go): path -> "dir", "file" or a
#: symlink's target. A file or link replaces what the image has there; a directory is made where there is none.
DOCKER_INIT = {"/dev/pts": "dir", "/dev/shm": "dir", "/proc": "dir", "/sys": "dir", "/.dockerenv": "file",
               "/etc/resolv.conf": "file", "/etc/hosts": "file", "/etc/hostname": "file", "/dev/console": "file",
               "/etc/mtab": "/proc/mounts"}


def write_init_layer(dest: str, lowers: Sequence[str]) -> None:
    """Write into the empty directory ``dest`` the layer Docker puts between a container's writable layer and its
    image (:data:`DOCKER_INIT`), as ``docker export`` shows it: the per-container files' empty placeholders (mode
    0755, as Docker makes them), ``/.dockerenv``, ``/dev/console``, and the directories the image lacks.

    Docker unlinks each path over the image first and makes what is then missing: a file of the image there is
    replaced by an empty one, an image directory stays. A directory of the image that receives an entry is
    copied up (its mode and owner kept, its time now), as overlayfs does. ``lowers`` are the image's layers,
    top first.
    """
    def in_image(rel: str) -> os.stat_result | None:
        for layer in lowers:
            try:
                st = os.lstat(os.path.join(layer, rel))
            except (FileNotFoundError, NotADirectoryError):
                continue
            return None if oci.is_whiteout(st) else st
        return None

    for path, kind in DOCKER_INIT.items():
        rel = path.lstrip("/")
        found = in_image(rel)
        if found is not None and stat.S_ISDIR(found.st_mode):
            continue  # unlink(2) of a directory fails: the image's stays
        parts = rel.split("/")[:-1]
        for i in range(len(parts)):
            sub = "/".join(parts[: i + 1])
            here = os.path.join(dest, sub)
            if not os.path.isdir(here):
                below = in_image(sub)
                os.mkdir(here, stat.S_IMODE(below.st_mode) if below is not None else 0o755)
                os.chmod(here, stat.S_IMODE(below.st_mode) if below is not None else 0o755)  # past the umask
        full = os.path.join(dest, rel)
        if kind == "dir":
            os.mkdir(full, 0o755)
            os.chmod(full, 0o755)
        elif kind == "file":
            os.close(os.open(full, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o755))
            os.chmod(full, 0o755)
        else:
            os.symlink(kind, full)


def write_merged(layers: Sequence[str], out: IO[bytes], owners: oci.Owners = None) -> None:
    """``docker export``: the merged view of ``layers`` (top first: the container's upper dir, then the
    image's layers) as one plain tar of files, with no whiteouts, streamed to ``out``."""
    seen: dict[tuple[int, int], str] = {}
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for rel, full, st in _merged(list(layers), ""):
            kind = (tarfile.DIRTYPE if stat.S_ISDIR(st.st_mode) else tarfile.SYMTYPE if stat.S_ISLNK(st.st_mode)
                    else tarfile.REGTYPE if stat.S_ISREG(st.st_mode) else tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode)
                    else tarfile.BLKTYPE if stat.S_ISBLK(st.st_mode) else tarfile.FIFOTYPE
                    if stat.S_ISFIFO(st.st_mode) else None)
            if kind is None:
                continue
            info = oci._header(rel, st, kind, owners)
            if kind == tarfile.SYMTYPE:
                info.linkname = os.readlink(full)
                tar.addfile(info)
            elif kind == tarfile.REGTYPE:
                key = (st.st_dev, st.st_ino)
                if st.st_nlink > 1 and key in seen:
                    info.type, info.linkname = tarfile.LNKTYPE, seen[key]
                    tar.addfile(info)
                    continue
                seen[key] = rel
                info.size = st.st_size
                with open(full, "rb") as data:
                    tar.addfile(info, data)
            else:
                if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
                    info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
                tar.addfile(info)


def import_tar(store: ImageStore, stream: IO[bytes], config: dict, tag: str | None, message: str = "",
               source: str = "-") -> Image:
    """``docker import``: the tar in ``stream`` (plain or compressed) as an image of one layer.

    Args:
        config: The image's ``Config`` (from ``--change``).
        tag: ``name[:tag]``, or None.
        message: The history step's comment; Docker's default is ``Imported from <source>``.

    Raises:
        BadArchive: The tar is damaged or unsafe (nothing is left in the store).
    """
    if tag is not None:
        parse_ref(tag)
    layer, made = layer_from_tar(store, stream)
    try:
        created = rfc3339_nano()
        history = [{"created": created, "created_by": "", "comment": message or f"Imported from {source}"}]
        return store.add_image([layer], config, tag, history, created=created,
                               comment=message or f"Imported from {source}")
    except BaseException:
        if made:
            store.prune_layers([layer.digest])
        raise
