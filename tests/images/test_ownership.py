"""The image store reads, removes and chowns layers through the ownership strategy its backend gives it."""

from __future__ import annotations

import os

import pytest

from labkit.errors import HostUnsupported
from labkit.images import oci
from labkit.images.ownership import HostIds, OwnIds
from labkit.images.store import ImageStore
from tests.images.test_store import make_tree


class Recording(OwnIds):
    """A user's ownership (ids mapped, markers in ``user.*``) that records what the store asked of it."""

    def __init__(self, uid: int, gid: int) -> None:
        super().__init__(uid, gid)
        self.calls: list[tuple[str, str]] = []

    def digest(self, path: str) -> str:
        self.calls.append(("digest", os.path.basename(os.path.dirname(path)) or path))
        return super().digest(path)

    def remove_tree(self, path: str) -> None:
        self.calls.append(("remove_tree", path))
        super().remove_tree(path)


def test_a_mapped_store_hashes_removes_and_marks_through_its_ownership(tmp_path):
    """With a user's ownership the store hashes and removes layers through it, reads ``user.overlay.*``
    markers, and leaves a layer's root to its owner (root inside) instead of chowning it to 0."""
    ownership = Recording(4321, 4321)
    store = ImageStore(str(tmp_path / "images"), ownership)
    src = make_tree(tmp_path / "src", {"a": "x"})
    for path in (src, os.path.join(src, "a")):
        os.lchown(path, 4321, 4321)
    layer = store.commit_layer(src)
    assert store.xattr_prefix == "user"
    assert os.lstat(layer.path).st_uid == 4321
    assert layer.digest == oci.digest(layer.path, "user", owners=ownership.inside)
    assert [c[0] for c in ownership.calls] == ["digest"]
    assert store.intact(layer)
    assert store.prune_layers() == [layer.digest]
    assert [c[0] for c in ownership.calls] == ["digest", "digest", "remove_tree"]
    assert not os.path.exists(layer.path)


def test_with_host_ids_the_layer_root_is_roots_and_owners_are_the_hosts(tmp_path):
    """As root the store gives a layer's root to 0:0 and hashes the host's owners with ``trusted`` markers."""
    store = ImageStore(str(tmp_path / "images"), HostIds())
    src = make_tree(tmp_path / "src", {"a": "x"})
    os.lchown(src, 4321, 4321)
    os.lchown(os.path.join(src, "a"), 4321, 4321)
    layer = store.commit_layer(src)
    assert store.xattr_prefix == "trusted"
    assert (os.lstat(layer.path).st_uid, os.lstat(os.path.join(layer.path, "a")).st_uid) == (0, 4321)
    assert layer.digest == oci.digest(layer.path, "trusted")
    assert layer.digest != OwnIds(4321, 4321).digest(layer.path), "the same files, seen through a map, differ"


def test_a_layer_hashed_with_host_ids_counts_as_intact_only_where_ids_are_mapped(tmp_path):
    """An earlier labkit's rootless digest (host ids) still counts as intact with mapped ids, never as root."""
    src = make_tree(tmp_path / "src", {"d/a": "x"})
    os.setxattr(os.path.join(src, "d"), "user.overlay.opaque", b"y")  # a rootless RUN step's opaque directory
    mapped = ImageStore(str(tmp_path / "mapped"), OwnIds(4321, 4321))  # the files are root's: nobody inside
    layer = mapped.commit_layer(src)
    legacy = type(layer)(oci.digest(layer.path, "user"), layer.path, layer.size, layer.files)
    assert legacy.digest != layer.digest
    assert mapped.intact(legacy)
    assert not ImageStore(str(tmp_path / "host"), HostIds()).intact(legacy)


def test_own_ids_alone_refuse_another_owner():
    """Without a subordinate range only root exists inside: ``COPY --chown=1000`` is refused in one sentence."""
    with pytest.raises(HostUnsupported, match="insufficient UIDs or GIDs"):
        OwnIds(1001, 1001).chown(["/nonexistent"], 1000, 1000)
    OwnIds(1001, 1001).chown(["/nonexistent"], 0, 0)  # root inside is the user itself: nothing to do
