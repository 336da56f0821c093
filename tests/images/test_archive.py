"""Image archives and layer tars: Docker's save/load formats, export/import, and archives that try to escape."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import stat
import tarfile

import pytest

from labkit.errors import Conflict
from labkit.images import archive, oci
from labkit.images.archive import BadArchive
from labkit.images.ownership import OwnIds
from labkit.images.store import ImageStore

pytestmark = pytest.mark.root  # layers keep root's owners and trusted.overlay.* xattrs


def layer_tree(root) -> str:
    """A layer with every kind of entry overlayfs and the OCI format know: files, a hard link, a symlink,
    a fifo, a device node, a whiteout (char 0/0) and an opaque directory."""
    root = str(root)
    os.makedirs(os.path.join(root, "etc", "conf.d"))
    os.makedirs(os.path.join(root, "opaque", "inner"))
    with open(os.path.join(root, "etc", "app.conf"), "w") as f:
        f.write("port=3000\n")
    os.chmod(os.path.join(root, "etc", "app.conf"), 0o640)
    os.chown(os.path.join(root, "etc", "app.conf"), 1000, 1000)
    os.link(os.path.join(root, "etc", "app.conf"), os.path.join(root, "etc", "hard"))
    os.symlink("/etc/app.conf", os.path.join(root, "link"))
    os.mkfifo(os.path.join(root, "fifo"))
    os.mknod(os.path.join(root, "null"), stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mknod(os.path.join(root, "etc", "group"), stat.S_IFCHR | 0o600, os.makedev(0, 0))  # a whiteout
    os.setxattr(os.path.join(root, "opaque"), "trusted.overlay.opaque", b"y")
    for cur, dirs, names in os.walk(root):
        for n in dirs + names:
            os.utime(os.path.join(cur, n), (1000, 1000), follow_symlinks=False)
    return root


def tar_bytes(entries) -> bytes:
    """A tar of ``(TarInfo, data)`` pairs, as another tool might write one."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return buf.getvalue()


def member(name, kind=tarfile.REGTYPE, linkname="", mode=0o644):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.mode = mode
    return info


def state(store: ImageStore):
    """What a store holds: layers, images, tags, and anything left in tmp/."""
    root = store.root
    return (sorted(os.listdir(os.path.join(root, "layers"))), sorted(os.listdir(os.path.join(root, "images"))),
            store.list(), sorted(os.listdir(os.path.join(root, "tmp"))))


def test_a_layer_tar_reads_back_to_the_same_layer(store, tmp_path):
    """write_tar then extract_layer gives a directory that hashes to the same digest: whiteouts are 0/0
    devices again, the opaque marker an xattr, hard links links, owners, modes and times kept."""
    src = layer_tree(tmp_path / "src")
    data = io.BytesIO()
    oci.write_tar(src, data)
    names = oci.tar_names(src)
    assert "etc/.wh.group" in names and "opaque/.wh..wh..opq" in names
    data.seek(0)
    layer, made = archive.layer_from_tar(store, data)
    assert made and layer.digest == oci.digest(src)
    got = layer.path
    assert oci.is_whiteout(os.lstat(os.path.join(got, "etc", "group")))
    assert oci.is_opaque(os.path.join(got, "opaque"))
    conf, hard = os.lstat(os.path.join(got, "etc", "app.conf")), os.lstat(os.path.join(got, "etc", "hard"))
    assert conf.st_ino == hard.st_ino and (conf.st_uid, stat.S_IMODE(conf.st_mode)) == (1000, 0o640)
    assert os.readlink(os.path.join(got, "link")) == "/etc/app.conf"
    assert os.stat(os.path.join(got, "null")).st_rdev == os.makedev(1, 3)
    assert state(store)[3] == []
    data.seek(0)
    assert archive.layer_from_tar(store, data) == (layer, False)  # the same content is stored once


@pytest.mark.parametrize(("entries", "words"), [
    ([(member("../escape"), b"x")], "outside of the layer"),
    ([(member("a/../../escape"), b"x")], "outside of the layer"),
    ([(member("out", tarfile.SYMTYPE, "/tmp"), None), (member("out/planted"), b"x")], "not a directory"),
    ([(member("up", tarfile.SYMTYPE, ".."), None), (member("up/planted"), b"x")], "not a directory"),
    ([(member("pw", tarfile.LNKTYPE, "../../../etc/passwd"), None)], "outside of the layer"),
    ([(member("pw", tarfile.LNKTYPE, "etc/passwd"), None)], "not an earlier file"),
    ([(member("dir/.wh..."), b"")], "not a whiteout of a name"),
])
def test_an_archive_that_would_escape_is_refused_and_leaves_nothing(store, tmp_path, entries, words):
    """Members with .., a write through a symlink, or a hard link out are refused in one sentence, and
    the store holds nothing of the layer afterwards; nothing is written outside it."""
    before = state(store)
    with pytest.raises(BadArchive, match=words):
        archive.layer_from_tar(store, io.BytesIO(tar_bytes(entries)))
    assert state(store) == before
    assert not os.path.exists(os.path.join(store.root, "escape"))
    assert not os.path.exists("/tmp/planted") and not os.path.exists(os.path.join(store.root, "planted"))


def test_an_absolute_member_stays_inside(store):
    """A member named /etc/x lands at etc/x in the layer, as Docker's archive package joins it."""
    layer, _ = archive.layer_from_tar(store, io.BytesIO(tar_bytes([(member("/etc/x"), b"hi")])))
    with open(os.path.join(layer.path, "etc", "x")) as f:
        assert f.read() == "hi"


def test_a_rootless_store_makes_no_device_nodes(tmp_path):
    """Where the store maps ids (rootless), a device node in an archive is left out, as rootless Docker
    leaves it; a whiteout (0/0) is still made."""
    store = ImageStore(str(tmp_path / "mapped"), OwnIds(os.getuid(), os.getgid()))
    dev = member("dev/sda", tarfile.BLKTYPE)
    dev.devmajor, dev.devminor = 8, 0
    layer, _ = archive.layer_from_tar(store, io.BytesIO(tar_bytes([(dev, None), (member("etc/.wh.group"), b"")])))
    assert not os.path.lexists(os.path.join(layer.path, "dev", "sda"))
    assert oci.is_whiteout(os.lstat(os.path.join(layer.path, "etc", "group")))


def saved_image(store, tmp_path, tag="app:1"):
    layer = store.commit_layer(layer_tree(tmp_path / "l1"), "ADD l1 /")
    return store.add_image([layer], {"Cmd": ["sh"]}, tag)


def test_save_writes_docker_25s_layout_whose_blobs_hash_to_their_names(store, tmp_path):
    """save writes oci-layout, index.json, manifest.json, repositories and blobs/sha256/<hex> whose sha256
    is <hex>: the layer blob's is the config's diff_id, as docker load checks."""
    img = saved_image(store, tmp_path)
    out = io.BytesIO()
    archive.save(store, ["app:1"], out)
    tar = tarfile.open(fileobj=io.BytesIO(out.getvalue()))
    names = set(tar.getnames())
    assert {"oci-layout", "index.json", "manifest.json", "repositories"} <= names
    for name in names:
        if name.startswith("blobs/sha256/") and tar.getmember(name).isreg():
            assert hashlib.sha256(tar.extractfile(name).read()).hexdigest() == name.rsplit("/", 1)[1]
    manifest = json.load(tar.extractfile("manifest.json"))
    assert manifest == [{"Config": "blobs/sha256/" + img.id[7:], "RepoTags": ["app:1"],
                         "Layers": ["blobs/sha256/" + img.layers[0].digest[7:]]}]
    index = json.load(tar.extractfile("index.json"))
    assert index["manifests"][0]["annotations"]["io.containerd.image.name"] == "docker.io/library/app:1"


def test_save_then_load_keeps_the_image_id_and_tags(store, tmp_path):
    """An image saved and removed loads back with the same id, layers and tag; load says so in Docker's words."""
    img = saved_image(store, tmp_path)
    out = io.BytesIO()
    archive.save(store, ["app:1", img.id], out)
    store.remove("app:1")
    assert store.list() == []
    loaded = archive.load(store, io.BytesIO(out.getvalue()))
    assert loaded.lines == ("Loaded image: app:1",)
    assert store.get("app:1").id == img.id and store.get("app:1").layers[0].digest == img.layers[0].digest


def test_load_says_when_a_tag_moves(store, tmp_path):
    """Loading a tag another image holds moves it, with Docker's renaming line."""
    img = saved_image(store, tmp_path)
    out = io.BytesIO()
    archive.save(store, ["app:1"], out)
    other = store.add_image(list(img.layers), {"Cmd": ["other"]}, "app:1")
    lines = archive.load(store, io.BytesIO(out.getvalue())).lines
    assert lines == (f"The image app:1 already exists, renaming the old one with ID {other.id} to empty string",
                     "Loaded image: app:1")


def docker_2010_archive(layer_tars: list[bytes], config_extra=None, tags=("old:1",)) -> bytes:
    """An archive shaped as Docker 20.10's save writes it: <v1 id>/layer.tar (a repeated layer as a symlink
    to the first), <config hex>.json, manifest.json and repositories."""
    diff_ids = ["sha256:" + hashlib.sha256(t).hexdigest() for t in layer_tars]
    config = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["cat", "/hello"]},
              "created": "2024-01-01T00:00:00Z", "rootfs": {"type": "layers", "diff_ids": diff_ids},
              "history": [{"created": "2024-01-01T00:00:00Z", "created_by": f"step {n}"} for n in range(len(diff_ids))],
              **(config_extra or {})}
    cbytes = json.dumps(config).encode()
    chex = hashlib.sha256(cbytes).hexdigest()
    entries, paths, first = [], [], {}
    for n, data in enumerate(layer_tars):
        v1 = hashlib.sha256(f"{n}".encode()).hexdigest()
        entries.append((member(v1 + "/", tarfile.DIRTYPE, mode=0o755), None))
        entries.append((member(v1 + "/VERSION"), b"1.0"))
        if data in first:
            entries.append((member(v1 + "/layer.tar", tarfile.SYMTYPE, f"../{first[data]}/layer.tar"), None))
        else:
            entries.append((member(v1 + "/layer.tar"), data))
            first[data] = v1
        paths.append(v1 + "/layer.tar")
    entries.append((member(chex + ".json"), cbytes))
    entries.append((member("manifest.json"), json.dumps([{"Config": chex + ".json", "RepoTags": list(tags),
                                                           "Layers": paths}]).encode()))
    entries.append((member("repositories"), b"{}"))
    return tar_bytes(entries)


def test_load_reads_docker_2010s_archive_with_a_symlinked_layer(store, tmp_path):
    """Docker 20.10's layout loads: the layers (one a symlink to an earlier one), config and tag; a layer
    written by another tar writer gets labkit's digest and the config new diff_ids."""
    base = tar_bytes([(member("hello"), b"hi\n"), (member("etc/", tarfile.DIRTYPE, mode=0o755), None)])
    top = tar_bytes([(member("etc/.wh.gone"), b""), (member("etc/new"), b"x")])
    data = docker_2010_archive([base, top, base])
    lines = archive.load(store, io.BytesIO(data)).lines
    assert lines == ("Loaded image: old:1",)
    img = store.get("old:1")
    assert len(img.layers) == 3 and img.config["Cmd"] == ["cat", "/hello"]
    assert oci.is_whiteout(os.lstat(os.path.join(img.layers[1].path, "etc", "gone")))
    assert [h["created_by"] for h in img.history] == ["step 0", "step 1", "step 2"]


def test_load_reads_an_oci_layout_with_gzip_layers_and_a_compressed_archive(store, tmp_path):
    """An archive with index.json alone (an OCI layout as containerd exports it), whose layer blob is
    gzip-compressed, loads; so does a whole archive compressed with gzip (docker load reads both)."""
    layer = tar_bytes([(member("f"), b"oci\n")])
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    blob = gzip.compress(layer)
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "config": {"digest": "sha256:" + hashlib.sha256(config).hexdigest()},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                       "digest": "sha256:" + hashlib.sha256(blob).hexdigest()}]}).encode()
    index = json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": "sha256:" + hashlib.sha256(manifest).hexdigest(),
        "annotations": {"io.containerd.image.name": "docker.io/library/oci:2"}}]}).encode()
    entries = [(member("oci-layout"), b'{"imageLayoutVersion":"1.0.0"}'), (member("index.json"), index)]
    for data in (config, manifest, blob):
        entries.append((member("blobs/sha256/" + hashlib.sha256(data).hexdigest()), data))
    data = gzip.compress(tar_bytes(entries))
    assert archive.load(store, io.BytesIO(data)).lines == ("Loaded image: oci:2",)
    with open(os.path.join(store.get("oci:2").layers[0].path, "f")) as f:
        assert f.read() == "oci\n"


@pytest.mark.parametrize(("data", "words"), [
    (b"", "empty"),
    (b"not a tar at all" * 100, "not a tar archive"),
    (tar_bytes([(member("hello"), b"x")]), "neither manifest.json nor index.json"),
    (tar_bytes([(member("manifest.json"), b"[{\"Config\": \"c.json\", \"Layers\": []}]")]), "has no c.json"),
    (tar_bytes([(member("manifest.json"), b"{oops")]), "not JSON"),
])
def test_a_bad_archive_is_one_sentence_and_leaves_nothing(store, tmp_path, data, words):
    """Whatever is wrong with an archive, load raises one sentence and the store is as it was."""
    saved_image(store, tmp_path)
    before = state(store)
    with pytest.raises(BadArchive, match=words) as caught:
        archive.load(store, io.BytesIO(data))
    assert "\n" not in caught.value.one_line()
    assert state(store) == before


def test_a_truncated_archive_leaves_no_layer(store, tmp_path):
    """An archive cut short after its first layer fails, and the layers it had stored are removed."""
    good = tar_bytes([(member("a"), b"a" * 5000)])
    data = docker_2010_archive([good, tar_bytes([(member("b"), b"b" * 5000)])])
    before = state(store)
    with pytest.raises(BadArchive):
        archive.load(store, io.BytesIO(data[: len(data) // 2]))
    assert state(store) == before


def test_import_makes_one_layer_with_docker_comment(store, tmp_path):
    """import stores a tar of a filesystem as a one-layer image; its history says 'Imported from -'."""
    img = archive.import_tar(store, io.BytesIO(tar_bytes([(member("bin/sh"), b"#!")])), {"Cmd": ["sh"]}, "imp:1")
    assert len(img.layers) == 1 and img.config["Cmd"] == ["sh"]
    assert store.history("imp:1")[0]["Comment"] == "Imported from -" and img.doc["comment"] == "Imported from -"


def test_merged_view_follows_overlay_rules(tmp_path):
    """export's walk: the top layer wins, a whiteout hides a lower name, an opaque directory hides the lower
    directory's children, and directories merge otherwise."""
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    for d in (lower / "etc", lower / "opq", upper / "etc", upper / "opq"):
        d.mkdir(parents=True)
    (lower / "etc" / "group").write_text("g")
    (lower / "etc" / "passwd").write_text("old")
    (lower / "opq" / "hidden").write_text("h")
    (upper / "etc" / "passwd").write_text("new")
    os.mknod(upper / "etc" / "group", stat.S_IFCHR | 0o600, os.makedev(0, 0))
    os.setxattr(upper / "opq", "trusted.overlay.opaque", b"y")
    (upper / "opq" / "mine").write_text("m")
    out = io.BytesIO()
    archive.write_merged([str(upper), str(lower)], out)
    tar = tarfile.open(fileobj=io.BytesIO(out.getvalue()))
    assert tar.getnames() == ["etc", "etc/passwd", "opq", "opq/mine"]
    assert tar.extractfile("etc/passwd").read() == b"new"


def test_rmi_conflicts_in_dockers_words(store, tmp_path):
    """A running container's image cannot be removed even with force; an image with children cannot be
    removed by id; tags of two repositories need force."""
    img = saved_image(store, tmp_path)
    with pytest.raises(Conflict, match=r"\(cannot be forced\) - image is being used by running container abc"):
        store.remove(img.id, force=True, running={img.id: "abc" + "0" * 61})
    with pytest.raises(Conflict, match=r"\(must be forced\) - image is being used by stopped container abc"):
        store.remove(img.id, in_use={img.id: "abc" + "0" * 61})
    child = store.add_image(list(img.layers), {"Cmd": ["child"]}, "child:1", parent=img.id)
    with pytest.raises(Conflict, match=r"\(cannot be forced\) - image has dependent child images"):
        store.remove(img.id, force=True)
    assert store.remove("app:1") == [{"Untagged": "app:1"}]  # a parent loses its tag and stays
    store.tag(img.id, "app:2")
    store.tag(img.id, "zzz:2")
    store.remove("child:1")
    with pytest.raises(Conflict, match="image is referenced in multiple repositories"):
        store.remove(img.id)
    assert [next(iter(x)) for x in store.remove(img.id, force=True)][:3] == ["Untagged", "Untagged", "Deleted"]
    del child


#: A file capability (VFS_CAP_REVISION_2, capabilities(7)): CAP_NET_BIND_SERVICE permitted and effective.
FILE_CAP = bytes.fromhex("01000002" "00040000" "00000000" "00000000" "00000000")


def test_load_keeps_a_layers_xattrs_and_save_writes_them_again(store, tmp_path):
    """A layer tar whose members carry SCHILY.xattr records (security.capability as Docker's save writes it, a
    user.* one, a binary value) loads with those xattrs on its files, set after the owner (chown(2) clears
    file capabilities); overlayfs's own are not taken from a tar; saving writes them back byte for byte."""
    tool = member("bin/tool", mode=0o755)
    tool.uid = tool.gid = 7
    tool.pax_headers = {"SCHILY.xattr.security.capability": FILE_CAP.decode("utf-8", "surrogateescape"),
                        "SCHILY.xattr.user.note": "kept",
                        "SCHILY.xattr.trusted.overlay.opaque": "y"}
    folder = member("data/", tarfile.DIRTYPE, mode=0o755)
    folder.pax_headers = {"SCHILY.xattr.user.dir": "d"}
    layer = tar_bytes([(member("bin/", tarfile.DIRTYPE, mode=0o755), None), (tool, b"#!/bin/sh\n"), (folder, None)])
    data = docker_2010_archive([layer], tags=("caps:1",))
    assert archive.load(store, io.BytesIO(data)).lines == ("Loaded image: caps:1",)
    root = store.get("caps:1").layers[0].path
    path = os.path.join(root, "bin", "tool")
    assert os.stat(path).st_uid == 7
    assert os.getxattr(path, "security.capability") == FILE_CAP
    assert os.getxattr(path, "user.note") == b"kept"
    assert os.getxattr(os.path.join(root, "data"), "user.dir") == b"d"
    assert "trusted.overlay.opaque" not in os.listxattr(path)
    out = io.BytesIO()
    archive.save(store, ["caps:1"], out)
    out.seek(0)
    with tarfile.open(fileobj=out) as saved:
        blobs = [saved.extractfile(m).read() for m in saved.getmembers() if m.name.startswith("blobs/") and m.isfile()]
    [layer_again] = [b for b in blobs if b[257:262] == b"ustar"]  # the one blob that is a tar
    with tarfile.open(fileobj=io.BytesIO(layer_again)) as inner:
        tool_again = inner.getmember("bin/tool")
    assert tool_again.pax_headers["SCHILY.xattr.security.capability"].encode("utf-8", "surrogateescape") == FILE_CAP
    assert tool_again.pax_headers["SCHILY.xattr.user.note"] == "kept"


def test_a_zstd_layer_is_refused_in_one_sentence_naming_its_media_type(store, tmp_path):
    """An OCI layout whose layer is zstd-compressed: this Python's standard library has no zstd (before 3.14),
    so load refuses in one sentence naming application/vnd.oci.image.layer.v1.tar+zstd and what to do, and the
    store is as it was."""
    import shutil
    import subprocess
    import sys

    if sys.version_info >= (3, 14):
        pytest.skip("Python 3.14's compression.zstd reads zstd layers")
    if not shutil.which("zstd"):
        pytest.fail("the zstd test needs the zstd program to compress a layer (apt-get install zstd)")
    layer = tar_bytes([(member("f"), b"zstd\n")])
    blob = subprocess.run(["zstd", "-q", "-c"], input=layer, capture_output=True, check=True).stdout
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "config": {"digest": "sha256:" + hashlib.sha256(config).hexdigest()},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd",
                                       "digest": "sha256:" + hashlib.sha256(blob).hexdigest()}]}).encode()
    index = json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": "sha256:" + hashlib.sha256(manifest).hexdigest()}]}).encode()
    entries = [(member("oci-layout"), b'{"imageLayoutVersion":"1.0.0"}'), (member("index.json"), index)]
    for data in (config, manifest, blob):
        entries.append((member("blobs/sha256/" + hashlib.sha256(data).hexdigest()), data))
    before = state(store)
    with pytest.raises(BadArchive, match=r"a layer is application/vnd\.oci\.image\.layer\.v1\.tar\+zstd "
                                         r"\(zstd-compressed\), which this Python 3\.\d+ cannot decompress: save "
                                         r"the image again with gzip") as caught:
        archive.load(store, io.BytesIO(tar_bytes(entries)))
    assert "\n" not in caught.value.one_line()
    assert state(store) == before
