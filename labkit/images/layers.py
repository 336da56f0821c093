"""The layer store: content-addressed, read-only layer directories under ``<root>/layers``.

A layer is a directory in overlayfs's format (a lowerdir), named by the sha256
of its deterministic OCI tar (:mod:`labkit.images.oci`), so identical layers are
stored once::

    layers/<hex>/diff/        the layer
    layers/<hex>/layer.json   {"digest", "size", "files"}
    tmp/                      work in progress; never read as state

A layer is assembled under ``tmp/`` and renamed into ``layers/`` only once
complete, so another process sees either nothing or the finished layer.
Which layers an image stacks, and when one may go, is the image store's
(:class:`labkit.images.store.ImageStore` is a :class:`LayerStore`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass

from labkit.errors import BuildFailed, NoSuchImage
from labkit.images import oci, tree
from labkit.images.ownership import Ownership


def chain_ids(diff_ids: Sequence[str]) -> list[str]:
    """Each layer's chain id, bottom first: the bottom layer's is its diff id, each next one the sha256 of
    ``"<chain id below> <diff id>"`` (the OCI image spec's ChainID), the name Docker's layer store gives a
    layer on top of exactly those below it."""
    chains: list[str] = []
    for diff_id in diff_ids:
        chains.append(diff_id if not chains else
                      "sha256:" + hashlib.sha256(f"{chains[-1]} {diff_id}".encode()).hexdigest())
    return chains


@dataclass(frozen=True)
class Layer:
    """One read-only layer of an image.

    Attributes:
        digest: ``sha256:<hex>`` of the layer's OCI tar (its ``diff_id``).
        path: The directory to give overlayfs as a ``lowerdir``; never written after commit.
        size: Bytes of what is not a directory (a symlink's are its target's length), as Docker counts a layer.
        files: Entries below the layer's root (files, directories, links, whiteouts).
        created_by: The instruction that made it, as ``docker history`` shows it.
        comment: The layer's role in the lesson's picture ("base OS", "runtime", "app code").
    """

    digest: str
    path: str
    size: int
    files: int
    created_by: str = ""
    comment: str = ""


class LayerStore:
    """Committed layers under one directory, safe to share between processes.

    Args:
        root: The store's directory; created if missing.
        ownership: Who owns the layers' files as containers see them: the host's ids as root
            (:class:`~labkit.images.ownership.HostIds`), a user namespace's map rootless; the
            backend that runs the containers gives it (``Backend.ownership``).
    """

    def __init__(self, root: str, ownership: Ownership) -> None:
        self.root = os.path.abspath(root)
        self.ownership = ownership
        # Each layer's directory is made under tmp/ by mkdtemp (0700) and renamed into layers/: with these,
        # no other user lists or enters any of it (labkit.store.PRIVATE_DIR).
        for sub in ("layers", "tmp"):
            os.makedirs(os.path.join(self.root, sub), mode=0o700, exist_ok=True)

    @property
    def tmp_root(self) -> str:
        """Where work in progress lives (same filesystem as the layers, so a rename publishes it)."""
        return os.path.join(self.root, "tmp")

    def mkdtemp(self, prefix: str = "labkit-") -> str:
        """A fresh private directory under ``tmp/``; the caller removes it."""
        return tempfile.mkdtemp(prefix=prefix, dir=self.tmp_root)

    def _layer_dir(self, digest: str) -> str:
        return os.path.join(self.root, "layers", digest.split(":", 1)[-1])

    @property
    def xattr_prefix(self) -> str:
        """Where the overlay mounts of this store's containers keep their markers: ``trusted``, or
        ``user`` when a user namespace maps the ids.

        A rootless build mounts with ``userxattr`` (overlayfs.rst, "Non-root users"), so an
        opaque directory a RUN step made is marked ``user.overlay.opaque``; the layer's tar
        and digest must read the marker where it is.
        """
        return "user" if self.ownership.mapped else "trusted"

    def layer_digest(self, path: str) -> str:
        """The digest of the committed layer at ``path``, with owners as every container sees them
        (see :mod:`labkit.images.ownership`)."""
        return self.ownership.digest(path)

    def intact(self, layer: Layer) -> bool:
        """Whether a committed layer still hashes to its digest (nothing changed it since its commit).

        A rootless layer committed by an earlier labkit was hashed with the host's ids
        (the user's own, not 0); it counts as intact while it still hashes that way.
        """
        if self.layer_digest(layer.path) == layer.digest:
            return True
        if not self.ownership.mapped:
            return False
        try:
            return oci.digest(layer.path, "user") == layer.digest
        except OSError:  # a file of a subordinate owner the user cannot read: the new digest was the one to match
            return False

    def commit_layer(self, src_dir: str, created_by: str = "", comment: str = "") -> Layer:
        """Make the finished directory ``src_dir`` a read-only layer and return it.

        The layer is named by its OCI tar digest. If a layer with that digest
        exists it is reused (and ``src_dir`` discarded when it was under this
        store's ``tmp/``). A directory under ``tmp/`` is moved in by
        ``rename(2)``; anything else is copied, keeping whiteouts, the opaque
        xattr, owners, modes, times and hard links.

        Raises:
            BuildFailed: If the directory carries overlayfs ``redirect`` or
                ``metacopy`` xattrs, which would mean nothing once the
                directory is a lower layer of another mount.
        """
        src_dir = os.path.abspath(src_dir)
        owned = os.path.commonpath([src_dir, self.tmp_root]) == self.tmp_root
        work = self.mkdtemp("layer-")
        try:
            diff = os.path.join(work, "diff")
            if owned:
                os.rename(src_dir, diff)
            else:
                tree.copy_tree(src_dir, diff)
            trouble = tree.clean_overlay_xattrs(diff, self.xattr_prefix)
            if trouble:
                raise BuildFailed(
                    "a layer cannot keep overlayfs redirects or metacopy: " + ", ".join(trouble[:3]),
                    "mount the build container's overlay with redirect_dir=off,metacopy=off",
                )
            # The root of a layer is never in its tar, yet in a merged overlay the
            # topmost layer's root supplies "/"'s owner and mode: make it the usual one.
            if not self.ownership.mapped:  # rootless the user's own ids are root's inside already
                os.chown(diff, 0, 0)
            os.chmod(diff, 0o755)
            digest = self.layer_digest(diff)
            stats = oci.tree_stats(diff)
            final = self._layer_dir(digest)
            if not os.path.isdir(os.path.join(final, "diff")):
                meta = {"digest": digest, "size": stats.size, "files": stats.files}
                with open(os.path.join(work, "layer.json"), "w") as f:
                    json.dump(meta, f)
                try:
                    os.rename(work, final)  # publishes diff/ and layer.json together
                    work = ""
                except OSError:
                    if not os.path.isdir(os.path.join(final, "diff")):
                        raise
                    # Another process committed the same content first: theirs is as good as ours.
            return Layer(digest, os.path.join(final, "diff"), stats.size, stats.files, created_by, comment)
        finally:
            if work:
                shutil.rmtree(work, ignore_errors=True)

    def layer(self, digest: str, created_by: str = "", comment: str = "") -> Layer:
        """The committed layer with this digest.

        Raises:
            NoSuchImage: If no such layer is stored (the store was damaged).
        """
        d = self._layer_dir(digest)
        try:
            with open(os.path.join(d, "layer.json")) as f:
                meta = json.load(f)
        except FileNotFoundError:
            raise NoSuchImage(f"layer {digest}") from None
        return Layer(digest, os.path.join(d, "diff"), meta["size"], meta["files"], created_by, comment)

    def _stored(self) -> set[str]:
        """The digest of every layer the store holds."""
        return {f"sha256:{n}" for n in os.listdir(os.path.join(self.root, "layers"))}

    def _discard(self, digest: str) -> bool:
        """Remove one layer, moved aside first so that no reader ever sees it half-deleted; whether it was there."""
        d = self._layer_dir(digest)
        if not os.path.isdir(d):
            return False
        trash = self.mkdtemp("trash-")
        os.rename(d, os.path.join(trash, "layer"))
        self.ownership.remove_tree(trash)
        return True
