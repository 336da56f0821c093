"""The image store: references, digests, OCI whiteouts, atomic writes, and Docker's messages."""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import os
import tarfile

import pytest

from labkit.errors import AmbiguousReference, Conflict, InvalidArgument, NoSuchImage
from labkit.images import oci
from labkit.images.ownership import HostIds
from labkit.images.store import ImageStore, Layer, normalize_ref, parse_ref, rfc3339_nano


def make_tree(root, files):
    """Create ``{relpath: text}`` under root with fixed times, so digests compare content only."""
    for rel, text in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
    for cur, dirs, names in os.walk(root):
        for n in dirs + names:
            os.utime(os.path.join(cur, n), (1000, 1000))
    return str(root)


def tar_of(root, prefix="trusted"):
    buf = io.BytesIO()
    oci.write_tar(str(root), buf, prefix)
    buf.seek(0)
    return tarfile.open(fileobj=buf)


# -- references --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("busybox", ("busybox", "latest")),
        ("busybox:latest", ("busybox", "latest")),
        ("frontend-app:v2.1.0", ("frontend-app", "v2.1.0")),
        ("docker.io/library/nginx:1.25", ("nginx", "1.25")),
        ("localhost:5000/team/app", ("localhost:5000/team/app", "latest")),
        ("my_org/app.name:1", ("my_org/app.name", "1")),
    ],
)
def test_parse_ref_normalises_like_docker(ref, expected):
    """References split into repository and tag, defaulting to latest and dropping docker.io/library/."""
    assert parse_ref(ref) == expected


@pytest.mark.parametrize(
    "ref", ["", "Busybox", "busybox:", "a:b:c", "-app", "app:-x", "app@sha256:00", "a//b", "app:" + "x" * 129]
)
def test_bad_refs_say_invalid_reference_format(ref):
    """Malformed references raise InvalidArgument with Docker's 'invalid reference format'."""
    with pytest.raises(InvalidArgument, match="^invalid reference format"):
        parse_ref(ref)


def test_normalize_ref():
    """'nginx' is shown as 'nginx:latest'; ids are left as they are."""
    assert normalize_ref("nginx") == "nginx:latest"
    assert normalize_ref("sha256:abc") == "sha256:abc"


def test_rfc3339_nano():
    """Times print like Go's RFC3339Nano: UTC, trailing zeros of the fraction dropped."""
    assert rfc3339_nano(0) == "1970-01-01T00:00:00Z"
    assert rfc3339_nano(1.5) == "1970-01-01T00:00:01.5Z"


# -- digests and the OCI tar ----------------------------------------------------------------


def test_digest_is_deterministic_and_content_addressed(tmp_path):
    """Two trees with the same content have the same digest; a changed byte or mtime changes it."""
    a = make_tree(tmp_path / "a", {"etc/app.conf": "x=1\n", "bin/run": "#!/bin/sh\n"})
    b = make_tree(tmp_path / "b", {"bin/run": "#!/bin/sh\n", "etc/app.conf": "x=1\n"})
    assert oci.digest(a) == oci.digest(b)
    assert oci.digest(a).startswith("sha256:") and len(oci.digest(a)) == 71
    os.utime(os.path.join(b, "etc/app.conf"), (2000, 2000))
    assert oci.digest(a) != oci.digest(b)


def test_tar_is_sorted_parents_first_without_atime_or_names(tmp_path):
    """Entries are sorted, each directory before its children, with uid/gid/mode/mtime and no user names or atime."""
    root = make_tree(tmp_path / "l", {"b/z": "z", "a/y": "y", "c": "c"})
    os.chmod(os.path.join(root, "c"), 0o640)
    tar = tar_of(root)
    members = tar.getmembers()
    assert [m.name for m in members] == ["a", "b", "c", "a/y", "b/z"]
    c = tar.getmember("c")
    assert (c.mode, c.mtime, c.uname, c.gname) == (0o640, 1000, "", "")
    assert not any("atime" in m.pax_headers for m in members)


def test_whiteout_becomes_wh_file(tmp_path):
    """A character device 0/0 (overlayfs's whiteout) is written as an empty '.wh.<name>' file, mode 0600."""
    root = make_tree(tmp_path / "l", {"etc/keep": "k"})
    os.mknod(os.path.join(root, "etc", "gone"), 0o20000 | 0o600, os.makedev(0, 0))
    tar = tar_of(root)
    wh = tar.getmember("etc/.wh.gone")
    assert wh.isreg() and wh.size == 0 and wh.mode == 0o600
    assert "etc/gone" not in tar.getnames()
    assert oci.tree_stats(root).files == 3


def test_opaque_dir_becomes_wh_opq_marker(tmp_path):
    """An opaque directory is written as the directory followed at once by '<dir>/.wh..wh..opq'."""
    root = make_tree(tmp_path / "l", {"etc/new": "n", "etd/x": "x"})
    os.setxattr(os.path.join(root, "etc"), "user.overlay.opaque", b"y")
    names = oci.tar_names(root, xattr_prefix="user")
    assert names == ["etc", "etc/.wh..wh..opq", "etd", "etc/new", "etd/x"]
    assert oci.digest(root, "user") != oci.digest(root, "trusted")


def test_owners_are_written_as_containers_see_them(tmp_path):
    """Rootless, a header carries the owner a container sees: the user's ids are 0, a subordinate id its place
    in the range, any other the overflow id 65534 (as stat(2) shows them inside the user namespace)."""
    from labkit.linux.namespaces import IdMap

    ids = IdMap(1001, 1002, (300000, 65536), (400000, 65536))
    assert ids.inside(1001, 1002) == (0, 0)
    assert ids.inside(300000, 400999) == (1, 1000)
    assert ids.inside(300000 + 65536, 5) == (65534, 65534)
    assert IdMap(1001, 1002).inside(300999, 1002) == (65534, 0), "the single-id map has only the user"
    root = make_tree(tmp_path / "l", {"a": "x", "d/b": "y"})
    me = os.lstat(root)
    tar = tarfile.open(fileobj=io.BytesIO(_tar_bytes(root, lambda uid, gid: (uid + 7, gid + 8))))
    assert {(m.uid, m.gid) for m in tar.getmembers()} == {(me.st_uid + 7, me.st_gid + 8)}


def _tar_bytes(root, owners):
    buf = io.BytesIO()
    oci.write_tar(str(root), buf, owners=owners)
    return buf.getvalue()


def test_hard_links_are_tar_links(tmp_path):
    """A second name of the same inode is a tar hard link, and its bytes count once."""
    root = make_tree(tmp_path / "l", {"a": "12345"})
    os.link(os.path.join(root, "a"), os.path.join(root, "b"))
    tar = tar_of(root)
    assert tar.getmember("b").islnk() and tar.getmember("b").linkname == "a"
    assert oci.tree_stats(root).size == 5


# -- layers and images --------------------------------------------------------------------


def test_commit_layer_dedups_and_keeps_source_outside_tmp(store, tmp_path):
    """Committing the same content twice yields one layer; a directory outside the store is copied, not moved."""
    src = make_tree(tmp_path / "src", {"app/server.js": "x"})
    one = store.commit_layer(src, "COPY", "app code")
    two = store.commit_layer(src, "COPY again")
    assert one.digest == two.digest and one.path == two.path
    assert os.path.isdir(src)
    assert os.listdir(os.path.join(store.root, "layers")) == [one.digest[7:]]
    assert one.digest == store.layer_digest(one.path)
    assert (one.size, one.files) == (1, 2)
    assert os.listdir(store.tmp_root) == []


def test_commit_layer_moves_dirs_from_store_tmp(store, tmp_path):
    """A finished directory under the store's tmp/ is renamed into layers/<hex>/diff."""
    work = store.mkdtemp()
    make_tree(os.path.join(work, "d"), {"f": "1"})
    layer = store.commit_layer(os.path.join(work, "d"))
    assert not os.path.exists(os.path.join(work, "d"))
    assert layer.path == os.path.join(store.root, "layers", layer.digest[7:], "diff")
    os.rmdir(work)


def add_image(store, tmp_path, tag="app:1", text="x"):
    layer = store.commit_layer(make_tree(tmp_path / f"src-{text}", {"f": text}), "COPY f /", "app code")
    return store.add_image([layer], {"Env": ["A=1"], "Cmd": ["sh"]}, tag)


def test_image_id_is_hash_of_config_json(store, tmp_path):
    """The image id is the sha256 of the image JSON written on disk, and the JSON is Docker's shape."""
    img = add_image(store, tmp_path)
    path = os.path.join(store.root, "images", img.id[7:] + ".json")
    data = open(path, "rb").read()
    assert img.id == "sha256:" + hashlib.sha256(data).hexdigest()
    doc = json.loads(data)
    assert doc["rootfs"] == {"type": "layers", "diff_ids": [img.layers[0].digest]}
    assert doc["os"] == "linux" and doc["config"]["Cmd"] == ["sh"]
    assert img.layers[0].comment == "app code" and img.layers[0].created_by == "COPY f /"


def test_second_store_sees_what_first_made(store, tmp_path):
    """A fresh ImageStore on the same root (another process) sees images and tags at once."""
    img = add_image(store, tmp_path)
    other = ImageStore(store.root, store.ownership)
    assert other.get("app:1") == img
    assert [i.id for i in other.list()] == [img.id]
    assert img.lowerdirs() == [img.layers[0].path]


def test_writes_leave_no_temporary_files(store, tmp_path):
    """After writes, images/ and the root hold only final files (temporary names were renamed away)."""
    add_image(store, tmp_path)
    names = os.listdir(os.path.join(store.root, "images"))
    assert all(n.endswith((".json", ".meta")) and not n.startswith(".") for n in names)
    assert sorted(os.listdir(store.root)) == ["images", "layers", "lock", "repositories.json", "tmp"]


def _tag_many(root, image_id, start):
    s = ImageStore(root, HostIds())
    for n in range(start, start + 20):
        s.tag(image_id, f"app:t{n}")


def test_concurrent_tagging_loses_nothing(store, tmp_path):
    """Four processes tagging at once all see their tags kept (the tags file is locked and renamed)."""
    img = add_image(store, tmp_path)
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_tag_many, args=(store.root, img.id, k * 20)) for k in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    assert len(store.get(img.id).repo_tags) == 81


def test_get_by_every_kind_of_reference(store, tmp_path):
    """An image is found by name, name:tag, full id, sha256: prefix, and bare id prefix."""
    img = add_image(store, tmp_path, tag="web")
    for ref in ("web", "web:latest", img.id, img.id[:15], img.id[7:11], img.id[7:]):
        assert store.get(ref).id == img.id


def test_missing_image_message_is_dockers(store):
    """A missing image is NoSuchImage 'No such image: nginx:latest', a LookupError with a hint."""
    with pytest.raises(NoSuchImage, match="^No such image: nginx:latest$") as err:
        store.get("nginx")
    assert isinstance(err.value, LookupError) and "offline" in err.value.hint
    with pytest.raises(NoSuchImage, match="No such image: sha256:abcd"):
        store.get("sha256:abcd")


def test_ambiguous_prefix(store, tmp_path):
    """An id prefix shared by two images is refused as ambiguous."""
    ids = [add_image(store, tmp_path, tag=f"a:{n}", text=str(n)).id for n in range(40)]
    shared = next(p for p in "0123456789abcdef" if sum(i[7:].startswith(p) for i in ids) > 1)
    with pytest.raises(AmbiguousReference):
        store.get(shared)


def test_remove_untags_then_deletes_and_prunes_layers(store, tmp_path):
    """rmi of one of two tags only untags; the last tag deletes the image and its now unused layer."""
    img = add_image(store, tmp_path)
    store.tag(img.id, "app:2")
    assert store.remove("app:2") == [{"Untagged": "app:2"}]
    assert store.remove("app:1") == [{"Untagged": "app:1"}, {"Deleted": img.id}, {"Deleted": img.layers[0].digest}]
    assert not os.path.exists(img.layers[0].path)
    with pytest.raises(NoSuchImage):
        store.get("app:1")


def test_remove_refuses_while_a_container_uses_it(store, tmp_path):
    """rmi of an image a container uses is a Conflict; --force of one a stopped container uses deletes the image
    (Docker's Untagged and Deleted lines, no layer's) while its layers stay for the container, held by id until
    no container uses it; one a running container uses is only untagged."""
    img = add_image(store, tmp_path)
    with pytest.raises(Conflict, match=r"must force\) - container 0123456789ab is using its referenced image"):
        store.remove("app:1", in_use={img.id: "0123456789abcdef"})
    with pytest.raises(Conflict, match=r"unable to delete .* \(must be forced\)"):
        store.remove(img.id, in_use=[img.id])
    assert store.remove("app:1", force=True, in_use=[img.id]) == [{"Untagged": "app:1"}, {"Deleted": img.id}]
    assert not store.exists(img.id) and [i.id for i in store.list()] == []
    assert store.by_id(img.id).layers == img.layers and os.path.isdir(img.layers[0].path)
    store.prune_layers()
    store.release_held([img.id])  # the container is still there
    assert os.path.isdir(img.layers[0].path) and store.holds()
    store.release_held([])  # it went
    assert not store.holds() and not os.path.exists(img.layers[0].path)
    with pytest.raises(NoSuchImage):
        store.by_id(img.id)
    again = add_image(store, tmp_path)
    assert store.remove("app:1", force=True, in_use=[again.id], running={again.id: "c" * 64}) == [
        {"Untagged": "app:1"}]
    assert store.get(again.id).repo_tags == ()


def test_rmi_names_released_layers_by_chain_id_and_prunes_untagged_parents(store, tmp_path):
    """The Deleted lines are Docker's: the image, then each layer no image stacks any more by its chain id (the
    bottom one's is its diff id), top first; then an untagged parent nothing else uses, and its layer; --no-prune
    keeps the parent."""
    from labkit.images.store import chain_ids

    base = store.commit_layer(make_tree(tmp_path / "b", {"bin/sh": "x"}))
    keep = store.add_image([base], {}, "base:1")
    for prune in (True, False):
        one = store.commit_layer(make_tree(tmp_path / f"o{prune}", {"a": "1"}))
        two = store.commit_layer(make_tree(tmp_path / f"t{prune}", {"b": "2"}))
        parent = store.add_image([base, one], {"Cmd": [str(prune)]}, "p:1", parent=keep.id)
        child = store.add_image([base, one, two], {"Cmd": [str(prune)]}, "c:1", parent=parent.id)
        assert store.remove("p:1") == [{"Untagged": "p:1"}]  # a parent: untagged, kept
        chains = chain_ids([base.digest, one.digest, two.digest])
        assert chains[0] == base.digest and chains[1] != one.digest
        lines = [{"Untagged": "c:1"}, {"Deleted": child.id}, {"Deleted": chains[2]}]
        if prune:
            lines += [{"Deleted": parent.id}, {"Deleted": chains[1]}]
        assert store.remove("c:1", prune=prune) == lines
        assert os.path.isdir(base.path) and os.path.isdir(one.path) != prune and not os.path.exists(two.path)
        if not prune:
            assert store.remove(parent.id) == [{"Deleted": parent.id}, {"Deleted": chains[1]}]
    assert store.get("base:1").id == keep.id


def test_shared_layers_survive_removal(store, tmp_path):
    """Deleting one image keeps layers another image still uses."""
    a = add_image(store, tmp_path)
    store.add_image(list(a.layers), {"Cmd": ["other"]}, "b:1")
    store.remove("app:1")
    assert store.get("b:1").layers[0].path == a.layers[0].path and os.path.isdir(a.layers[0].path)


def test_history_like_docker(store, tmp_path):
    """history lists steps newest first with CreatedBy, Size and Comment; empty layers have size 0."""
    layer = store.commit_layer(make_tree(tmp_path / "h", {"f": "abc"}))
    img = store.add_image(
        [Layer(layer.digest, layer.path, layer.size, layer.files)],
        {"Cmd": ["sh"]},
        "h:1",
        [{"created_by": "ADD f /", "comment": "base OS"}, {"created_by": 'CMD ["sh"]', "empty_layer": True}],
    )
    hist = store.history("h:1")
    assert [(h["CreatedBy"], h["Size"], h["Comment"]) for h in hist] == [
        ('CMD ["sh"]', 0, ""),
        ("ADD f /", 3, "base OS"),
    ]
    assert hist[0]["Id"] == img.id and hist[1]["Id"] == "<missing>"
    assert hist[0]["Tags"] == ["h:1"]


def test_history_must_match_layers(store, tmp_path):
    """An image whose history does not have one non-empty entry per layer is refused."""
    layer = store.commit_layer(make_tree(tmp_path / "m", {"f": "1"}))
    with pytest.raises(InvalidArgument):
        store.add_image([layer], {}, "m:1", [{"created_by": "x", "empty_layer": True}])
