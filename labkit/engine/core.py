"""The Engine: labkit's only door, composed of one collection per resource, as docker-py composes its client.

The CLI, the notebooks and the graders all call it. Each resource has its room and its
collection, with one naming order (``lab.volumes.rm``, ``lab.networks.create``):

========================  ==========================================================
``lab.containers``        create, run, attach, logs, exec, the views
                          (:mod:`labkit.engine.containers`); the lifecycle verbs
                          (:mod:`~labkit.engine.lifecycle`); rename, update, top, stats,
                          cp, prune (:mod:`~labkit.engine.upkeep`)
``lab.images``            ``lab.images()``, build, inspect, setup, commit, history,
                          tag, rm, save, load, export, import_ (:mod:`~labkit.engine.images`)
``lab.volumes``           create, ls, inspect, rm (:mod:`~labkit.engine.volumes`)
``lab.networks``          create, ls, inspect, rm, prune (:mod:`~labkit.engine.networks`)
``lab.services``          create, ls, scale, rm (:mod:`~labkit.engine.services`)
``lab.system``            version, info, doctor, reset (:mod:`~labkit.engine.system`)
========================  ==========================================================

The container verbs read best flat, as the notebooks and the CLI say them (``lab.run``,
``lab.stop``, ``lab.ps``), and so do Docker's own compound verbs (``lab.volume_rm``,
``lab.network_inspect``): each is a one-line alias of its collection's verb.

What is here besides is what every resource shares: the trace (every step the kernel
took, :mod:`labkit.model.events`) and the container records — loaded, brought in line
with the kernel (:meth:`Engine._refresh`), moved along the lifecycle table
(:meth:`Engine._moved`) and saved. Names, ids, images, volumes and the lifecycle are the
engine's; namespaces, mounts, cgroups and processes are the backend's (:mod:`labkit.backend`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from labkit.backend import Backend, Meter
from labkit.backends import choose, default_root
from labkit.engine.containers import ContainerCollection
from labkit.engine.handles import Container, PhasedRun
from labkit.engine.images import ImageCollection
from labkit.engine.networks import NetworkCollection
from labkit.engine.options import LIMIT_NAMES
from labkit.engine.services import ServiceCollection
from labkit.engine.system import System
from labkit.engine.volumes import VolumeCollection
from labkit.errors import NoSuchContainer
from labkit.journal import Journal
from labkit.model import events
from labkit.model import names as _names
from labkit.model.container import ContainerRecord, CreateOptions, MountSpec, parse_time
from labkit.model.events import Event, Step
from labkit.model.lifecycle import Move, Status, Verb, guard, is_running
from labkit.model.overlay import LayerContents
from labkit.model.runtime import Exited, Restarted
from labkit.model.views import NetworkView, ProcessView
from labkit.store import Store
from labkit.store import busy as store_busy

if TYPE_CHECKING:
    from labkit.images.store import ImageStore


class Engine:
    """Docker-shaped verbs over a backend.

    Args:
        root: The state root (default ``$LABKIT_ROOT`` or ``/var/lib/labkit``).
        backend: ``"auto"``, ``"linux"``, ``"rootless"``, ``"sim"`` (chosen by :func:`labkit.backends.choose`),
            or a :class:`~labkit.backend.Backend` object.
    """

    def __init__(self, root: str | Path | None = None, backend: Backend | str = "auto") -> None:
        self.store = Store(root or default_root(backend))
        self.backend: Backend
        self.backend, self.backend_reason = choose(backend, self.store)
        self.backend_name = self.backend.name
        #: Every step the kernel took for this engine's verbs (see :mod:`labkit.model.events`).
        self.trace: list[Step] = []
        self._trace_names: dict[str, str] = {}  # container id → name, for the trace
        self._verb = ""
        self.containers = ContainerCollection(self)
        self.images = ImageCollection(self)
        self.volumes = VolumeCollection(self)
        self.networks = NetworkCollection(self)
        self.services = ServiceCollection(self)
        self.system = System(self)
        #: What happened to containers, volumes and networks, for ``docker events`` (:mod:`labkit.journal`).
        self.journal = Journal(self.store.root / "events.log")
        self.backend.emit = self._record

    # -- the trace -------------------------------------------------------------------------------
    def _record(self, event: Event, container: str = "") -> int:
        """Append one step to the trace, stamped with the backend's clock; return its place in the trace."""
        kind, what, mechanism, change = event
        seq = len(self.trace)
        self.trace.append(Step(seq, self._verb, container, kind, what, mechanism, change, self.backend.clock(),
                               self._name_of(container), self.backend.simulated))
        return seq

    def _name_of(self, cid: str) -> str:
        """A container's name for its trace steps (create and rename tell it; else the store), "" if none."""
        if not cid:
            return ""
        if cid not in self._trace_names:
            self._trace_names.update({c: n for n, c in self.store.names().items()})
        return self._trace_names.get(cid, "")

    @contextlib.contextmanager
    def tracing(self) -> Iterator[list[Step]]:
        """Collect the steps taken inside a ``with`` block::

            with lab.tracing() as steps:
                lab.run("busybox", ["true"])
            for s in steps: print(s)
        """
        start = len(self.trace)
        steps: list[Step] = []
        try:
            yield steps
        finally:
            steps.extend(self.trace[start:])

    @contextlib.contextmanager
    def _doing(self, verb: str) -> Iterator[None]:
        outer = self._verb
        self._verb = outer or verb
        try:
            if outer:
                yield
            else:
                with store_busy():  # discarded trees are deleted between verbs (labkit.store._Reaper)
                    yield
        finally:
            self._verb = outer

    # -- what this engine can do -------------------------------------------------------------------
    @property
    def image_store(self) -> ImageStore:
        """The state root's images and layers (:mod:`labkit.images.store`)."""
        return self.images.store

    @property
    def enforced_limits(self) -> frozenset[str]:
        """Which limits hold for real here: some of ``memory``, ``pids`` and ``cpu``.

        As root on Linux, those whose cgroup controller the host offers; rootless, those of
        the cgroup subtree delegated to the user (none without one); on the simulator memory
        and pids, which it models, but not CPU time. A container given a limit outside this
        set runs without it, with a :class:`~labkit.errors.LimitDiscarded` warning (Docker's
        "Limitation discarded"), and ``inspect`` still shows what was asked.
        """
        return frozenset(LIMIT_NAMES) - set(self.backend.unenforced_limits())

    def simulator(self) -> Engine:
        """The simulator, in a world of its own beside this engine's (``ROOT/sim``); this engine if it is one.

        For what this backend cannot show here: rootless without a delegated cgroup nothing
        enforces limits, and the simulator models the OOM kill and the fork that fails.
        """
        if self.backend.simulated:
            return self
        return Engine(root=self.store.root / "sim", backend="sim")

    # -- containers (lab.containers), flat as the notebooks and the CLI say them ----------------------
    def create(self, image: str, command: list[str] | str | None = None, **options: Any) -> Container:
        """``docker create``, its options as keywords: ``lab.create("busybox", ["top"], name="web", memory="64m")``.

        The keywords are :class:`~labkit.model.container.CreateOptions`' fields
        (:meth:`ContainerCollection.create <labkit.engine.containers.ContainerCollection.create>`).
        """
        return self.containers.create(CreateOptions(image, command, **options))

    def run(self, image: str, command: list[str] | str | None = None, *, detach: bool = False,
            **options: Any) -> Container:
        """``docker run``: create, then start; without ``detach`` wait for the exit (:meth:`ContainerCollection.run`).

        Returns the container. After an attached run, ``container.exit_code`` and
        ``container.logs()`` tell what happened (unless ``auto_remove`` removed it).
        """
        return self.containers.run(CreateOptions(image, command, **options), detach=detach)

    def run_phases(self, image: str, command: list[str] | str | None = None, **options: Any) -> PhasedRun:
        """``run``, one phase at a time, for walking a real run as it happens (:meth:`ContainerCollection.run_phases`).

        Each ``next()`` does one phase — create, start, exit — and returns that phase's steps::

            phases = lab.run_phases("busybox", ["sh", "-c", "rm /etc/group"])
            for name, steps in phases:
                show(name, steps)
            phases.container.diff()
        """
        return self.containers.run_phases(CreateOptions(image, command, **options))

    def start(self, ref: str, stdin: int | None = None) -> None:
        """``docker start`` (``stdin``: PID 1's input for an ``-i`` container without a terminal)."""
        self.containers.start(ref, stdin)

    def attach(self, ref: str, *, stdin: int | None = None, stdout: int = 1, stderr: int = 2,
               detach_keys: str | None = None, start: bool = False) -> int | None:
        """``docker attach`` (:meth:`ContainerCollection.attach`)."""
        return self.containers.attach(ref, stdin=stdin, stdout=stdout, stderr=stderr, detach_keys=detach_keys,
                                      start=start)

    def stop(self, ref: str, timeout: float | None = None, signal: str | int | None = None) -> None:
        """``docker stop``: the stop signal, ``timeout`` seconds, then SIGKILL."""
        self.containers.stop(ref, timeout, signal)

    def kill(self, ref: str, signal: str | int = "KILL") -> None:
        """``docker kill``."""
        self.containers.kill(ref, signal)

    def restart(self, ref: str, timeout: float | None = None) -> None:
        """``docker restart``."""
        self.containers.restart(ref, timeout)

    def pause(self, ref: str) -> None:
        """``docker pause``."""
        self.containers.pause(ref)

    def unpause(self, ref: str) -> None:
        """``docker unpause``."""
        self.containers.unpause(ref)

    def rm(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        """``docker rm``."""
        self.containers.rm(ref, force, volumes)

    def wait(self, ref: str, timeout: float | None = None) -> int:
        """``docker wait``: the exit code of PID 1."""
        return self.containers.wait(ref, timeout)

    def ps(self, all: bool = False, size: bool = False) -> list[dict[str, Any]]:
        """``docker ps`` (``all``: ``ps -a``; ``size``: ``ps -s``)."""
        return self.containers.ls(all, size)

    def inspect(self, ref: str, size: bool = False) -> dict[str, Any]:
        """``docker inspect`` (``size``: ``--size``)."""
        return self.containers.inspect(ref, size)

    def diff(self, ref: str) -> list[dict[str, Any]]:
        """``docker diff``."""
        return self.containers.diff(ref)

    def logs(self, ref: str, follow: bool = False, tail: int | None = None,
             timestamps: bool = False, since: float | str | None = None,
             until: float | str | None = None) -> Iterator[tuple[str, str, str]]:
        """``docker logs``: (stream, text, time) for each line (``since``/``until``: a window)."""
        return self.containers.logs(ref, follow, tail, timestamps, since, until)

    def exec(self, ref: str, cmd: list[str] | str, *, env: Any = None, workdir: str | None = None,
             detach: bool = False, stdout: IO[bytes] | int | None = None, stderr: IO[bytes] | int | None = None,
             stdin: IO[bytes] | int | None = None, tty: bool = False,
             detach_keys: str | None = None, user: str | None = None) -> int | None:
        """``docker exec`` (:meth:`ContainerCollection.exec`)."""
        return self.containers.exec(ref, cmd, env=env, workdir=workdir, detach=detach, stdout=stdout,
                                    stderr=stderr, stdin=stdin, tty=tty, detach_keys=detach_keys, user=user)

    def exec_output(self, ref: str, cmd: list[str] | str, **kw: Any) -> tuple[int, str]:
        """``exec``, returning ``(exit_code, stdout+stderr as text)``."""
        return self.containers.exec_output(ref, cmd, **kw)

    def process_view(self, ref: str) -> ProcessView:
        """What a running container's PID 1 sees, and what the host sees of it (the walls picture)."""
        return self.containers.process_view(ref)

    def network_view(self, ref: str) -> NetworkView:
        """The host's interfaces and a running container's (the network picture)."""
        return self.containers.network_view(ref)

    def http_get(self, ref: str, port: int, path: str = "/") -> tuple[int, str]:
        """A GET from the running container's TCP ``port``: ``(status, body)`` (:meth:`ContainerCollection.http_get`)."""
        return self.containers.http_get(ref, port, path)

    @property
    def simulated(self) -> bool:
        """The kernel is a model (:attr:`Backend.simulated <labkit.backend.Backend.simulated>`): its containers
        have no ``/proc`` entry, files or sockets on this host, and what a lesson would read from the host it
        reads from the engine's views (:meth:`process_view`, :meth:`network_view`, :meth:`http_get`)."""
        return self.backend.simulated

    def container(self, ref: str) -> Container:
        """A handle on an existing container."""
        return self.containers.get(ref)

    def layer_contents(self, ref: str, path: str | None = None) -> LayerContents:
        """What the container's writable layer and its image layers hold (the layer picture)."""
        return self.containers.layer_contents(ref, path)

    def files(self, ref: str, under: str = "/") -> list[str]:
        """Regular files the running container sees below ``under``."""
        return self.containers.files(ref, under)

    def meter(self, ref: str) -> Meter | None:
        """The running container's cgroup counters and the clock to read them against."""
        return self.containers.meter(ref)

    def rename(self, ref: str, new_name: str) -> None:
        """``docker rename``."""
        return self.containers.rename(ref, new_name)

    def update(self, ref: str, **kw: Any) -> None:
        """``docker update``."""
        return self.containers.update(ref, **kw)

    def top(self, ref: str, ps_args: list[str] | None = None) -> dict[str, Any]:
        """``docker top``."""
        return self.containers.top(ref, ps_args)

    def stats(self, ref: str) -> dict[str, Any]:
        """``docker stats``: one reading."""
        return self.containers.stats(ref)

    def stat_path(self, ref: str, path: str) -> dict[str, Any]:
        """What ``docker cp`` learns of a path in the container."""
        return self.containers.stat_path(ref, path)

    def copy_from(self, ref: str, path: str, out: int) -> dict[str, Any]:
        """``docker cp CONTAINER:PATH -``."""
        return self.containers.copy_from(ref, path, out)

    def copy_to(self, ref: str, path: str, tar: int, keep_owners: bool = False) -> None:
        """``docker cp - CONTAINER:DIR``."""
        return self.containers.copy_to(ref, path, tar, keep_owners)

    def container_prune(self) -> list[str]:
        """``docker container prune``."""
        return self.containers.prune()

    def apply_restart_policy(self, cid: str) -> bool:
        """Called by PID 1's supervisor when it ended: start it again if ``--restart`` says so."""
        return self.containers.apply_restart_policy(cid)

    # -- images, networks, services, volumes, the system: Docker's compound verbs --------------------
    def setup(self, on_step: Any = print) -> list[dict[str, Any]]:
        """Build the base image and the lesson's images (offline; idempotent)."""
        return self.images.setup(on_step)

    def image_inspect(self, ref: str) -> dict[str, Any]:
        """``docker image inspect``."""
        return self.images.inspect(ref)

    def build(self, path: str, tag: str, file: str | None = None, on_step: Any = print) -> str:
        """``docker build``: an image from a Labfile (or Dockerfile) in ``path``; its id."""
        return self.images.build(path, tag, file, on_step)

    def commit(self, ref: str, repository: str | None = None, **kw: Any) -> str:
        """``docker commit``: a new image of the container's changes; its id."""
        return self.images.commit(ref, repository, **kw)

    def image_history(self, ref: str) -> list[dict[str, Any]]:
        """``docker history``."""
        return self.images.history(ref)

    def tag(self, source: str, target: str) -> None:
        """``docker tag``."""
        self.images.tag(source, target)

    def rmi(self, ref: str, force: bool = False, prune: bool = True) -> list[dict[str, str]]:
        """``docker rmi``: Docker's ``Untagged``/``Deleted`` items (``prune=False``: ``--no-prune``)."""
        return self.images.rm(ref, force, prune)

    def image_prune(self, all: bool = False) -> dict[str, Any]:
        """``docker image prune [-a]``: ``ImagesDeleted`` and ``SpaceReclaimed`` (:meth:`ImageCollection.prune`)."""
        return self.images.prune(all)

    def save(self, refs: list[str], out: IO[bytes]) -> None:
        """``docker save``."""
        self.images.save(refs, out)

    def load(self, stream: IO[bytes]) -> list[str]:
        """``docker load``: the lines it prints."""
        return self.images.load(stream)

    def export(self, ref: str, out: IO[bytes]) -> None:
        """``docker export``."""
        self.images.export(ref, out)

    def import_image(self, stream: IO[bytes], repository: str | None = None, **kw: Any) -> str:
        """``docker import``: its id."""
        return self.images.import_(stream, repository, **kw)

    def network_create(self, name: str, subnet: str | None = None) -> dict[str, Any]:
        """``docker network create``."""
        return self.networks.create(name, subnet)

    def network_ls(self) -> list[dict[str, Any]]:
        """``docker network ls``."""
        return self.networks.ls()

    def network_inspect(self, ref: str) -> dict[str, Any]:
        """``docker network inspect``."""
        return self.networks.inspect(ref)

    def network_rm(self, ref: str) -> str:
        """``docker network rm``."""
        return self.networks.rm(ref)

    def network_connect(self, network: str, ref: str, aliases: Sequence[str] = (), ip: str = "") -> None:
        """``docker network connect``."""
        return self.networks.connect(network, ref, aliases, ip)

    def network_disconnect(self, network: str, ref: str, force: bool = False) -> None:
        """``docker network disconnect``."""
        return self.networks.disconnect(network, ref, force)

    def network_prune(self) -> None:
        """Take down the bridge of every network no container is plugged into (:meth:`NetworkCollection.prune`)."""
        self.networks.prune()

    def service_create(self, name: str, image: str, replicas: int = 1, ports: list[str] | None = None,
                       command: list[str] | str | None = None, env: Any = None,
                       network: str | None = None) -> dict[str, Any]:
        """``labkit service create``."""
        return self.services.create(name, image, replicas, ports, command, env, network)

    def service_ls(self) -> list[dict[str, Any]]:
        """``labkit service ls``."""
        return self.services.ls()

    def service_scale(self, name: str, replicas: int) -> dict[str, Any]:
        """``labkit service scale``."""
        return self.services.scale(name, replicas)

    def service_converge(self, name: str, timeout: float | None = None,
                         progress: Callable[[int, int], None] | None = None) -> tuple[int, int]:
        """Wait until the service runs as many replicas as it asks for (:meth:`ServiceCollection.converge`)."""
        return self.services.converge(name, timeout, progress)

    def service_rm(self, name: str) -> None:
        """``labkit service rm``."""
        self.services.rm(name)

    def volume_create(self, name: str | None = None) -> dict[str, Any]:
        """``docker volume create``."""
        return self.volumes.create(name)

    def volume_ls(self) -> list[dict[str, Any]]:
        """``docker volume ls``."""
        return self.volumes.ls()

    def volume_inspect(self, name: str) -> dict[str, Any]:
        """``docker volume inspect``."""
        return self.volumes.inspect(name)

    def volume_rm(self, name: str, force: bool = False) -> None:
        """``docker volume rm``."""
        self.volumes.rm(name, force)

    def volume_prune(self, all: bool = False) -> dict[str, Any]:
        """``docker volume prune``."""
        return self.volumes.prune(all)

    def events(self, since: float | None = None, until: float | None = None) -> Iterator[dict[str, Any]]:
        """``docker events``."""
        return self.system.events(since, until)

    def disk_usage(self) -> dict[str, Any]:
        """``docker system df``."""
        return self.system.df()

    def host_path(self, m: MountSpec) -> str:
        """Where a mount's data lives on the host."""
        return self.volumes.host_path(m)

    def version(self) -> dict[str, Any]:
        """``GET /version``."""
        return self.system.version()

    def info(self) -> dict[str, Any]:
        """``GET /info``."""
        return self.system.info()

    def doctor(self) -> list[dict[str, Any]]:
        """``labkit doctor``."""
        return self.system.doctor()

    def reset(self) -> dict[str, int]:
        """``labkit system reset``: everything of this user's, and the state root (:meth:`System.reset`)."""
        return self.system.reset()

    # -- internals -------------------------------------------------------------------------------
    def _records(self) -> list[ContainerRecord]:
        self._sweep_half_made()
        out = []
        for cid in self.store.container_ids():
            rec = self.store.load(cid)
            if rec is not None:
                rec = self._refresh(rec)
                if self.store.container_dir(rec.id).exists():
                    out.append(rec)
        return out

    def _sweep_half_made(self) -> None:
        """Take away what a ``create`` killed half-way left: a writable layer (``overlay/<id>``, ``<id>-init``)
        or a record being written (``tmp/c-<id>``) with no container, and intents never put in place.

        ``create`` makes these under the store's lock, so with the lock held any such thing is an orphan.
        Looked for without the lock first: nearly always there is nothing, and ``ps`` waits for no one.
        """
        if self._half_made():
            with self.store.locked():
                for path in self._half_made():
                    self.store.discard(path)

    def _half_made(self) -> list[Path]:
        root = self.store.root
        have = set(os.listdir(root / "containers"))
        found = [root / "overlay" / name for name in os.listdir(root / "overlay")
                 if _names.ID_RE.match(name.removesuffix("-init")) and name.removesuffix("-init") not in have]
        found += [root / "tmp" / name for name in os.listdir(root / "tmp") if name.startswith("c-")]
        return found + self.store.stray_intents()

    def _names(self) -> dict[str, str]:
        return self.store.names()

    def _get(self, ref: str) -> ContainerRecord:
        rec = self.store.load(ref) if _names.ID_RE.match(ref) else None  # a full id: no scan needed
        if rec is None:
            cid = _names.resolve(ref, self._names(), self.store.container_ids())
            rec = self.store.load(cid) if cid else None
        if rec is None:
            raise NoSuchContainer(ref)
        rec = self._refresh(rec)
        if rec.status is Status.DELETED:  # a removal a killed process had begun, finished just now
            raise NoSuchContainer(ref)
        return rec

    def _reload(self, rec: ContainerRecord) -> ContainerRecord:
        """:meth:`_refresh` for a record held across a wait: read it again from disk first."""
        return self._refresh(self.store.load(rec.id) or rec)

    def _refresh(self, rec: ContainerRecord) -> ContainerRecord:
        """Bring ``rec`` (just read) in line with what the kernel holds, and record it.

        Every command that names a container, and ``ps``, reads it through here, so what a
        killed process left half done is seen to before anything else happens:

        * a verb whose process died on the way (its intent is abandoned, see
          :meth:`labkit.store.Store.intent`): a removal is finished; a start is undone —
          what it started is killed, what it made (mounts, cgroup, network namespace,
          veth) goes — and the status stays what the record says, with the reason in
          ``State.Error``;
        * a running container whose PID 1 has ended (or whose supervisor died, which the
          backend answers by killing PID 1 and undoing the rest) moves to ``exited``.

        Status changes go through the lifecycle table (:meth:`_moved`). Returns the record as it
        is now; its status is ``deleted`` if a removal was finished here.
        """
        with self.store.abandoned(rec.id) as verb:
            if verb is not None:
                rec = self._recover(self.store.load(rec.id) or rec, verb)
                if rec.status is Status.DELETED:
                    return rec
        if not is_running(rec.status) or (rec.status is Status.RESTARTING and not self.backend.restarts_itself):
            return rec  # a restarting container belongs to its restarter until it runs again
        ended = self.backend.observe(rec)
        if ended is None:
            return rec
        if isinstance(ended, Restarted):
            return self._restarted(rec, ended)
        rec = self._moved(rec, Verb.EXIT, exit_code=ended.exit_code, finished_at=ended.finished_at,
                          oom_killed=ended.oom_killed, pid=0, error=ended.error)
        if rec.config.auto_remove:
            # --rm: the container goes as soon as anyone sees it has exited, as Docker's daemon removes it
            # (forced), with no record of the exit written first: a process killed before the removal's
            # intent is in place leaves a record that still says running beside the exit the supervisor
            # wrote, which the next reader sees to the same way; one killed after leaves the intent.
            if not self.store.container_dir(rec.id).is_dir():
                return rec  # removed meanwhile by another process, which saw to the rest
            self.networks.left_bridge(rec)
            self._record_end(rec, ended)
            self.containers._remove(rec, Verb.RM_FORCE)
            return rec
        if not self._save(rec):
            return rec  # removed meanwhile by another process, which saw to the rest
        self.networks.left_bridge(rec)
        self._record_end(rec, ended)
        return rec

    def _restarted(self, rec: ContainerRecord, told: Restarted) -> ContainerRecord:
        """Record what a backend that :attr:`~labkit.backend.Backend.restarts_itself` did since ``rec``'s run:
        that run's end (if the record still holds it), then the policy's state now — a run under way
        (``running``), its delay (``restarting``) or its end (``exited``) — each through the lifecycle table."""
        last = told.ended
        end: dict[str, Any] = {"exit_code": last.exit_code, "finished_at": last.finished_at,
                               "oom_killed": last.oom_killed, "pid": 0, "error": last.error,
                               "restart_count": told.restart_count, "started_at": told.started_at}
        if rec.status is not Status.RESTARTING:
            rec = self._moved(rec, Verb.EXIT, **end)
            if not self._save(rec):
                return rec
            self.networks.left_bridge(rec)
            self._record_end(rec, last)
        if told.running is None:
            rec = self._moved(rec, Verb.RESTART_POLICY if told.waiting else Verb.EXIT, **end)
            self._save(rec)
            return rec
        run = told.running
        rec = self._moved(self._moved(rec, Verb.RESTART_POLICY), Verb.RESTART, pid=run.pid,
                          pid_start_time=run.pid_start_time, shim_pid=run.shim_pid, exit_code=0, error="",
                          oom_killed=False, started_at=run.started_at, starts=rec.state.starts + 1,
                          restart_count=told.restart_count)
        if self._save(rec):
            self._note(rec, "start")
            self._note(rec, "restart")
        return rec

    def _recover(self, rec: ContainerRecord, verb: str) -> ContainerRecord:
        """Finish or undo ``verb``, which a process killed half-way left on ``rec`` (its intent held here)."""
        if rec.status is Status.REMOVING or (verb == "rm" and not is_running(rec.status)):
            # rm had begun: finish it. A container that was not running is not marked removing first
            # (ContainerLifecycle._remove): its intent alone says so.
            gone = self._moved(rec, Verb.RM_FORCE)
            self.containers._remove(rec, Verb.RM_FORCE)
            return gone
        if verb in ("pause", "unpause") and rec.status in (Status.RUNNING, Status.PAUSED):
            # Frozen or thawed, not yet recorded: the record takes what the kernel holds, so that ps never
            # says Up of a frozen container (nor Paused of a thawed one).
            frozen = self.backend.paused(rec)
            if frozen != (rec.status is Status.PAUSED):
                rec = self._moved(rec, Verb.PAUSE if frozen else Verb.UNPAUSE)
                self._save(rec)
            return rec
        if is_running(rec.status) and rec.status is not Status.RESTARTING:
            return rec  # the start had been recorded whole: nothing is half done
        if verb not in ("start", "restart"):
            return rec  # nothing of the kernel's was touched yet (rm died before it began)
        # A start cut short: its PID 1 may run with nobody recording it. End it and undo what the start made.
        found = self.backend.recover(rec)
        why = (f"{verb} was interrupted: the process carrying it out was killed; "
               "what it had started was stopped and undone") if found else rec.state.error
        if rec.status is Status.RESTARTING:  # the restart policy died between two runs: the container has exited
            rec = self._moved(rec, Verb.EXIT, pid=0, error=why)
        elif found:
            rec = rec.with_state(pid=0, error=why)
        else:
            return rec  # it had failed and undone its work itself, or had made nothing yet
        self._save(rec)
        self.networks.left_bridge(rec)
        return rec

    def _moved(self, rec: ContainerRecord, verb: Verb, *, under_way: bool = False, **state: Any) -> ContainerRecord:
        """``rec`` after ``verb``, its status the lifecycle table's ``to`` (unchanged where the table says so).

        The only place a container's status is written. ``under_way``: the status it shows
        while the verb is carried out, the table's ``through`` (``removing``, for ``rm``).
        """
        result = guard(rec.status, verb, rec.id, rec.name)
        if not isinstance(result, Move):
            return rec.with_state(**state)
        return rec.with_state(status=(result.through or result.to) if under_way else result.to, **state)

    def _note(self, rec: ContainerRecord, action: str, when: str | None = None, **attributes: str) -> None:
        """Record a container event for ``docker events``, with Docker's attributes (its labels, image and
        name, then ``attributes``); ``when``: an RFC 3339 time it happened at, if not now."""
        at = None if when is None else int(parse_time(when).timestamp()) * 10**9 + parse_time(when).microsecond * 1000
        self.journal.add("container", action, rec.id, {**rec.config.labels, "image": rec.config.image,
                                                       "name": rec.name, **attributes},
                         when_ns=at, image=rec.config.image)

    def _record_end(self, rec: ContainerRecord, ended: Exited) -> None:
        """Trace how PID 1 ended: what it left in its writable layer (copy-ups, whiteouts, new files),
        its exit, then what went with it (the overlay mount, the network namespace, the cgroup); and say so
        in the events (``oom`` first if the OOM killer struck, then ``die``)."""
        # Stamped when PID 1 ended; the simulator's clock is its own (it runs ahead of the host's), so there
        # the event is stamped when the engine noticed the end, on the host's clock as every other event.
        when = None if self.backend.simulated else ended.finished_at
        if ended.oom_killed:
            self._note(rec, "oom", when=when)
        self._note(rec, "die", when=when, exitCode=str(ended.exit_code))
        self._observe_layer(rec)
        self._record(events.exited(ended.exit_code, ended.oom_killed), rec.id)
        self.backend.trace_teardown(rec)

    def _save(self, rec: ContainerRecord) -> bool:
        """Write an updated record; False if another process removed the container meanwhile."""
        return self.store.save(rec)

    def _observe_layer(self, rec: ContainerRecord) -> None:
        """Turn what appeared in the writable layer into copy-up / whiteout steps of the trace."""
        if self.store.container_dir(rec.id).exists():
            self.backend.observe_layer(rec, self.images.of(rec))


def connect(backend: Backend | str | None = None, root: str | Path | None = None) -> Engine:
    """Open labkit: ``backend="auto"`` picks the real Linux backend when the host allows it.

    Without ``backend``, ``$LABKIT_BACKEND`` decides (as it does for the CLI), else ``auto``.
    ``engine.backend_name`` says which was chosen and ``engine.backend_reason`` why.
    """
    return Engine(root=root, backend=backend or os.environ.get("LABKIT_BACKEND") or "auto")
