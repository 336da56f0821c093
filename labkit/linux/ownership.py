"""Who owns a rootless layer's files: the user namespace's id map, applied to the image store.

A rootless container's files belong on the host to the user (root inside) and,
with a subordinate range, to ids of that range (:class:`~labkit.linux.namespaces.IdMap`).
:class:`MappedIds` is the :class:`~labkit.images.ownership.Ownership` the rootless
backend hands the image store: a layer's tar records owners as the map turns them
into, and what the user cannot read, delete or chown outside the namespace is done
inside one with the same map (:func:`~labkit.linux.namespaces.as_root_inside`), as
``podman unshare`` does.
"""

from __future__ import annotations

import os

from labkit.errors import BuildFailed
from labkit.images import oci
from labkit.linux import namespaces


class MappedIds:
    """Layers of containers that run in a user namespace with ``idmap``.

    Args:
        idmap: The map every container of this user gets (:func:`labkit.linux.namespaces.id_map`).
    """

    mapped = True

    def __init__(self, idmap: namespaces.IdMap) -> None:
        self.idmap = idmap

    def digest(self, path: str) -> str:
        """The layer's digest with owners as the map shows them: the same digest a root build of the same
        content gets, as Buildah's rootless commits do.

        A file a build gave a subordinate owner may be unreadable to the user (a
        ``COPY --chown`` of a 0600 file); with the range map such a layer is read
        from inside a user namespace with that map, where the kernel maps the
        owners itself and root may read every file.

        Raises:
            BuildFailed: The layer could not be read inside the user namespace.
        """
        if self.idmap.kind == "range" and _owned_by_others(path, self.idmap.uid):
            inside = namespaces.read_inside(self.idmap, lambda: oci.digest(path, "user"))
            if inside is None:
                raise BuildFailed(f"the layer {path} could not be read inside the user namespace",
                                  "Check that /etc/subuid and /etc/subgid still grant this user its range")
            return inside
        return oci.digest(path, "user", owners=self.idmap.inside)

    def write_tar(self, path: str, dest: str) -> str:
        """The layer's tar written to ``dest`` with owners as the map shows them (read inside a user
        namespace where the user cannot read every file, as :meth:`digest` does).

        Raises:
            BuildFailed: The layer could not be read inside the user namespace.
        """
        if self.idmap.kind == "range" and _owned_by_others(path, self.idmap.uid):
            inside = namespaces.read_inside(self.idmap, lambda: oci.write_tar_file(path, dest, "user"))
            if inside is None:
                raise BuildFailed(f"the layer {path} could not be read inside the user namespace",
                                  "Check that /etc/subuid and /etc/subgid still grant this user its range")
            return inside
        return oci.write_tar_file(path, dest, "user", owners=self.idmap.inside)

    def inside(self, uid: int, gid: int) -> tuple[int, int]:
        return self.idmap.inside(uid, gid)

    def remove_tree(self, path: str) -> None:
        namespaces.remove_tree(self.idmap, path)

    def chown(self, paths: list[str], uid: int, gid: int) -> None:
        namespaces.chown_inside(self.idmap, paths, uid, gid)


def _owned_by_others(path: str, uid: int) -> bool:
    for top, dirs, files in os.walk(path):
        for name in (*dirs, *files):
            if os.lstat(os.path.join(top, name)).st_uid != uid:
                return True
    return False
