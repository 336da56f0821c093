"""Which backend runs here, and why: ``auto`` tries root, then rootless, then the simulator.

The engine is given a :class:`~labkit.backend.Backend` and never asks which one
it holds; this module is the one place that knows them all by name and chooses:

* ``linux``: real containers as root (namespaces, overlayfs, cgroups);
* ``rootless``: real containers in a user namespace of an unprivileged user;
* ``sim``: the simulator, where neither can run (no Linux, no root and no user
  namespaces, no C compiler for the supervisor) or when asked for;
* ``auto``: the first of these the host allows, with the reason in one sentence.

It also says where each one keeps its state (:func:`default_root`): each backend
is a world of its own, as root's and a user's are with Podman.

The backends are imported when one is chosen, not with this module: ``import
labkit`` stays light, and a process that only reads state loads no kernel code.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from labkit import helpers
from labkit.backend import Backend
from labkit.errors import HostUnsupported, InvalidArgument
from labkit.store import Store

if TYPE_CHECKING:
    from labkit.images.ownership import Ownership
    from labkit.sim.base import IdMapping

DEFAULT_ROOT = "/var/lib/labkit"

__all__ = ["DEFAULT_ROOT", "choose", "default_root", "linux_problem"]


def default_root(backend: Backend | str = "auto") -> str:
    """The state root: ``$LABKIT_ROOT``; else ``/var/lib/labkit`` as root; rootless
    ``$XDG_DATA_HOME/labkit`` (``~/.local/share/labkit``); for the simulator ``…/labkit/sim``.
    Each is a world of its own, as root's and a user's are with Podman."""
    if os.environ.get("LABKIT_ROOT"):
        return os.environ["LABKIT_ROOT"]
    from labkit.linux import supervisor  # kernel code is loaded once a real backend may run, not with labkit

    def real(root: str, rootless: bool = False) -> bool:  # auto: the real backend runs here, and can start containers
        return linux_problem(rootless) is None and supervisor.problem(os.path.join(root, "bin")) is None

    if backend == "linux" or (backend == "auto" and real(DEFAULT_ROOT)):
        return DEFAULT_ROOT
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    if backend == "rootless" or (backend == "auto" and real(os.path.join(data, "labkit"), rootless=True)):
        return os.path.join(data, "labkit")
    return os.path.join(data, "labkit", "sim")


def choose(backend: Backend | str, store: Store) -> tuple[Backend, str]:
    """The backend named by ``backend`` (``auto``, ``linux``, ``rootless`` or ``sim``) on ``store``, and why.

    A backend object is used as given. ``auto`` picks the real backend when the host allows
    it and says why not otherwise; a backend asked for by name that cannot run here is
    refused in one sentence.

    Raises:
        HostUnsupported: ``linux`` or ``rootless`` was asked for and cannot run here.
        InvalidArgument: No backend has that name.
    """
    if not isinstance(backend, str):
        return backend, "given"
    if backend == "sim":
        return _sim(store), "the simulator, as asked: every step is modelled in Python, nothing touches the kernel"
    if backend not in ("auto", "linux", "rootless"):
        raise InvalidArgument(f"unknown backend {backend!r}", "Use auto, linux, rootless or sim")
    # Kernel code is loaded once a real backend may run, not with labkit: the simulator never needs it, and
    # labkit.linux imports on Linux alone (syscalls.py binds unshare(2) from libc, which only Linux has).
    from labkit.linux import supervisor
    from labkit.linux.backend import LinuxBackend

    # Without a C compiler (and no shim built before) no real container can start: ``auto`` picks
    # the simulator and says why; a backend asked for by name refuses create and start in one sentence.
    no_shim = supervisor.problem(str(store.root / "bin")) if backend == "auto" else None
    problem = linux_problem()
    if problem is None and no_shim and backend == "auto":
        return _sim(store), f"the simulator, because real containers cannot start here: {no_shim}"
    if problem is None and backend != "rootless":
        return LinuxBackend(store), "root on Linux with overlayfs and cgroups: real containers"
    if backend == "linux":
        raise HostUnsupported(f"the linux backend cannot run here: {problem}",
                              "Run as root (sudo), or without root: labkit --backend rootless "
                              "(or the simulator: labkit --backend sim)")
    unprivileged = linux_problem(rootless=True) or no_shim
    if unprivileged is None:
        real = LinuxBackend(store, rootless=True)
        limits = ("limits and pause in your delegated cgroup" if real.delegated is not None
                  else "no cgroup is delegated to you, so no limits, and pause stops processes with SIGSTOP")
        why = "as asked" if backend == "rootless" else f"not root (uid {os.geteuid()})"
        return real, (f"rootless, {why}: real containers in a user namespace where you are root "
                      f"({real.idmap.describe()}); {limits}; "
                      + (f"the default network and -p through {helper}" if (helper := helpers.network_helper())
                         else "networks none and host (install slirp4netns for more)"))
    if backend == "rootless":
        raise HostUnsupported(f"rootless containers cannot run here: {unprivileged}",
                              "Run 'labkit doctor' to see why, or use the simulator: labkit --backend sim")
    return _sim(store), (f"the simulator, because real containers cannot run here: {problem}; "
                         f"nor rootless: {unprivileged}")


def _sim(store: Store) -> Backend:
    from labkit.sim.backend import SimBackend  # the simulator's kernel is loaded when it is chosen

    ownership, id_map = _sim_user()
    return SimBackend(store, ownership=ownership, id_map=id_map)


def _sim_user() -> tuple[Ownership | None, IdMapping | None]:
    """For a user on Linux, the id map the simulator models, as the user's rootless containers get it (a
    subordinate range with newuidmap where one is granted): who owns its image layers, and the map its
    user namespace step shows. None, None elsewhere: the simulator's defaults (the host's ids as root, a
    user's own id alone)."""
    if os.geteuid() == 0 or not sys.platform.startswith("linux"):
        return None, None
    # labkit.linux imports on Linux alone (syscalls.py binds unshare(2)); loaded once the simulator is chosen
    from labkit.linux import namespaces, ownership

    m = namespaces.id_map()
    return ownership.MappedIds(m), (m.uid, m.gid, m.uid_range, m.gid_range)


#: The rootless probe's answer, per effective uid: asked once per process (the resident engine asks before it
#: forks its workers, so a command inherits it rather than forking a probe of its own, twice: for the state
#: root and for the backend). ``labkit doctor`` probes afresh.
_ROOTLESS_PROBED: dict[int, str | None] = {}


def linux_problem(rootless: bool = False) -> str | None:
    """Why the real backend cannot run on this host (as root, or ``rootless`` in a user namespace), or ``None``."""
    if not sys.platform.startswith("linux"):
        return f"this is {sys.platform}, and containers are a Linux kernel feature"
    if os.geteuid() != 0 and not rootless:
        return "it needs root to create namespaces, mount overlayfs and write cgroups"
    # Kernel code is loaded once a real backend is asked about, not with labkit.
    if rootless:  # its probe mounts overlayfs in a user namespace, which loads the module if need be
        # labkit.linux loads only once a real backend may run (syscalls.py binds unshare(2), which only Linux has)
        from labkit.linux.namespaces import userns_problem

        euid = os.geteuid()
        if euid not in _ROOTLESS_PROBED:
            _ROOTLESS_PROBED[euid] = userns_problem()
        return _ROOTLESS_PROBED[euid]
    # labkit.linux loads only once a real backend may run (syscalls.py binds unshare(2), which only Linux has)
    from labkit.linux import overlay

    if not overlay.load():
        return "the kernel has no overlayfs ('modprobe overlay' did not load it)"
    return None
