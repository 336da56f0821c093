"""The simulator backend: the engine's verbs on a modelled kernel, in pure Python, without root.

:class:`SimBackend` implements :class:`labkit.backend.Backend` with the same
results as the linux backend — the engine owns names, ids, the lifecycle and
the JSON shapes, so what differs is only *how* the side effects happen: the
writable layer is a :class:`labkit.model.overlay.Overlay` over the image's
real layer directories, processes are :mod:`labkit.sim.process` records run
by :mod:`labkit.sim.shell`, limits are :mod:`labkit.sim.cgroups` counters,
and time is the simulated clock of :mod:`labkit.sim.kernel`.

The backend is one class made of rooms with the real backend's names:
:mod:`labkit.sim.base` (the world on disk, its clock and snapshots, a process
entering a container), :mod:`labkit.sim.networking`, :mod:`labkit.sim.rootfs`
(the container's filesystem) and :mod:`labkit.sim.views` (what the pictures
read); the verbs of the lifecycle are here.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

from labkit.errors import HostUnsupported, StartFailed
from labkit.model import events, hostconfig
from labkit.model.container import ContainerRecord, EndpointSpec, process_env
from labkit.model.runtime import Exited, Launched, Restarted
from labkit.networks import Networks
from labkit.sim import cgroups, namespaces, network, programs, restarts
from labkit.sim import process as proc_mod
from labkit.sim.base import NO_TERMINAL, read_input
from labkit.sim.kernel import Launch, SimContainer, advance
from labkit.sim.networking import Networking, _rewrite_hosts
from labkit.sim.overlay import Vfs
from labkit.sim.rootfs import Rootfs
from labkit.sim.views import Views

_LIMIT_WHY = {
    "memory.max": "the most memory the container may use (v2)",
    "memory.swap.max": "the most swap it may use (v2)",
    "pids.max": "the most processes it may have",
    "cpu.max": "CPU time per period (v2)",
}


class SimBackend(Views, Rootfs, Networking):
    """The simulated kernel behind the engine (see the module docstring).

    Args:
        store: The engine's state store; the world lives under ``<root>/sim``.
        realtime: Advance the simulated clock with real elapsed time between calls
            (default: on, unless ``LABKIT_SIM_CLOCK=manual``).
        rootless: Model a user's network (slirp4netns or pasta) rather than root's (a bridge);
            default: as this process is (not root: rootless).
    """


    def create(self, record: ContainerRecord, image: Any) -> None:
        if record.config.tty:
            raise HostUnsupported(*NO_TERMINAL)
        with self._locked() as w:
            w.containers[record.id] = SimContainer(record.id, list(image.lowerdirs()), env=list(record.config.env))
            self._step(w, events.create_layer(self._paths(record.id)["upper"]), record.id)

    def start(self, record: ContainerRecord, image: Any, console: Any = None, stdin: int | None = None) -> Launched:
        c = record.config
        # -i without -t: what the caller pipes in, read to its end first (the simulated PID 1 reads it all at once);
        # without a caller, nothing (a read that would wait on the held-open pipe ends at once here).
        given = read_input(stdin) if stdin is not None and c.open_stdin and not c.tty else b""
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
                if self.rootless:
                    info = self._attach_user(w, ct, record)
                else:
                    info = network.attach(w, ct, record, Networks(self.store).get(c.network))
                    self._step(w, events.network_attach(network.veth_name(record.id), info["Bridge"],
                                                        info["IPAddress"], info["MacAddress"]), record.id)
                    for name in c.networks[1:]:  # the networks it joined later (network connect), in order
                        self._plug(w, ct, record, Networks(self.store).get(name), c.endpoint(name) or EndpointSpec(name))
                if info is not None and not info["Bridge"]:  # rootless: its own address, no peers
                    with open(self.store.container_dir(record.id) / "hosts", "a") as f:
                        f.write(f"{info['IPAddress']}\t{c.hostname}\n")
                for endpoint in network.endpoints(ct):
                    lines = self._meet_peers(w, endpoint)
                    _rewrite_hosts(self.store.container_dir(record.id) / "hosts",
                                   lambda t, lines=lines: hostconfig.hosts_with(t, lines))
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
                self._step(w, events.user_namespace(*self.id_map), record.id)
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

    def unpause(self, record: ContainerRecord) -> None:
        with self._locked() as w:
            ct = self._container(w, record)
            proc_mod.thaw(w, ct)
            self._step(w, events.freeze(False), record.id)
            advance(w, w.now, step=programs.step)

    def paused(self, record: ContainerRecord) -> bool:
        with self._locked() as w:
            return bool(self._container(w, record).frozen)

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
