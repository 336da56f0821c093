"""The simulator backend: the engine's verbs on a modelled kernel, in pure Python, without root.

:class:`SimBackend` implements :class:`labkit.backend.Backend` with the same
results as the linux backend — the engine owns names, ids, the lifecycle and
the JSON shapes, so what differs is only *how* the side effects happen: the
writable layer is a :class:`labkit.model.overlay.Overlay` over the image's
real layer directories, processes are :mod:`labkit.sim.process` records run
by :mod:`labkit.sim.shell`, limits are :mod:`labkit.sim.cgroups` counters,
and time is the simulated clock of :mod:`labkit.sim.kernel`.

One world, many processes
    The world is saved under ``<state root>/sim/world.pickle`` (a pickle with
    a version field, gzip-compressed as it is written, to a temporary file
    then renamed) after every call, under ``flock(2)`` on
    ``<state root>/sim/lock``, and reloaded when another process changed it.
    The world is bounded (:data:`labkit.sim.cgroups.HOST_MEMORY` of process
    memory, :data:`labkit.sim.overlay.DISK` of files and logs), so the file
    is too (:mod:`labkit.sim.saved`): one that is larger than
    :data:`~labkit.sim.saved.MAX_WORLD` (on disk or unpacked),
    unreadable, or written by another format is set aside for a fresh world,
    and one sentence on stderr says what was lost and why. So ``labkit --backend sim run -d ...`` and a
    later ``labkit --backend sim ps`` (or ``LABKIT_BACKEND=sim``) see one
    world, and detached containers go on "running" between calls.

The clock between calls
    With ``realtime=True`` (the default; ``LABKIT_SIM_CLOCK=manual`` turns
    it off) every call first advances the simulated clock by the real time
    elapsed since the last call, so ``sleep 1; exit 3`` has ended when you
    look a second later. Waits and the engine's timeouts (``stop``'s 10 s)
    jump the clock at once, so the simulated clock runs ahead of the wall
    clock by the sum of those jumps. With ``realtime=False`` only waits,
    ``exec`` and timeouts move it: runs are fully deterministic. A busy loop
    gets at most :data:`labkit.sim.kernel.MAX_OPS` operations per catch-up.

Walking back
    The world is plain data and the overlays are immutable, so a snapshot is
    one pickled copy of it plus the engine's container records:
    :meth:`SimBackend.snapshot` takes one, :meth:`SimBackend.restore` puts the
    world (and the records) back exactly as they were. With
    :meth:`SimBackend.keep_snapshots` on, a snapshot is taken right after
    every trace step the backend emits, and :meth:`SimBackend.state_at`
    gives the world as it was after step ``seq`` — what a stepper shows when
    it steps *back* through a simulated run.

What the pictures ask
    :meth:`SimBackend.layer_contents` reads the model's upper layer against the
    image's layers, :meth:`SimBackend.files` lists the merged view's files
    (there is no ``find`` to run), and :meth:`SimBackend.meter` gives a
    :class:`SimMeter`: the modelled cgroup counters against the simulated clock,
    whose pause lets simulated time pass, so a sampled container draws a curve.

Root's network or a user's
    The simulated network is the one the real backend would give this user:
    as root a bridge, veth pairs and addresses from the network's subnet
    (172.17.0.x); as a user (``rootless``, the default when not root) what
    the rootless backend gives — no bridge, a ``tap0`` with 10.0.2.100
    through slirp4netns or pasta (whichever is installed, else only ``lo``
    with a warning), ports published on 127.0.0.1, user networks refused.

Requests
    :meth:`SimBackend.http_get` sends a GET to a port of a container (the
    lesson's ``node server.js`` answers with the JSON the real server.js
    sends).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import functools
import io
import itertools
import json
import os
import pickle
import shutil
import socket
import stat
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from labkit import tars
from labkit.errors import HostUnsupported, InvalidArgument, LabkitError, NoSuchContainer, StartFailed
from labkit.images.ownership import HostIds, Ownership, OwnIds
from labkit.model import events, hostconfig
from labkit.model.container import HOSTS, ContainerRecord, process_env
from labkit.model.overlay import (
    CopyUp,
    Create,
    Dir,
    File,
    Layer,
    LayerContents,
    Link,
    Overlay,
    Remove,
    Rename,
)
from labkit.model.runtime import CgroupReading, Exited, Launched, Restarted
from labkit.model.seccomp import seccomp_profile
from labkit.model.views import NetworkView, ProcessView
from labkit.sim import cgroups, images, namespaces, network, procfs, programs, restarts, saved
from labkit.sim import process as proc_mod
from labkit.sim.kernel import HORIZON, Launch, SimContainer, World, advance
from labkit.sim.overlay import ETC_FILES, Vfs, changes, overlay_of, read_layer, write_upper
from labkit.sim.saved import Snapshot
from labkit.store import Store

_EXEC_PREFIX = "OCI runtime exec failed: exec failed: unable to start container process: "
_EXEC_IDS = itertools.count(1)
#: The simulator models no terminals: ``-t`` is refused in these words.
_NO_TERMINAL = ("the simulator gives containers no terminal (-t)",
                "Run it on the real backend (labkit --backend linux), or without -t: labkit exec C sh -c '...'")

_LIMIT_WHY = {
    "memory.max": "the most memory the container may use (v2)",
    "memory.swap.max": "the most swap it may use (v2)",
    "pids.max": "the most processes it may have",
    "cpu.max": "CPU time per period (v2)",
}


class SimBackend:
    """The simulated kernel behind the engine (see the module docstring).

    Args:
        store: The engine's state store; the world lives under ``<root>/sim``.
        realtime: Advance the simulated clock with real elapsed time between calls
            (default: on, unless ``LABKIT_SIM_CLOCK=manual``).
        rootless: Model a user's network (slirp4netns or pasta) rather than root's (a bridge);
            default: as this process is (not root: rootless).
    """

    name = "sim"
    simulated = True
    #: How many times any simulated world was entered in this process: a notebook's lesson compares it before
    #: and after a cell to say the cell's output was simulated (:class:`labkit.lesson.Lesson`).
    worlds_entered = 0
    #: A network is a bridge of the model, never an interface on the host.
    host_bridges = False
    #: ``--restart`` is applied in the world, on its clock (:mod:`labkit.sim.restarts`).
    restarts_itself = True

    def __init__(self, store: Store, realtime: bool | None = None, rootless: bool | None = None) -> None:
        self.store = store
        self.rootless = os.geteuid() != 0 if rootless is None else rootless
        #: Who owns image layers' files: as the real backend of the same user has it (:func:`_ownership`).
        self.ownership: Ownership = _ownership()
        self.dir = Path(store.root) / "sim"
        self.dir.mkdir(parents=True, exist_ok=True)
        if realtime is None:
            realtime = os.environ.get("LABKIT_SIM_CLOCK", "real") != "manual"
        self.realtime = realtime
        self.emit: events.Emit = events.noop  # the engine sets its recorder here
        self._world: World | None = None
        self._seen_file: tuple[int, int, int] | None = None
        self._depth = 0
        self._keep = False
        self._snapshots: list[Snapshot] = []
        #: Why the saved world was last found unusable and reset (``None``: never).
        self.reset_reason: str | None = None

    # -- the world on disk ----------------------------------------------------------------------
    @property
    def world_path(self) -> Path:
        return self.dir / "world.pickle"

    def _file_id(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.world_path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _load(self) -> World:
        current = self._file_id()
        if self._world is not None and current == self._seen_file:
            return self._world
        if current is None:
            self._world = World()
        else:
            self._world = self._read_world(current[2])
        self._seen_file = self._file_id()
        return self._world

    def _read_world(self, size: int) -> World:
        """The saved world, or a fresh one (and the sentence saying so) when the file cannot be it."""
        try:
            return saved.read(self.world_path, size)
        except saved.Unusable as err:
            why = str(err)
        self.reset_reason = why
        with contextlib.suppress(OSError):
            os.replace(self.world_path, self.dir / "world.pickle.bad")  # kept once, for a look; the next reset replaces it
        print(f"WARNING: the simulated world in {self.world_path} was reset because {why}: the simulated "
              "containers' processes, writable layers and logs are lost (their records stay, as exited).",
              file=sys.stderr)
        return World()

    def _save(self, world: World) -> None:
        world.generation += 1
        saved.write(world, self.world_path)
        self._seen_file = self._file_id()
        self._write_logs(world)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[World]:
        """The world, loaded fresh, caught up with real time, saved afterwards (re-entrant)."""
        if self._depth:
            assert self._world is not None
            yield self._world
            return
        SimBackend.worlds_entered += 1
        fd = os.open(self.dir / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._depth += 1
            world = self._load()
            self._catch_up(world)
            try:
                yield world
            finally:
                self._save(world)
        finally:
            self._depth = 0
            os.close(fd)

    def _catch_up(self, world: World) -> None:
        now = time.time()
        elapsed = now - world.real_anchor
        world.real_anchor = now
        if self.realtime and elapsed > 0:
            target = world.now + elapsed
            advance(world, target, step=programs.step)
            world.now = max(world.now, target)

    def _write_logs(self, world: World) -> None:
        """Keep each container's json-file log on disk too (``LogPath`` says where)."""
        for cid, ct in world.containers.items():
            done = ct.logs_on_disk
            if done >= len(ct.logs):
                continue
            cdir = self.store.container_dir(cid)
            if not cdir.is_dir():
                continue
            with open(cdir / "json.log", "a") as f:
                for line in ct.logs[done:]:
                    f.write(json.dumps({"log": line.text, "stream": line.stream, "time": world.rfc3339(line.time)})
                            + "\n")
            ct.logs_on_disk = len(ct.logs)

    def _step(self, world: World, event: tuple[str, str, str, dict[str, Any]], cid: str) -> None:
        seq = self.emit(event, cid)
        if self._keep:
            self._snapshots.append(self._take(world, seq if seq is not None else len(self._snapshots)))

    def clock(self) -> float:
        """Simulated seconds since the world began (the engine stamps trace steps with it)."""
        world = self._world if self._world is not None else self._load()
        return world.now

    def cgroup_version(self) -> str:
        """The model is cgroup v2: one hierarchy, ``memory.max`` and ``pids.max``."""
        return "2"

    def security_options(self) -> list[str]:
        """None: the simulator filters nothing (no seccomp, no user namespace)."""
        return []

    # -- paths -------------------------------------------------------------------------------------
    def _paths(self, cid: str) -> dict[str, str]:
        base = self.store.layer_dir(cid)
        return {"upper": str(base / "diff"), "work": str(base / "work"), "merged": str(base / "merged"),
                "init": str(self.store.init_dir(cid) / "diff")}

    def storage(self, record: ContainerRecord, image: Any) -> dict[str, str]:
        p = self._paths(record.id)
        return {"LowerDir": ":".join([p["init"], *image.lowerdirs()]), "MergedDir": p["merged"],
                "UpperDir": p["upper"], "WorkDir": p["work"], "Simulated": "true"}

    # -- verbs -------------------------------------------------------------------------------------
    def create(self, record: ContainerRecord, image: Any) -> None:
        if record.config.tty:
            raise HostUnsupported(*_NO_TERMINAL)
        with self._locked() as w:
            w.containers[record.id] = SimContainer(record.id, list(image.lowerdirs()), env=list(record.config.env))
            self._step(w, events.create_layer(self._paths(record.id)["upper"]), record.id)

    def _container(self, w: World, record: ContainerRecord, image: Any | None = None) -> SimContainer:
        ct = w.containers.get(record.id)
        if ct is None:
            # The world was lost (its file deleted): the writable layer starts empty again.
            ct = SimContainer(record.id, list(image.lowerdirs()) if image is not None else [])
            w.containers[record.id] = ct
        return ct

    def _write_etc(self, record: ContainerRecord) -> dict[str, str]:
        cdir = self.store.container_dir(record.id)
        if not cdir.is_dir():  # removed by another process since the record was read: make nothing
            raise NoSuchContainer(record.id)
        c = record.config
        gateway = ""
        if any(h.endswith(":host-gateway") for h in c.extra_hosts):
            from labkit.networks import Networks

            gateway = Networks(self.store).get("bridge")["IPAM"]["Config"][0]["Gateway"]
        files = {"hostname": c.hostname + "\n", "hosts": HOSTS + hostconfig.extra_hosts_lines(c.extra_hosts, gateway),
                 "resolv.conf": hostconfig.resolv_conf(_resolv_conf(), c.dns)}
        for name, text in files.items():
            (cdir / name).write_text(text)
        return {f"/etc/{name}": str(cdir / name) for name in ETC_FILES}

    def start(self, record: ContainerRecord, image: Any, console: Any = None, stdin: int | None = None) -> Launched:
        c = record.config
        # -i without -t: what the caller pipes in, read to its end first (the simulated PID 1 reads it all at once);
        # without a caller, nothing (a read that would wait on the held-open pipe ends at once here).
        given = _read_input(stdin) if stdin is not None and c.open_stdin and not c.tty else b""
        with self._locked() as w:
            ct = self._container(w, record, image)
            ct.lowers = list(image.lowerdirs())
            ct.ended, ct.oom_kills, ct.frozen, ct.memory_peak = None, 0, False, 0
            proc_mod.cancel_restart(w, ct)  # a start of its own: the policy starts over (Docker resets its manager)
            p = self._paths(record.id)
            etc = self._write_etc(record)
            ct.mounts = [(dest, src, False) for dest, src in etc.items()]
            ct.net, ct.host_net = None, c.network == "host"
            if c.network not in ("none", "host"):
                from labkit.networks import Networks

                if self.rootless:
                    info = self._attach_user(w, ct, record)
                else:
                    info = network.attach(w, ct, record, Networks(self.store).get(c.network))
                    self._step(w, events.network_attach(network.veth_name(record.id), info["Bridge"],
                                                        info["IPAddress"], info["MacAddress"]), record.id)
                if info is not None:
                    with open(self.store.container_dir(record.id) / "hosts", "a") as f:
                        f.write(f"{info['IPAddress']}\t{c.hostname}\n")
            mounted = events.mount_overlay([p["init"], *ct.lowers], p["upper"], p["work"], p["merged"])
            if not self.rootless:  # rootless, PID 1 mounts it inside its user namespace, as the real backend traces
                self._step(w, mounted, record.id)
            ct.memory_max, ct.pids_max = c.memory, c.pids_limit
            ct.tiny_init = c.init
            cg = self.dir / "cgroup" / "labkit" / record.id
            for name, value in cgroups.limit_files(ct, c.memory_swap, c.nano_cpus):
                self._step(w, events.cgroup_write(str(cg / name), value, _LIMIT_WHY.get(name, "a limit")), record.id)
            namespaces.enter_new(ct, c.hostname)
            vfs = Vfs(w, ct)
            for m in (m for m in c.mounts if m.type != "tmpfs"):
                # As pid1.c's bind_mount: the mount point is made in the container's filesystem first.
                src = self._host_path(m)
                if os.path.isdir(src):
                    vfs.makedirs(m.destination)
                elif not vfs.exists(m.destination):
                    vfs.makedirs(os.path.dirname(m.destination))
                    vfs.touch(m.destination)
            ct.mounts += [(m.destination, self._host_path(m), m.readonly) for m in c.mounts if m.type != "tmpfs"]
            ct.mounts += self._tmpfs(record, vfs)
            workdir = c.workdir or "/"
            try:
                vfs.makedirs(workdir)
            except OSError:
                raise StartFailed(f'chdir to cwd ("{workdir}") set in config.json failed: not a directory', 128) \
                    from None
            ct.readonly_rootfs = c.readonly_rootfs  # after the mount points and workdir, as pid1.c remounts / last
            user = self._user(vfs, c.user)
            env = programs.env_dict(process_env(c.env, c.hostname, c.tty, home=None if user else "/root"))
            if user is not None:
                env.setdefault("HOME", user.home)
            prog = programs.lookup(w, ct, list(c.argv), env, workdir)
            self._check_rlimits(c.ulimits)
            pid1 = programs.start(w, ct, prog, list(c.argv), env=env, cwd=workdir,
                                  fds={1: ("log", "stdout"), 2: ("log", "stderr")}, stdin=given)
            self._become(pid1, record, user or self._user(vfs, "0"))
            ct.pid1 = pid1.hpid
            ct.starts += 1
            started = w.now
            self._remember_launch(ct, record, pid1, env, workdir)
            flags = namespaces.clone_flags(c.network)
            if self.rootless:  # as the rootless backend traces it: the user namespace, then the network helper
                self._step(w, _user_namespace(), record.id)
                flags = ("NEWUSER", *flags)
            self._step(w, events.clone(flags, pid1.hpid), record.id)
            if self.rootless and ct.net is not None and ct.net.get("Driver"):
                self._step(w, events.network_helper(ct.net["Driver"], ct.net["IPAddress"]), record.id)
            if self.rootless:
                self._step(w, mounted, record.id)
            self._step(w, events.pivot_root(p["merged"]), record.id)
            self._step(w, events.execve(list(c.argv), pid1.hpid), record.id)
            advance(w, w.now, step=programs.step)
            return Launched(pid1.hpid, int(started * 100), 0, w.rfc3339(started))

    @staticmethod
    def _remember_launch(ct: SimContainer, record: ContainerRecord, pid1: proc_mod.Proc, env: dict[str, str],
                         workdir: str) -> None:
        """Keep what PID 1 was started with, and the restart policy, for the world to start it again."""
        c = record.config
        ct.launch = Launch(tuple(c.argv), tuple(env.items()), workdir,
                           (pid1.uid, pid1.gid, pid1.groups, pid1.cap_eff, pid1.cap_bnd, pid1.seccomp, pid1.nproc),
                           dict(ct.net) if ct.net is not None else None)
        ct.restart_policy, ct.restart_max = c.restart_policy, c.restart_max
        ct.restart_count, ct.restart_delay = record.state.restart_count, 0.0
        ct.stopped_by_hand, ct.run_started = False, pid1.started

    def _tmpfs(self, record: ContainerRecord, vfs: Vfs) -> list[tuple[str, str, bool]]:
        """``--tmpfs`` and ``--mount type=tmpfs``: each an empty directory of its own, made afresh at every start
        (a tmpfs holds nothing from one mount to the next), mounted as a volume is."""
        c = record.config
        wanted = [(dest, "ro" in opts.split(",")) for dest, opts in c.tmpfs.items()]
        wanted += [(m.destination, m.readonly) for m in c.mounts if m.type == "tmpfs"]
        base = self.store.container_dir(record.id) / "tmpfs"
        shutil.rmtree(base, ignore_errors=True)
        out = []
        for n, (dest, ro) in enumerate(wanted):
            (base / str(n)).mkdir(parents=True)
            (base / str(n)).chmod(0o1777)
            vfs.makedirs(dest)
            out.append((dest, str(base / str(n)), ro))
        return out

    def _user(self, vfs: Vfs, spec: str) -> hostconfig.User | None:
        """``-u``/``exec -u`` read in the container's files (as pid1.c's resolve_user); None: root."""
        if not spec:
            return None

        def text(path: str) -> str:
            try:
                return vfs.read(path).decode(errors="replace")
            except OSError:
                return ""

        try:
            return hostconfig.resolve_user(spec, text("/etc/passwd"), text("/etc/group"))
        except hostconfig.UnknownUser as err:
            raise StartFailed(str(err), 128) from None

    @staticmethod
    def _check_rlimits(ulimits: tuple[tuple[str, int, int], ...]) -> None:
        """``--ulimit`` above this host's hard limit is refused, as setrlimit(2) refuses it to a process without
        CAP_SYS_RESOURCE (the simulated host's limits are those the simulator itself runs under)."""
        try:
            import resource
        except ImportError:
            return
        for name, _, hard in ulimits:
            which = getattr(resource, f"RLIMIT_{name.upper()}", None)
            if which is None:
                continue
            host_hard = resource.getrlimit(which)[1]
            if host_hard != resource.RLIM_INFINITY and (hard < 0 or hard > host_hard):
                raise StartFailed(f"error during container init: error setting rlimit type "
                                  f"{hostconfig.RLIMITS[name]}: operation not permitted", 128)

    @staticmethod
    def _become(p: proc_mod.Proc, record: ContainerRecord, user: hostconfig.User | None) -> None:
        """What PID 1 or an exec'd process is as pid1.c's become() leaves it: its ids and supplementary groups
        (root's without ``-u``: its primary group and those that list it, as Docker gives them), its capabilities (none
        effective for a user other than root, after execve(2)), its seccomp mode, its RLIMIT_NPROC."""
        c = record.config
        caps = hostconfig.capability_mask(hostconfig.capability_set(c.cap_add, c.cap_drop, c.privileged))
        if user is not None:  # setgroups(2) keeps the list sorted (kernel/groups.c groups_sort)
            p.uid, p.gid, p.groups = user.uid, user.gid, tuple(sorted(user.groups))
        else:
            p.uid, p.gid, p.groups = 0, 0, (0,)
        p.cap_bnd = caps
        p.cap_eff = caps if p.uid == 0 else 0
        p.seccomp = 0 if c.privileged or seccomp_profile(c.security_opt) is None else 2
        p.nproc = next((soft for name, soft, _ in c.ulimits if name == "nproc"), -1)

    def _attach_user(self, w: World, ct: SimContainer, record: ContainerRecord) -> dict[str, Any] | None:
        """A rootless container's network, as the rootless backend's ``_connect`` plans it (None: ``lo`` only)."""
        from labkit.errors import HostUnsupported

        # The real backend's rule, stated once; loaded where used, so that importing the simulator loads no kernel code
        from labkit.linux import usernet
        from labkit.networks import Networks

        c = record.config
        if c.network != "bridge":
            raise HostUnsupported(f"network {c.network} needs root: rootless containers have the default "
                                  "network (through slirp4netns or pasta), none or host",
                                  "Use the default network, --network none or host, or run as root")
        helper = usernet.network_helper()
        if helper is None:
            if c.ports:
                raise usernet.no_user_network("publishing ports")
            return None  # no user-mode network stack: a network namespace of its own with lo only
        info = network.attach_user(w, ct, record, Networks(self.store).get(c.network), helper)
        (self.store.container_dir(record.id) / "resolv.conf").write_text(usernet.slirp_resolv_conf(_resolv_conf()))
        return info

    def network_settings(self, record: ContainerRecord) -> dict[str, Any]:
        """``NetworkSettings``: the simulated address while running, empty ones after (as the linux backend)."""
        # The real backend's rule, stated once; loaded where used, so that importing the simulator loads no kernel code
        from labkit.linux import network as net

        with self._locked() as w:
            ct = w.containers.get(record.id)
            info = getattr(ct, "net", None) if ct is not None else None
        if info is None:
            return net.network_settings(None, {}, "", record.config.network)
        bridged = bool(info["Bridge"])  # rootless: no veth and no pinned namespace, as the rootless backend says
        endpoint = net.Endpoint(info["Network"], info["Bridge"], info["IPAddress"], info["IPPrefixLen"],
                                info["Gateway"], info["MacAddress"], network.veth_name(record.id) if bridged else "",
                                str(self.store.container_dir(record.id) / "netns") if bridged else "")
        ports: dict[str, Any] = {k: None for k in record.config.exposed_ports}
        ports.update(info["Ports"])
        return net.network_settings(endpoint, ports, info["NetworkID"])

    def _host_path(self, m: Any) -> str:
        return str(self.store.volume_dir(m.source) / "_data") if m.type == "volume" else m.source

    def observe(self, record: ContainerRecord) -> Exited | Restarted | None:
        """How the record's run ended, or what the world's restart policy did since (:mod:`labkit.sim.restarts`)."""
        with self._locked() as w:
            ct = w.containers.get(record.id)
            if ct is None:
                return Exited(255, w.rfc3339())
            return restarts.observed(w, ct, record)

    def cancel_restart(self, record: ContainerRecord) -> None:
        """The restarter waiting out the policy's delay ends without starting PID 1."""
        with self._locked() as w:
            ct = w.containers.get(record.id)
            if ct is not None:
                proc_mod.cancel_restart(w, ct)

    def recover(self, record: ContainerRecord) -> bool:
        """A start whose engine was killed after the world recorded it: its processes end (SIGKILL)."""
        with self._locked() as w:
            ct = w.containers.get(record.id)
            procs = w.procs_of(record.id) if ct is not None else []
            if ct is not None:
                ct.stopped_by_hand = True  # what an interrupted start began is undone, not restarted
            for p in procs:
                proc_mod.exit_proc(w, p, 137)
            if ct is not None:
                ct.pid1 = 0
                proc_mod.cancel_restart(w, ct)
            return bool(procs)

    def wait(self, record: ContainerRecord, timeout: float | None) -> bool:
        with self._locked() as w:
            ct = w.containers.get(record.id)
            if ct is None or ct.pid1 == 0:
                return True
            until = w.now + (HORIZON if timeout is None or timeout < 0 else timeout)
            return advance(w, until, lambda: ct.pid1 == 0, step=programs.step)

    def signal(self, record: ContainerRecord, signum: int) -> None:
        with self._locked() as w:
            ct = w.containers.get(record.id)
            target = w.procs.get(ct.pid1) if ct is not None else None
            if ct is None or target is None:
                return
            if record.state.manually_stopped:  # stop or kill: the restart policy leaves this run's end alone
                ct.stopped_by_hand = True
            self._step(w, events.signal(signum, target.hpid), record.id)
            proc_mod.kill(w, target, signum)
            advance(w, w.now, step=programs.step)

    def pause(self, record: ContainerRecord) -> None:
        with self._locked() as w:
            ct = self._container(w, record)
            ct.frozen = True
            self._step(w, events.freeze(True), record.id)

    def attach(self, record: ContainerRecord, stdin: int | None, stdout: int, detach_keys: bytes,
               connection: Any = None) -> bool:
        raise HostUnsupported(*_NO_TERMINAL)

    def unpause(self, record: ContainerRecord) -> None:
        with self._locked() as w:
            ct = self._container(w, record)
            proc_mod.thaw(w, ct)
            self._step(w, events.freeze(False), record.id)
            advance(w, w.now, step=programs.step)

    def paused(self, record: ContainerRecord) -> bool:
        with self._locked() as w:
            return bool(self._container(w, record).frozen)

    def exec(self, record: ContainerRecord, argv: list[str], env: list[str], workdir: str,
             stdout: IO[bytes] | int | None, stderr: IO[bytes] | int | None,
             stdin: IO[bytes] | int | None = None, tty: bool = False,
             detach_keys: bytes = b"\x10\x11", user: str = "", detach: bool = False) -> int | None:
        if tty:
            raise HostUnsupported(*_NO_TERMINAL)
        if not argv:
            raise InvalidArgument("No exec command specified", "Give the command to run inside the container.")
        with self._locked() as w:
            ct = w.containers.get(record.id)
            if ct is None or ct.pid1 == 0:
                raise ProcessLookupError(errno.ESRCH, f"container process {record.state.pid} is not running")
            vfs = Vfs(w, ct)
            cwd = workdir or "/"
            if not vfs.is_dir(cwd):
                raise StartFailed(_EXEC_PREFIX + f'chdir to cwd ("{cwd}") set in config.json failed: '
                                  "no such file or directory", 126)
            try:
                who = self._user(vfs, user or record.config.user)
                envd = programs.env_dict(process_env(env, record.config.hostname, home=None if who else "/root"))
                prog = programs.lookup(w, ct, list(argv), envd, cwd)
            except StartFailed as e:
                raise StartFailed(_EXEC_PREFIX + e.message, e.exit_code) from None
            if who is not None:
                envd.setdefault("HOME", who.home)
            if detach:  # exec -d: it runs as the world's time passes; nothing waits for it
                try:
                    p = programs.start(w, ct, prog, list(argv), env=envd, cwd=cwd, fds={1: ("null",), 2: ("null",)})
                except BlockingIOError:
                    raise StartFailed(_EXEC_PREFIX + "fork/exec: resource temporarily unavailable", 126) from None
                self._become(p, record, who or self._user(vfs, "0"))
                return None
            eid = next(_EXEC_IDS)
            proc_mod.EXEC_STREAMS[eid] = (stdout, stderr)
            fds = {1: ("exec", eid, "stdout") if stdout is not None else ("null",),
                   2: ("exec", eid, "stderr") if stderr is not None else ("null",)}
            try:
                try:
                    p = programs.start(w, ct, prog, list(argv), env=envd, cwd=cwd, fds=fds, stdin=_read_input(stdin))
                except BlockingIOError:
                    raise StartFailed(_EXEC_PREFIX + "fork/exec: resource temporarily unavailable", 126) from None
                self._become(p, record, who or self._user(vfs, "0"))
                advance(w, w.now + HORIZON, lambda: p.hpid not in w.procs, step=programs.step)
                if p.hpid in w.procs:
                    proc_mod.exit_proc(w, p, 137)  # it would never end: the simulator gives up on it
                return p.exit_code if p.exit_code is not None else 0
            finally:
                del proc_mod.EXEC_STREAMS[eid]

    # -- docker cp: a tar stream in and out of the model's filesystem ------------------------------------
    def stat_path(self, record: ContainerRecord, image: Any, path: str) -> dict[str, Any]:
        with self._locked() as w:
            return _stat_dict(Vfs(w, self._container(w, record, image)), path)

    def copy_out(self, record: ContainerRecord, image: Any, path: str, out: int) -> dict[str, Any]:
        """The model's files under ``path`` as a tar stream on ``out`` (written once the world is read)."""
        buffer = io.BytesIO()
        with self._locked() as w:
            vfs = Vfs(w, self._container(w, record, image))
            found = _stat_dict(vfs, path)
            with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
                _tar_add(tar, vfs, path, found["name"] if found["name"] != "/" else ".")
        with os.fdopen(os.dup(out), "wb") as sink:
            sink.write(buffer.getvalue())
        return found

    def copy_in(self, record: ContainerRecord, image: Any, path: str, tar: int, keep_owners: bool = False) -> None:
        """Unpack a tar stream into the model's directory ``path``: a file of an image layer is copied up
        first, as the overlay model does for any write (and the trace shows it)."""
        with os.fdopen(os.dup(tar), "rb") as source:
            data = source.read()
        with self._locked() as w:
            vfs = Vfs(w, self._container(w, record, image))
            if not vfs.is_dir(path):
                if not vfs.exists(path):
                    raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
                raise NotADirectoryError(errno.ENOTDIR, "extraction point is not a directory", path)
            with tarfile.open(fileobj=io.BytesIO(data), mode="r") as archive:
                for member in archive:
                    name = member.name.lstrip("/")
                    if ".." in name.split("/"):
                        raise tars.Breakout(f"{member.name!r} points outside the destination")
                    target = os.path.normpath(os.path.join(path, name))
                    if member.isdir():
                        vfs.makedirs(target)
                    elif member.issym():
                        if vfs.exists(target):
                            vfs.unlink(target)
                        vfs.symlink(member.linkname, target)
                    elif member.isfile():
                        handle = archive.extractfile(member)
                        vfs.write(target, handle.read() if handle is not None else b"")
                    else:
                        continue  # devices and fifos: the model has none
                    if not member.issym():
                        vfs.chmod(target, member.mode & 0o7777)

    def update(self, record: ContainerRecord) -> None:
        """The model's ``memory.max`` and ``pids.max`` take the new limits at once, and ``--restart`` its new
        policy (the CPU quota is recorded, not enforced)."""
        c = record.config
        with self._locked() as w:
            ct = self._container(w, record)
            ct.memory_max, ct.pids_max = c.memory, c.pids_limit
            ct.restart_policy, ct.restart_max = c.restart_policy, c.restart_max
            cg = self.dir / "cgroup" / "labkit" / record.id
            for name, value in cgroups.limit_files(ct, c.memory_swap, c.nano_cpus):
                self._step(w, events.cgroup_write(str(cg / name), value, _LIMIT_WHY.get(name, "a limit")), record.id)
            advance(w, w.now, step=programs.step)

    def top(self, record: ContainerRecord, ps_args: list[str]) -> tuple[list[str], list[list[str]]]:
        """The simulated host's process table for the container, in ``ps -ef``'s columns (the only ones the
        model has: no other ``ps`` options)."""
        if ps_args not in (["-ef"], ["-e", "-f"], ["-f"], ["ef"]):
            raise HostUnsupported(f"the simulator's top shows ps -ef's columns only, not ps {' '.join(ps_args)}",
                                  "Leave the ps options out, or run on the real backend")
        with self._locked() as w:
            rows = procfs.ps_ef(w, self._container(w, record))
        return list(procfs.PS_EF_TITLES), rows

    def changes(self, record: ContainerRecord, image: Any) -> list[tuple[str, str]]:
        with self._locked() as w:
            ct = self._container(w, record, image)
            # The init layer's placeholders are not the image's: compare with the image layers only.
            return changes(overlay_of(w, ct), tuple(read_layer(p) for p in ct.lowers))

    def observe_layer(self, record: ContainerRecord, image: Any) -> None:
        """Turn what the writable layer holds now, that it did not at the last look, into copy-up / whiteout /
        opaque / add steps — read as the real backend reads its upper dir (``LinuxBackend.observe_layer``), so
        that both trace what the operations left, not each operation on the way: a tree made and renamed where
        it ended up, a tree made and removed not at all, a file with the size it has, a file removed and made
        again as a whiteout and an add; the parent directories a change copied up first come before it.

        The operations' effects say only what the upper layer cannot: which file that shadows an image file was
        made in the writable layer rather than copied up (the kernel tells it by the ``overlay.origin`` xattr a
        copy-up sets), kept in ``ct.made_anew`` from one look to the next.
        """
        with self._locked() as w:
            ct = w.containers.get(record.id)
            if ct is None:
                return
            effects, ct.effects = ct.effects, []
            ct.made_anew = _made_anew(ct.made_anew, effects)
            image_layers = tuple(read_layer(p) for p in ct.lowers)
            now = [("R" if kind == "C" and path in ct.made_anew else kind, path)
                   for kind, path in changes(overlay_of(w, ct), image_layers)]
            before, ct.reported = ct.reported, set(now)
            below = Overlay(image_layers)
            n_image = len(ct.lowers)
            parents: list[str] = []  # directories copied up (ovl_copy_up() does parents first), not told yet

            def first(path: str | None) -> list[str]:
                """The parents copied up for ``path`` (all that are left, for None), in the order made."""
                mine = [d for d in parents if path is None or path.startswith(d.rstrip("/") + "/")]
                for d in mine:
                    parents.remove(d)
                return mine

            def tell(made: list[events.Event]) -> None:
                for event in made:
                    self._step(w, event, record.id)

            for kind, path in now:
                if (kind, path) in before:
                    continue
                node = ct.upper.get(path)
                size = node.size if node is not None else 0
                if isinstance(node, Dir) and kind != "D":
                    if node.opaque:
                        tell([*map(events.copy_up_dir, first(path)), events.opaque(path)])
                    elif kind == "C":
                        parents.append(path)
                elif kind == "D":
                    tell([*map(events.copy_up_dir, first(path)), events.whiteout(path)])
                elif kind == "R":  # removed, then made again: the whiteout the removal left was replaced
                    tell([*map(events.copy_up_dir, first(path)), events.whiteout(path), events.added(path, size)])
                elif kind == "C":
                    try:
                        lower, ref = below.lookup(path)
                    except OSError:
                        layer: int | str = "?"
                    else:  # layers are numbered as the pictures number them: 1 is the image's bottom layer
                        size, layer = lower.size, n_image - ref if isinstance(ref, int) else "?"
                    tell(events.copy_up_steps(path, size, layer, first(path)))
                else:
                    tell([*map(events.copy_up_dir, first(path)), events.added(path, size)])
            tell([events.copy_up_dir(d) for d in first(None)])

    def trace_teardown(self, record: ContainerRecord) -> None:
        """Trace what went with PID 1, as the linux backend's supervisor undoes it: mount, network, cgroup."""
        with self._locked() as w:
            ct = w.containers.get(record.id)
            if ct is None:
                return
            net, ct.net_left = ct.net_left, None
            if not self.rootless:  # rootless, the overlay lived in PID 1's mount namespace and went with it
                self._step(w, events.umount(self._paths(record.id)["merged"]), record.id)
            if net and net["Bridge"]:
                self._step(w, events.network_detach(network.veth_name(record.id), net["Bridge"], net["IPAddress"]),
                           record.id)
            self._step(w, events.cgroup_remove([str(self.dir / "cgroup" / "labkit" / record.id)]), record.id)

    def logs(self, record: ContainerRecord) -> Iterator[tuple[str, str, str]]:
        with self._locked() as w:
            ct = w.containers.get(record.id)
            lines = [] if ct is None else [(ln.stream, ln.text, w.rfc3339(ln.time)) for ln in ct.logs]
        return iter(lines)

    def remove(self, record: ContainerRecord) -> None:
        with self._locked() as w:
            ct = w.containers.pop(record.id, None)
            if ct is not None:
                proc_mod.cancel_restart(w, ct)
                w.log_bytes -= sum(len(line.text) for line in ct.logs)
                for p in w.procs_of(record.id):
                    proc_mod.exit_proc(w, p, 137)
            self._step(w, events.remove_layer(self._paths(record.id)["upper"]), record.id)
        for d in (self.store.layer_dir(record.id), self.store.init_dir(record.id)):
            shutil.rmtree(d, ignore_errors=True)

    def drop_bridge(self, network: dict[str, Any]) -> None:
        """Nothing: the model's bridges are no interfaces of the host."""

    def service_problem(self) -> LabkitError | None:
        return HostUnsupported("services need the real backend: their load balancer relays real connections "
                               "to real replicas", "Run on Linux (as root, or as a user for rootless "
                               "containers); on the simulator, start a few containers with run -d and "
                               "compare them")

    def listen(self, host_ip: str, host_port: int) -> socket.socket:
        """Refused: the simulator opens no socket on the host (services are refused before, see :meth:`service_problem`)."""
        raise HostUnsupported(f"the simulator cannot listen on {host_ip}:{host_port}: it opens no socket on the host",
                              "Run on Linux (as root, or as a user for rootless containers)")

    def reduced_network(self, network: str) -> str | None:
        """As the rootless backend: without slirp4netns or pasta a user's container has only ``lo``."""
        # The real backend's rule, stated once; loaded where used, so that importing the simulator loads no kernel code
        from labkit.linux import usernet

        if self.rootless and network not in ("none", "host") and usernet.network_helper() is None:
            return (f"network {network}: neither slirp4netns nor pasta is installed, so this rootless container "
                    "has only lo (apt-get install slirp4netns gives it an address and -p)")
        return None

    def unenforced_limits(self) -> dict[str, str]:
        # Memory and pids are modelled (usage, the OOM kill, fork failing); CPU time is counted, not rationed.
        return {"cpu": "the simulator counts CPU time but does not ration it, so --cpus slows nothing here"}

    # -- what the pictures and lessons ask ----------------------------------------------------------
    def http_get(self, record: ContainerRecord | str, port: int, path: str = "/") -> tuple[int, str]:
        """GET ``path`` from ``port``: a container port, or a host port published with ``-p``.

        Returns:
            ``(HTTP status, body)``, what the real server.js answers.

        Raises:
            ConnectionRefusedError: Nothing listens on that port in the container.
            TimeoutError: The container is paused.
        """
        cid = record if isinstance(record, str) else record.id
        if not isinstance(record, str):
            for spec in record.config.ports:
                if spec.host_port and int(spec.host_port) == port:
                    port = spec.container_port
                    break
        with self._locked() as w:
            if cid not in w.containers:
                raise ConnectionRefusedError(errno.ECONNREFUSED, "the container is not running")
            return programs.http_get(w, cid, port, path)

    def processes(self, record: ContainerRecord) -> list[dict[str, Any]]:
        """The container's processes: PID inside, host PID, parent, command, state."""
        with self._locked() as w:
            return [{"pid": p.pid, "host_pid": p.hpid, "ppid": p.ppid, "argv": list(p.argv), "state": p.state,
                     "memory": p.mem} for p in w.procs_of(record.id)]

    def cgroup_stats(self, record: ContainerRecord) -> dict[str, Any]:
        """The container's cgroup counters (memory.current, pids.current, ...)."""
        with self._locked() as w:
            ct = w.containers.get(record.id)
            return cgroups.stats(w, ct) if ct is not None else {}

    def process_view(self, record: ContainerRecord) -> ProcessView:
        """PID 1 as the simulated host and the process itself see it (:func:`labkit.sim.namespaces.process_view`).

        Only the simulated world is read: a simulated PID is never looked up in the host's ``/proc``.
        """
        with self._locked() as w:
            return namespaces.process_view(w, self._container(w, record), os.uname().nodename)

    def network_view(self, record: ContainerRecord) -> NetworkView:
        """The simulated host's interfaces and the container's (:func:`labkit.sim.network.interfaces`)."""
        with self._locked() as w:
            ct = self._container(w, record)
            return NetworkView(network.host_interfaces(w), network.interfaces(w, ct, ct.host_net),
                               network.veth_name(record.id) if ct.net and ct.net["Bridge"] else "")

    def overlay(self, record: ContainerRecord) -> Overlay:
        """The container's filesystem as the model's :class:`~labkit.model.overlay.Overlay` (immutable)."""
        with self._locked() as w:
            return overlay_of(w, self._container(w, record))

    def layer_model(self, record: ContainerRecord) -> Overlay:
        """The model's overlay of the container (:meth:`overlay`): its layers are no directories on the host."""
        return self.overlay(record)

    def kernel_memory_limit(self, record: ContainerRecord) -> int | None:
        """None: the model keeps no cgroup files; the record is all there is."""
        return None

    def host_has_pid1(self, record: ContainerRecord) -> bool:
        """The simulated host's process table, never the real ``/proc``."""
        return any(p["host_pid"] == record.state.pid for p in self.processes(record))

    def shared_namespaces(self, record: ContainerRecord, kinds: tuple[str, ...]) -> list[str]:
        """The model keeps no ``/proc/PID/ns`` links: a PID 1 that is PID 1 inside has its own namespaces
        (:func:`labkit.sim.namespaces.enter_new` gave it every kind), otherwise it shares them all."""
        first = [p for p in self.processes(record) if p["host_pid"] == record.state.pid]
        return [] if first and first[0]["pid"] == 1 else list(kinds)

    def layer_contents(self, record: ContainerRecord, image: Any, path: str | None = None) -> LayerContents:
        """The model's upper layer against the image's layers (the init layer left out, as on the real backend),
        each file made in the writable layer over an image file marked so, as the real backend reads it from the
        absent ``overlay.origin`` xattr."""
        with self._locked() as w:
            ct = self._container(w, record, image)
            ov = Overlay(tuple(read_layer(p) for p in ct.lowers), Layer(ct.upper))
            anew = _made_anew(ct.made_anew, ct.effects)
        contents = ov.contents(path)
        entries = tuple(dataclasses.replace(e, made_anew=True)
                        if e.path in anew and e.lower_layer is not None and e.kind != "dir" else e
                        for e in contents.entries)
        return dataclasses.replace(contents, entries=entries)

    def files(self, record: ContainerRecord, under: str) -> list[str]:
        """Regular files of the merged view below ``under``, as ``find UNDER -xdev -type f`` lists them."""
        with self._locked() as w:
            ct = w.containers.get(record.id)
            if ct is None or ct.pid1 == 0:
                raise ProcessLookupError(errno.ESRCH, f"container process {record.state.pid} is not running")
            tree = overlay_of(w, ct).walk()
        top = "/" + under.strip("/")
        inside = top.rstrip("/") + "/"
        return sorted(p for p, node in tree.items()
                      if isinstance(node, File) and (p == top or p.startswith(inside))
                      and not p.startswith(("/proc/", "/sys/")))

    def meter(self, record: ContainerRecord) -> SimMeter | None:
        """The simulated group's counters against the simulated clock; ``None`` when PID 1 is not running."""
        with self._locked() as w:
            ct = w.containers.get(record.id)
            if ct is None or ct.pid1 == 0:
                return None
        return SimMeter(self, record)

    # -- snapshots ------------------------------------------------------------------------------------
    def _take(self, world: World, seq: int = -1) -> Snapshot:
        records = {}
        for cid in self.store.container_ids():
            rec = self.store.load(cid)
            if rec is not None:
                records[cid] = rec.to_json()
        return Snapshot(pickle.dumps(world, protocol=pickle.HIGHEST_PROTOCOL), records, seq)

    def snapshot(self) -> Snapshot:
        """The world and the container records, now."""
        with self._locked() as w:
            return self._take(w)

    def restore(self, snap: Snapshot) -> None:
        """Put the world and the container records back as ``snap`` has them (volumes and images stay)."""
        with self._locked():
            world = snap.load()
            world.real_anchor = time.time()
            self._world = world
            for cid in self.store.container_ids():
                if cid not in snap.records:
                    self.store.delete(cid)
            for data in snap.records.values():
                rec = ContainerRecord.from_json(data)
                if not self.store.save(rec):
                    self.store.create(rec)
        self._world = world

    def keep_snapshots(self, on: bool = True) -> None:
        """Take a snapshot after every trace step this backend emits (for stepping back)."""
        self._keep = on
        if not on:
            self._snapshots.clear()

    def state_at(self, seq: int) -> Snapshot | None:
        """The snapshot taken after trace step ``seq`` (or the closest one before it)."""
        best = None
        for snap in self._snapshots:
            if snap.seq <= seq:
                best = snap
            else:
                break
        return best

    # -- images ---------------------------------------------------------------------------------------
    def write_upper(self, record: ContainerRecord, image: Any, dest: str) -> None:
        """The model's writable layer written out in overlayfs's on-disk format
        (:func:`labkit.sim.overlay.write_upper`), as a real upper dir would be."""
        with self._locked() as w:
            ct = self._container(w, record, image)
            write_upper(ct.upper, dest, int(w.epoch + w.now))

    def ensure_base(self, image_store: Any) -> Any:
        """``busybox:latest`` for the simulator (see :func:`labkit.sim.images.synthetic_busybox`)."""
        return images.synthetic_busybox(image_store)

    def build_runner(self, lowers: list[str], upper: str, argv: list[str], env: list[str],
                     workdir: str) -> tuple[int, str]:
        """Run one ``RUN`` step in a simulated container and write its writable layer into ``upper``."""
        return images.run_step(lowers, upper, argv, env, workdir)


class SimMeter:
    """A simulated container's cgroup counters against the simulated clock (a :class:`labkit.backend.Meter`).

    :meth:`pause` is a wait on the simulated kernel: the container's processes run
    for that much simulated time (the clock jumps; nothing sleeps), so sampling
    a container draws the curve its program makes, and an OOM kill lands between
    two readings.
    """

    def __init__(self, backend: SimBackend, record: ContainerRecord) -> None:
        self.backend = backend
        self.record = record

    def clock(self) -> float:
        """Simulated seconds since the world began."""
        with self.backend._locked() as w:
            return w.now

    def read(self) -> CgroupReading | None:
        """``memory.current``, ``pids.current`` and ``oom_kill`` now; ``None`` once PID 1 has ended."""
        with self.backend._locked() as w:
            return cgroups.reading(w, w.containers.get(self.record.id))

    def pause(self, seconds: float) -> None:
        """Let ``seconds`` of simulated time pass (less if PID 1 ends first)."""
        self.backend.wait(self.record, seconds)


def _resolv_conf() -> str:
    """The host's resolv.conf without loopback name servers, as the real backend writes it."""
    try:
        with open("/etc/resolv.conf") as f:
            return "".join(ln for ln in f if not ln.strip().startswith("nameserver 127."))
    except OSError:
        return ""


def _ownership() -> Ownership:
    """Who owns the layers this process builds: the host's ids as root; a user's own ids are root's inside,
    and on Linux its id map (a subordinate range with newuidmap) applies, as for its rootless containers."""
    if os.geteuid() == 0:
        return HostIds()
    if not sys.platform.startswith("linux"):
        return OwnIds(os.geteuid(), os.getegid())
    from labkit.linux import namespaces, ownership  # a user namespace's map exists on Linux alone

    return ownership.MappedIds(namespaces.id_map())


def _read_input(stdin: IO[bytes] | int | None) -> bytes:
    """Everything ``stdin`` holds, for a simulated process that runs to its end at once (no input: b"")."""
    if stdin is None:
        return b""
    if not isinstance(stdin, int):
        return stdin.read()
    chunks = []
    while chunk := os.read(stdin, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _stat_dict(vfs: Vfs, path: str) -> dict[str, Any]:
    """:meth:`labkit.backend.Backend.stat_path` of the model's file (its lstat)."""
    st = vfs.stat(path)
    kinds = {"dir": stat.S_IFDIR, "symlink": stat.S_IFLNK, "dev": stat.S_IFCHR}
    return {"name": os.path.basename(path.rstrip("/")) or "/", "size": st.size,
            "mode": kinds.get(st.kind, stat.S_IFREG) | st.mode, "mtime": st.mtime, "isDir": st.kind == "dir",
            "linkTarget": vfs.readlink(path) if st.kind == "symlink" else ""}


def _tar_add(tar: tarfile.TarFile, vfs: Vfs, path: str, name: str) -> None:
    """Add the model's ``path`` (and, for a directory, all below it) to ``tar`` as ``name``."""
    st = vfs.stat(path)
    info = tarfile.TarInfo(name)
    info.mode, info.mtime, info.uid, info.gid = st.mode & 0o7777, st.mtime, st.uid, st.gid
    if st.kind == "dir":
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
        for child in sorted(vfs.readdir(path)):
            _tar_add(tar, vfs, path.rstrip("/") + "/" + child, f"{name}/{child}")
    elif st.kind == "symlink":
        info.type, info.linkname = tarfile.SYMTYPE, vfs.readlink(path)
        tar.addfile(info)
    elif st.kind == "file":
        data = vfs.read(path)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def _made_anew(made: frozenset[str], effects: list[Any]) -> frozenset[str]:
    """The non-directories of the upper layer that were made there, not copied up, after ``effects``.

    On the kernel these are the upper files without an ``overlay.origin`` xattr: a copy-up sets it
    (fs/overlayfs/copy_up.c, ``ovl_set_origin``), a file created in the upper layer, over a whiteout or
    not, has none (fs/overlayfs/dir.c, ``ovl_create_upper``, ``ovl_create_over_whiteout``), and rename(2)
    and link(2) keep an inode's own. One that shadows an image file was removed and made again (or
    moved there): the trace tells it as a whiteout and an add, not a copy-up.
    """
    out = set(made)
    linked = ""
    for e in effects:
        if isinstance(e, Create):
            if e.path != linked:  # a link over a whiteout is the linked inode, origin and all
                (out.add if e.kind != "dir" else out.discard)(e.path)
        elif isinstance(e, CopyUp):
            out.discard(e.path)
        elif isinstance(e, Remove):
            out = {p for p in out if not _at_or_below(p, e.path)}
        elif isinstance(e, Rename):
            moved = {p for p in out if _at_or_below(p, e.old)}
            out = {p for p in out - moved if not _at_or_below(p, e.new)} | {e.new + p[len(e.old):] for p in moved}
        elif isinstance(e, Link):
            (out.add if e.source in out else out.discard)(e.path)
        linked = e.path if isinstance(e, Link) else ""
    return frozenset(out)


def _at_or_below(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def _user_namespace() -> events.Event:
    """The user namespace a rootless container of this user is made in, with the map the real backend gives it
    (:func:`labkit.linux.namespaces.id_map`: a subordinate range where one is granted), or off Linux the
    single-id map."""
    return events.user_namespace(*_id_map())


@functools.cache
def _id_map() -> tuple[int, int, tuple[int, int] | None, tuple[int, int] | None]:
    if not sys.platform.startswith("linux"):
        return os.geteuid(), os.getegid(), None, None
    from labkit.linux import namespaces  # a user namespace's map exists on Linux alone

    m = namespaces.id_map()
    return m.uid, m.gid, m.uid_range, m.gid_range
