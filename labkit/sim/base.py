"""What every room of the simulator backend stands on: the world on disk, its clock, a process entering a container.

:class:`SimBase` holds what the other rooms share: the simulated world (one
file under the state root, loaded, caught up and saved around every call),
the snapshots a stepper walks back to, a container's paths and record in the
world, and ``exec``: one more process started in a running container as its
user. The rooms built on it (:mod:`labkit.sim.networking`,
:mod:`labkit.sim.rootfs`, :mod:`labkit.sim.views`) and the lifecycle
(:mod:`labkit.sim.backend`) make :class:`labkit.sim.backend.SimBackend`, as
the real backend's rooms of the same names make its backend.

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
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import itertools
import json
import os
import pickle
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from labkit.errors import HostUnsupported, InvalidArgument, StartFailed
from labkit.images.ownership import HostIds, Ownership, OwnIds
from labkit.model import events, hostconfig
from labkit.model.container import ContainerRecord, process_env
from labkit.model.seccomp import seccomp_profile
from labkit.sim import process as proc_mod
from labkit.sim import programs, saved
from labkit.sim.kernel import HORIZON, SimContainer, World, advance
from labkit.sim.overlay import Vfs
from labkit.sim.saved import Snapshot
from labkit.store import Store

_EXEC_PREFIX = "OCI runtime exec failed: exec failed: unable to start container process: "
_EXEC_IDS = itertools.count(1)
#: An id map as the trace tells it: (uid, gid, subordinate uid range, subordinate gid range), ranges as
#: (first, count) or None for the single-id map.
IdMapping = tuple[int, int, tuple[int, int] | None, tuple[int, int] | None]
#: The simulator models no terminals: ``-t`` is refused in these words.
NO_TERMINAL = ("the simulator gives containers no terminal (-t)",
               "Run it on the real backend (labkit --backend linux), or without -t: labkit exec C sh -c '...'")


class SimBase:
    """The simulated world and what every room of the simulator backend shares (see the module docstring).

    Args:
        store: The engine's state store; the world lives under ``<root>/sim``.
        realtime: Advance the simulated clock with real elapsed time between calls
            (default: on, unless ``LABKIT_SIM_CLOCK=manual``).
        rootless: Model a user's network (slirp4netns or pasta) rather than root's (a bridge);
            default: as this process is (not root: rootless).
        ownership: Who owns image layers' files, as the real backend of the same user has it: on Linux a
            user's id map (:func:`labkit.backends.choose` gives it); default: the host's ids as root, the
            user's own ids otherwise.
        id_map: The id map a rootless container's user namespace shows in the trace, as the real backend
            of the same user makes it: (uid, gid, subordinate uid range, subordinate gid range), from
            :func:`labkit.linux.namespaces.id_map` through :func:`labkit.backends.choose`; default: this
            user's own ids alone.
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

    def __init__(self, store: Store, realtime: bool | None = None, rootless: bool | None = None,
                 ownership: Ownership | None = None, id_map: IdMapping | None = None) -> None:
        self.store = store
        self.rootless = os.geteuid() != 0 if rootless is None else rootless
        #: Who owns image layers' files: as the real backend of the same user has it.
        self.ownership: Ownership = ownership if ownership is not None else _ownership()
        #: The map a rootless container's user namespace is made with (see ``id_map`` above).
        self.id_map: IdMapping = id_map if id_map is not None else (os.geteuid(), os.getegid(), None, None)
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
        SimBase.worlds_entered += 1
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

    def unenforced_limits(self) -> dict[str, str]:
        # Memory and pids are modelled (usage, the OOM kill, fork failing); CPU time is counted, not rationed.
        return {"cpu": "the simulator counts CPU time but does not ration it, so --cpus slows nothing here"}

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

    # -- a container in the world, and a process entering it ------------------------------------------
    def _paths(self, cid: str) -> dict[str, str]:
        base = self.store.layer_dir(cid)
        return {"upper": str(base / "diff"), "work": str(base / "work"), "merged": str(base / "merged"),
                "init": str(self.store.init_dir(cid) / "diff")}

    def _container(self, w: World, record: ContainerRecord, image: Any | None = None) -> SimContainer:
        ct = w.containers.get(record.id)
        if ct is None:
            # The world was lost (its file deleted): the writable layer starts empty again.
            ct = SimContainer(record.id, list(image.lowerdirs()) if image is not None else [])
            w.containers[record.id] = ct
        return ct

    def wait_recorded(self, record: ContainerRecord, timeout: float | None) -> bool:
        return self.wait(record, timeout)  # the simulated kernel records an end and undoes the run at once

    def wait(self, record: ContainerRecord, timeout: float | None) -> bool:
        with self._locked() as w:
            ct = w.containers.get(record.id)
            if ct is None or ct.pid1 == 0:
                return True
            until = w.now + (HORIZON if timeout is None or timeout < 0 else timeout)
            return advance(w, until, lambda: ct.pid1 == 0, step=programs.step)

    def exec(self, record: ContainerRecord, argv: list[str], env: list[str], workdir: str,
             stdout: IO[bytes] | int | None, stderr: IO[bytes] | int | None,
             stdin: IO[bytes] | int | None = None, tty: bool = False,
             detach_keys: bytes = b"\x10\x11", user: str = "", detach: bool = False) -> int | None:
        if tty:
            raise HostUnsupported(*NO_TERMINAL)
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
            who = self._user(vfs, user or record.config.user)  # the daemon's lookup: no runtime words around it
            try:
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
                    p = programs.start(w, ct, prog, list(argv), env=envd, cwd=cwd, fds=fds, stdin=read_input(stdin))
                except BlockingIOError:
                    raise StartFailed(_EXEC_PREFIX + "fork/exec: resource temporarily unavailable", 126) from None
                self._become(p, record, who or self._user(vfs, "0"))
                advance(w, w.now + HORIZON, lambda: p.hpid not in w.procs, step=programs.step)
                if p.hpid in w.procs:
                    proc_mod.exit_proc(w, p, 137)  # it would never end: the simulator gives up on it
                return p.exit_code if p.exit_code is not None else 0
            finally:
                del proc_mod.EXEC_STREAMS[eid]

    def stdin_sink(self, record: ContainerRecord) -> int | None:
        """None: a simulated PID 1 reads its stdin whole when it starts (``run -i``), and a held-open one
        (``run -di``) is not modelled, so nothing written later would reach it."""
        return None

    def attach(self, record: ContainerRecord, stdin: int | None, stdout: int, detach_keys: bytes,
               connection: Any = None) -> bool:
        raise HostUnsupported(*NO_TERMINAL)

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
            # resource exists on Unix alone: elsewhere there is no host limit to hold --ulimit to
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


def _ownership() -> Ownership:
    """Who owns the layers this process builds, when the chooser gives no id map: the host's ids as root,
    a user's own ids (root's inside) otherwise."""
    if os.geteuid() == 0:
        return HostIds()
    return OwnIds(os.geteuid(), os.getegid())


def read_input(stdin: IO[bytes] | int | None) -> bytes:
    """Everything ``stdin`` holds, for a simulated process that runs to its end at once (no input: b"")."""
    if stdin is None:
        return b""
    if not isinstance(stdin, int):
        return stdin.read()
    chunks = []
    while chunk := os.read(stdin, 65536):
        chunks.append(chunk)
    return b"".join(chunks)
