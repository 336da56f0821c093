"""The container supervisor and its helpers: small C programs, built on first use.

Every running container has a supervisor, the parent of its PID 1: the C
shim (``shim.c``). It starts the container (``pid1.c`` builds it around PID 1),
copies the container's stdout and stderr into a json-file log, relays its
published ports, reaps PID 1, writes ``exit.json`` and cleans up the mounts
and cgroups; with ``--exec-pid`` it runs ``docker exec`` instead. It must
outlive whoever started the container (a notebook kernel that restarts, a
CLI that exits), and there is one per container, so it costs little (~0.2 MB
private memory). The container is built by that C program only: there is no
second, Python copy of the steps that decide where a mount lands or which
capabilities stay.

The programs are compiled once with the host's C compiler (cc, gcc or
clang) into a cache directory, named after a hash of their source. A host
with neither a compiler nor a shim built before cannot start real containers:
:func:`command` raises :class:`~labkit.errors.HostUnsupported` in one sentence
(:func:`problem` says it beforehand, for ``labkit doctor`` and the choice of
backend).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

from labkit import helpers
from labkit.errors import HostUnsupported

#: Where the compiled shim is cached unless ``LABKIT_SHIM_DIR`` or an argument says otherwise.
DEFAULT_SHIM_DIR = "/var/lib/labkit/bin"

_SHIM_PARTS = ("pid1.c", "pid1.h", "console.c", "console.h")
_commands: dict[tuple[str, str], list[str]] = {}


def build_shim(shim_dir: str | None = None, compiler: str | None = None) -> str | None:
    """Compile ``shim.c`` (with ``pid1.c``) once and return the binary's path, or None without a C compiler.

    Linked statically where the C library allows it (libc6-dev's libc.a): every start execs the shim
    and forks it twice (the supervisor, PID 1), and a static binary skips the dynamic loader's work
    at each exec and has fewer mappings to copy at each fork. Without libc.a it is linked as usual.
    See :func:`build_program`."""
    return (build_program("shim", shim_dir, compiler, static=True, parts=_SHIM_PARTS)
            or build_program("shim", shim_dir, compiler, parts=_SHIM_PARTS))


def build_init(shim_dir: str | None = None, compiler: str | None = None) -> str | None:
    """Compile ``init.c`` statically (an image need not have a C library), or None if that is impossible."""
    return build_program("init", shim_dir, compiler, static=True)


def build_program(name: str, shim_dir: str | None = None, compiler: str | None = None,
                  static: bool = False, parts: tuple[str, ...] = ()) -> str | None:
    """Compile ``<name>.c`` from this package once and return the binary's path, or None.

    The binary is named after a hash of the source, so a changed source gets
    a new binary and old ones are never used. It is compiled to a temporary
    name and renamed into place, so concurrent starters never run half a file.

    Args:
        shim_dir: Cache directory; defaults to ``$LABKIT_SHIM_DIR`` or
            :data:`DEFAULT_SHIM_DIR`.
        compiler: The C compiler to use; defaults to the first of cc, gcc,
            clang on PATH.
        parts: More files of this package the program is built from (``.c``
            files are compiled with it, headers only hashed).
    """
    directory = shim_dir or os.environ.get("LABKIT_SHIM_DIR") or DEFAULT_SHIM_DIR
    binary, files = _binary(name, directory, parts)
    if os.access(binary, os.X_OK):
        return binary
    cc = compiler or compiler_on_path()
    if cc is None:
        return None
    os.makedirs(directory, exist_ok=True)
    tmp = f"{binary}.{os.getpid()}.tmp"
    try:
        flags = ["-static"] if static else []
        sources = [path for path in files if path.endswith(".c")]
        helpers.run([cc, "-std=gnu99", "-O2", *flags, "-o", tmp, *sources], check=True, capture_output=True)
        os.replace(tmp, binary)
    except (OSError, subprocess.CalledProcessError):
        if os.path.exists(tmp):
            os.unlink(tmp)
        return None
    return binary


def compiler_on_path() -> str | None:
    """The first C compiler of :data:`labkit.helpers.COMPILERS` where helpers are looked for, or None.

    As root that is :data:`labkit.helpers.SAFE_PATH`, never the caller's PATH; rootless, the user's own.
    """
    return next(filter(None, map(helpers.which, helpers.COMPILERS)), None)


def _binary(name: str, directory: str, parts: tuple[str, ...] = ()) -> tuple[str, list[str]]:
    """The cached binary of ``<name>.c`` (and ``parts``) in ``directory``, named after their hash; and the files."""
    here = os.path.dirname(os.path.abspath(__file__))
    files = [os.path.join(here, f"{name}.c"), *(os.path.join(here, part) for part in parts)]
    return os.path.join(directory, f"labkit-{name}-{source_digest(tuple(files))}"), files


_digests: dict[tuple[tuple[str, int, int, int], ...], str] = {}


def source_digest(files: tuple[str, ...]) -> str:
    """The hash that names the binary of ``files``: read and hashed once per version of them.

    A version is told by each file's inode, size and modification time (stat(2)), so an
    edited source is hashed again and gets its new binary, while a command that asks
    again (each ``run`` does, in a fresh worker of the resident engine that inherits
    this cache) costs a stat per file instead of reading and hashing them all.
    """
    key = tuple((path, st.st_ino, st.st_size, st.st_mtime_ns) for path in files for st in (os.stat(path),))
    digest = _digests.get(key)
    if digest is None:
        hasher = hashlib.sha256()
        for path in files:
            with open(path, "rb") as f:
                hasher.update(f.read())
        digest = _digests[key] = hasher.hexdigest()[:16]
    return digest


#: What a host that cannot build the shim is told (:func:`problem`, :func:`command`).
NO_COMPILER = ("labkit starts real containers with a small C program of its own (labkit-shim) that it compiles "
               "on first use, and this host has no C compiler (cc, gcc or clang)")
NO_COMPILER_HINT = "Install one (apt-get install gcc libc6-dev), or use the simulator: labkit --backend sim"


def hash_sources() -> None:
    """Hash the shim's and init's sources now (:func:`source_digest`): the resident engine does it once
    ahead, and every worker it forks inherits the answers."""
    for name, parts in (("shim", _SHIM_PARTS), ("init", ())):
        _binary(name, "", parts)


def built_shim(shim_dir: str | None = None) -> str | None:
    """The shim of this labkit's source, if it was compiled into ``shim_dir`` before; else None."""
    directory = shim_dir or os.environ.get("LABKIT_SHIM_DIR") or DEFAULT_SHIM_DIR
    binary = _binary("shim", directory, _SHIM_PARTS)[0]
    return binary if os.access(binary, os.X_OK) else None


def built_init(shim_dir: str | None = None) -> str | None:
    """``labkit-init`` (``run --init``), if it was compiled into ``shim_dir`` before; else None."""
    directory = shim_dir or os.environ.get("LABKIT_SHIM_DIR") or DEFAULT_SHIM_DIR
    binary = _binary("init", directory)[0]
    return binary if os.access(binary, os.X_OK) else None


def problem(shim_dir: str | None = None) -> str | None:
    """Why no container can start here for want of the shim (no compiler, none built before), or None."""
    if compiler_on_path():
        return None
    return None if built_shim(shim_dir) else NO_COMPILER


def command(shim_dir: str | None = None) -> list[str]:
    """The argv prefix of the supervisor: the C shim, built if it is not yet.

    Raises:
        HostUnsupported: It is not built, and there is no C compiler to build it.
    """
    directory = shim_dir or os.environ.get("LABKIT_SHIM_DIR") or DEFAULT_SHIM_DIR
    key = (directory, sys.executable)
    if key not in _commands or not os.access(_commands[key][0], os.X_OK):
        binary = build_shim(directory)
        if binary is None:
            raise HostUnsupported(NO_COMPILER if not compiler_on_path() else
                                  f"labkit-shim could not be compiled in {directory}", NO_COMPILER_HINT)
        _commands[key] = [binary]
    return list(_commands[key])
