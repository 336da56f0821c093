"""The simulator's container filesystem: the overlay model, ``docker cp``, ``diff``, ``commit`` and build steps.

A container's writable layer is a :class:`labkit.model.overlay.Overlay` over
the image's real layer directories (:mod:`labkit.sim.overlay`). What the
engine, the trace and the pictures ask of it is read from that model: the
changes (``docker diff``), the overlay's effects since the last look as
copy-up, whiteout and new-file steps, what the upper layer holds against the
image's layers, the merged view's files (there is no ``find`` to run), and the
upper layer written out in overlayfs's own format for ``commit``.
"""

from __future__ import annotations

import dataclasses
import errno
import io
import os
import stat
import tarfile
from typing import Any

from labkit.errors import Breakout
from labkit.model import events
from labkit.model.container import ContainerRecord
from labkit.model.overlay import CopyUp, Create, Dir, File, Layer, LayerContents, Link, Overlay, Remove, Rename
from labkit.sim import images
from labkit.sim.base import SimBase
from labkit.sim.overlay import Vfs, changes, overlay_of, read_layer, write_upper


class Rootfs(SimBase):
    """The container's filesystem as the engine, the trace and the pictures see it."""

    def storage(self, record: ContainerRecord, image: Any) -> dict[str, str]:
        p = self._paths(record.id)
        return {"LowerDir": ":".join([p["init"], *image.lowerdirs()]), "MergedDir": p["merged"],
                "UpperDir": p["upper"], "WorkDir": p["work"], "Simulated": "true"}

    def changes(self, record: ContainerRecord, image: Any) -> list[tuple[str, str]]:
        with self._locked() as w:
            ct = self._container(w, record, image)
            # The init layer's placeholders are not the image's: compare with the image layers only.
            return changes(overlay_of(w, ct), tuple(read_layer(p) for p in ct.lowers))

    def observe_layer(self, record: ContainerRecord, image: Any) -> None:
        """Turn what the writable layer holds now, that it did not at the last look, into copy-up / whiteout /
        opaque / add steps — read as the real backend reads its upper dir (``LinuxBackend.observe_layer``), so
        that both trace what the operations left, not each operation on the way: a tree made and renamed where
        it ended up, a tree made and removed not at all, a file with the size it has, a file removed and made
        again as a whiteout and an add; the parent directories a change copied up first come before it.

        The operations' effects say only what the upper layer cannot: which file that shadows an image file was
        made in the writable layer rather than copied up (the kernel tells it by the ``overlay.origin`` xattr a
        copy-up sets), kept in ``ct.made_anew`` from one look to the next.
        """
        with self._locked() as w:
            ct = w.containers.get(record.id)
            if ct is None:
                return
            effects, ct.effects = ct.effects, []
            ct.made_anew = _made_anew(ct.made_anew, effects)
            image_layers = tuple(read_layer(p) for p in ct.lowers)
            now = [("R" if kind == "C" and path in ct.made_anew else kind, path)
                   for kind, path in changes(overlay_of(w, ct), image_layers)]
            before, ct.reported = ct.reported, set(now)
            below = Overlay(image_layers)
            n_image = len(ct.lowers)
            parents: list[str] = []  # directories copied up (ovl_copy_up() does parents first), not told yet

            def first(path: str | None) -> list[str]:
                """The parents copied up for ``path`` (all that are left, for None), in the order made."""
                mine = [d for d in parents if path is None or path.startswith(d.rstrip("/") + "/")]
                for d in mine:
                    parents.remove(d)
                return mine

            def tell(made: list[events.Event]) -> None:
                for event in made:
                    self._step(w, event, record.id)

            for kind, path in now:
                if (kind, path) in before:
                    continue
                node = ct.upper.get(path)
                size = node.size if node is not None else 0
                if isinstance(node, Dir) and kind != "D":
                    if node.opaque:
                        tell([*map(events.copy_up_dir, first(path)), events.opaque(path)])
                    elif kind == "C":
                        parents.append(path)
                elif kind == "D":
                    tell([*map(events.copy_up_dir, first(path)), events.whiteout(path)])
                elif kind == "R":  # removed, then made again: the whiteout the removal left was replaced
                    tell([*map(events.copy_up_dir, first(path)), events.whiteout(path), events.added(path, size)])
                elif kind == "C":
                    try:
                        lower, ref = below.lookup(path)
                    except OSError:
                        layer: int | str = "?"
                    else:  # layers are numbered as the pictures number them: 1 is the image's bottom layer
                        size, layer = lower.size, n_image - ref if isinstance(ref, int) else "?"
                    tell(events.copy_up_steps(path, size, layer, first(path)))
                else:
                    tell([*map(events.copy_up_dir, first(path)), events.added(path, size)])
            tell([events.copy_up_dir(d) for d in first(None)])

    # -- docker cp: a tar stream in and out of the model's filesystem ------------------------------------
    def stat_path(self, record: ContainerRecord, image: Any, path: str) -> dict[str, Any]:
        with self._locked() as w:
            return _stat_dict(Vfs(w, self._container(w, record, image)), path)

    def copy_out(self, record: ContainerRecord, image: Any, path: str, out: int) -> dict[str, Any]:
        """The model's files under ``path`` as a tar stream on ``out`` (written once the world is read)."""
        buffer = io.BytesIO()
        with self._locked() as w:
            vfs = Vfs(w, self._container(w, record, image))
            found = _stat_dict(vfs, path)
            with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
                _tar_add(tar, vfs, path, found["name"] if found["name"] != "/" else ".")
        with os.fdopen(os.dup(out), "wb") as sink:
            sink.write(buffer.getvalue())
        return found

    def copy_in(self, record: ContainerRecord, image: Any, path: str, tar: int, keep_owners: bool = False) -> None:
        """Unpack a tar stream into the model's directory ``path``: a file of an image layer is copied up
        first, as the overlay model does for any write (and the trace shows it)."""
        with os.fdopen(os.dup(tar), "rb") as source:
            data = source.read()
        with self._locked() as w:
            vfs = Vfs(w, self._container(w, record, image))
            if not vfs.is_dir(path):
                if not vfs.exists(path):
                    raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
                raise NotADirectoryError(errno.ENOTDIR, "extraction point is not a directory", path)
            with tarfile.open(fileobj=io.BytesIO(data), mode="r") as archive:
                for member in archive:
                    name = member.name.lstrip("/")
                    if ".." in name.split("/"):
                        raise Breakout(f"{member.name!r} points outside the destination")
                    target = os.path.normpath(os.path.join(path, name))
                    if member.isdir():
                        vfs.makedirs(target)
                    elif member.issym():
                        if vfs.exists(target):
                            vfs.unlink(target)
                        vfs.symlink(member.linkname, target)
                    elif member.isfile():
                        handle = archive.extractfile(member)
                        vfs.write(target, handle.read() if handle is not None else b"")
                    else:
                        continue  # devices and fifos: the model has none
                    if not member.issym():
                        vfs.chmod(target, member.mode & 0o7777)

    # -- what the pictures ask ----------------------------------------------------------------------
    def overlay(self, record: ContainerRecord) -> Overlay:
        """The container's filesystem as the model's :class:`~labkit.model.overlay.Overlay` (immutable)."""
        with self._locked() as w:
            return overlay_of(w, self._container(w, record))

    def layer_model(self, record: ContainerRecord) -> Overlay:
        """The model's overlay of the container (:meth:`overlay`): its layers are no directories on the host."""
        return self.overlay(record)

    def layer_contents(self, record: ContainerRecord, image: Any, path: str | None = None) -> LayerContents:
        """The model's upper layer against the image's layers (the init layer left out, as on the real backend),
        each file made in the writable layer over an image file marked so, as the real backend reads it from the
        absent ``overlay.origin`` xattr."""
        with self._locked() as w:
            ct = self._container(w, record, image)
            ov = Overlay(tuple(read_layer(p) for p in ct.lowers), Layer(ct.upper))
            anew = _made_anew(ct.made_anew, ct.effects)
        contents = ov.contents(path)
        entries = tuple(dataclasses.replace(e, made_anew=True)
                        if e.path in anew and e.lower_layer is not None and e.kind != "dir" else e
                        for e in contents.entries)
        return dataclasses.replace(contents, entries=entries)

    def files(self, record: ContainerRecord, under: str) -> list[str]:
        """Regular files of the merged view below ``under``, as ``find UNDER -xdev -type f`` lists them."""
        with self._locked() as w:
            ct = w.containers.get(record.id)
            if ct is None or ct.pid1 == 0:
                raise ProcessLookupError(errno.ESRCH, f"container process {record.state.pid} is not running")
            tree = overlay_of(w, ct).walk()
        top = "/" + under.strip("/")
        inside = top.rstrip("/") + "/"
        return sorted(p for p, node in tree.items()
                      if isinstance(node, File) and (p == top or p.startswith(inside))
                      and not p.startswith(("/proc/", "/sys/")))

    # -- images ---------------------------------------------------------------------------------------
    def write_upper(self, record: ContainerRecord, image: Any, dest: str) -> None:
        """The model's writable layer written out in overlayfs's on-disk format
        (:func:`labkit.sim.overlay.write_upper`), as a real upper dir would be."""
        with self._locked() as w:
            ct = self._container(w, record, image)
            write_upper(ct.upper, dest, int(w.epoch + w.now))

    def ensure_base(self, image_store: Any) -> Any:
        """``busybox:latest`` for the simulator (see :func:`labkit.sim.images.synthetic_busybox`)."""
        return images.synthetic_busybox(image_store)

    def build_runner(self, lowers: list[str], upper: str, argv: list[str], env: list[str],
                     workdir: str) -> tuple[int, str]:
        """Run one ``RUN`` step in a simulated container and write its writable layer into ``upper``."""
        return images.run_step(lowers, upper, argv, env, workdir)


def _stat_dict(vfs: Vfs, path: str) -> dict[str, Any]:
    """:meth:`labkit.backend.Backend.stat_path` of the model's file (its lstat)."""
    st = vfs.stat(path)
    kinds = {"dir": stat.S_IFDIR, "symlink": stat.S_IFLNK, "dev": stat.S_IFCHR}
    return {"name": os.path.basename(path.rstrip("/")) or "/", "size": st.size,
            "mode": kinds.get(st.kind, stat.S_IFREG) | st.mode, "mtime": st.mtime, "isDir": st.kind == "dir",
            "linkTarget": vfs.readlink(path) if st.kind == "symlink" else ""}

def _tar_add(tar: tarfile.TarFile, vfs: Vfs, path: str, name: str) -> None:
    """Add the model's ``path`` (and, for a directory, all below it) to ``tar`` as ``name``."""
    st = vfs.stat(path)
    info = tarfile.TarInfo(name)
    info.mode, info.mtime, info.uid, info.gid = st.mode & 0o7777, st.mtime, st.uid, st.gid
    if st.kind == "dir":
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
        for child in sorted(vfs.readdir(path)):
            _tar_add(tar, vfs, path.rstrip("/") + "/" + child, f"{name}/{child}")
    elif st.kind == "symlink":
        info.type, info.linkname = tarfile.SYMTYPE, vfs.readlink(path)
        tar.addfile(info)
    elif st.kind == "file":
        data = vfs.read(path)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))

def _made_anew(made: frozenset[str], effects: list[Any]) -> frozenset[str]:
    """The non-directories of the upper layer that were made there, not copied up, after ``effects``.

    On the kernel these are the upper files without an ``overlay.origin`` xattr: a copy-up sets it
    (fs/overlayfs/copy_up.c, ``ovl_set_origin``), a file created in the upper layer, over a whiteout or
    not, has none (fs/overlayfs/dir.c, ``ovl_create_upper``, ``ovl_create_over_whiteout``), and rename(2)
    and link(2) keep an inode's own. One that shadows an image file was removed and made again (or
    moved there): the trace tells it as a whiteout and an add, not a copy-up.
    """
    out = set(made)
    linked = ""
    for e in effects:
        if isinstance(e, Create):
            if e.path != linked:  # a link over a whiteout is the linked inode, origin and all
                (out.add if e.kind != "dir" else out.discard)(e.path)
        elif isinstance(e, CopyUp):
            out.discard(e.path)
        elif isinstance(e, Remove):
            out = {p for p in out if not _at_or_below(p, e.path)}
        elif isinstance(e, Rename):
            moved = {p for p in out if _at_or_below(p, e.old)}
            out = {p for p in out - moved if not _at_or_below(p, e.new)} | {e.new + p[len(e.old):] for p in moved}
        elif isinstance(e, Link):
            (out.add if e.source in out else out.discard)(e.path)
        linked = e.path if isinstance(e, Link) else ""
    return frozenset(out)

def _at_or_below(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")
