"""The programs labkit starts for itself, and the environment they start with: built here, never the caller's.

A container outlives the command that started it, and so do the processes
that look after it: the supervisor (``linux/shim.c``), what it runs when PID 1
ends (``python -m labkit.restarter``), a service's controller (``python -m
labkit.service``), slirp4netns or pasta; shorter ones too (``ip``, the C
compiler, ``ldd``, newuidmap). As root they run as root, whoever's
environment the ``labkit`` command carried — after ``su`` without ``-`` that
is another user's, and through the resident engine (:mod:`labkit.daemon.server`) a
command's environment is the one its caller sent. Variables the dynamic
loader and interpreters obey would then put that user's code in a root
process: ``LD_PRELOAD`` and ``LD_LIBRARY_PATH`` (ld.so(8)), ``PYTHONPATH``,
``PYTHONHOME``, ``PYTHONSTARTUP`` (python(1)), ``BASH_ENV``, ``ENV`` and
``IFS`` (sh(1)), a ``PATH`` that leads to the user's own ``ip``. As
``dockerd`` starts its shims and helpers with an environment of its own,
:func:`environ` builds the one every helper gets, from nothing:

* ``PATH``: as root, the fixed :data:`SAFE_PATH`. Rootless, the user's own
  ``PATH`` (its absolute entries only: an empty entry or ``.`` would mean the
  working directory): the helpers run with the user's rights and nobody
  else's, and a user may keep a slirp4netns, pasta or newuidmap of their own.
* ``LANG``/``LC_ALL``: ``C.UTF-8``, so a helper's messages, which labkit
  reads and repeats, are the same words on every host.
* ``PYTHONPATH``: the directory this ``labkit`` package was imported from,
  so that ``python -m labkit.restarter`` runs the same labkit as the engine
  that started it, and nothing else; ``PYTHONSAFEPATH`` keeps the working
  directory off its ``sys.path`` (and :func:`spawn_detached` starts helpers
  in ``/``).
* what labkit's own helpers read: :data:`PASSED` (the bridge idle time).

Nothing else passes. The container's own environment is another thing
altogether: it comes from the image and ``-e``, and reaches only the
container's processes (``pid1.c`` execs them with exactly that list).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import Any

#: The PATH of a helper started as root (Docker's default PATH, which runc gives a container too).
SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#: The C compilers labkit's own programs (the shim, the client, ``--init``) are built with, the first found.
COMPILERS = ("cc", "gcc", "clang")

#: Variables of the caller's that labkit's own helpers read (an engine started by a restarter or a
#: service's controller keeps the caller's bridge idle time); plain numbers, nothing a loader obeys.
PASSED = ("LABKIT_BRIDGE_IDLE",)

#: The directory the running ``labkit`` package was imported from (what a Python helper must import).
_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def environ(caller: Mapping[str, str] | None = None, euid: int | None = None) -> dict[str, str]:
    """The environment every helper process starts with (see the module's docstring).

    Args:
        caller: The environment of the command that needs the helper; default
            this process's. Only :data:`PASSED` and, rootless, ``PATH`` are
            read from it.
        euid: Whose helper it is; default this process's effective uid.
    """
    caller = os.environ if caller is None else caller
    euid = os.geteuid() if euid is None else euid
    path = SAFE_PATH
    if euid != 0:
        mine = [d for d in caller.get("PATH", "").split(":") if d.startswith("/")]
        path = ":".join(mine) or SAFE_PATH
    env = {"PATH": path, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
           "PYTHONPATH": _PACKAGE_PARENT, "PYTHONSAFEPATH": "1"}
    env.update((key, caller[key]) for key in PASSED if key in caller)
    return env


def python(module: str, *args: str) -> list[str]:
    """The command line that runs ``python -m module args…`` with this interpreter (with :func:`environ`)."""
    return [sys.executable, "-m", module, *args]


def which(name: str) -> str | None:
    """Where a helper's program is, looked up in the ``PATH`` of :func:`environ` (never the caller's, as root)."""
    return shutil.which(name, path=environ()["PATH"])


def run(argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[Any]:
    """:func:`subprocess.run` of a short-lived helper (``ip``, ``ldd``, the compiler, newuidmap) with :func:`environ`."""
    return subprocess.run(list(argv), env=environ(), **kwargs)


def spawn_detached(argv: Sequence[str], fds: Sequence[int] = (), log_path: str | None = None,
                   stdin: int | None = None) -> int:
    """Start ``argv`` in ``/``, in a session of its own, with :func:`environ`, re-parented to init at once.

    A first fork starts the helper and exits, so the helper is nobody's child:
    no zombie waits on the caller, and it outlives the caller. ``fds`` stay
    open in it; its output goes to ``log_path`` (else nowhere) and its input
    comes from ``stdin`` (else nothing). Returns the helper's PID, or 0 if it
    could not be started.
    """
    env = environ()
    r, w = os.pipe()
    first = os.fork()
    if first == 0:
        try:
            os.close(r)
            out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115  (closed by _exit)
            proc = subprocess.Popen(list(argv), pass_fds=tuple(fds), start_new_session=True, env=env, cwd="/",
                                    stdin=subprocess.DEVNULL if stdin is None else stdin, stdout=out, stderr=out)
            os.write(w, str(proc.pid).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        text = f.read()
    os.waitpid(first, 0)
    return int(text) if text.isdigit() else 0


#: The user-mode network helpers that can give a rootless container a network, in the order labkit prefers.
NETWORK_HELPERS = ("slirp4netns", "pasta")


def network_helper() -> str | None:
    """The user-mode network helper rootless containers use here (and the simulator models): ``slirp4netns``,
    else ``pasta``, or None."""
    return next((h for h in NETWORK_HELPERS if which(h)), None)

