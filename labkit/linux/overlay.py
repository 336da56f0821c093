"""The container's filesystem: image layers under a writable layer, by overlayfs.

A container's root is an overlay mount (Documentation/filesystems/overlayfs.rst)::

    lowerdir = <init layer>:<image layer N>:...:<image layer 1>   (leftmost is top)
    upperdir = overlay/<id>/diff      the container's writable layer
    workdir  = overlay/<id>/work      overlayfs's scratch space, same filesystem
    merged   = overlay/<id>/merged    what the container sees as /

The image layers are shared by every container of the image and never written:
the kernel copies a file up into ``diff`` on its first write and records a
delete as a whiteout (a 0/0 character device) there. The init layer holds empty
placeholders for ``/etc/hostname``, ``/etc/hosts`` and ``/etc/resolv.conf`` so
that the per-container files bind-mounted over them never show in ``diff``, and the
``/etc/mtab`` link to ``/proc/mounts`` (Docker does the same with its ``<id>-init`` layer).

:func:`changes` reads ``diff`` the way ``docker diff`` does; :func:`contents` reads it for the
layer picture (each entry, what the image layers hold at its path, who serves a path).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labkit import helpers
from labkit.images.oci import is_opaque, is_whiteout
from labkit.linux import syscalls
from labkit.model.overlay import LayerContents, Served, UpperEntry
from labkit.store import delete_tree

#: Files every container gets its own copy of, bind-mounted over the init layer's placeholders.
ETC_FILES = ("hostname", "hosts", "resolv.conf")

#: The longest options string mount(2) takes: one page, its last byte the terminating NUL.
MOUNT_DATA_MAX = os.sysconf("SC_PAGE_SIZE")


def in_kernel(filesystems: str = "/proc/filesystems") -> bool:
    """Whether the running kernel knows overlayfs now (built in, or its module loaded)."""
    try:
        with open(filesystems) as f:
            return any(line.split()[-1:] == ["overlay"] for line in f)
    except OSError:
        return False


def load(filesystems: str = "/proc/filesystems") -> bool:
    """Make sure the kernel knows overlayfs: as root, load its module if it is not loaded yet.

    Distribution kernels build overlayfs as a module (``CONFIG_OVERLAY_FS=m``), and on
    a machine where no container ever ran nothing has loaded it, so
    ``/proc/filesystems`` does not list it yet. The first overlay mount would load it
    (``get_fs_type()`` calls ``request_module("fs-overlay")``, fs/filesystems.c), and
    Docker's overlay2 driver runs ``modprobe overlay`` before it looks: so does labkit,
    as root. A user cannot load a module; a mount in their user namespace asks the
    kernel to, which the rootless probe (:func:`labkit.linux.namespaces.userns_problem`) does.

    Returns:
        Whether ``/proc/filesystems`` lists overlay afterwards.
    """
    if in_kernel(filesystems):
        return True
    modprobe = shutil.which("modprobe", path=helpers.SAFE_PATH)
    if os.geteuid() == 0 and modprobe:
        try:
            helpers.run([modprobe, "overlay"], capture_output=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return False
    return in_kernel(filesystems)


@dataclass(frozen=True)
class Layers:
    """Where one container's layers live on the host."""

    lowers: tuple[str, ...]  # top first, init layer included
    upper: str
    work: str
    merged: str

    def graph_driver_data(self) -> dict[str, str]:
        """``inspect``'s ``GraphDriver.Data``."""
        return {"LowerDir": ":".join(self.lowers), "MergedDir": self.merged, "UpperDir": self.upper, "WorkDir": self.work}


def layers_for(layer_root: Path, init_root: Path, image_lowers: list[str]) -> Layers:
    """The paths of a container's layers (nothing is created)."""
    layer, init = os.fspath(layer_root), os.fspath(init_root)  # plain strings: a verb asks for these often
    return Layers(lowers=(f"{init}/diff", *image_lowers), upper=f"{layer}/diff", work=f"{layer}/work",
                  merged=f"{layer}/merged")


#: Where a removed container's init layer waits for the next container (:func:`keep_init`), under the
#: state root's ``tmp``: this many slots, named ``spare-init-0``, ``spare-init-1``…
SPARE_INIT, SPARE_SLOTS = "spare-init-", 2
#: What an init layer without extra placeholders holds: its top directories, and what ``etc`` holds.
_INIT_TOP, _INIT_ETC = frozenset(("etc", "proc", "sys", "dev")), frozenset((*ETC_FILES, "mtab"))


def prepare(layers: Layers, init_root: Path, placeholders: tuple[str, ...] = (), spares: Path | None = None) -> None:
    """Create the writable layer's dirs and the init layer (idempotent).

    ``placeholders`` are extra files (paths inside the container) that something
    is bind-mounted over, such as ``/sbin/labkit-init``. Without any, and with
    ``spares`` (the state root's ``tmp``), the init layer of a removed container
    is taken if one waits there (:func:`keep_init`): one rename(2) instead of ten
    new inodes.
    """
    init = init_root / "diff"
    taken = False
    if spares is not None and not placeholders and not os.path.isdir(init):
        for slot in range(SPARE_SLOTS):
            try:
                os.rename(spares / f"{SPARE_INIT}{slot}", init_root)
            except OSError:  # ENOENT: no spare in this slot (another create may have taken it just now)
                continue
            taken = True
            break
    # Parents first, each once: a dozen mkdir(2)s are most of what ``create`` costs. The layer's own
    # directory and the init layer's are the owner's alone (labkit.store.PRIVATE_DIR), and so is the
    # work directory; the upper directory keeps the usual 0755, since it gives the container's "/"
    # its mode (the topmost layer's root is the merged root, see the overlayfs docs).
    dirs: list[tuple[str | Path, int]] = [(os.path.dirname(layers.upper), 0o700), (layers.upper, 0o755),
                                         (layers.work, 0o700), (layers.merged, 0o755)]
    if not taken:
        dirs += [(init_root, 0o700), (init, 0o755), (init / "etc", 0o755), (init / "proc", 0o755),
                 (init / "sys", 0o755), (init / "dev", 0o755)]
    for d, mode in dirs:
        try:
            os.mkdir(d, mode)
        except FileExistsError:
            pass
    if not taken:
        for name in ETC_FILES:
            os.close(os.open(init / "etc" / name, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))
        # /etc/mtab names the mounts as the kernel lists them, as Docker's init layer makes it (proc(5)).
        with contextlib.suppress(FileExistsError):
            os.symlink("/proc/mounts", init / "etc" / "mtab")
    for path in placeholders:
        target = init / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.touch()


def mount(layers: Layers, lowerdir_plus: bool | None = None) -> bool | None:
    """Mount the overlay at ``merged`` (mount(2) with fstype ``overlay``).

    ``index=off`` as Docker does: hard links are broken by copy-up rather than
    tracked in an index directory. ``redirect_dir=off`` and ``metacopy=off``
    pin the kernel's build-time defaults, so renaming an image directory fails
    with EXDEV and chmod copies data too on every host, as the lessons (and
    :mod:`labkit.model.overlay`) say, and a writable layer can become an image layer as it is.

    Args:
        layers: The container's layers.
        lowerdir_plus: Whether this kernel takes lower layers one by one (see :func:`mount_at`);
            None: not known yet.

    Returns:
        What is known of that afterwards, for the caller to keep (:attr:`labkit.linux.base.LinuxBase.lowerdir_plus`).
    """
    if syscalls.is_mountpoint(layers.merged):
        return lowerdir_plus
    return mount_at(layers.merged, mount_options(layers), lowerdir_plus)


def mount_at(target: str, options: str, lowerdir_plus: bool | None = None) -> bool | None:
    """Mount an overlay with ``options`` (:func:`mount_options`) at ``target``, however deep its stack.

    mount(2) reads at most a page of options (copy_mount_options(), fs/namespace.c): about 40
    layers of labkit's 100-character paths. Options that fit are mounted so, as always. A deeper
    stack is mounted in one of two ways that both reach as deep as overlayfs stacks
    (:data:`labkit.model.overlay.MAX_STACK`):

    * since Linux 6.8 overlayfs takes lower layers one by one through the new mount API
      ("lowerdir+", Documentation/filesystems/overlayfs.rst; :func:`option_parts`);
    * an older kernel refuses that key (EINVAL: an unknown parameter, or, before 6.5 where
      overlayfs still parses one legacy options string, the string passing a page), and gets
      each lower layer named by a descriptor of it instead (:func:`mount_by_descriptors`).

    pid1.c does the same for rootless containers.

    Args:
        target: Where to mount it.
        options: The overlay's options, its lower layers as absolute paths.
        lowerdir_plus: Whether this kernel takes "lowerdir+": True, False, or None if not known
            yet (then it is tried, and an EINVAL makes it False).

    Returns:
        What is known of "lowerdir+" afterwards (unchanged where the options fit a page).
    """
    if len(options.encode()) < MOUNT_DATA_MAX:
        syscalls.mount("overlay", target, "overlay", 0, options)
        return lowerdir_plus
    if lowerdir_plus is not False:
        try:
            syscalls.mount_by_parts("overlay", target, [("source", "overlay"), *option_parts(options)])
            return True
        except OSError as err:
            if lowerdir_plus or err.errno != errno.EINVAL:
                raise
    mount_by_descriptors(target, options)
    return False


def option_parts(options: str) -> list[tuple[str, str | None]]:
    """``mount_options`` as fsconfig(2) keys and values, each lower layer on its own as ``lowerdir+``."""
    parts: list[tuple[str, str | None]] = []
    for option in options.split(","):
        key, eq, value = option.partition("=")
        if key == "lowerdir":
            parts += [("lowerdir+", lower) for lower in value.split(":")]
        else:
            parts.append((key, value if eq else None))
    return parts


#: Where a descriptor's number names the file it is open on (proc(5), /proc/[pid]/fd/): the working
#: directory in which :func:`mount_by_descriptors` gives overlayfs the lower layers.
FD_DIR = "/proc/self/fd"
#: How long the mount of :func:`mount_by_descriptors` may take, in seconds (a mount does not wait on anyone).
MOUNT_DEADLINE = 60.0


def short_options(options: str, fds: Sequence[int]) -> str:
    """``options`` with its lower layers replaced by the numbers of descriptors open on them, in order:
    ``lowerdir=/a/diff:/b/diff,upperdir=…`` becomes ``lowerdir=7:8,upperdir=…``."""
    out = []
    for option in options.split(","):
        key, _, _ = option.partition("=")
        out.append(f"lowerdir={':'.join(map(str, fds))}" if key == "lowerdir" else option)
    return ",".join(out)


def mount_by_descriptors(target: str, options: str) -> None:
    """mount(2) an overlay whose lower layers are named by descriptors, for a kernel that takes no "lowerdir+".

    overlayfs resolves a relative ``lowerdir`` from the mounting process's working directory
    (kern_path(), as Docker's overlay2 driver uses after a chdir into its short ``l/`` links).
    Here each lower layer is opened (O_PATH: no read, no permission beyond the search its path
    needs) and named by its descriptor's number, read in ``/proc/self/fd``, where that number is a
    link to the directory (proc(5)). A number and a colon a layer: all 500 lower layers overlayfs
    stacks fit in the page mount(2) reads. The mount is done by a thread with a working directory
    of its own (unshare(2) ``CLONE_FS``), so the process's other threads never see theirs move;
    the descriptors are closed once the kernel holds the layers.

    Raises:
        OSError: As mount(2) or open(2) raise it; E2BIG if even the short form passes a page
            (upper and work directories of paths longer than a thousand characters).
    """
    lowers = next(o.partition("=")[2] for o in options.split(",") if o.startswith("lowerdir=")).split(":")
    fds: list[int] = []
    try:
        for lower in lowers:
            fds.append(os.open(lower, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC))
        short = short_options(options, fds)
        if len(short.encode()) >= MOUNT_DATA_MAX:
            raise OSError(errno.E2BIG, f"the overlay's options take {len(short.encode())} bytes even with its "
                          f"{len(lowers)} lower layers named by descriptors; mount(2) reads {MOUNT_DATA_MAX - 1}", target)
        failed: list[OSError] = []

        def in_fd_dir() -> None:
            try:
                syscalls.unshare(syscalls.CLONE_FS)  # this thread's working directory is its own from here on
                os.chdir(FD_DIR)
                syscalls.mount("overlay", target, "overlay", 0, short)
            except OSError as err:
                failed.append(err)

        thread = threading.Thread(target=in_fd_dir, name="labkit-overlay-mount", daemon=True)
        thread.start()
        thread.join(MOUNT_DEADLINE)
        if thread.is_alive():
            raise OSError(errno.ETIMEDOUT, f"mount(overlay, {target}) did not return within {MOUNT_DEADLINE:.0f} s",
                          target)
        if failed:
            raise failed[0]
    finally:
        for fd in fds:
            os.close(fd)


def mount_options(layers: Layers, userxattr: bool = False) -> str:
    """The overlay's mount options (see :func:`mount`).

    Args:
        layers: The container's layers.
        userxattr: Rootless: keep overlayfs's own markers (opaque directories,
            redirects) in ``user.overlay.*`` xattrs, since a user namespace may
            not write ``trusted.*`` ones (overlayfs.rst, "Non-standard behavior").
            It also rules out redirects and metacopy; the kernel then refuses
            an explicit ``redirect_dir=off`` as conflicting, so it is left out.
    """
    opts = f"lowerdir={':'.join(layers.lowers)},upperdir={layers.upper},workdir={layers.work},index=off"
    return f"{opts},metacopy=off,userxattr" if userxattr else f"{opts},redirect_dir=off,metacopy=off"


def umount(layers: Layers) -> None:
    """Unmount ``merged`` if mounted (MNT_DETACH: a lazy unmount never fails on a busy mount)."""
    if syscalls.is_mountpoint(layers.merged):
        syscalls.umount2(layers.merged, syscalls.MNT_DETACH)


def keep_init(init_root: Path, spares: Path) -> bool:
    """Keep a removed container's init layer for the next container, if it is one :func:`prepare` makes
    without placeholders; True if it was kept (moved into a free slot under ``spares``).

    An init layer is only ever a lower layer: overlayfs never writes it (the per-container files
    are bind-mounted over its placeholders from the container's own directory), so what
    ``prepare`` made is what it still holds. Keeping it spares a container's ``create`` and
    ``rm`` ten inodes made and deleted on the state root's filesystem; on an ext4 without a
    journal each new inode costs more the more were deleted in the last minute
    (``recently_deleted()`` in fs/ext4/ialloc.c skips those).
    """
    init = init_root / "diff"
    try:
        if set(os.listdir(init)) != _INIT_TOP or set(os.listdir(init / "etc")) != _INIT_ETC:
            return False
    except OSError:
        return False
    for slot in range(SPARE_SLOTS):
        try:
            os.rename(init_root, spares / f"{SPARE_INIT}{slot}")  # refused onto a slot that holds one
            return True
        except OSError:
            continue
    return False


def remove(layer_root: Path, init_root: Path, discard: Callable[[Path], object] | None = None,
           spares: Path | None = None) -> None:
    """Delete the writable layer and the init layer (``rm`` does this; nothing else does).

    ``discard`` takes a tree away and deletes it later (:meth:`labkit.store.Store.discard`);
    without it the trees are deleted here and now. With ``spares``, the init layer is kept
    there for the next container if it can be (:func:`keep_init`).
    """
    for root in (layer_root, init_root):
        if root is init_root and spares is not None and keep_init(init_root, spares):
            continue
        merged = root / "merged"
        if syscalls.is_mountpoint(merged):
            syscalls.umount2(str(merged), syscalls.MNT_DETACH)
        if discard is not None:
            discard(root)
        else:
            delete_tree(root)


# -- docker diff --------------------------------------------------------------------------------

ADDED, CHANGED, DELETED = "A", "C", "D"
KIND = {CHANGED: 0, ADDED: 1, DELETED: 2}
#: What the trace calls a changed non-directory that was removed and made again (a whiteout, then an add), not
#: copied up: ``docker diff`` shows it ``C`` all the same.
RECREATED = "R"


#: Where overlayfs records a copied-up entry's lower inode (fs/overlayfs/copy_up.c, ``ovl_set_origin``): the
#: ``trusted.`` name, or ``user.`` with ``userxattr`` (rootless).
ORIGIN = ("trusted.overlay.origin", "user.overlay.origin")


def _has_origin(path: str) -> bool:
    for attr in ORIGIN:
        try:
            os.getxattr(path, attr, follow_symlinks=False)
            return True
        except OSError:
            continue
    return False


def copied_up(upper: str, rel: str, below: os.stat_result) -> bool:
    """Whether the non-directory at ``rel`` of the upper dir ``upper``, which shadows ``below`` (what the image
    layers hold there), was copied up from it — or made anew in the upper layer (``rm f && echo x > f``: a
    whiteout, then a new file in its place; or a file of the upper layer renamed over it).

    On copy-up the kernel stores the lower inode's file handle in the upper entry's ``overlay.origin`` xattr
    (fs/overlayfs/copy_up.c, ``ovl_copy_up_metadata`` → ``ovl_set_origin_fh``; an empty one where the lower
    filesystem cannot encode handles, "so we can use the overlay.origin xattr to distinguish between a copy up
    and a pure upper inode"); a file created in the upper layer, over a whiteout or not, gets none
    (fs/overlayfs/dir.c, ``ovl_create_upper``, ``ovl_create_over_whiteout``). Two copy-ups store none either: a
    lower file with other hard links, whose link the copy-up breaks (``ovl_do_copy_up``: no origin unless
    ``nlink == 1`` or indexed), and, with ``userxattr`` (rootless), a symlink, which takes no ``user.`` xattr;
    for those a copy-up is taken as what happened, unless the type changed. Where the upper filesystem takes no
    xattrs at all the nearest directory above that was copied up has none either: then too.
    """
    full = os.path.join(upper, rel)
    if _has_origin(full):
        return True
    mode = os.lstat(full).st_mode
    if stat.S_IFMT(mode) != stat.S_IFMT(below.st_mode):
        return False  # a copy-up keeps the type: a file where a directory was is a new one
    if stat.S_ISLNK(mode) or below.st_nlink > 1:
        return True
    parts = rel.split("/")[:-1]
    while parts:  # the nearest ancestor that was copied up says whether this upper dir takes xattrs at all
        anc = os.path.join(upper, *parts)
        if not is_opaque(anc):
            return not _has_origin(anc)
        parts.pop()
    return False


def traced_changes(layers: Layers) -> list[tuple[str, str]]:
    """:func:`changes` as the trace tells them apart: a changed non-directory that was not copied up but made
    anew in the upper layer (:func:`copied_up`) is :data:`RECREATED` instead of ``C``."""
    out = changes(layers)
    for i, (kind, path) in enumerate(out):
        if kind != CHANGED:
            continue
        rel = path.lstrip("/")
        try:
            if stat.S_ISDIR(os.lstat(os.path.join(layers.upper, rel)).st_mode):
                continue
            below = lower_stat(layers.lowers[1:], rel)
            if below is not None and not copied_up(layers.upper, rel, below):
                out[i] = (RECREATED, path)
        except OSError:
            continue  # gone since changes() read it: a running container changed it
    return out


def lower_entry(lowers: Sequence[str], rel: str) -> tuple[int, os.stat_result] | None:
    """What the merged lower layers show at ``rel`` (no leading slash): the number of the layer that serves
    it (1 = the base, as :func:`lower_layer_of` numbers them) and its stat, or ``None``.

    Walks the layers top first: a whiteout hides the name below it, and an
    opaque ancestor directory hides everything below that layer.
    """
    parts = rel.split("/")
    for i, layer in enumerate(lowers):
        try:
            st = os.lstat(os.path.join(layer, rel))
        except FileNotFoundError:
            st = None
        except NotADirectoryError:
            return None
        if st is not None:
            return None if is_whiteout(st) else (len(lowers) - i, st)
        for i in range(1, len(parts)):
            anc = os.path.join(layer, *parts[:i])
            try:
                ast = os.lstat(anc)
            except (FileNotFoundError, NotADirectoryError):
                break
            if is_whiteout(ast) or not stat.S_ISDIR(ast.st_mode):
                return None
            if is_opaque(anc):
                return None
    return None


def lower_stat(lowers: Sequence[str], rel: str) -> os.stat_result | None:
    """What the merged lower layers show at ``rel`` (no leading slash), or ``None`` (see :func:`lower_entry`)."""
    found = lower_entry(lowers, rel)
    return found[1] if found else None


def lower_layer_of(lowers: list[str], rel: str) -> int | None:
    """Which image layer serves ``rel`` from below, numbered from 1 = the base layer (as ``history`` lists
    them bottom-up and the pictures draw them), or ``None``. ``lowers`` is top-first, as overlayfs takes it."""
    for i in range(len(lowers)):
        if lower_stat(lowers[i:], rel) is not None and os.path.lexists(os.path.join(lowers[i], rel)):
            return len(lowers) - i
    return None


def read_upper(upper: str) -> list[dict[str, Any]]:
    """Every entry of an upper dir: path, type (file/dir/symlink/whiteout), size, opaque mark."""
    out: list[dict[str, Any]] = []
    for root, dirs, files in os.walk(upper):
        for name in sorted(dirs + files):
            full = os.path.join(root, name)
            st = os.lstat(full)
            rel = "/" + os.path.relpath(full, upper)
            if is_whiteout(st):
                out.append({"path": rel, "type": "whiteout", "size": 0})
            elif stat.S_ISDIR(st.st_mode):
                out.append({"path": rel, "type": "dir", "size": 0, "opaque": is_opaque(full)})
            elif stat.S_ISLNK(st.st_mode):
                out.append({"path": rel, "type": "symlink", "size": st.st_size})
            else:
                out.append({"path": rel, "type": "file", "size": st.st_size})
    return out


def serving_layer(upper: str, lowers: Sequence[str], path: str) -> Served:
    """Which layer serves ``path`` in a container: ``"upper"``, an image layer number, ``"hidden"``, ``"missing"``.

    Lookup goes top-down (overlayfs.rst, "whiteouts and opaque directories"): the
    upper dir first, where a whiteout hides the name and an opaque ancestor hides
    everything below it; then the image layers.
    """
    rel = path.strip("/")
    parts = rel.split("/") if rel else []
    for i in range(1, len(parts)):
        anc = os.path.join(upper, *parts[:i])
        try:
            st = os.lstat(anc)
        except (FileNotFoundError, NotADirectoryError):
            break
        if is_whiteout(st):
            return "hidden"
        if is_opaque(anc) and not os.path.lexists(os.path.join(upper, rel)):
            return "missing"
    full = os.path.join(upper, rel)
    if rel and os.path.lexists(full):
        return "hidden" if is_whiteout(os.lstat(full)) else "upper"
    found = lower_entry(lowers, rel)
    return found[0] if found else "missing"


def contents(upper: str, lowers: Sequence[str], path: str | None = None) -> LayerContents:
    """The writable layer as it is on disk: each upper entry with what the image layers hold at its path.

    Args:
        upper: The upper dir.
        lowers: The image's layer directories, top first (the init layer left out).
        path: A path whose serving layer to find, if any.
    """
    entries = []
    for e in read_upper(upper):
        layer, size, anew = None, 0, False
        if e["type"] != "whiteout":
            rel = e["path"].lstrip("/")
            found = lower_entry(lowers, rel)
            if found is not None:
                layer, st = found
                size = st.st_size if stat.S_ISREG(st.st_mode) else 0
                anew = e["type"] != "dir" and not copied_up(upper, rel, st)
        entries.append(UpperEntry(e["path"], e["type"], int(e["size"]), bool(e.get("opaque")), layer, size, anew))
    return LayerContents(tuple(entries), serving_layer(upper, lowers, path) if path else None)


def _changed(upper: os.stat_result, lower: os.stat_result) -> bool:
    """docker diff's rule (moby's archive.changes): a non-directory in the upper dir that the layers below also
    have was copied up, so it is changed, whatever its size and time say (a rewrite to the same length within
    the same second is still a change); a directory is changed if its mode, owner or device differ."""
    if not stat.S_ISDIR(upper.st_mode):
        return True
    return (upper.st_mode, upper.st_uid, upper.st_gid, upper.st_rdev) != (lower.st_mode, lower.st_uid, lower.st_gid,
                                                                        lower.st_rdev)


def changes(layers: Layers) -> list[tuple[str, str]]:
    """``docker diff`` for this container, read from its upper dir.

    Returns ``(kind, path)`` pairs: ``A`` added, ``C`` changed, ``D`` deleted.
    A deleted directory's subtree is not listed; a directory with changes below
    it is listed ``C`` before them; deletions come last among siblings.
    Works whether or not the container is running (the upper dir is always there).
    """
    out: list[tuple[str, str]] = []
    image_lowers = layers.lowers[1:]  # the init layer's placeholders are not the image's

    def walk(rel_dir: str, parent_added: bool) -> None:
        full = os.path.join(layers.upper, rel_dir) if rel_dir else layers.upper
        try:
            names = sorted(os.listdir(full))
        except OSError:
            return
        deleted: list[str] = []
        for name in names:
            rel = f"{rel_dir}/{name}" if rel_dir else name
            try:
                st = os.lstat(os.path.join(layers.upper, rel))
            except FileNotFoundError:
                continue  # gone since listdir: a running container replaced it (rename(2) over a whiteout)
            if is_whiteout(st):
                deleted.append("/" + rel)
                continue
            below = None if parent_added else lower_stat(image_lowers, rel)
            if below is None:
                out.append((ADDED, "/" + rel))
                if stat.S_ISDIR(st.st_mode):
                    walk(rel, True)
                continue
            if stat.S_ISDIR(st.st_mode):
                mark = len(out)
                opaque = is_opaque(os.path.join(layers.upper, rel))
                walk(rel, opaque)
                if opaque:
                    hidden = sorted(_merged_names(image_lowers, rel) - set(os.listdir(os.path.join(layers.upper, rel))))
                    out.extend((DELETED, f"/{rel}/{h}") for h in hidden)
                if len(out) > mark or _changed(st, below) or opaque:
                    out.insert(mark, (CHANGED, "/" + rel))
            elif _changed(st, below):
                out.append((CHANGED, "/" + rel))
        out.extend((DELETED, d) for d in deleted)

    walk("", False)
    return out


def _merged_names(lowers: tuple[str, ...], rel: str) -> set[str]:
    """The names the lower layers show in directory ``rel`` (whiteouts applied)."""
    names: set[str] = set()
    hidden: set[str] = set()
    for layer in lowers:
        d = os.path.join(layer, rel)
        try:
            entries = os.listdir(d)
        except OSError:
            continue
        for n in entries:
            if n in names or n in hidden:
                continue
            if is_whiteout(os.lstat(os.path.join(d, n))):
                hidden.add(n)
            else:
                names.add(n)
        if is_opaque(d):
            break
    return names


def du(path: str) -> tuple[int, int]:
    """Bytes of regular files and number of entries under ``path`` (for sizes and pictures)."""
    size = count = 0
    for root, dirs, files in os.walk(path):
        for n in files + dirs:
            count += 1
            try:
                st = os.lstat(os.path.join(root, n))
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                size += st.st_size
    return size, count
