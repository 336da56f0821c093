"""``docker cp`` on the real kernel: files into and out of a container, resolved inside the container's root.

Every path is looked up by the kernel in a child process whose ``/`` is the container's,
so a symlink the container planted (``/etc/x -> /``) points into the container, never at
the host's files (the way ``docker cp`` was once broken, CVE-2018-15664):

* a running (or paused) container: the child joins PID 1's mount namespace with
  setns(2) (rootless, its user namespace first), which puts it at the ``/`` PID 1
  pivoted into, with the container's volumes and ``/etc`` files mounted where PID 1
  sees them;
* a container that is not running: the child unshares a mount namespace of its own,
  mounts the container's overlay there (rootless, inside a user namespace with the
  container's id map, with ``userxattr``), binds its ``/etc`` files and volumes over it,
  and chroot(2)s into it. Whatever the copy changes goes where the container's own
  writes go: the kernel copies a file of an image layer up into the writable layer
  first (overlayfs.rst, "copy up"), and the mounts vanish with the child.

The archive is a tar stream (``tarfile``), as the Engine API's ``/containers/ID/archive``
speaks it. The child never looks up a user name (``tarfile``'s ``pwd`` and ``grp`` are
off): glibc would load the container's NSS libraries to do it (CVE-2019-14271).
"""

from __future__ import annotations

import json
import os
import stat
import tarfile
from collections.abc import Callable, Sequence
from typing import Any

from labkit import tars
from labkit.linux import namespaces, overlay, syscalls
from labkit.linux.namespaces import IdMap

#: Runs in the child, once its ``/`` is the container's.
Work = Callable[[], Any]


def path_stat(path: str) -> dict[str, Any]:
    """What ``HEAD /containers/ID/archive`` reports of ``path`` (lstat(2): a last symlink is not followed)."""
    st = os.lstat(path)
    return {"name": os.path.basename(path.rstrip("/")) or "/", "size": st.st_size, "mode": st.st_mode,
            "mtime": int(st.st_mtime), "isDir": stat.S_ISDIR(st.st_mode),
            "linkTarget": os.readlink(path) if stat.S_ISLNK(st.st_mode) else ""}


def write_tar(path: str, out: int) -> dict[str, Any]:
    """Write ``path`` (a directory with all it holds) to ``out`` as a tar stream whose entries are named from
    its base name; return its :func:`path_stat`."""
    found = path_stat(path)
    name = found["name"] if found["name"] != "/" else "."
    with os.fdopen(os.dup(out), "wb") as sink, tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        tar.add(path, arcname=name)
    return found


def extract_tar(directory: str, source: int, keep_owners: bool) -> None:
    """Unpack the tar stream ``source`` into ``directory``, which must exist and be a directory.

    Entries stay inside ``directory`` (:func:`labkit.tars.member_in`) and keep their modes;
    their owner is the container's root unless ``keep_owners`` (``docker cp -a``).
    """
    if not os.path.isdir(directory):
        raise NotADirectoryError(20, "extraction point is not a directory", directory)

    with os.fdopen(os.dup(source), "rb") as pipe, tarfile.open(fileobj=pipe, mode="r|") as tar:
        for member in tar:
            safe = tars.member_in(member, directory)
            if not keep_owners:
                safe.uid = safe.gid = 0
                safe.uname = safe.gname = ""
            tars.extract(tar, safe, directory)


def in_container(pid: int, rootless: bool, work: Work) -> Any:
    """Run ``work`` in a child that joined running PID ``pid``'s mount namespace (and user namespace)."""
    fds = [os.open(f"/proc/{pid}/ns/{kind}", os.O_RDONLY | os.O_CLOEXEC)
           for kind in (("user", "mnt") if rootless else ("mnt",))]

    def enter() -> None:
        if rootless:
            syscalls.setns(fds[0], namespaces.CLONE_NEWUSER)  # root over the container's ids, as its PID 1 is
        syscalls.setns(fds[-1], namespaces.CLONE_NEWNS)  # "/" and the working directory become PID 1's root

    try:
        return _child(enter, work)
    finally:
        for fd in fds:
            os.close(fd)


def in_layers(layers: overlay.Layers, binds: Sequence[tuple[str, str]], idmap: IdMap | None, work: Work,
              lowerdir_plus: bool | None = None) -> Any:
    """Run ``work`` in a child chrooted into the container's overlay, mounted in a mount namespace of its own
    (rootless: ``idmap``'s user namespace), with ``binds`` (host path, path inside) mounted over it where
    the path inside exists. ``lowerdir_plus`` is what the backend knows of how this kernel stacks an image
    deeper than a page of mount options (:func:`labkit.linux.overlay.mount_at`)."""

    def enter() -> None:
        if idmap is not None and idmap.kind != "range":
            # The single-id map a process may write for itself: the user is root inside, as in its containers.
            syscalls.unshare(namespaces.CLONE_NEWUSER)
            namespaces.write_single_map(idmap)
        syscalls.unshare(namespaces.CLONE_NEWNS)
        syscalls.mount(None, "/", None, syscalls.MS_REC | syscalls.MS_PRIVATE, None)  # nothing leaks to the host
        overlay.mount_at(layers.merged, overlay.mount_options(layers, userxattr=idmap is not None), lowerdir_plus)
        for source, inside in binds:
            target = os.path.join(layers.merged, inside.lstrip("/"))
            if os.path.lexists(target) and not os.path.islink(target):
                syscalls.mount(source, target, None, syscalls.MS_BIND | syscalls.MS_REC, None)
        os.chroot(layers.merged)

    if idmap is None or idmap.kind != "range":
        return _child(enter, work)
    return _child(enter, work, lambda body: namespaces.as_root_inside(idmap, body))  # a range: mapped from outside


def _child(enter: Callable[[], None], work: Work,
           fork: Callable[[Callable[[], bool]], bool] | None = None) -> Any:
    """Fork, ``enter`` the container's root in the child, run ``work`` there; its result, or its error raised
    here (an OSError as the child saw it)."""
    tarfile.pwd = None  # type: ignore[attr-defined]  # no user names: see the module's docstring
    tarfile.grp = None  # type: ignore[attr-defined]
    r, w = os.pipe()

    def body() -> bool:
        try:
            enter()
            os.chdir("/")
            answer: dict[str, Any] = {"value": work()}
        except OSError as err:
            answer = {"errno": err.errno, "strerror": err.strerror or str(err),
                      "filename": err.filename if isinstance(err.filename, str) else None}
        except Exception as err:  # the child has no terminal: its reason travels to the parent
            answer = {"error": f"{type(err).__name__}: {err}"}
        os.write(w, json.dumps(answer).encode())
        return "value" in answer

    pid = 0
    if fork is not None:
        fork(body)
    else:
        pid = os.fork()
        if pid == 0:  # the child: never returns into the caller's code
            code = 1
            try:
                os.close(r)
                code = 0 if body() else 1
            finally:
                os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()  # until the child ends (its end of the pipe closes with it)
    if pid:
        os.waitpid(pid, 0)
    answer = json.loads(data) if data else {"error": "the copying process ended without an answer"}
    if "value" in answer:
        return answer["value"]
    if "errno" in answer:
        raise OSError(answer["errno"], answer["strerror"], answer["filename"])
    raise OSError(0, answer["error"])
