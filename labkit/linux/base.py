"""What every room of the real backend stands on: its state, its cgroups, and a process entering a container.

:class:`LinuxBase` holds what the other rooms share: the state store and the
shim's directory, the cgroup layout (the host's hierarchies, or rootless the
delegated v2 subtree, cgroups(7)) and each container's group in it, the
overlay layers of a container (:mod:`labkit.linux.overlay`), and what confines
a process of a container — its capabilities (capabilities(7)), its seccomp
program (seccomp(2)), its rlimits (setrlimit(2)) — with ``exec``, which
setns(2)s one more process into a running container. The rooms built on it
(:mod:`labkit.linux.networking`, :mod:`labkit.linux.rootfs`,
:mod:`labkit.linux.views`) and the lifecycle (:mod:`labkit.linux.backend`)
make :class:`labkit.linux.backend.LinuxBackend`.
"""

from __future__ import annotations

import functools
import os
import socket
import tempfile
import time
from typing import IO, cast

from labkit.errors import InvalidArgument, NotFound, StartFailed
from labkit.images.ownership import HostIds, Ownership
from labkit.linux import capabilities, cgroups, devices, namespaces, overlay, ownership, process, seccomp, supervisor
from labkit.linux import console as terminal
from labkit.model import events, hostconfig
from labkit.model.container import ContainerRecord, process_env
from labkit.store import Store

#: Where `run --init` mounts labkit's tiny init (Docker uses /sbin/docker-init).
INIT_PATH = "/sbin/labkit-init"
#: The cgroup controllers behind ``--memory``, ``--pids-limit`` and ``--cpus``.
LIMIT_CONTROLLERS = ("memory", "pids", "cpu")


class LinuxBase:
    """The real backend's state, cgroups and confinement, shared by its rooms (see the module docstring)."""

    name = "linux"
    simulated = False
    #: ``--restart`` is applied by the restarter the supervisor execs (:mod:`labkit.restarter`).
    restarts_itself = False

    def __init__(self, store: Store, cgroup_layout: cgroups.Layout | None = None, rootless: bool = False) -> None:
        self.store = store
        self._layout = cgroup_layout
        self.rootless = rootless
        #: As root, a network is a bridge on the host; rootless, no veth can reach one (see LinuxBackend).
        self.host_bridges = not rootless
        self._t0 = time.monotonic()
        if rootless:
            self.name = "rootless"
            self.idmap = namespaces.id_map()
            self._delegated: cgroups.Layout | None | bool = cgroup_layout if cgroup_layout else False
        #: Who owns image layers' files as this backend's containers see them (:mod:`labkit.images.ownership`).
        self.ownership: Ownership = ownership.MappedIds(self.idmap) if rootless else HostIds()
        self.emit: events.Emit = events.noop  # the engine sets its recorder here
        # Docker's device rules for a root container, set through both mechanisms the host has
        # (labkit.linux.devices). Tests alone change these, to show each mechanism holds by itself
        # and that the probe they stop works without them.
        self.device_rules: tuple[devices.Rule, ...] | None = devices.DOCKER_DEFAULT
        self.device_mechanisms: tuple[str, ...] = devices.MECHANISMS
        #: Whether this kernel takes overlayfs's lower layers one by one ("lowerdir+", Linux >= 6.8) for an image
        #: too deep for a page of mount options; None until the first such image is mounted and finds out
        #: (:func:`labkit.linux.overlay.mount_at`). False mounts every deep stack by descriptors instead, as on an
        #: older kernel: tests set it so to run that path on any kernel. Rootless, PID 1 is told False, else it
        #: tries "lowerdir+" first itself (pid1.c, mount_overlay).
        self.lowerdir_plus: bool | None = None
        self.shim_dir = str(store.root / "bin")  # the compiled supervisor and init, cached per state root
        self._seen: dict[str, set[tuple[str, str]]] = {}
        #: Per container started here: the pipe its supervisor closes once the exit is recorded (process.start's
        #: watch_exit), read by wait_recorded; closed when the end is seen or the container goes.
        self._exit_fds: dict[str, int] = {}

    @property
    def layout(self) -> cgroups.Layout:
        if self._layout is None:
            self._layout = cgroups.detect()
        return self._layout

    def clock(self) -> float:
        """Seconds on the host's monotonic clock since this backend was made."""
        return time.monotonic() - self._t0

    def cgroup_version(self) -> str:
        return {"v1": "1", "hybrid": "1", "v2": "2"}.get(self.layout.version, "")

    def security_options(self) -> list[str]:
        """Every real container runs under the builtin seccomp profile, in a cgroup namespace of its own,
        and rootless ones in a user namespace."""
        return ["name=seccomp,profile=builtin", *(["name=rootless"] if self.rootless else []), "name=cgroupns"]

    @property
    def delegated(self) -> cgroups.Layout | None:
        """Rootless: the cgroup v2 subtree this user may manage, or None (no limits, pause by SIGSTOP)."""
        if self._delegated is False:
            self._delegated = cgroups.delegated(join=True)  # into labkit's systemd scope, if any
        return self._delegated  # type: ignore[return-value]

    # -- paths ---------------------------------------------------------------------------------
    def _layers(self, record: ContainerRecord, image_lowers: list[str]) -> overlay.Layers:
        return overlay.layers_for(self.store.layer_dir(record.id), self.store.init_dir(record.id), image_lowers)

    def _placeholders(self, record: ContainerRecord) -> tuple[str, ...]:
        return (INIT_PATH,) if record.config.init else ()

    # -- cgroups -------------------------------------------------------------------------------
    def unenforced_limits(self) -> dict[str, str]:
        if self.rootless and self.delegated is None:
            why = "no cgroup v2 subtree is delegated to this user, so nothing can enforce it (see 'labkit doctor')"
            return dict.fromkeys(LIMIT_CONTROLLERS, why)
        layout = self._cgroup_layout
        assert layout is not None
        where = "the cgroup delegated to this user has" if self.rootless else "this host's cgroups have"
        return {c: f"{where} no {c} controller" for c in LIMIT_CONTROLLERS if c not in layout.controllers}

    def _create_group(self, name: str, limits: cgroups.Limits, privileged: bool = False) -> cgroups.Cgroup | None:
        """The container's cgroup; rootless only in a delegated subtree, with the limits its controllers allow.
        ``--privileged`` lets it make and open every device (Docker's ``a *:* rwm``)."""
        if not self.rootless:
            rules = devices.ALLOW_ALL if privileged and self.device_rules is not None else self.device_rules
            # The disk of the state root holds the writable layers and volumes: its I/O is what stats counts.
            disk = cgroups.disk_of(str(self.store.root))
            return cgroups.Cgroup.create(self.layout, name, limits, devices=rules,
                                         device_mechanisms=self.device_mechanisms,
                                         count_io_on=(disk,) if disk else ())
        layout = self.delegated
        if layout is None:
            return None  # no cgroup this user may write: no limits ('labkit doctor' says so)
        have = layout.controllers
        return cgroups.Cgroup.create(layout, name, cgroups.Limits(
            memory=limits.memory if "memory" in have else None,
            memory_swap=limits.memory_swap if "memory" in have else None,
            nano_cpus=limits.nano_cpus if "cpu" in have else None,
            pids_limit=limits.pids_limit if "pids" in have else None,
        ))

    @property
    def _cgroup_layout(self) -> cgroups.Layout | None:
        """Where this backend's groups live: the host's hierarchies, or rootless the delegated subtree (or none)."""
        return self.delegated if self.rootless else self.layout

    def _group(self, record: ContainerRecord) -> cgroups.Cgroup:
        layout = self._cgroup_layout
        if layout is None:
            raise NotFound(f"container {record.id[:12]} has no cgroup", "Rootless without a delegated cgroup.")
        return cgroups.Cgroup.open(layout, record.id)

    def _group_or_none(self, record: ContainerRecord) -> cgroups.Cgroup | None:
        try:
            return self._group(record)
        except NotFound:
            if not self.rootless:
                raise
            return None

    # -- a process entering the container --------------------------------------------------------
    def exec(self, record: ContainerRecord, argv: list[str], env: list[str], workdir: str,
             stdout: IO[bytes] | int | None, stderr: IO[bytes] | int | None,
             stdin: IO[bytes] | int | None = None, tty: bool = False,
             detach_keys: bytes = b"\x10\x11", user: str = "", detach: bool = False) -> int | None:
        group = self._group_or_none(record)
        c = record.config
        caps = self._caps(record)
        who = user or c.user
        return process.exec_in(record.state.pid, argv, process_env(env, c.hostname, tty, home=None if who else "/root"),
                               workdir,
                               cgroup_procs=group.procs_files if group else (), stdout=stdout, stderr=stderr,
                               stdin=stdin, supervisor_argv=supervisor.command(self.shim_dir),
                               seccomp=self._seccomp(c.security_opt, caps, c.privileged), tty=tty,
                               detach_keys=detach_keys, caps=capabilities.mask(caps), user=who,
                               rlimits=rlimits(c.ulimits), detach=detach)

    def attach(self, record: ContainerRecord, stdin: int | None, stdout: int, detach_keys: bytes,
               connection: socket.socket | None = None) -> bool:
        """Relay PID 1's terminal, which its supervisor holds (:mod:`labkit.linux.console`)."""
        if connection is None:
            try:
                connection = terminal.connect(str(self.store.container_dir(record.id)))
            except OSError:
                return False  # its supervisor listens no more: the container has just ended
        with connection:
            return terminal.relay(connection, stdin, stdout, detach_keys)

    def _exec_text(self, record: ContainerRecord, argv: list[str], workdir: str = "/") -> tuple[int, str]:
        """Run ``argv`` in the container: its exit code and what it printed (stdout and stderr together)."""
        with tempfile.TemporaryFile() as out:
            code = self.exec(record, argv, list(record.config.env), workdir, out, out)
            out.seek(0)
            return cast(int, code), out.read().decode(errors="replace")  # without a terminal: always a code

    def _sh(self, record: ContainerRecord, script: str) -> tuple[int, str]:
        """``/bin/sh -c script`` in the container (see :meth:`_exec_text`)."""
        return self._exec_text(record, ["/bin/sh", "-c", script])

    def stdin_sink(self, record: ContainerRecord) -> int | None:
        """PID 1's stdin pipe opened for writing through ``/proc/PID/fd/0``: opening a pipe's proc link opens
        the pipe itself, in the mode asked (proc(5), fs/pipe.c fifo_open), whichever end the link names."""
        if not record.config.open_stdin or record.config.tty:
            return None
        try:
            return os.open(f"/proc/{record.state.pid}/fd/0", os.O_WRONLY | os.O_CLOEXEC)
        except OSError:
            return None  # it has just ended, or its stdin is no pipe

    def _caps(self, record: ContainerRecord) -> frozenset[str]:
        """The capabilities the container's processes keep: Docker's default set as ``--cap-add``,
        ``--cap-drop`` and ``--privileged`` change it, up to the last one this kernel has."""
        c = record.config
        caps = hostconfig.capability_set(c.cap_add, c.cap_drop, c.privileged, _last_cap())
        if c.privileged or any(name.strip().upper() == "ALL" for name in c.cap_add):
            # "Every capability" is every one labkit holds itself: a host may withhold some (CAP_SYS_RESOURCE
            # here), and capset(2) cannot give what the bounding set lacks.
            caps &= frozenset(capabilities.names_of(_own_bounding_set()))
        withheld = sorted(caps - frozenset(capabilities.names_of(_own_bounding_set())), key=capabilities.NAMES.index)
        if withheld:
            # capset(2) cannot raise a capability above the caller's bounding set (capabilities(7)): runc's words.
            raise StartFailed("unable to apply caps: operation not permitted", 125,
                              f"This host withholds CAP_{withheld[0]} from labkit itself (CapBnd in /proc/self/status), "
                              f"so no container of it can be given CAP_{withheld[0]}; run without --cap-add {withheld[0]}")
        return caps

    def _seccomp(self, security_opt: tuple[str, ...], caps: frozenset[str] = capabilities.DOCKER_DEFAULT,
                 privileged: bool = False) -> str | None:
        """The BPF program file of a container's seccomp profile (``None``: unconfined, as ``--privileged``
        is), compiled once per profile and capability set into ``ROOT/seccomp`` (see
        :mod:`labkit.linux.seccomp`): Docker's profile lets through what the capabilities kept allow."""
        if privileged:
            return None
        try:
            return seccomp.program(security_opt, caps, self.store.root / "seccomp")
        except (OSError, InvalidArgument) as err:
            raise StartFailed(f"error during container init: error loading seccomp filter: {err}", 128) from None


def rlimits(ulimits: tuple[tuple[str, int, int], ...]) -> tuple[tuple[int, int, int], ...]:
    """``--ulimit``s as the shim's ``--rlimit`` takes them: (RLIMIT_* number, soft, hard)."""
    return tuple((hostconfig.RLIMITS[name], soft, hard) for name, soft, hard in ulimits)


@functools.cache
def _own_bounding_set() -> int:
    """This process's bounding set (``CapBnd`` of ``/proc/self/status``, proc(5)), read once: labkit never
    drops from it (prctl(2) PR_CAPBSET_DROP), and a forked worker inherits it unchanged."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapBnd:"):
                return int(line.split()[1], 16)
    return capabilities.mask(capabilities.NAMES)


@functools.cache
def _last_cap() -> int:
    """The highest capability number this kernel knows (``/proc/sys/kernel/cap_last_cap``), read once."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except (OSError, ValueError):
        return len(capabilities.NAMES) - 1
