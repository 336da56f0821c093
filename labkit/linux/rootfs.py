"""The real backend's container filesystem: its layers on disk, ``docker cp``, ``diff``, ``commit`` and build steps.

A container's root is an overlayfs mount (:mod:`labkit.linux.overlay`): the
image's layer directories read-only below, the container's writable upper dir
above. What the engine asks of it is read from those directories on the host —
the changes (``docker diff``), the copy-ups the kernel did silently (the
trace), the upper dir copied out for ``commit`` — or done inside the
container's own root (``docker cp``, :mod:`labkit.linux.copying`).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, cast

from labkit.errors import BuildFailed, HostUnsupported
from labkit.images import tree
from labkit.images.base import ensure_busybox
from labkit.images.oci import is_opaque
from labkit.images.store import Image, ImageStore
from labkit.linux import copying, namespaces, overlay, process, procfs, supervisor
from labkit.linux.base import LinuxBase
from labkit.model import events
from labkit.model.container import ContainerRecord
from labkit.model.overlay import LayerContents, Overlay


class Rootfs(LinuxBase):
    """The container's filesystem as the engine, the trace and the pictures see it."""

    def storage(self, record: ContainerRecord, image: Image) -> dict[str, str]:
        return self._layers(record, image.lowerdirs()).graph_driver_data()

    def changes(self, record: ContainerRecord, image: Image) -> list[tuple[str, str]]:
        return overlay.changes(self._layers(record, image.lowerdirs()))

    def observe_layer(self, record: ContainerRecord, image: Image) -> None:
        """Record copy-ups, whiteouts and new files that appeared in the upper dir since the last look.

        The kernel does these silently; reading the upper dir (what is there now
        that was not before) is how a learner gets to see them. What is read is what
        the operations left, not each operation on the way: a tree made and moved
        with ``mv`` is told where it ended up, a tree made and removed not at all, and
        a file removed and made again (``rm f && echo x > f``) as a whiteout and an
        add, not a copy-up (:func:`labkit.linux.overlay.copied_up` tells the two
        apart by the origin overlayfs records on a copy-up).
        """
        layers = self._layers(record, image.lowerdirs())
        now = overlay.traced_changes(layers)
        before = self._seen.get(record.id, set())
        parents: list[str] = []  # directories copied up (ovl_copy_up() does parents first), not told yet

        def first(path: str | None) -> list[str]:
            """The parents copied up for ``path`` (all that are left, for None), in the order made."""
            mine = [d for d in parents if path is None or path.startswith(d.rstrip("/") + "/")]
            for d in mine:
                parents.remove(d)
            return mine

        for kind, path in now:
            if (kind, path) in before:
                continue
            full = os.path.join(layers.upper, path.lstrip("/"))
            if os.path.isdir(full) and not os.path.islink(full) and kind != overlay.DELETED:
                if is_opaque(full):
                    self._emit_all([*map(events.copy_up_dir, first(path)), events.opaque(path)], record.id)
                elif kind == overlay.CHANGED:
                    parents.append(path)
            elif kind == overlay.DELETED:
                self._emit_all([*map(events.copy_up_dir, first(path)), events.whiteout(path)], record.id)
            elif kind == overlay.RECREATED:
                # removed, then made again: the whiteout the removal left was replaced by the new file
                self._emit_all([*map(events.copy_up_dir, first(path)), events.whiteout(path),
                                events.added(path, os.lstat(full).st_size)], record.id)
            elif kind == overlay.CHANGED:
                rel = path.lstrip("/")
                src = overlay.lower_layer_of(list(layers.lowers[1:]), rel)
                below = overlay.lower_stat(layers.lowers[1:], rel)
                size = below.st_size if below is not None else os.lstat(full).st_size
                self._emit_all(events.copy_up_steps(path, size, src if src is not None else "?", first(path)),
                               record.id)
            else:
                self._emit_all([*map(events.copy_up_dir, first(path)), events.added(path, os.lstat(full).st_size)],
                               record.id)
        self._emit_all([events.copy_up_dir(d) for d in first(None)], record.id)
        self._seen[record.id] = set(now)

    def _emit_all(self, made: list[events.Event], cid: str) -> None:
        for event in made:
            self.emit(event, cid)

    # -- docker cp: a tar stream in and out, resolved inside the container's root (labkit.linux.copying) --
    def stat_path(self, record: ContainerRecord, image: Image, path: str) -> dict[str, Any]:
        return cast(dict[str, Any], self._in_root(record, image, lambda: copying.path_stat(path)))

    def copy_out(self, record: ContainerRecord, image: Image, path: str, out: int) -> dict[str, Any]:
        return cast(dict[str, Any], self._in_root(record, image, lambda: copying.write_tar(path, out)))

    def copy_in(self, record: ContainerRecord, image: Image, path: str, tar: int, keep_owners: bool = False) -> None:
        if record.id not in self._seen:  # what was there before the copy is not this copy's (observe_layer)
            self._seen[record.id] = set(overlay.traced_changes(self._layers(record, image.lowerdirs())))
        self._in_root(record, image, lambda: copying.extract_tar(path, tar, keep_owners))

    def _in_root(self, record: ContainerRecord, image: Image, work: copying.Work) -> Any:
        """``work`` in a child whose ``/`` is the container's: PID 1's while it runs, else its overlay
        mounted for the child alone (see :mod:`labkit.linux.copying`)."""
        if record.state.pid and procfs.alive(record.state.pid, record.state.pid_start_time):
            return copying.in_container(record.state.pid, self.rootless, work)
        cdir = self.store.container_dir(record.id)
        binds = [(str(cdir / name), f"/etc/{name}") for name in overlay.ETC_FILES if (cdir / name).exists()]
        binds += [(str(self.store.volume_dir(m.source) / "_data") if m.type == "volume" else m.source, m.destination)
                  for m in record.config.mounts]
        layers = self._layers(record, image.lowerdirs())
        if not os.path.isdir(layers.work):
            overlay.prepare(layers, self.store.init_dir(record.id), self._placeholders(record))
        return copying.in_layers(layers, binds, self.idmap if self.rootless else None, work, self.lowerdir_plus)

    # -- what the pictures ask ------------------------------------------------------------------
    def layer_contents(self, record: ContainerRecord, image: Image, path: str | None = None) -> LayerContents:
        """The upper dir as it is on disk, against the image's layer directories (the init layer left out)."""
        lowers = image.lowerdirs()
        return overlay.contents(self._layers(record, lowers).upper, lowers, path)

    def files(self, record: ContainerRecord, under: str) -> list[str]:
        """``find UNDER -xdev -type f`` run inside the container (``/proc`` and ``/sys`` left out).

        Raises:
            OSError: ``find`` failed for another reason than an unreadable or missing name (exit 0 or 1).
        """
        code, text = self._exec_text(record, ["find", under, "-xdev", "-type", "f"], record.config.workdir)
        if code not in (0, 1):
            raise OSError(errno.EIO, f"find exited {code}", under)
        return sorted(p for p in text.splitlines() if p.startswith("/") and not p.startswith(("/proc/", "/sys/")))

    def layer_model(self, record: ContainerRecord) -> Overlay | None:
        """None: the layers are directories on the host (:meth:`storage` names them)."""
        return None

    # -- building images -----------------------------------------------------------------------
    def ensure_base(self, image_store: ImageStore) -> Image:
        """``busybox:latest`` from the host's static busybox (:func:`labkit.images.base.ensure_busybox`)."""
        return ensure_busybox(image_store)

    def write_upper(self, record: ContainerRecord, image: Image, dest: str) -> None:
        """The upper dir as it is on disk, copied with its whiteouts, opaque xattrs, owners and times.

        Reading an upper dir under a mounted overlay is allowed (overlayfs.rst, "Changes to underlying
        filesystems" forbids only changing it). Rootless, files a container made as a subordinate id
        may be unreadable to the user: the copy runs as root in a user namespace with the containers'
        own id map, where those ids are mapped and chown(2) to them is allowed.
        """
        upper = self._layers(record, image.lowerdirs()).upper

        def copy() -> bool:
            tree.copy_tree(upper, dest)
            return True

        if self.rootless and self.idmap.kind == "range":
            if not namespaces.as_root_inside(self.idmap, copy):
                raise HostUnsupported(f"the writable layer {upper} could not be read inside the user namespace",
                                      "Check that /etc/subuid and /etc/subgid still grant this user its range")
        else:
            copy()

    def build_runner(self, lowers: list[str], upper: str, argv: list[str], env: list[str], workdir: str) -> tuple[int, str]:
        """Run one build step (``RUN``) in a real container whose writable layer is ``upper``."""
        scratch = Path(tempfile.mkdtemp(prefix="build-", dir=self.store.root / "tmp"))
        work, merged, state = scratch / "work", scratch / "merged", scratch / "state"
        for d in (work, merged, state):
            d.mkdir()
        layers = overlay.Layers(tuple(lowers), upper, str(work), str(merged))
        try:
            if not self.rootless:
                self.lowerdir_plus = overlay.mount(layers, self.lowerdir_plus)
            spec = process.LaunchSpec(
                rootfs=str(merged), argv=argv, env=env, cwd=workdir or "/", hostname="buildkit",
                state_dir=str(state), log_path=str(state / "json.log"), network="host",
                cleanup_umounts=() if self.rootless else (str(merged),),
                userns=self.idmap if self.rootless else None,
                overlay=overlay.mount_options(layers, userxattr=True) if self.rootless else None,
                lowerdir_plus=self.lowerdir_plus is not False,
                seccomp=self._seccomp(()),  # RUN steps run under Docker's default profile, as BuildKit's do
            )
            try:
                started = process.start(spec, supervisor.command(self.shim_dir))
            except Exception as err:
                raise BuildFailed(str(err), "Check the RUN line's command") from err
            process.wait(started.shim_pid, None)
            info = process.read_exit(str(state)) or {"ExitCode": 255}
            out = []
            try:
                with open(state / "json.log") as f:
                    out = [json.loads(x).get("log", "") for x in f if x.strip()]
            except FileNotFoundError:
                pass
            return int(info["ExitCode"]), "".join(out)
        finally:
            overlay.umount(layers)
            shutil.rmtree(work, ignore_errors=True)  # overlayfs leaves a root-owned work/work dir
            shutil.rmtree(scratch, ignore_errors=True)
