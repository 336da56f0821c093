"""Unpacking a tar stream into a directory without letting it reach outside, on every Python labkit runs on.

``docker cp`` moves tar streams, one side of which a container wrote: an entry named
``../x`` or ``/etc/x``, a hard link to ``/etc/shadow``, or a symlink ``a -> /etc`` followed
by an entry ``a/passwd`` must land inside the destination or nowhere. :func:`member_in`
checks each entry as it comes, against the destination as it is at that moment (so a
symlink an earlier entry made is followed, and its target judged); Python's own
extraction filters (3.11.4 and later) check names but not what a symlink made on the way
points at, and Debian 12's Python has none.
"""

from __future__ import annotations

import copy
import os
import tarfile

from labkit.errors import Breakout


def member_in(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
    """``member`` renamed relative to ``dest`` (a leading ``/`` dropped), after checking that it, its directory
    (symlinks on the way followed, as the kernel will) and a hard link's target stay inside ``dest``.

    Raises:
        Breakout: They would not.
    """
    root = os.path.realpath(dest)
    name = member.name.lstrip("/")
    if ".." in name.split("/"):
        raise Breakout(f"{member.name!r} points outside the destination")
    parent = os.path.realpath(os.path.join(root, os.path.dirname(name)))
    if parent != root and not parent.startswith(root.rstrip("/") + "/"):
        raise Breakout(f"{member.name!r} would be written through a symlink that leads out of the destination")
    safe = copy.copy(member)
    safe.name = name
    if member.islnk():
        safe.linkname = member.linkname.lstrip("/")
        if ".." in safe.linkname.split("/"):
            raise Breakout(f"hard link {member.name!r} points outside the destination")
    return safe


def extract(tar: tarfile.TarFile, member: tarfile.TarInfo, dest: str) -> None:
    """Unpack one checked ``member`` into ``dest``: an existing symlink at its place is replaced, never followed;
    owners are taken by number; modes kept as they are."""
    target = os.path.join(dest, member.name)
    if not member.isdir() and os.path.islink(target):
        os.unlink(target)
    if hasattr(tarfile, "fully_trusted_filter"):  # checked above; the filter only keeps newer Pythons quiet
        tar.extract(member, dest, numeric_owner=True, filter="fully_trusted")
    else:
        tar.extract(member, dest, numeric_owner=True)
