"""The base image, made on this machine: ``busybox:latest`` without a registry.

A learner may have no network, so the base OS layer is assembled from what the
host already has, in this order:

1. Debian's ``busybox-static`` (``/bin/busybox``), if it is statically linked:
   one self-contained binary, exactly what Docker's ``busybox`` image holds.
2. A ``busybox`` found on ``PATH``: static, or dynamic with the shared
   libraries ``ldd`` names copied beside it (and the dynamic loader).
3. No busybox at all: the host's own ``sh``, ``ls``, ``cat``, … with their
   shared libraries, which is enough for a shell and the lessons' commands.

The layer looks like Docker's busybox image: ``/bin/<applet>`` links to
``/bin/busybox``, ``/etc/passwd`` and ``/etc/group`` with root and nobody,
``/tmp`` mode 1777, ``/root`` 0700, empty ``/proc``, ``/sys`` and ``/dev`` to
mount on. Every time stamp is the busybox binary's mtime, so the same host
always yields the same layer digest and the same image id.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import struct
from collections.abc import Sequence

from labkit import helpers
from labkit.errors import HostUnsupported
from labkit.images.store import Image, ImageStore, rfc3339_nano

TAG = "busybox:latest"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEBIAN_BUSYBOX = "/bin/busybox"
HOST_TOOLS = (
    "sh ls cat echo mkdir rmdir rm cp mv ln chmod chown touch sleep env id hostname grep sed head tail wc "
    "true false pwd uname test printf date sort uniq tr cut ps kill which stat readlink dirname basename "
    "seq find xargs tee nc wget"
).split()
PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n"
GROUP = "root:x:0:\nnobody:x:65534:\n"


def is_static(path: str) -> bool:
    """Whether the ELF executable ``path`` needs no dynamic loader (no ``PT_INTERP`` program header, elf(5))."""
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF":
            return False
        is64 = head[4] == 2
        endian = "<" if head[5] == 1 else ">"
        if is64:
            (phoff,) = struct.unpack_from(endian + "Q", head, 32)
            phentsize, phnum = struct.unpack_from(endian + "HH", head, 54)
        else:
            (phoff,) = struct.unpack_from(endian + "I", head, 28)
            phentsize, phnum = struct.unpack_from(endian + "HH", head, 42)
        for i in range(phnum):
            f.seek(phoff + i * phentsize)
            (p_type,) = struct.unpack(endian + "I", f.read(4))
            if p_type == 3:  # PT_INTERP
                return False
    return True


_LDD_LINE = re.compile(r"^\s*(?:\S+\s+=>\s+)?(/\S+)\s+\(0x[0-9a-f]+\)\s*$")


def shared_libraries(path: str, ldd: str = "ldd") -> list[str]:
    """The shared libraries (and dynamic loader) ``path`` loads, as ``ldd`` names them.

    Raises:
        HostUnsupported: When ``ldd`` is missing or cannot resolve a library.
    """
    if is_static(path):
        return []
    try:
        out = helpers.run([ldd, path], capture_output=True, text=True, check=False).stdout
    except FileNotFoundError:
        raise HostUnsupported(f"cannot list the shared libraries of {path}: ldd is not installed") from None
    libs = []
    for line in out.splitlines():
        if "not found" in line:
            raise HostUnsupported(f"{path} needs a library the host lacks: {line.strip()}")
        m = _LDD_LINE.match(line)
        if m:
            libs.append(m.group(1))
    return sorted(set(libs))


def copy_with_libraries(binary: str, root: str, dest: str) -> list[str]:
    """Copy ``binary`` to ``root/dest`` and its shared libraries to the same paths under ``root``.

    Symlinks are followed, so each library lands as a regular file at the
    path the dynamic loader will look for (e.g. ``/lib64/ld-linux-x86-64.so.2``).

    Returns:
        The paths inside ``root`` that were written (``dest`` first).
    """
    written = [dest]
    _copy_file(binary, os.path.join(root, dest.lstrip("/")))
    for lib in shared_libraries(binary):
        target = os.path.join(root, lib.lstrip("/"))
        if not os.path.exists(target):
            _copy_file(lib, target)
            written.append(lib)
    return written


def _copy_file(src: str, dst: str) -> None:
    os.makedirs(os.path.dirname(dst), mode=0o755, exist_ok=True)
    shutil.copyfile(src, dst)  # follows symlinks: the loader wants the file at this name
    os.chmod(dst, stat.S_IMODE(os.stat(src).st_mode))


def find_source(
    source: str = "auto", debian_path: str = DEBIAN_BUSYBOX, search_path: str | None = None
) -> tuple[str, str]:
    """Choose where the base layer comes from.

    Args:
        source: ``auto`` (first that works), ``debian``, ``path`` or ``host``.
        debian_path: Where Debian's busybox-static installs busybox.
        search_path: ``PATH`` to search; default the process's.

    Returns:
        ``(kind, path)``: ``("debian", "/bin/busybox")``, ``("path", …)`` or ``("host", "")``.

    Raises:
        HostUnsupported: When the asked-for source is not on this host.
    """
    if source in ("auto", "debian") and os.path.isfile(debian_path) and is_static(debian_path):
        return "debian", debian_path
    if source in ("auto", "path"):
        found = shutil.which("busybox", path=search_path)
        if found:
            return "path", os.path.realpath(found)
    if source in ("auto", "host"):
        if shutil.which("sh", path=search_path):
            return "host", ""
    raise HostUnsupported(
        f"no {source} source for the base image on this host",
        "Install busybox-static (apt-get install busybox-static) or put a busybox binary on PATH",
    )


def _skeleton(root: str) -> None:
    """Directories and files every container expects, as in Docker's busybox image."""
    for d, mode in (
        ("bin", 0o755),
        ("dev", 0o755),
        ("etc", 0o755),
        ("home", 0o755),
        ("proc", 0o555),
        ("root", 0o700),
        ("sys", 0o555),
        ("tmp", 0o1777),
        ("usr", 0o755),
        ("usr/sbin", 0o755),
        ("var", 0o755),
        ("var/www", 0o755),
    ):
        path = os.path.join(root, d)
        os.makedirs(path, exist_ok=True)
        os.chmod(path, mode)  # chmod, not mkdir's mode: the umask must not decide /tmp's sticky bit
    for name, text in (
        ("passwd", PASSWD),
        ("group", GROUP),
        ("hostname", "labkit\n"),
        ("hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"),
    ):
        with open(os.path.join(root, "etc", name), "w") as f:
            f.write(text)
        os.chmod(os.path.join(root, "etc", name), 0o644)


def _applets(busybox: str) -> list[str]:
    out = helpers.run([busybox, "--list"], capture_output=True, text=True, check=False).stdout
    return sorted({a for a in out.split() if a and "/" not in a and a != "busybox"})


def _fix_times(root: str, epoch: int) -> None:
    """Give every entry the same mtime (and owner root), so the layer's digest depends on content only.

    Without root chown(2) to 0 is refused (EPERM), and need not be done: the user's own
    files are root's inside its containers' user namespace (user_namespaces(7)).
    """
    for cur, dirs, files in os.walk(root, topdown=False):
        for name in files + dirs:
            path = os.path.join(cur, name)
            with contextlib.suppress(PermissionError):
                os.chown(path, 0, 0, follow_symlinks=False)
            os.utime(path, (epoch, epoch), follow_symlinks=False)
    os.utime(root, (epoch, epoch))


def assemble(
    root: str, kind: str, busybox: str = "", tools: Sequence[str] = HOST_TOOLS, search_path: str | None = None
) -> int:
    """Fill the empty directory ``root`` with the base OS layer.

    Returns:
        The epoch used for every time stamp.
    """
    _skeleton(root)
    if kind in ("debian", "path"):
        copy_with_libraries(busybox, root, "/bin/busybox")
        epoch = int(os.stat(busybox).st_mtime)
        for applet in _applets(busybox):
            link = os.path.join(root, "bin", applet)
            if not os.path.lexists(link):
                os.symlink("busybox", link)
    else:
        epoch = 0
        for tool in tools:
            found = shutil.which(tool, path=search_path)
            if not found:
                continue
            copy_with_libraries(os.path.realpath(found), root, f"/bin/{tool}")
            epoch = max(epoch, int(os.stat(found).st_mtime))
        if not os.path.exists(os.path.join(root, "bin", "sh")):
            raise HostUnsupported("the host has no sh to build a base image from", "Install busybox-static")
    _fix_times(root, epoch)
    return epoch


def ensure_busybox(
    store: ImageStore,
    source: str = "auto",
    tag: str = TAG,
    debian_path: str = DEBIAN_BUSYBOX,
    search_path: str | None = None,
) -> Image:
    """Return ``busybox:latest``, building it from the host first if it is not in ``store``.

    Args:
        store: The image store.
        source: ``auto``, or force ``debian``, ``path`` or ``host`` (see :func:`find_source`).
        tag: The tag to give it.
        debian_path: Where Debian's busybox-static puts busybox.
        search_path: ``PATH`` to search for busybox and host tools.

    Returns:
        The image: one layer (comment ``base OS``), ``Env`` with the usual
        ``PATH``, ``Cmd ["sh"]``. Building twice on one host gives the same id.
    """
    if store.exists(tag):
        return store.get(tag)
    kind, busybox = find_source(source, debian_path, search_path)
    work = store.mkdtemp("busybox-")
    try:
        root = os.path.join(work, "rootfs")
        os.mkdir(root)
        epoch = assemble(root, kind, busybox, search_path=search_path)
        layer = store.commit_layer(root, comment="base OS")
        created = rfc3339_nano(epoch)
        history: list[dict] = [
            {
                "created": created,
                "created_by": f"/bin/sh -c #(nop) ADD file:{layer.digest[7:]} in / ",
                "comment": "base OS",
            },
            {"created": created, "created_by": '/bin/sh -c #(nop)  CMD ["sh"]', "empty_layer": True},
        ]
        config = {"Env": [PATH_ENV], "Cmd": ["sh"]}
        return store.add_image([layer], config, tag, history, created=created)
    finally:
        shutil.rmtree(work, ignore_errors=True)
