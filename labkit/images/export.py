"""A container's filesystem as one tar (``docker export``): the merged view of its layers, and Docker's init layer.

:func:`write_merged` walks the layers as overlayfs merges them (overlayfs.rst,
"Directories": the topmost entry wins, a whiteout hides a name, an opaque
directory stops the merge) and writes one plain tar of files, with no
whiteouts. :func:`write_init_layer` writes the layer Docker puts between a
container's writable layer and its image (:data:`DOCKER_INIT`), which
``docker export`` shows too. The way back in, any tar as an image, is
``import`` (:func:`labkit.images.archive.import_tar`).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tarfile
from collections.abc import Iterator, Sequence
from typing import IO

from labkit.images import oci


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
            if oci.is_opaque(full):
                break
        if top is None or oci.is_whiteout(top[1]):
            continue
        yield child, top[0], top[1]
        if stack:
            yield from _merged(stack, child)


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
