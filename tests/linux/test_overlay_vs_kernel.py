"""The overlay model agrees with the real kernel's overlayfs.

Each example builds real lower directories from a random model state (files,
directories, symlinks, hard links, whiteouts as character devices 0/0, opaque
directories via ``trusted.overlay.opaque``), mounts a real overlay over them,
runs the same random operations on the mount and on the model, and compares
after every step: the errno of each failing operation, the merged view (names,
types, contents, modes, owners, user xattrs, hard links) and the upper
directory (what was copied up, where whiteouts and opaque markers are).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import pickle
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labkit.model.overlay import WHITEOUT, Dir, File, Layer, Node, Overlay, Symlink, WhiteoutNode

pytestmark = pytest.mark.root

NAMES = ("a", "b", "c")
POOL = tuple(
    "/" + "/".join(parts)
    for depth in (1, 2, 3)
    for parts in __import__("itertools").product(NAMES, repeat=depth)
)
CONTENTS = (b"", b"one", b"two\n", b"x" * 100)
FILE_MODES = (0o644, 0o600, 0o755)
DIR_MODES = (0o755, 0o700)
KINDS = ("file", "file", "dir", "dir", "symlink", "whiteout", "opaque", "hardlink")

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def _mount_overlay(lowers: list[str], upper: str, work: str, target: str, redirect_dir: bool) -> None:
    """mount(2) an overlay the way the linux backend does (index=off, like Docker)."""
    opts = f"index=off,redirect_dir={'on' if redirect_dir else 'off'},lowerdir={':'.join(lowers)}," \
           f"upperdir={upper},workdir={work}"
    if _libc.mount(b"overlay", target.encode(), b"overlay", 0, opts.encode()) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"mount overlay: {os.strerror(code)}", target)


def _umount(target: str) -> None:
    if _libc.umount2(target.encode(), 0) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"umount: {os.strerror(code)}", target)


# --------------------------------------------------------------------------- random model states


def _rel_target(link: str, target: str) -> str:
    """A symlink target: relative, absolute (inside the overlay), a loop or dangling."""
    if target == link:
        return link.rsplit("/", 1)[1]  # a loop: ELOOP
    if target.startswith("/b/b"):
        return target  # absolute: resolved from the overlay's root, as in a container
    return os.path.relpath(target, os.path.dirname(link) or "/")


def build_layer(items: list[tuple[str, str, bytes, int, str]], salt: int) -> Layer:
    """A consistent layer from random (path, kind, content, mode, other-path) items."""
    entries: dict[str, Node] = {"/": Dir()}
    for n, (path, kind, content, mode, other) in enumerate(items):
        ancestors = ["/" + "/".join(path.strip("/").split("/")[: i + 1]) for i in range(path.count("/") - 1)]
        if any(a in entries and not isinstance(entries[a], Dir) for a in ancestors) or path in entries:
            continue
        for a in ancestors:
            entries.setdefault(a, Dir())
        if kind == "file":
            entries[path] = File(content, mode, mtime=1000)
        elif kind == "dir":
            entries[path] = Dir(DIR_MODES[mode % 2])
        elif kind == "opaque":
            entries[path] = Dir(opaque=True)
        elif kind == "whiteout":
            entries[path] = WHITEOUT
        elif kind == "symlink":
            entries[path] = Symlink(_rel_target(path, other) if other != "/c/c/c" else "nowhere")
        elif kind == "hardlink":
            source = entries.get(other)
            if isinstance(source, File) and other != path:
                if source.inode is None:
                    source = replace(source, inode=salt * 100 + n)
                    entries[other] = source
                entries[path] = source
    return Layer(entries)


item = st.tuples(
    st.sampled_from(POOL), st.sampled_from(KINDS), st.sampled_from(CONTENTS),
    st.sampled_from(FILE_MODES), st.sampled_from(POOL),
)


@st.composite
def lower_stacks(draw: Any) -> tuple[Layer, ...]:
    """One to three random lower layers."""
    count = draw(st.integers(1, 3))
    return tuple(build_layer(draw(st.lists(item, max_size=14)), salt) for salt in range(count))


path = st.sampled_from(POOL)
operation = st.one_of(
    st.tuples(st.just("write"), path, st.sampled_from(CONTENTS[1:]), st.booleans()),
    st.tuples(st.just("open_write"), path, st.booleans()),
    st.tuples(st.just("create"), path, st.sampled_from(CONTENTS)),
    st.tuples(st.just("mkdir"), path),
    st.tuples(st.just("unlink"), path),
    st.tuples(st.just("rmdir"), path),
    st.tuples(st.just("rename"), path, path),
    st.tuples(st.just("chmod"), path, st.sampled_from((0o600, 0o751))),
    st.tuples(st.just("chown"), path, st.sampled_from((0, 1000))),
    st.tuples(st.just("truncate"), path, st.sampled_from((0, 2, 7))),
    st.tuples(st.just("setxattr"), path, st.sampled_from((b"1", b"2"))),
    st.tuples(st.just("removexattr"), path),
    st.tuples(st.just("link"), path, path),
    st.tuples(st.just("symlink"), path, path),
    st.tuples(st.just("read"), path),
    st.tuples(st.just("readdir"), path),
)


# --------------------------------------------------------------------------- applying operations


def apply_model(ov: Overlay, op: tuple[Any, ...]) -> tuple[Overlay, int | None, Any]:
    """Run one operation on the model: (new overlay, errno or None, result)."""
    name, *args = op
    try:
        if name == "read":
            return ov, None, ov.read(args[0])
        if name == "readdir":
            return ov, None, sorted(ov.readdir(args[0]))
        if name == "write":
            new, _ = ov.write(args[0], args[1], append=args[2])
        elif name == "open_write":
            new, _ = ov.open_write(args[0], truncate=args[1])
        elif name == "create":
            new, _ = ov.create(args[0], args[1])
        elif name == "chown":
            new, _ = ov.chown(args[0], args[1], args[1])
        elif name == "setxattr":
            new, _ = ov.setxattr(args[0], "user.k", args[1])
        elif name == "removexattr":
            new, _ = ov.removexattr(args[0], "user.k")
        elif name == "symlink":
            new, _ = ov.symlink(_rel_target(args[1], args[0]), args[1])
        else:
            new, _ = getattr(ov, name)(*args)
        return new, None, None
    except OSError as e:
        return ov, e.errno, None


def apply_real(merged: str, op: tuple[Any, ...]) -> tuple[int | None, Any]:
    """Run one operation on the real overlay, chrooted into it as a container is: (errno or None, result).

    The chroot makes ``..`` stop at the overlay's root and absolute symlink
    targets start there, exactly as for a process inside a container.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child never returns into pytest
        status = 0
        try:
            os.close(read_end)
            os.chroot(merged)
            os.chdir("/")
            with os.fdopen(write_end, "wb") as out:
                pickle.dump(_apply_in_root(op), out)
        except BaseException:
            status = 1
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as inp:
        data = inp.read()
    _, status = os.waitpid(pid, 0)
    assert status == 0 and data, f"the chrooted child failed on {op!r}"
    result: tuple[int | None, Any] = pickle.loads(data)
    return result


def _apply_in_root(op: tuple[Any, ...]) -> tuple[int | None, Any]:
    name, *args = op
    root = ""
    p = args[0]
    try:
        if name == "read":
            fd = os.open(p, os.O_RDONLY)
            try:
                return None, os.read(fd, 1 << 20)
            finally:
                os.close(fd)
        if name == "readdir":
            return None, sorted(os.listdir(p))
        if name in ("write", "open_write", "create"):
            flags = os.O_WRONLY
            if name == "write":
                flags |= os.O_CREAT | (os.O_APPEND if args[2] else os.O_TRUNC)
            elif name == "open_write":
                flags |= os.O_TRUNC if args[1] else 0
            else:
                flags |= os.O_CREAT | os.O_EXCL
            fd = os.open(p, flags, 0o644)
            try:
                if name != "open_write" and args[1]:
                    os.write(fd, args[1])
            finally:
                os.close(fd)
        elif name == "mkdir":
            os.mkdir(p, 0o755)
        elif name == "unlink":
            os.unlink(p)
        elif name == "rmdir":
            os.rmdir(p)
        elif name == "rename":
            os.rename(p, root + args[1])
        elif name == "chmod":
            os.chmod(p, args[1])
        elif name == "chown":
            os.chown(p, args[1], args[1])
        elif name == "truncate":
            os.truncate(p, args[1])
        elif name == "setxattr":
            os.setxattr(p, "user.k", args[1])
        elif name == "removexattr":
            os.removexattr(p, "user.k")
        elif name == "link":
            os.link(p, root + args[1], follow_symlinks=False)
        elif name == "symlink":
            os.symlink(_rel_target(args[1], args[0]), root + args[1])
        else:
            raise AssertionError(name)
        return None, None
    except OSError as e:
        return e.errno, None


# --------------------------------------------------------------------------- reading trees


def write_layer(layer: Layer, root: str) -> None:
    """Materialize a model layer as a real directory, as an image layer is extracted."""
    first_of_inode: dict[int, str] = {}
    for path in sorted(layer.entries, key=lambda p: (p.count("/"), p)):
        node = layer.entries[path]
        real = root + path if path != "/" else root
        if isinstance(node, Dir):
            if path != "/":
                os.mkdir(real)
            os.chmod(real, node.mode)
            if node.opaque:
                os.setxattr(real, "trusted.overlay.opaque", b"y")
        elif isinstance(node, WhiteoutNode):
            os.mknod(real, stat.S_IFCHR | 0o000, os.makedev(0, 0))
        elif isinstance(node, Symlink):
            os.symlink(node.target, real)
        elif isinstance(node, File):
            if node.inode is not None and node.inode in first_of_inode:
                os.link(first_of_inode[node.inode], real)
                continue
            with open(real, "wb") as f:
                f.write(node.data)
            os.chmod(real, node.mode)
            os.utime(real, (node.mtime, node.mtime))
            if node.inode is not None:
                first_of_inode[node.inode] = real


def _user_xattrs(real: str) -> tuple[tuple[str, bytes], ...]:
    return tuple(sorted((k, os.getxattr(real, k, follow_symlinks=False))
                        for k in os.listxattr(real, follow_symlinks=False) if k.startswith("user.")))


def read_tree(root: str, overlay_markers: bool) -> dict[str, tuple[Any, ...]]:
    """``{path: comparable description}`` of a real tree (merged view or upper dir)."""
    out: dict[str, tuple[Any, ...]] = {}
    inodes: dict[int, list[str]] = {}

    def visit(path: str) -> None:
        real = root + path if path != "/" else root
        try:
            s = os.lstat(real)
        except FileNotFoundError:
            return  # a stray whiteout listed by an unmerged directory
        mode = stat.S_IMODE(s.st_mode)
        if stat.S_ISDIR(s.st_mode):
            opaque = redirect = False
            if overlay_markers:
                opaque = _getxattr(real, "trusted.overlay.opaque") == b"y"
                redirect = _getxattr(real, "trusted.overlay.redirect") is not None
            out[path] = ("dir", mode, s.st_uid, s.st_gid, opaque, redirect, _user_xattrs(real))
            for name in sorted(os.listdir(real)):
                visit(path.rstrip("/") + "/" + name)
        elif stat.S_ISCHR(s.st_mode) and s.st_rdev == 0:
            out[path] = ("whiteout",)
        elif stat.S_ISLNK(s.st_mode):
            out[path] = ("symlink", os.readlink(real))
        else:
            with open(real, "rb") as f:
                out[path] = ("file", f.read(), mode, s.st_uid, s.st_gid, _user_xattrs(real))
            if s.st_nlink > 1:
                inodes.setdefault(s.st_ino, []).append(path)

    visit("/")
    out["links"] = tuple(sorted(tuple(v) for v in inodes.values() if len(v) > 1))
    return out


def _getxattr(real: str, name: str) -> bytes | None:
    try:
        return os.getxattr(real, name, follow_symlinks=False)
    except OSError as e:
        if e.errno == errno.ENODATA:
            return None
        raise


def describe(entries: dict[str, Node], overlay_markers: bool) -> dict[str, tuple[Any, ...]]:
    """The same description, from model nodes."""
    out: dict[str, tuple[Any, ...]] = {}
    inodes: dict[int, list[str]] = {}
    for path, node in entries.items():
        if isinstance(node, Dir):
            opaque = node.opaque if overlay_markers else False
            redirect = node.redirect is not None if overlay_markers else False
            out[path] = ("dir", node.mode, node.uid, node.gid, opaque, redirect, node.xattrs)
        elif isinstance(node, WhiteoutNode):
            out[path] = ("whiteout",)
        elif isinstance(node, Symlink):
            out[path] = ("symlink", node.target)
        else:
            out[path] = ("file", node.data, node.mode, node.uid, node.gid, node.xattrs)
            if node.inode is not None:
                inodes.setdefault(node.inode, []).append(path)
    out["links"] = tuple(sorted(tuple(sorted(v)) for v in inodes.values() if len(v) > 1))
    return out


@contextmanager
def real_overlay(lowers: tuple[Layer, ...], redirect_dir: bool) -> Iterator[tuple[str, str, list[str]]]:
    """Real lower dirs + upper + work, mounted; unmounted and removed afterwards."""
    base = tempfile.mkdtemp(prefix="labkit-ovl-kernel-")
    mounted = False
    try:
        lower_dirs = []
        for i, layer in enumerate(lowers):
            d = os.path.join(base, f"l{i}")
            os.mkdir(d)
            write_layer(layer, d)
            lower_dirs.append(d)
        upper, work, merged = (os.path.join(base, n) for n in ("upper", "work", "merged"))
        for d in (upper, work, merged):
            os.mkdir(d, 0o755)
            os.chmod(d, 0o755)  # the upper root's metadata is what the merged root shows
        _mount_overlay(lower_dirs, upper, work, merged, redirect_dir)
        mounted = True
        yield merged, upper, lower_dirs
    finally:
        if mounted:
            _umount(merged)
        shutil.rmtree(base)


@contextmanager
def umask0() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def _check_same(ov: Overlay, merged: str, upper: str, step: str) -> None:
    real_merged = read_tree(merged, overlay_markers=False)
    model_merged = describe(ov.walk(), overlay_markers=False)
    assert real_merged == model_merged, f"merged view differs after {step}"
    real_upper = read_tree(upper, overlay_markers=True)
    model_upper = describe(dict(ov.upper.entries), overlay_markers=True)
    # The upper root's own metadata is the mount's business, not the model's.
    real_upper.pop("/"), model_upper.pop("/")
    assert real_upper == model_upper, f"upper dir differs after {step}"
    for path, node in ov.walk().items():
        if isinstance(node, Dir):
            assert sorted(os.listdir(merged + path if path != "/" else merged)) == sorted(ov.readdir(path)), \
                f"readdir {path} differs after {step}"


def _run(lowers: tuple[Layer, ...], ops: list[tuple[Any, ...]], redirect_dir: bool) -> None:
    ov = Overlay(lowers, redirect_dir=redirect_dir)
    with umask0(), real_overlay(lowers, redirect_dir) as (merged, upper, lower_dirs):
        _check_same(ov, merged, upper, "mount")
        for i, op in enumerate(ops):
            real_errno, real_result = apply_real(merged, op)
            ov, model_errno, model_result = apply_model(ov, op)
            step = f"step {i} {op!r}"
            assert model_errno == real_errno, (
                f"{step}: kernel errno {real_errno and errno.errorcode[real_errno]}, "
                f"model {model_errno and errno.errorcode[model_errno]}")
            assert model_result == real_result, f"{step}: result differs"
            _check_same(ov, merged, upper, step)
        for layer, d in zip(lowers, lower_dirs, strict=True):
            assert read_tree(d, True) == describe(dict(layer.entries), True), "a lower layer changed"


SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))


@SETTINGS
@given(lowers=lower_stacks(), ops=st.lists(operation, max_size=20))
def test_model_matches_kernel(lowers: tuple[Layer, ...], ops: list[tuple[Any, ...]]) -> None:
    """Random operations on a real overlay (redirect_dir=off) and on the model give the same errors and trees."""
    _run(lowers, ops, redirect_dir=False)


@SETTINGS
@given(lowers=lower_stacks(), ops=st.lists(operation, max_size=20))
def test_model_matches_kernel_redirect_dir(lowers: tuple[Layer, ...], ops: list[tuple[Any, ...]]) -> None:
    """With redirect_dir=on too, the model and a real overlay give the same errors and trees."""
    _run(lowers, ops, redirect_dir=True)
