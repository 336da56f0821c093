"""Images as tar files: Docker's ``save``/``load`` archives, and ``import`` of any tar as an image.

:func:`save` writes what ``docker save`` writes and :func:`load` reads it back.
:func:`save` writes the layout Docker 25 and later write: an OCI image layout
(``oci-layout``, ``index.json``, ``blobs/sha256/<hex>``) with Docker's
``manifest.json`` and ``repositories`` beside it, which Docker 20.10's ``load``
reads through ``manifest.json`` and newer ones either way. Each layer blob is
the layer's own deterministic tar, so its sha256 is the ``diff_id`` the config
names, as ``docker load`` checks. :func:`load` reads that, the older
docker-archive (``<id>/layer.tar``, ``<hex>.json``, symlinked duplicate layers)
and a bare OCI layout, plain or gzip/bzip2/xz-compressed, with gzip-compressed
layer blobs as containerd keeps them. :func:`import_tar` (``docker import``)
reads any filesystem tar as an image of one layer.

Every layer tar is read by :mod:`labkit.images.extract`, which refuses what
would write outside the layer (:class:`BadArchive`, in one sentence; whatever
was made of it is removed first). The other way, a container's filesystem as
one tar (``docker export``), is :mod:`labkit.images.export`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import lzma
import os
import shutil
import tarfile
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any

from labkit.errors import LabkitError
from labkit.images.export import write_init_layer, write_merged
from labkit.images.extract import LOAD_HINT, BadArchive, layer_from_tar, zlib_error
from labkit.images.refs import parse_ref
from labkit.images.store import Image, ImageStore, rfc3339_nano

#: ``load``, ``save`` and ``import``; and, for callers that reach them here, the layer tar's reader and its
#: error (:mod:`labkit.images.extract`) and ``export``'s writers (:mod:`labkit.images.export`).
__all__ = ["BadArchive", "Loaded", "import_tar", "layer_from_tar", "load", "save", "spooled", "write_init_layer",
           "write_merged"]

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


# -- any tar as an image ---------------------------------------------------------------------------


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
