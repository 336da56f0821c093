"""Who owns a layer's files: the host's ids, or ids a user namespace maps.

A layer's tar records each file's owner as every container sees it, so that
its digest says what the layer *is*, wherever it was built. As root the host's
ids are the containers' ids. Without root, a container runs in a user
namespace whose id map makes the user root inside (user_namespaces(7)): the
layer's files belong on the host to the user and, with a subordinate range, to
ids of that range, and the tar must record what the map turns them into. Such
files may also be unreadable or undeletable for the user outside the namespace.

Which of the two holds is a fact about the backend that runs the containers,
not about the image store: the backend hands the store an :class:`Ownership`
(``Backend.ownership``), and the store never asks whom it runs as. The real
backend's strategy for a user namespace lives in :mod:`labkit.linux.ownership`.
"""

from __future__ import annotations

import os
import shutil
from typing import Protocol

from labkit.errors import HostUnsupported
from labkit.images import oci

#: What stat(2) shows inside a user namespace for an id its map lacks (/proc/sys/kernel/overflowuid).
OVERFLOW_ID = 65534


class Ownership(Protocol):
    """How the image store reads, removes and chowns a layer's files, as containers see their owners.

    Attributes:
        mapped: Whether containers see other ids than the host's (a user namespace maps them). Then
            overlayfs keeps its markers in ``user.overlay.*`` xattrs (mounted with ``userxattr``), the
            root of a layer stays the user's (root inside), and a layer hashed with the host's ids by an
            earlier labkit still counts as intact.
    """

    mapped: bool

    def digest(self, path: str) -> str:
        """``sha256:…`` of the OCI tar of the layer at ``path``, with owners as containers see them."""
        ...

    def remove_tree(self, path: str) -> None:
        """Delete ``path`` completely, also what a container made as an id the host user is not."""
        ...

    def write_tar(self, path: str, dest: str) -> str:
        """Write the OCI tar of the layer at ``path`` to the new file ``dest`` (``save``); return its digest,
        which is :meth:`digest`'s."""
        ...

    def inside(self, uid: int, gid: int) -> tuple[int, int]:
        """The owner a container sees for a file the host says ``uid:gid`` owns (``export``)."""
        ...

    def chown(self, paths: list[str], uid: int, gid: int) -> None:
        """Give ``paths`` the owner ``uid:gid`` as containers see ids (``COPY --chown``).

        Raises:
            HostUnsupported: No id map lets this user give that owner.
        """
        ...


class HostIds:
    """As root: the host's ids are the containers' ids, and overlayfs marks with ``trusted.overlay.*``."""

    mapped = False

    def digest(self, path: str) -> str:
        return oci.digest(path, "trusted")

    def write_tar(self, path: str, dest: str) -> str:
        return oci.write_tar_file(path, dest, "trusted")

    def inside(self, uid: int, gid: int) -> tuple[int, int]:
        return uid, gid

    def remove_tree(self, path: str) -> None:
        shutil.rmtree(path, ignore_errors=True)

    def chown(self, paths: list[str], uid: int, gid: int) -> None:
        for path in paths:
            os.lchown(path, uid, gid)


class OwnIds:
    """A user with no user namespace to enter (the simulator off Linux): its own ids are root's inside,
    every other id the overflow id, as the single-id map would show them.

    Args:
        uid: The user's uid, root (0) inside.
        gid: The user's gid, group 0 inside.
    """

    mapped = True

    def __init__(self, uid: int, gid: int) -> None:
        self.uid, self.gid = uid, gid

    def inside(self, uid: int, gid: int) -> tuple[int, int]:
        """The owner a container would see for a file the host says ``uid:gid`` owns."""
        return (0 if uid == self.uid else OVERFLOW_ID), (0 if gid == self.gid else OVERFLOW_ID)

    def digest(self, path: str) -> str:
        return oci.digest(path, "user", owners=self.inside)

    def write_tar(self, path: str, dest: str) -> str:
        return oci.write_tar_file(path, dest, "user", owners=self.inside)

    def remove_tree(self, path: str) -> None:
        shutil.rmtree(path, ignore_errors=True)

    def chown(self, paths: list[str], uid: int, gid: int) -> None:
        if paths and (uid, gid) != (0, 0):
            raise HostUnsupported(
                f"potentially insufficient UIDs or GIDs available in user namespace (requested {uid}:{gid} for "
                f"{paths[0]}): only your own id is mapped, as root", "Leave --chown out, or build on Linux")
