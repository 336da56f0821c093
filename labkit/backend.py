"""The seam between the engine and a backend: the whole of what the engine, the graders and the pictures ask of one.

The engine owns names, ids, the lifecycle table, images and volumes; a backend
owns the side effects: the writable layer, the process, its limits, its
network. Two backends implement :class:`Backend` with the same module names per
kernel concept (namespaces, overlay, cgroups, network, process): ``linux`` does
it with the real kernel (as root, or rootless in a user namespace), ``sim`` in
pure Python. The engine holds a ``Backend`` and never asks which one it has;
where backends differ in what they can do, a member answers the question
(:attr:`Backend.simulated`, :attr:`Backend.host_bridges`,
:meth:`Backend.service_problem`, :meth:`Backend.layer_model`), the way httpx's
client holds a ``BaseTransport`` whether it talks to a socket or a mock.

The pictures ask a backend three things, so that they draw the same on both:
what a writable layer holds (:meth:`Backend.layer_contents`), which files the
container sees (:meth:`Backend.files`), and its cgroup counters over time
(:meth:`Backend.meter`, a :class:`Meter`). The real backend reads the upper
dir, runs ``find`` inside the container and reads the cgroup files against
the host's clock; the simulator reads its model against its simulated clock.

The values a backend answers with (:class:`Launched`, :class:`Exited`,
:class:`CgroupReading`) are plain data in :mod:`labkit.model.runtime`;
``tests/contract/test_protocol.py`` holds both backends to this Protocol.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any, Protocol

from labkit.model.container import ContainerRecord, EndpointSpec
from labkit.model.events import Emit
from labkit.model.overlay import LayerContents, Overlay
from labkit.model.runtime import CgroupReading, Exited, Launched, Restarted
from labkit.model.views import NetworkView, ProcessView

if TYPE_CHECKING:
    from labkit.errors import LabkitError
    from labkit.images.ownership import Ownership
    from labkit.images.store import Image, ImageStore

__all__ = ["Backend", "CgroupReading", "Exited", "Launched", "Meter", "Restarted"]


class Meter(Protocol):
    """A running container's cgroup counters and the clock they are read against.

    The real backend's clock is the host's and :meth:`pause` sleeps; the simulator's
    clock is simulated time and :meth:`pause` lets that much of it pass (the
    container's processes run meanwhile), so readings taken one pause apart make
    a curve on either.
    """

    def clock(self) -> float:
        """Seconds on the meter's clock now."""

    def read(self) -> CgroupReading | None:
        """The counters now; ``None`` once the group is gone (PID 1 has ended)."""

    def pause(self, seconds: float) -> None:
        """Let ``seconds`` pass on the meter's clock (less if PID 1 ends first)."""


class Backend(Protocol):
    """What the engine asks of a backend. Every container verb takes the container's record."""

    #: ``linux``, ``rootless`` or ``sim``: what ``labkit info`` and ``version`` report.
    name: str
    #: The kernel is a model: a container has no ``/proc`` entry, no files and no sockets on this host,
    #: and the lessons read the model where they would read the host.
    simulated: bool
    #: Containers run in a user namespace of an unprivileged user (user-mode networking, delegated cgroups).
    rootless: bool
    #: Networks are bridge interfaces on this host, which the engine takes down once idle (:meth:`drop_bridge`).
    host_bridges: bool
    #: The backend applies ``--restart`` itself, on its own clock (the simulator): :meth:`observe` tells the
    #: engine what the policy did (a :class:`Restarted`), a ``restarting`` record included. Otherwise a
    #: restarter process applies it through the engine (:meth:`labkit.engine.Engine.apply_restart_policy`).
    restarts_itself: bool
    #: Where the backend reports each step it takes; the engine sets its recorder here.
    emit: Emit
    #: Who owns image layers' files as this backend's containers see them; the image store reads,
    #: removes and chowns layers through it (:mod:`labkit.images.ownership`).
    ownership: Ownership

    # -- the lifecycle -----------------------------------------------------------------------------
    def create(self, record: ContainerRecord, image: Image) -> None:
        """Make the writable layer and the per-container files."""

    def start(self, record: ContainerRecord, image: Image, console: socket.socket | None = None,
              stdin: int | None = None) -> Launched:
        """Mount, limit and launch PID 1. Raises StartFailed if the command cannot run.

        ``console``: for a container with a terminal (``config.tty``), one end of a ``SOCK_SEQPACKET``
        socket pair that the terminal's supervisor takes as its first caller before PID 1 runs
        (``run -it``); the other end goes to :meth:`attach`.

        ``stdin``: for a container with ``config.open_stdin`` and no terminal (``run -i``), a descriptor
        whose bytes are PID 1's input until its end; None keeps PID 1's stdin open with nothing written
        (``run -di``). Without ``open_stdin`` PID 1's stdin is /dev/null.
        """

    def attach(self, record: ContainerRecord, stdin: int | None, stdout: int, detach_keys: bytes,
               connection: socket.socket | None = None) -> bool:
        """Relay the running container's terminal to the caller's descriptors (``docker attach`` of a
        ``-t`` container): ``stdin`` in (None: nothing), the terminal's output to ``stdout``, until its
        processes end (False) or the caller types ``detach_keys`` (True). ``connection``: the end
        of the pair given to :meth:`start`; None connects to the running container's terminal.
        Raises HostUnsupported where containers have no terminals."""

    def stdin_sink(self, record: ContainerRecord) -> int | None:
        """A descriptor open for writing on the running container's PID 1 stdin, for ``docker attach`` of a
        ``-i`` container without a terminal; None where nothing can reach it. The caller closes it: PID 1's
        stdin stays open (the supervisor holds its own write end, Docker's ``StdinOnce`` false)."""

    def observe(self, record: ContainerRecord) -> Exited | Restarted | None:
        """``None`` while PID 1 of the current start lives; how it ended otherwise (or, on a backend that
        :attr:`restarts_itself`, what the restart policy did since the run the record holds)."""

    def cancel_restart(self, record: ContainerRecord) -> None:
        """``stop`` of a ``restarting`` container: the restart policy starts no further run. (A restarter
        process sees the record's status and gives up by itself: nothing to do where there is one.)"""

    def recover(self, record: ContainerRecord) -> bool:
        """Undo a start that a killed process left half done: end what it started, remove what it made.
        Returns whether there was anything to undo."""

    def wait(self, record: ContainerRecord, timeout: float | None) -> bool:
        """Block until PID 1 has ended (True) or ``timeout`` seconds pass (False)."""

    def wait_recorded(self, record: ContainerRecord, timeout: float | None) -> bool:
        """Block until :meth:`observe` can tell how PID 1 ended (True) or ``timeout`` seconds pass (False); what
        the end undoes (mounts, groups) may still be under way, which :meth:`wait` waits for too."""

    def signal(self, record: ContainerRecord, signum: int) -> None:
        """Deliver ``signum`` to PID 1 (kill(2) from the host's PID namespace)."""

    def pause(self, record: ContainerRecord) -> None:
        """Freeze every process of the container (the cgroup freezer)."""

    def unpause(self, record: ContainerRecord) -> None:
        """Thaw them."""

    def paused(self, record: ContainerRecord) -> bool:
        """Whether the container's processes are held now (frozen, or stopped where there is no freezer)."""

    def exec(self, record: ContainerRecord, argv: list[str], env: list[str], workdir: str,
             stdout: IO[bytes] | int | None, stderr: IO[bytes] | int | None,
             stdin: IO[bytes] | int | None = None, tty: bool = False,
             detach_keys: bytes = b"\x10\x11", user: str = "", detach: bool = False) -> int | None:
        """Run one more process inside the running container; return its exit code.

        ``stdin`` is read until its end as the process's input (None: no input). With ``tty`` the
        process gets a terminal of the container's, relayed as :meth:`attach` relays PID 1's; it
        returns None if the caller detached (the process goes on). ``user`` (``exec -u``) runs it as
        that ``USER[:GROUP]`` of the container's ``/etc/passwd`` ("": the container's own ``-u``);
        it keeps the container's capabilities and ``--ulimit``s. ``detach`` (``exec -d``) returns
        None once it runs, its 0-2 /dev/null.
        """

    def remove(self, record: ContainerRecord) -> None:
        """Delete the writable layer, logs and per-container files."""

    def update(self, record: ContainerRecord) -> None:
        """Write the running container's limits as ``record.config`` now has them (``docker update``)."""

    def stat_path(self, record: ContainerRecord, image: Image, path: str) -> dict[str, Any]:
        """``docker cp``'s look at ``path`` inside the container (running or not): ``name``, ``size``, ``mode``,
        ``mtime``, ``isDir``, ``linkTarget``.

        Raises:
            OSError: As lstat(2) inside the container fails (``ENOENT``: no such file there).
        """

    def copy_out(self, record: ContainerRecord, image: Image, path: str, out: int) -> dict[str, Any]:
        """Write ``path`` as a tar stream (entries named from its base name) to descriptor ``out``; its
        :meth:`stat_path`. Paths are resolved inside the container: its symlinks never reach the host."""

    def copy_in(self, record: ContainerRecord, image: Image, path: str, tar: int, keep_owners: bool = False) -> None:
        """Unpack the tar stream read from descriptor ``tar`` into the container's directory ``path``: through
        PID 1's view while it runs, else into its writable layer, a file of an image layer copied up first.
        Owners become the container's root unless ``keep_owners`` (``docker cp -a``)."""

    def top(self, record: ContainerRecord, ps_args: list[str]) -> tuple[list[str], list[list[str]]]:
        """``docker top``: ``ps``'s column titles and one row per process of the running container's cgroup,
        as ``ps ps_args`` (``-ef`` by default) shows them on the host."""

    # -- what the engine reports -------------------------------------------------------------------
    def changes(self, record: ContainerRecord, image: Image) -> list[tuple[str, str]]:
        """``docker diff``: (kind, path) pairs read from the writable layer."""

    def logs(self, record: ContainerRecord) -> Iterator[tuple[str, str, str]]:
        """(stream, text, time) for every line the container wrote."""

    def storage(self, record: ContainerRecord, image: Image) -> dict[str, str]:
        """``GraphDriver.Data``: the real layer paths."""

    def network_settings(self, record: ContainerRecord) -> dict[str, Any]:
        """``NetworkSettings`` as inspect shows it: live addresses while running, empty ones after."""

    def unenforced_limits(self) -> dict[str, str]:
        """Which of ``memory``, ``pids``, ``cpu`` nothing enforces here, each with the reason why."""

    def reduced_network(self, network: str) -> str | None:
        """Why a container on ``network`` gets less than that network here (only ``lo``), or None."""

    def cgroup_version(self) -> str:
        """``"1"`` or ``"2"``: the cgroup version limits are written in (cgroups(7)); ``""`` when unknown."""

    def security_options(self) -> list[str]:
        """``SecurityOptions`` of ``docker info``: what confines every container here, in Docker's words."""

    # -- the trace ---------------------------------------------------------------------------------
    def clock(self) -> float:
        """Seconds on the clock trace steps are stamped with: real seconds since the backend was made, or
        the simulator's clock."""

    def observe_layer(self, record: ContainerRecord, image: Image) -> None:
        """Emit copy-up, whiteout and new-file steps for what appeared in the writable layer since last seen."""

    def trace_teardown(self, record: ContainerRecord) -> None:
        """Emit the steps of what went with PID 1: the overlay mount, the network namespace, the cgroup."""

    # -- images ------------------------------------------------------------------------------------
    def ensure_base(self, image_store: ImageStore) -> Image:
        """``busybox:latest``, made offline in ``image_store`` if it is not there yet."""

    def build_runner(self, lowers: list[str], upper: str, argv: list[str], env: list[str],
                     workdir: str) -> tuple[int, str]:
        """Run one Labfile ``RUN`` step on ``lowers`` with ``upper`` as its writable layer; (exit code, output)."""

    def write_upper(self, record: ContainerRecord, image: Image, dest: str) -> None:
        """Copy the container's writable layer into the empty directory ``dest`` in overlayfs's own format
        (a whiteout a character device 0/0, an opaque directory its xattr under the image store's prefix),
        owners as the image store keeps them: what ``commit`` makes a layer of and ``export`` reads."""

    # -- networks and services ---------------------------------------------------------------------
    def drop_bridge(self, network: dict[str, Any]) -> None:
        """Take down a network's bridge if no live container is plugged into it (nothing without host bridges)."""

    def connect_network(self, record: ContainerRecord, network: dict[str, Any], spec: EndpointSpec) -> None:
        """Plug a running container into one more network (``network``'s record) now: its next ``ethN`` with an
        address there (``spec.ip``, else the next free one), and its name and ``spec.aliases`` in its peers'
        ``/etc/hosts`` and theirs in its own."""

    def disconnect_network(self, record: ContainerRecord, network: str) -> None:
        """Unplug a running container from ``network`` now: its interface there goes, with its address, and the
        lines that named it in its peers' ``/etc/hosts`` and them in its own."""

    def service_problem(self) -> LabkitError | None:
        """Why a service (a load balancer relaying real connections to replicas) cannot run here, or None."""

    def listen(self, host_ip: str, host_port: int) -> socket.socket:
        """A listening TCP socket on the host for a service's published port (0 picks a free one)."""

    # -- what the pictures and the graders ask -----------------------------------------------------
    def process_view(self, record: ContainerRecord) -> ProcessView:
        """What a running container's PID 1 sees, and what the host sees of it."""

    def network_view(self, record: ContainerRecord) -> NetworkView:
        """The interfaces of the host's network namespace and of the running container's."""

    def http_get(self, record: ContainerRecord, port: int, path: str = "/") -> tuple[int, str]:
        """``(HTTP status, body)`` of a GET of ``path`` from the running container's TCP ``port``, as a client
        on the host reaches it (the real backend through the port published for it, the simulator from its
        model of the server).

        Raises:
            OSError: Nothing answered: ``ConnectionRefusedError``, ``TimeoutError``, a reset connection.
        """

    def layer_contents(self, record: ContainerRecord, image: Image, path: str | None = None) -> LayerContents:
        """What the writable layer holds, what the image layers hold at the same paths, who serves ``path``."""

    def layer_model(self, record: ContainerRecord) -> Overlay | None:
        """The container's filesystem where the backend keeps it as a model (:class:`Overlay`); ``None`` where
        its layers are directories on the host, named by :meth:`storage`."""

    def files(self, record: ContainerRecord, under: str) -> list[str]:
        """Regular files of the running container's merged view below ``under``, as ``find`` inside lists them.

        Raises:
            OSError: The files could not be listed.
        """

    def meter(self, record: ContainerRecord) -> Meter | None:
        """The running container's cgroup counters, or ``None`` when it has no group to read."""

    def kernel_memory_limit(self, record: ContainerRecord) -> int | None:
        """The memory limit the kernel enforces on the running container, read from its cgroup
        (``memory.max`` / ``memory.limit_in_bytes``); ``None`` when unlimited or there is no file to read."""

    def host_has_pid1(self, record: ContainerRecord) -> bool:
        """Whether the host's process table has the container's PID 1 (``/proc/PID`` on the real kernel)."""

    def shared_namespaces(self, record: ContainerRecord, kinds: tuple[str, ...]) -> list[str]:
        """Which of ``kinds`` (``pid``, ``mnt``, …) the running PID 1 shares with the host (namespaces(7)).

        Raises:
            OSError: PID 1's namespaces could not be read.
        """
