"""The seam between the engine and a backend.

The engine owns names, ids, the lifecycle table, images and volumes; a backend
owns the side effects: the writable layer, the process, its limits. Two
backends implement this Protocol with the same module names per kernel
concept (namespaces, overlay, cgroups, network, process): ``linux`` does it
with the real kernel, ``sim`` in pure Python.

The pictures ask a backend three things, so that they draw the same on both:
what a writable layer holds (:meth:`Backend.layer_contents`), which files the
container sees (:meth:`Backend.files`), and its cgroup counters over time
(:meth:`Backend.meter`, a :class:`Meter`). The real backend reads the upper
dir, runs ``find`` inside the container and reads the cgroup files against
the host's clock; the simulator reads its model against its simulated clock.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Protocol

from labkit.model.container import ContainerRecord
from labkit.model.overlay import LayerContents

if TYPE_CHECKING:
    from labkit.images.store import Image


@dataclass(frozen=True)
class Launched:
    """A container's PID 1 is running."""

    pid: int
    pid_start_time: int
    shim_pid: int
    started_at: str


@dataclass(frozen=True)
class Exited:
    """A container's PID 1 has ended."""

    exit_code: int
    finished_at: str
    oom_killed: bool = False
    #: Why labkit, not PID 1, decided how it ended (its supervisor died), for ``State.Error``.
    error: str = ""


@dataclass(frozen=True)
class CgroupReading:
    """One reading of a container's cgroup counters (cgroups(7)).

    Attributes:
        at: The meter's clock when read (seconds; only differences mean something).
        memory: Bytes charged to the group (``memory.current`` / ``memory.usage_in_bytes``), ``None`` if unreadable.
        pids: Tasks in the group (``pids.current``), ``None`` if unreadable.
        oom_kills: Processes the OOM killer ended in the group (``oom_kill`` in ``memory.events``).
    """

    at: float
    memory: int | None
    pids: int | None
    oom_kills: int | None


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
    """What the engine asks of a backend. Every method takes the container's record."""

    name: str

    def create(self, record: ContainerRecord, image: Image) -> None:
        """Make the writable layer and the per-container files."""

    def start(self, record: ContainerRecord, image: Image, console: socket.socket | None = None) -> Launched:
        """Mount, limit and launch PID 1. Raises StartFailed if the command cannot run.

        ``console``: for a container with a terminal (``config.tty``), one end of a ``SOCK_SEQPACKET``
        socket pair that the terminal's supervisor takes as its first caller before PID 1 runs
        (``run -it``); the other end goes to :meth:`attach`.
        """

    def attach(self, record: ContainerRecord, stdin: int | None, stdout: int, detach_keys: bytes,
               connection: socket.socket | None = None) -> bool:
        """Relay the running container's terminal to the caller's descriptors (``docker attach`` of a
        ``-t`` container): ``stdin`` in (None: nothing), the terminal's output to ``stdout``, until its
        processes end (False) or the caller types ``detach_keys`` (True). ``connection``: the end
        of the pair given to :meth:`start`; None connects to the running container's terminal.
        Raises HostUnsupported where containers have no terminals."""

    def observe(self, record: ContainerRecord) -> Exited | None:
        """``None`` while PID 1 of the current start lives; how it ended otherwise."""

    def recover(self, record: ContainerRecord) -> bool:
        """Undo a start that a killed process left half done: end what it started, remove what it made.
        Returns whether there was anything to undo."""

    def wait(self, record: ContainerRecord, timeout: float | None) -> bool:
        """Block until PID 1 has ended (True) or ``timeout`` seconds pass (False)."""

    def signal(self, record: ContainerRecord, signum: int) -> None:
        """Deliver ``signum`` to PID 1 (kill(2) from the host's PID namespace)."""

    def pause(self, record: ContainerRecord) -> None:
        """Freeze every process of the container (the cgroup freezer)."""

    def unpause(self, record: ContainerRecord) -> None:
        """Thaw them."""

    def exec(self, record: ContainerRecord, argv: list[str], env: list[str], workdir: str,
             stdout: IO[bytes] | int | None, stderr: IO[bytes] | int | None,
             stdin: IO[bytes] | int | None = None, tty: bool = False,
             detach_keys: bytes = b"\x10\x11") -> int | None:
        """Run one more process inside the running container; return its exit code.

        ``stdin`` is read until its end as the process's input (None: no input). With ``tty`` the
        process gets a terminal of the container's, relayed as :meth:`attach` relays PID 1's; it
        returns None if the caller detached (the process goes on).
        """

    def changes(self, record: ContainerRecord, image: Image) -> list[tuple[str, str]]:
        """``docker diff``: (kind, path) pairs read from the writable layer."""

    def logs(self, record: ContainerRecord) -> Iterator[tuple[str, str, str]]:
        """(stream, text, time) for every line the container wrote."""

    def storage(self, record: ContainerRecord, image: Image) -> dict[str, str]:
        """``GraphDriver.Data``: the real layer paths."""

    def remove(self, record: ContainerRecord) -> None:
        """Delete the writable layer, logs and per-container files."""

    def unenforced_limits(self) -> dict[str, str]:
        """Which of ``memory``, ``pids``, ``cpu`` nothing enforces here, each with the reason why."""

    def reduced_network(self, network: str) -> str | None:
        """Why a container on ``network`` gets less than that network here (only ``lo``), or None."""
    def layer_contents(self, record: ContainerRecord, image: Image, path: str | None = None) -> LayerContents:
        """What the writable layer holds, what the image layers hold at the same paths, who serves ``path``."""

    def files(self, record: ContainerRecord, under: str) -> list[str]:
        """Regular files of the running container's merged view below ``under``, as ``find`` inside lists them.

        Raises:
            OSError: The files could not be listed.
        """

    def meter(self, record: ContainerRecord) -> Meter | None:
        """The running container's cgroup counters, or ``None`` when it has no group to read."""
