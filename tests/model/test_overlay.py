"""The overlayfs model follows the rules of Documentation/filesystems/overlayfs.rst."""

from __future__ import annotations

import errno
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.errors import InvalidArgument
from labkit.model.overlay import (
    WHITEOUT,
    CopyUp,
    Create,
    Dir,
    Effect,
    File,
    HardLinkBroken,
    Layer,
    Opaque,
    Overlay,
    ParentCopyUp,
    Redirect,
    Symlink,
    Whiteout,
    WhiteoutNode,
    from_tree,
)


def image() -> Overlay:
    """Two image layers: an app layer (top, index 0) over a base OS layer (index 1)."""
    base = {
        "etc": {"passwd": "root:x:0:0\n", "hosts": "127.0.0.1 localhost\n", "old.conf": "old\n"},
        "bin": {"busybox": b"\x7fELF", "sh": Symlink("busybox")},
        "usr/lib": {"a.so": "a", "b.so": "b"},
        "tmp": {},
    }
    app = {
        "app": {"server.js": "listen(3000)\n"},
        "etc": {"app.conf": "port=3000\n"},
        "usr/lib/b.so": WHITEOUT,
    }
    return Overlay.from_trees(app, base)


def kinds(effects: tuple[Effect, ...]) -> list[str]:
    return [type(e).__name__ for e in effects]


def errno_of(call: Any, *args: Any) -> int:
    with pytest.raises(OSError) as info:
        call(*args)
    return info.value.errno  # type: ignore[return-value]


# --------------------------------------------------------------------------- lookup


def test_lookup_takes_the_topmost_non_directory() -> None:
    """A non-directory in an upper layer hides the same name below it."""
    ov = Overlay.from_trees({"f": "top"}, {"f": "bottom"})
    node, layer = ov.lookup("/f")
    assert isinstance(node, File) and node.data == b"top" and layer == 0


def test_directories_merge_across_layers() -> None:
    """Directories with the same name merge: names from every layer show."""
    ov = image()
    assert ov.served_by("/etc") == (0, 1)
    assert set(ov.readdir("/etc")) == {"app.conf", "passwd", "hosts", "old.conf"}


def test_whiteout_in_a_lower_layer_hides_the_name_below() -> None:
    """A whiteout in a middle layer hides the name in the layers below, and is itself invisible."""
    ov = image()
    assert errno_of(ov.lookup, "/usr/lib/b.so") == errno.ENOENT
    assert ov.readdir("/usr/lib") == ["a.so"]


def test_opaque_directory_stops_merging() -> None:
    """An opaque directory hides everything the layers below have under the same name."""
    ov = Overlay.from_trees({"d": Dir(opaque=True), "d/new": "n"}, {"d": {"old": "o"}})
    assert ov.readdir("/d") == ["new"]
    assert ov.served_by("/d") == (0,)


def test_directory_over_a_lower_file_hides_the_file() -> None:
    """A directory above a non-directory of the same name hides it (no merge)."""
    ov = Overlay.from_trees({"x": {"in": "i"}}, {"x": "file"})
    assert ov.served_by("/x") == (0,)


def test_intermediate_symlinks_are_followed_inside_the_overlay() -> None:
    """Path walks follow symlinks; an absolute target starts again at the overlay's root."""
    ov = Overlay.from_trees({"lib": Symlink("/usr/lib"), "usr/lib/a.so": "a"})
    assert ov.read("/lib/a.so") == b"a"
    assert isinstance(ov.lookup("/lib")[0], Symlink)


def test_symlink_loop_is_eloop() -> None:
    """A symlink that points at itself gives ELOOP, as the kernel does after 40 hops."""
    ov = Overlay.from_trees({"l": Symlink("l")})
    assert errno_of(ov.read, "/l") == errno.ELOOP


def test_path_through_a_file_is_enotdir() -> None:
    """A regular file in the middle of a path gives ENOTDIR."""
    assert errno_of(image().read, "/etc/passwd/x") == errno.ENOTDIR


# --------------------------------------------------------------------------- readdir


def test_readdir_lists_upper_names_first() -> None:
    """readdir gives the upper layer's names, then each lower layer's names not yet present."""
    ov, _ = image().create("/etc/zz", b"")
    names = ov.readdir("/etc")
    assert names[0] == "zz"
    assert names[1:] == ["app.conf", "hosts", "old.conf", "passwd"]


def test_stray_whiteout_in_unmerged_directory_is_listed() -> None:
    """A directory served by one layer is read as is, so a stray whiteout in it is listed but not found."""
    ov = Overlay.from_trees({"d": {"gone": WHITEOUT, "f": "f"}})
    assert ov.readdir("/d") == ["f", "gone"]
    assert not ov.exists("/d/gone")
    assert "/d/gone" not in ov.walk()


def test_readdir_of_a_file_is_enotdir() -> None:
    """Listing a non-directory gives ENOTDIR."""
    assert errno_of(image().readdir, "/etc/passwd") == errno.ENOTDIR


# --------------------------------------------------------------------------- copy-up


def test_reading_never_copies_up() -> None:
    """Reading a lower file leaves the upper layer empty."""
    ov = image()
    assert ov.read("/etc/passwd") == b"root:x:0:0\n"
    assert list(ov.upper) == ["/"]


def test_open_for_write_copies_up_even_without_writing() -> None:
    """Opening a lower file for writing copies it up, though nothing is written."""
    ov, eff = image().open_write("/etc/hosts")
    assert kinds(eff) == ["ParentCopyUp", "CopyUp"]
    assert eff[1] == CopyUp("/etc/hosts", 1, 20, "open-for-write")
    assert ov.served_by("/etc/hosts") == ("upper",)
    assert ov.read("/etc/hosts") == b"127.0.0.1 localhost\n"


def test_o_trunc_copies_up_and_empties() -> None:
    """Opening with O_TRUNC copies up (reason "truncate") and leaves the file empty."""
    ov, eff = image().open_write("/etc/hosts", truncate=True)
    assert any(isinstance(e, CopyUp) and e.reason == "truncate" for e in eff)
    assert ov.read("/etc/hosts") == b""


def test_parents_are_copied_up_with_lower_metadata() -> None:
    """Missing upper parents are created with the lower directory's mode and owner, not opaque."""
    ov = Overlay.from_trees({"srv": Dir(mode=0o700, uid=33, gid=33), "srv/www/index.html": "hi"})
    ov, eff = ov.chmod("/srv/www/index.html", 0o600)
    assert eff[0] == ParentCopyUp("/srv", 0)
    assert ov.upper.get("/srv") == Dir(mode=0o700, uid=33, gid=33)
    assert ov.served_by("/srv") == ("upper", 0)


@pytest.mark.parametrize("op, args, reason", [
    ("chmod", (0o600,), "chmod"),
    ("chown", (1000, 1000), "chown"),
    ("utimes", (42,), "utimes"),
    ("truncate", (2,), "truncate"),
    ("setxattr", ("user.k", b"v"), "setxattr"),
])
def test_metadata_changes_copy_up(op: str, args: tuple[Any, ...], reason: str) -> None:
    """chmod, chown, utimes, truncate and setxattr each copy a lower file up first."""
    ov, eff = getattr(image(), op)("/etc/passwd", *args)
    assert [e.reason for e in eff if isinstance(e, CopyUp)] == [reason]
    assert ov.served_by("/etc/passwd") == ("upper",)


def test_removing_an_absent_xattr_does_not_copy_up() -> None:
    """removexattr of a missing attribute is ENODATA and copies nothing up."""
    assert errno_of(image().removexattr, "/etc/passwd", "user.k") == errno.ENODATA


def test_copy_up_of_a_directory_copies_only_the_directory() -> None:
    """chmod on a lower directory copies up the directory alone; it stays merged."""
    ov, _ = image().chmod("/usr/lib", 0o700)
    assert set(ov.upper) == {"/", "/usr", "/usr/lib"}
    assert ov.served_by("/usr/lib") == ("upper", 0, 1)
    assert ov.readdir("/usr/lib") == ["a.so"]


def test_copy_up_breaks_hard_links() -> None:
    """With index=off, a copied-up file no longer shares changes with its lower hard links."""
    shared = File(b"same", inode=7)
    ov = Overlay((Layer({"/": Dir(), "/a": shared, "/b": shared}),))
    ov, eff = ov.write("/a", b"changed")
    assert HardLinkBroken("/a", ("/b",)) in eff
    assert ov.read("/a") == b"changed" and ov.read("/b") == b"same"


def test_link_copies_up_the_source_and_shares_the_inode() -> None:
    """link() copies the source up; writes through either name show under both."""
    ov, eff = image().link("/etc/hosts", "/etc/hosts2")
    assert any(isinstance(e, CopyUp) and e.reason == "link" for e in eff)
    ov, _ = ov.write("/etc/hosts2", b"new", append=False)
    assert ov.read("/etc/hosts") == b"new"


def test_symlink_copies_up_only_parents() -> None:
    """Creating a symlink copies up its parent directories, never its target."""
    ov, eff = image().symlink("/etc/passwd", "/etc/pw")
    assert kinds(eff) == ["ParentCopyUp", "Create"]
    assert ov.served_by("/etc/passwd") == (1,)


def test_lower_file_written_through_symlink_copies_up_the_target() -> None:
    """Writing through a symlink copies up the file the link points to."""
    ov, _ = image().write("/bin/sh", b"new", append=True)
    assert ov.served_by("/bin/busybox") == ("upper",)
    assert ov.read("/bin/busybox") == b"\x7fELFnew"


# --------------------------------------------------------------------------- namespace operations


def test_unlink_of_a_lower_file_leaves_a_whiteout() -> None:
    """Removing a name a lower layer has puts a whiteout (char device 0/0) in the upper layer."""
    ov, eff = image().unlink("/etc/old.conf")
    assert Whiteout("/etc/old.conf") in eff
    assert isinstance(ov.upper.get("/etc/old.conf"), WhiteoutNode)
    assert "old.conf" not in ov.readdir("/etc")


def test_unlink_of_an_upper_only_file_leaves_nothing() -> None:
    """Removing a file that only the upper layer has leaves no whiteout."""
    ov, _ = image().create("/tmp/x", b"x")
    ov, eff = ov.unlink("/tmp/x")
    assert kinds(eff) == ["Remove"]
    assert ov.upper.get("/tmp/x") is None


def test_unlink_of_a_copied_up_file_leaves_a_whiteout() -> None:
    """A copied-up file still has a lower original, so removing it needs a whiteout."""
    ov, _ = image().chmod("/etc/passwd", 0o600)
    ov, eff = ov.unlink("/etc/passwd")
    assert kinds(eff) == ["Remove", "Whiteout"]


def test_unlink_of_a_directory_is_eisdir() -> None:
    """unlink on a directory gives EISDIR."""
    assert errno_of(image().unlink, "/etc") == errno.EISDIR


def test_rmdir_needs_the_merged_directory_empty() -> None:
    """rmdir of a directory with entries in any layer is ENOTEMPTY."""
    assert errno_of(image().rmdir, "/usr/lib") == errno.ENOTEMPTY


def test_rmdir_of_emptied_merged_directory_leaves_one_whiteout() -> None:
    """Once every name is whited out the merged dir is empty; rmdir replaces it by a whiteout."""
    ov, _ = image().unlink("/usr/lib/a.so")
    ov, eff = ov.rmdir("/usr/lib")
    assert kinds(eff) == ["Remove", "Whiteout"]
    assert ov.upper.get("/usr/lib") == WHITEOUT
    assert not any(p.startswith("/usr/lib/") for p in ov.upper)


def test_rmdir_of_a_file_is_enotdir() -> None:
    """rmdir on a non-directory gives ENOTDIR."""
    assert errno_of(image().rmdir, "/etc/passwd") == errno.ENOTDIR


def test_name_is_gone_until_recreated() -> None:
    """After unlink the name is ENOENT; creating it again replaces the whiteout."""
    ov, _ = image().unlink("/etc/hosts")
    assert errno_of(ov.read, "/etc/hosts") == errno.ENOENT
    ov, eff = ov.create("/etc/hosts", b"new")
    assert Create("/etc/hosts", "file", over_whiteout=True) in eff
    assert ov.read("/etc/hosts") == b"new"


def test_mkdir_over_a_whiteout_is_opaque() -> None:
    """A directory created where a lower directory was removed is opaque: the old contents stay hidden."""
    ov, _ = image().unlink("/app/server.js")
    ov, _ = ov.rmdir("/app")
    ov, eff = ov.mkdir("/app")
    assert Opaque("/app") in eff
    assert ov.readdir("/app") == []


def test_mkdir_in_a_merged_parent_is_not_opaque_by_default() -> None:
    """Without redirect_dir, a fresh directory is a plain upper directory."""
    ov, eff = image().mkdir("/newdir")
    assert kinds(eff) == ["Create"]
    assert ov.upper.get("/newdir") == Dir(mtime=1)


def test_mkdir_in_a_merged_parent_is_opaque_with_redirect_dir() -> None:
    """With redirect_dir on, the kernel marks a new directory in a merged parent opaque."""
    ov, eff = Overlay(image().lowers, redirect_dir=True).mkdir("/newdir")
    assert Opaque("/newdir") in eff


def test_create_existing_is_eexist() -> None:
    """Creating a name that exists in any layer is EEXIST."""
    assert errno_of(image().mkdir, "/etc/passwd") == errno.EEXIST
    assert errno_of(image().create, "/tmp") == errno.EEXIST


def test_create_in_missing_directory_is_enoent() -> None:
    """Creating inside a directory that does not exist is ENOENT."""
    assert errno_of(image().create, "/nope/x") == errno.ENOENT


def test_rename_of_lower_file_copies_up_and_whiteouts_the_old_name() -> None:
    """Renaming a lower non-directory copies it up, moves it, and whites out the old name."""
    ov, eff = image().rename("/etc/hosts", "/etc/hosts.bak")
    assert kinds(eff) == ["ParentCopyUp", "CopyUp", "Rename", "Whiteout"]
    assert ov.read("/etc/hosts.bak") == b"127.0.0.1 localhost\n"
    assert not ov.exists("/etc/hosts")


def test_rename_of_lower_directory_is_exdev_by_default() -> None:
    """Renaming a lower or merged directory fails with EXDEV when redirect_dir is off."""
    assert errno_of(image().rename, "/app", "/app2") == errno.EXDEV
    assert errno_of(image().rename, "/etc", "/etc2") == errno.EXDEV


def test_rename_of_lower_directory_with_redirect_dir() -> None:
    """With redirect_dir on, only the directory is copied up and remembers its lower path."""
    ov = Overlay(image().lowers, redirect_dir=True)
    ov, eff = ov.rename("/app", "/srv")
    assert Redirect("/srv", "/app") in eff and Whiteout("/app") in eff
    assert ov.read("/srv/server.js") == b"listen(3000)\n"
    assert ov.upper.get("/srv/server.js") is None
    assert not ov.exists("/app")


def test_rename_of_upper_directory_into_merged_parent_is_opaque() -> None:
    """A directory that exists only in the upper layer moves normally and becomes opaque in a merged parent."""
    ov, _ = image().mkdir("/new")
    ov, eff = ov.rename("/new", "/new2")
    assert kinds(eff) == ["Rename", "Opaque"]


def test_rename_errors_follow_the_syscall() -> None:
    """rename gives ENOTDIR/EISDIR for type clashes, EINVAL into itself, ENOTEMPTY onto a full dir."""
    ov, _ = image().mkdir("/d")
    ov, _ = ov.mkdir("/d/e")
    assert errno_of(ov.rename, "/d", "/etc/passwd") == errno.ENOTDIR
    assert errno_of(ov.rename, "/etc/passwd", "/d") == errno.EISDIR
    assert errno_of(ov.rename, "/d", "/d/e/f") == errno.EINVAL
    assert errno_of(ov.rename, "/d", "/etc") == errno.ENOTEMPTY
    assert errno_of(ov.rename, "/missing", "/x") == errno.ENOENT


def test_failed_operation_changes_nothing() -> None:
    """A failing operation raises and the overlay it was called on stays as it was."""
    ov = image()
    with pytest.raises(OSError):
        ov.rename("/etc", "/etc2")
    assert ov == image()


# --------------------------------------------------------------------------- diff, description


def test_diff_reports_like_docker() -> None:
    """docker diff: C for a changed path and its parent dirs, A for new, D (last in its dir) for removed."""
    ov, _ = image().write("/etc/hosts", b"changed")
    ov, _ = ov.create("/tmp/new", b"n")
    ov, _ = ov.unlink("/app/server.js")
    ov, _ = ov.rmdir("/app")
    assert ov.diff() == [
        ("C", "/etc"),
        ("C", "/etc/hosts"),
        ("C", "/tmp"),
        ("A", "/tmp/new"),
        ("D", "/app"),
    ]


def test_diff_lists_children_of_new_directory_as_added() -> None:
    """Inside an added directory every path is A and the directory is not also C."""
    ov, _ = image().mkdir("/data")
    ov, _ = ov.create("/data/x", b"x")
    assert ov.diff() == [("A", "/data"), ("A", "/data/x")]


def test_diff_ignores_copy_up_without_change() -> None:
    """A copy-up that keeps size, mode and mtime is not a change in the tree comparison."""
    ov, _ = image().open_write("/etc/hosts")
    assert ov.diff() == []


def test_diff_of_directory_mode_change() -> None:
    """A directory whose mode changed is C."""
    ov, _ = image().chmod("/tmp", 0o1777)
    assert ov.diff() == [("C", "/tmp")]


def test_describe_counts_each_layer() -> None:
    """describe() counts files, dirs, symlinks, whiteouts, opaque dirs and bytes per layer, upper first."""
    ov, _ = image().unlink("/etc/hosts")
    upper, top, base = ov.describe()
    assert (upper.layer, upper.whiteouts, upper.dirs) == ("upper", 1, 1)
    assert (top.layer, top.files, top.whiteouts) == (0, 2, 1)
    assert (base.symlinks, base.bytes) == (1, 11 + 20 + 4 + 4 + 1 + 1)


def test_effects_explain_themselves() -> None:
    """Every effect has a one-sentence explanation and names its kernel mechanism."""
    ov, eff1 = image().rename("/etc/hosts", "/etc/h2")
    _, eff2 = Overlay(ov.lowers, ov.upper, redirect_dir=True).rename("/app", "/srv")
    _, eff3 = ov.unlink("/etc/h2")
    for e in eff1 + eff2 + eff3:
        text = e.explain()
        assert text.endswith(".") and "\n" not in text and e.mechanism


def test_from_tree_rejects_a_file_used_as_directory() -> None:
    """from_tree refuses a path below a file, with a clear message."""
    with pytest.raises(InvalidArgument):
        from_tree({"a": "file", "a/b": "x"})


def test_overlay_needs_a_lower_layer() -> None:
    """An overlay without lower layers is refused."""
    with pytest.raises(InvalidArgument):
        Overlay(())


# --------------------------------------------------------------------------- properties

NAMES = ("a", "b", "c")
PATHS = tuple(f"/{x}" for x in NAMES) + tuple(f"/{x}/{y}" for x in NAMES for y in NAMES)

node = st.one_of(
    st.binary(max_size=4).map(File),
    st.just(Dir()),
    st.just(Dir(opaque=True)),
    st.just(WHITEOUT),
    st.sampled_from(PATHS).map(Symlink),
)


@st.composite
def layers(draw: Any) -> Layer:
    entries: dict[str, Any] = {"/": Dir()}
    for path, value in draw(st.dictionaries(st.sampled_from(PATHS), node, max_size=8)).items():
        parent = path.rsplit("/", 1)[0] or "/"
        if parent != "/" and not isinstance(entries.get(parent, Dir()), Dir):
            continue
        if parent != "/":
            entries.setdefault(parent, Dir())
        if path in entries and isinstance(entries[path], Dir) and not isinstance(value, Dir):
            continue
        entries[path] = value
    return Layer(entries)


p = st.sampled_from(PATHS)
ops = st.lists(st.one_of(
    st.tuples(st.just("write"), p, st.binary(max_size=3), st.booleans()),
    st.tuples(st.just("open_write"), p, st.booleans()),
    st.tuples(st.just("create"), p),
    st.tuples(st.just("mkdir"), p),
    st.tuples(st.just("unlink"), p),
    st.tuples(st.just("rmdir"), p),
    st.tuples(st.just("rename"), p, p),
    st.tuples(st.just("chmod"), p, st.just(0o600)),
    st.tuples(st.just("link"), p, p),
    st.tuples(st.just("symlink"), p, p),
), max_size=15)


def run(ov: Overlay, steps: list[tuple[Any, ...]]) -> tuple[Overlay, list[tuple[Overlay, Overlay, tuple[Any, ...]]]]:
    history = []
    for name, *args in steps:
        try:
            new, _ = getattr(ov, name)(*args)
        except OSError:
            continue
        history.append((ov, new, (name, *args)))
        ov = new
    return ov, history


@settings(max_examples=200, deadline=None)
@given(lowers=st.lists(layers(), min_size=1, max_size=3), steps=ops)
def test_lower_layers_never_change(lowers: list[Layer], steps: list[tuple[Any, ...]]) -> None:
    """No sequence of operations changes a lower layer."""
    start = Overlay(tuple(lowers))
    end, _ = run(start, steps)
    assert end.lowers == start.lowers


@settings(max_examples=200, deadline=None)
@given(lowers=st.lists(layers(), min_size=1, max_size=3), steps=ops)
def test_readdir_has_no_duplicates_and_no_whiteouts(lowers: list[Layer], steps: list[tuple[Any, ...]]) -> None:
    """readdir of a merged directory never lists a name twice nor a name that cannot be looked up."""
    end, _ = run(Overlay(tuple(lowers)), steps)
    for path, n in end.walk().items():
        if isinstance(n, Dir):
            names = end.readdir(path)
            assert len(names) == len(set(names))
            if len(end.served_by(path)) > 1:
                base = path.rstrip("/")
                assert all(end.exists(f"{base}/{name}") for name in names)


@settings(max_examples=200, deadline=None)
@given(lowers=st.lists(layers(), min_size=1, max_size=3), steps=ops)
def test_unlinked_name_is_enoent_until_recreated(lowers: list[Layer], steps: list[tuple[Any, ...]]) -> None:
    """After a successful unlink or rmdir the name does not exist until something creates it again."""
    _, history = run(Overlay(tuple(lowers)), steps)
    gone: set[str] = set()
    for _, after, (name, *args) in history:
        if name in ("unlink", "rmdir"):
            gone.add(args[0])
        for g in list(gone):
            if after.exists(g):
                assert name in ("write", "create", "mkdir", "rename", "link", "symlink")
                gone.discard(g)


COPY_UPS = (
    ("chmod", lambda ov, path: ov.chmod(path, 0o600), lambda path: path),
    ("open_write", lambda ov, path: ov.open_write(path), lambda path: path),
    ("link", lambda ov, path: ov.link(path, "/fresh"), lambda path: "/fresh"),
    ("rename", lambda ov, path: ov.rename(path, "/fresh"), lambda path: "/fresh"),
)


@settings(max_examples=200, deadline=None)
@given(lowers=st.lists(layers(), min_size=1, max_size=3), how=st.sampled_from(COPY_UPS))
def test_copy_up_preserves_content(lowers: list[Layer], how: Any) -> None:
    """Every lower file copied up (by chmod, open, link or rename) has the same bytes in the upper layer."""
    ov = Overlay(tuple(lowers))
    _, act, where = how
    for path, n in ov.walk().items():
        if isinstance(n, File) and ov.served_by(path) != ("upper",):
            after, eff = act(ov, path)
            assert any(isinstance(e, CopyUp) for e in eff)
            copied = after.upper.get(where(path))
            assert isinstance(copied, File) and copied.data == n.data and copied.uid == n.uid


# --------------------------------------------------------------------------- contents (what the layer picture reads)


def test_contents_pairs_each_upper_entry_with_the_image_layer_below_it() -> None:
    """Each upper entry carries the layer (1 = bottom) and bytes the image holds at its path; a whiteout and a
    new file carry none; the serving layer is "upper", a layer number, "hidden" or "missing"."""
    ov, _ = image().write("/app/server.js", b"// more\n", append=True)
    ov, _ = ov.unlink("/etc/passwd")
    ov, _ = ov.create("/tmp/new.txt", b"hello")
    got = {e.path: (e.kind, e.size, e.lower_layer, e.lower_size) for e in ov.contents().entries}
    assert got == {
        "/app": ("dir", 0, 2, 0),
        "/app/server.js": ("file", len("listen(3000)\n// more\n"), 2, len("listen(3000)\n")),
        "/etc": ("dir", 0, 2, 0),
        "/etc/passwd": ("whiteout", 0, None, 0),
        "/tmp": ("dir", 0, 1, 0),
        "/tmp/new.txt": ("file", 5, None, 0),
    }
    assert ov.contents().serves is None
    assert [ov.contents(p).serves for p in ("/app/server.js", "/etc/hosts", "/etc/passwd", "/nowhere")] == [
        "upper", 1, "hidden", "missing"]
