"""The real backend: containers made by the Linux kernel, and their lifecycle.

Each engine verb maps to a few kernel operations, done here in order:

* ``create``: mkdir the writable layer (``overlay/<id>/diff``) and the init layer;
  write ``/etc/hostname``, ``/etc/hosts``, ``/etc/resolv.conf`` for the container.
* ``start``: mount the overlay (mount(2), fstype ``overlay``); mkdir the cgroups
  and write the limits (cgroups(7)); spawn the supervisor (the C shim), which
  unshares a PID namespace and forks PID 1, which unshares the other
  namespaces, mounts /proc, /dev and /sys, pivot_root(2)s into the overlay,
  drops capabilities and execs the command (:mod:`labkit.linux.process`).
  Without a C compiler to build the shim, ``create`` and ``start`` refuse in
  one sentence (:func:`labkit.linux.supervisor.command`).
* PID 1 exits: the supervisor records the exit status, unmounts the overlay and
  removes the cgroups — no Python process needs to be alive for that.
* ``pause``: the cgroup freezer. ``exec``: setns(2) into PID 1's namespaces.
* ``rm``: delete the writable layer, the init layer and the logs.

The backend is one class made of rooms, as docker-py's client is made of one
mixin per resource: :mod:`labkit.linux.base` (state, cgroups, a process
entering the container), :mod:`labkit.linux.networking`,
:mod:`labkit.linux.rootfs` (the container's filesystem) and
:mod:`labkit.linux.views` (what the pictures read); the verbs of the lifecycle
above are here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import select
import signal as _signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from labkit import helpers
from labkit.errors import Conflict, HostUnsupported, NoSuchContainer, NotFound
from labkit.images.store import Image
from labkit.linux import (
    capabilities,
    cgroups,
    freezer,
    namespaces,
    overlay,
    process,
    procfs,
    stdio,
    supervisor,
    syscalls,
    usernet,
)
from labkit.linux import network as net
from labkit.linux.base import INIT_PATH, rlimits
from labkit.linux.networking import host_resolv_conf
from labkit.linux.rootfs import Rootfs
from labkit.linux.views import Views
from labkit.model import endpoints, events, hostconfig
from labkit.model.container import ContainerRecord, now_rfc3339, process_env
from labkit.model.runtime import Exited, Launched
from labkit.store import read_json, write_json


class LinuxBackend(Views, Rootfs):
    """Real namespaces, overlayfs and cgroups, as root — or rootless, in a user namespace.

    Rootless (``rootless=True``), the same verbs differ where the host's own
    objects would be touched, each concept in its own module:

    * the supervisor first unshares a user namespace (the user is root inside,
      the id map of :mod:`labkit.linux.namespaces`); PID 1 mounts the overlay
      itself, with ``userxattr``, in its own mount namespace — on the host
      ``merged/`` stays an empty directory;
    * cgroups only in a delegated cgroup v2 subtree (:func:`labkit.linux.cgroups.delegated`);
      without one the container runs without limits (``HostConfig`` still shows what was asked);
    * pause: the delegated cgroup's freezer, else SIGSTOP/SIGCONT of every
      process in the container's PID namespace (:mod:`labkit.linux.freezer`);
    * networks: ``none`` and ``host``; the default ``bridge`` and ``-p`` go through
      slirp4netns or pasta (:mod:`labkit.linux.usernet`: a tap device with 10.0.2.100/24,
      ports published on the host by it), since no veth can reach a host bridge; without
      either the default network is a namespace with only ``lo`` and ``-p`` is refused.
      User networks are refused;
    * ``--restart``: the supervisor runs as the user in the host's user
      namespace and execs the restarter with the ``rootless`` backend.
    """

    def create(self, record: ContainerRecord, image: Image) -> None:
        supervisor.command(self.shim_dir)  # no shim, no compiler: refused before anything is made
        layers = self._layers(record, image.lowerdirs())
        overlay.prepare(layers, self.store.init_dir(record.id), self._placeholders(record), self.store.root / "tmp")
        self.emit(events.create_layer(layers.upper), record.id)

    def start(self, record: ContainerRecord, image: Image, console: socket.socket | None = None,
              stdin: int | None = None) -> Launched:
        cdir = self.store.container_dir(record.id)
        if not cdir.is_dir():  # removed by another process since the record was read: make nothing
            raise NoSuchContainer(record.id)
        supervisor.command(self.shim_dir)  # no shim, no compiler: refused before anything is made
        info, listeners = self._connect(record, cdir)
        try:
            return self._start(record, image, info, listeners, console, stdin)
        except BaseException:
            if info is not None and info.get("Driver") in endpoints.USER_NETWORK_DRIVERS:
                usernet.stop_helper(info)  # attach_slirp stops its own on failure; this is for a later one
            elif info is not None and not (cdir / "exit.json").exists():
                net.drop_netns(info["Sandbox"])
            raise
        finally:
            for sock, _ in listeners:
                sock.close()  # the supervisor holds its own copies now

    def _start(self, record: ContainerRecord, image, info, listeners,  # type: ignore[no-untyped-def]
               console: socket.socket | None = None, stdin: int | None = None) -> Launched:
        c = record.config
        layers = self._layers(record, image.lowerdirs())
        if not os.path.isdir(layers.work):  # create made them; a record from an older layout may not have
            overlay.prepare(layers, self.store.init_dir(record.id), self._placeholders(record))
        argv = list(c.argv)
        init_mount = []
        if c.init:
            init_bin = supervisor.build_init(self.shim_dir)
            if init_bin is None:
                raise HostUnsupported("--init needs a C compiler with a static C library to build labkit-init",
                                      "Install gcc and libc6-dev, or run without --init")
            init_mount = [process.Mount(init_bin, INIT_PATH, readonly=True)]
            argv = [INIT_PATH, "--", *argv]
        cdir = self.store.container_dir(record.id)
        (cdir / "exit.json").unlink(missing_ok=True)
        etc = self._write_etc(cdir, record, info)
        slirp = info if info is not None and info.get("Driver") in endpoints.USER_NETWORK_DRIVERS else None
        if slirp is not None:
            (cdir / "resolv.conf").write_text(endpoints.slirp_resolv_conf(host_resolv_conf()))
            info = None  # nothing pinned, nothing to relay: the helper attaches to PID 1's own namespace

            def on_netns(pid: int, lifeline: int) -> None:
                slirp.update(usernet.attach_user_network(slirp, pid, lifeline, str(cdir / f"{slirp['Driver']}.log")))
                write_json(cdir / "network.json", slirp)
        mounted = events.mount_overlay(list(layers.lowers), layers.upper, layers.work, layers.merged)
        if not self.rootless:  # rootless, PID 1 mounts it, once in a mount namespace of its user namespace (pid1.c)
            self.lowerdir_plus = overlay.mount(layers, self.lowerdir_plus)
            self.emit(mounted, record.id)
        group = None
        try:
            limits = cgroups.Limits(
                memory=c.memory or None,
                memory_swap=c.memory_swap or None,
                nano_cpus=c.nano_cpus or None,
                pids_limit=c.pids_limit,
            )
            group = self._create_group(record.id, limits, c.privileged)
            for path, value in (group.written if group else ()):
                self.emit(events.cgroup_write(path, value, _LIMIT_WHY.get(path.rsplit("/", 1)[-1], "a limit")),
                          record.id)
            mounts = [process.Mount(src, dst) for src, dst in etc.items()] + init_mount
            for m in c.mounts:
                if m.type == "tmpfs":
                    bits, data = hostconfig.tmpfs_options(("ro," if m.readonly else "") + m.options)
                    mounts.append(process.Mount("tmpfs", m.destination, m.readonly, "tmpfs", bits, data))
                    continue
                src = str(self.store.volume_dir(m.source) / "_data") if m.type == "volume" else m.source
                mounts.append(process.Mount(src, m.destination, m.readonly))
            for dest, options in c.tmpfs.items():
                bits, data = hostconfig.tmpfs_options(options)
                mounts.append(process.Mount("tmpfs", dest, bool(bits & 1), "tmpfs", bits, data))
            caps = self._caps(record)
            spec = process.LaunchSpec(
                rootfs=layers.merged,
                argv=argv,
                env=process_env(c.env, c.hostname, c.tty, home=None if c.user else "/root"),
                tty=c.tty,
                winsize=c.console_size,
                cwd=c.workdir,
                hostname=c.hostname,
                mounts=tuple(mounts),
                cgroup_procs=group.procs_files if group else (),
                network="host" if c.network == "host" else "none",
                netns=info["Sandbox"] if info else None,
                address=(info["IPAddress"], info["IPPrefixLen"], info["Gateway"]) if info else None,
                proxies=tuple((sock.fileno(), f"{info['IPAddress']}:{cport}") for sock, cport in listeners)
                if info else (),
                state_dir=str(cdir),
                log_path=str(cdir / "json.log"),
                oom_file=group.oom_file if group else None,
                # Rootless, the overlay exists only in PID 1's mount namespace and vanishes with it.
                cleanup_umounts=(*(() if self.rootless else (layers.merged,)), *([info["Sandbox"]] if info else [])),
                cleanup_rmdirs=group.dirs if group else (),
                block_signals=c.init,
                userns=self.idmap if self.rootless else None,
                overlay=overlay.mount_options(layers, userxattr=True) if self.rootless else None,
                lowerdir_plus=self.lowerdir_plus is not False,
                seccomp=self._seccomp(c.security_opt, caps, c.privileged),
                caps=capabilities.mask(caps),
                user=c.user,
                rlimits=rlimits(c.ulimits),
                privileged=c.privileged,
                readonly_rootfs=c.readonly_rootfs,
                on_exit=tuple(helpers.python("labkit.restarter", str(self.store.root), record.id,
                                             *(("rootless",) if self.rootless else ())))
                if c.restart_policy != "no" else (),
            )
            self._seen[record.id] = set(overlay.traced_changes(layers))  # before PID 1 can change anything
            with _stdin_pipe(c.open_stdin and not c.tty, stdin) as (stdin_r, stdin_hold, feed):
                spec = dataclasses.replace(spec, stdin=stdin_r, stdin_hold=stdin_hold)
                started = process.start(spec, supervisor.command(self.shim_dir),
                                        on_netns if slirp is not None else None,
                                        attach=console.fileno() if console is not None else None,
                                        watch_exit=not spec.on_exit)  # a restart policy's supervisor goes on
                self._watch_exit(record.id, started.exit_fd)
                feed()
        except BaseException:
            self._seen.pop(record.id, None)
            # process.start() cleans up after a failed exec itself (through the supervisor);
            # anything that failed before that is undone here, so no half-made state is left.
            if not (cdir / "exit.json").exists():
                if group is not None:
                    group.destroy()
                overlay.umount(layers)
            raise
        flags = events.NAMESPACE_FLAGS if spec.network != "host" else tuple(
            f for f in events.NAMESPACE_FLAGS if f != "NEWNET")
        if self.rootless:
            ids = self.idmap
            self.emit(events.user_namespace(ids.uid, ids.gid, ids.uid_range, ids.gid_range), record.id)
            flags = ("NEWUSER", *flags)
        self.emit(events.clone(flags, started.pid), record.id)
        if slirp is not None:
            self.emit(events.network_helper(slirp["Driver"], slirp["IPAddress"],
                                            int(slirp.get("SlirpPid") or 0)), record.id)
        if self.rootless:
            self.emit(mounted, record.id)
        self.emit(events.pivot_root(layers.merged), record.id)
        self.emit(events.execve(list(c.argv), started.pid), record.id)
        return Launched(started.pid, started.pid_start_time, started.shim_pid, now_rfc3339())

    def observe(self, record: ContainerRecord) -> Exited | None:
        """How PID 1 of the current start ended, or None while it runs under its supervisor.

        The supervisor (``labkit-shim``) records the exit and undoes the run. If it is gone
        without having done all of that — killed — labkit does it here, as Docker does when a
        container's shim dies: every process of the container is killed (SIGKILL, so 137 is
        recorded if PID 1 was still alive), and the overlay mount, the network namespace (and
        with it the veth), the user-mode network helper and the cgroup go.
        """
        cdir = str(self.store.container_dir(record.id))
        # Whether the supervisor runs is asked *before* its exit record is read: it writes the record,
        # then exits, so one seen gone has left its record by then if it ever will. Read the other way
        # round, a supervisor that wrote and exited between the two looks would pass for one killed
        # before writing, and a run that exited 0 would be recorded as 255.
        supervised = self._supervised(record)
        info = process.read_exit(cdir)
        if supervised:
            if info is None:
                return None
            self._watch_exit(record.id, -1)  # the end is seen: its pipe has nothing more to tell
            return self._exited(info)  # with a record: it is cleaning up
        self._watch_exit(record.id, -1)
        killed = False
        if info is None:
            killed = self._end(record)
        self._undo(record)
        if info is not None:
            return self._exited(info)
        if killed:
            return Exited(137, now_rfc3339(), error="labkit-shim, the container's supervisor, was killed: "
                                                    "labkit killed PID 1 with SIGKILL and undid what the run made")
        return Exited(255, now_rfc3339(), error="labkit-shim, the container's supervisor, was killed before it "
                                                "recorded how PID 1 ended; the exit code is unknown")

    @staticmethod
    def _exited(info: dict) -> Exited:  # type: ignore[type-arg]
        return Exited(info["ExitCode"], info["FinishedAt"], bool(info.get("OOMKilled")))

    def cancel_restart(self, record: ContainerRecord) -> None:
        """Nothing: the restarter finds the record no longer ``restarting`` after its delay and gives up."""

    def recover(self, record: ContainerRecord) -> bool:
        """Undo a start whose starter was killed: kill what it started (the supervisor, PID 1, their
        descendants), then remove what it made (mounts, cgroup, network namespace, helper).
        Returns whether there was anything to undo."""
        found = self._end(record, shims=True)
        found = self._undo(record) or found
        (self.store.container_dir(record.id) / process.EXIT_FILE).unlink(missing_ok=True)  # the killed PID 1's
        return found

    def _supervised(self, record: ContainerRecord) -> bool:
        """Whether the supervisor of the current start still runs (or the restart policy it became)."""
        pid = record.state.shim_pid
        if not pid or not procfs.alive(pid, 0):
            return False
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                return record.id.encode() in f.read()  # not a newcomer that was given the PID
        except OSError:
            return False

    def _end(self, record: ContainerRecord, shims: bool = False) -> bool:
        """Kill every process of the container (and with ``shims``, every supervisor of it and what they
        forked); returns once they are gone. True if the recorded PID 1 (with ``shims``: anything) was alive."""
        st = record.state
        pid1 = bool(st.pid) and procfs.alive(st.pid, st.pid_start_time)
        doomed: list[int] = []
        if shims:
            doomed += procfs.supervisors_of(str(self.store.container_dir(record.id) / process.EXIT_FILE))
        if pid1:
            doomed.append(st.pid)  # PID 1: the kernel then kills the rest of its PID namespace
        procfs.kill_trees(doomed)
        try:
            group = self._group(record)
        except (NotFound, OSError):
            group = None
        grouped = False
        if group is not None:
            try:
                grouped = bool(group.pids())
                group.kill_all(_signal.SIGKILL)
                deadline = time.monotonic() + 5
                while group.pids() and time.monotonic() < deadline:
                    time.sleep(0.01)
            except FileNotFoundError:
                pass
        return pid1 or (shims and bool(doomed or grouped))

    def _undo(self, record: ContainerRecord) -> bool:
        """What the supervisor does once PID 1 has ended (shim.c), for when it could not; idempotent.
        Returns whether anything was left to undo."""
        cdir = self.store.container_dir(record.id)
        found = False
        merged = self._layers(record, []).merged
        if not self.rootless and syscalls.is_mountpoint(merged):
            overlay.umount(self._layers(record, []))
            found = True
        if syscalls.is_mountpoint(cdir / "netns"):
            net.drop_netns(str(cdir / "netns"))
            found = True
        if self.rootless:
            found = usernet.stop_helper(read_json(cdir / "network.json")) or found
        try:
            self._group(record).destroy()
            found = True
        except (NotFound, Conflict, FileNotFoundError):
            pass
        return found

    def wait(self, record: ContainerRecord, timeout: float | None) -> bool:
        # The supervisor writes exit.json, then unmounts and removes the cgroups: wait for all of it,
        # so that what the caller looks at next (mounts, addresses) is already undone.
        if record.state.shim_pid and procfs.alive(record.state.shim_pid, 0):
            done = process.wait(record.state.shim_pid, timeout)
        else:
            done = process.read_exit(str(self.store.container_dir(record.id))) is not None or not procfs.alive(
                record.state.pid, record.state.pid_start_time)
        if done:
            self._watch_exit(record.id, -1)
        return done

    def wait_recorded(self, record: ContainerRecord, timeout: float | None) -> bool:
        """Block until the supervisor has recorded PID 1's exit (True), while it may still be undoing the run;
        False after ``timeout`` seconds. A container this backend did not start here is waited for as
        :meth:`wait` does."""
        fd = self._exit_fds.get(record.id)
        if fd is None:
            return self.wait(record, timeout)
        poller = select.poll()
        poller.register(fd, select.POLLIN)  # end of file: exit.json is written (or the supervisor died)
        if not poller.poll(None if timeout is None else max(0, int(timeout * 1000))):
            return False
        self._watch_exit(record.id, -1)
        return True

    def _watch_exit(self, cid: str, fd: int) -> None:
        """Hold ``fd`` as ``cid``'s exit pipe (-1: none), closing the one held before."""
        old = self._exit_fds.pop(cid, None)
        if old is not None:
            os.close(old)
        if fd >= 0:
            self._exit_fds[cid] = fd

    def signal(self, record: ContainerRecord, signum: int) -> None:
        if procfs.alive(record.state.pid, record.state.pid_start_time):
            os.kill(record.state.pid, signum)
            self.emit(events.signal(signum, record.state.pid), record.id)

    def pause(self, record: ContainerRecord) -> None:
        by_signal = freezer.freeze(self._group_or_none(record), record.state.pid)
        self.emit(events.freeze(True, by_signal=by_signal), record.id)

    def unpause(self, record: ContainerRecord) -> None:
        by_signal = freezer.thaw(self._group_or_none(record), record.state.pid)
        self.emit(events.freeze(False, by_signal=by_signal), record.id)

    def paused(self, record: ContainerRecord) -> bool:
        try:
            group = self._group_or_none(record)
            if group is not None:
                return group.freeze_requested()  # FREEZING counts: the freeze was asked for and goes on
        except (NotFound, FileNotFoundError, HostUnsupported):
            return False
        return bool(record.state.pid) and freezer.stopped(record.state.pid)

    def trace_teardown(self, record: ContainerRecord) -> None:
        """Trace what the supervisor undoes once PID 1 has ended (``--umount``, ``--rmdir``, see _start)."""
        if not self.rootless:  # rootless, the overlay lived in PID 1's mount namespace and went with it
            self.emit(events.umount(self._layers(record, []).merged), record.id)
        info = read_json(self.store.container_dir(record.id) / "network.json")
        if info and info.get("Veth") and record.config.network not in ("none", "host"):
            self.emit(events.network_detach(info["Veth"], info["Bridge"], info["IPAddress"]), record.id)
        layout = self._cgroup_layout
        dirs = list(cgroups.Cgroup(layout, record.id).dirs) if layout is not None else []
        if dirs:
            self.emit(events.cgroup_remove(dirs), record.id)

    def logs(self, record: ContainerRecord) -> Iterator[tuple[str, str, str]]:
        path = self.store.container_dir(record.id) / "json.log"
        try:
            f = open(path, "rb")
        except FileNotFoundError:
            return
        with f:
            for raw in f:
                try:
                    line = json.loads(raw)
                except ValueError:
                    continue  # a line being written right now
                yield line.get("stream", "stdout"), line.get("log", ""), line.get("time", "")

    def remove(self, record: ContainerRecord) -> None:
        layer_root = self.store.layer_dir(record.id)
        self._seen.pop(record.id, None)
        self._watch_exit(record.id, -1)
        self.emit(events.remove_layer(str(layer_root / "diff")), record.id)
        try:
            group = self._group(record)
        except NotFound:
            group = None
        if group is None and self.rootless and procfs.alive(record.state.pid, record.state.pid_start_time):
            os.kill(record.state.pid, _signal.SIGKILL)  # PID 1 gone, the kernel kills its whole PID namespace
        if group is not None:
            # A start cut short (the record never learned its PID) can leave processes behind:
            # every process in the container's cgroup goes, whatever the record says. The
            # supervisor may be removing the group at this very moment: a group that vanishes
            # under us is a group with nothing left in it.
            try:
                group.kill_all(_signal.SIGKILL)
                deadline = time.monotonic() + 5
                while group.pids() and time.monotonic() < deadline:
                    time.sleep(0.01)
            except FileNotFoundError:
                group = None
        shim = record.state.shim_pid
        if shim and procfs.alive(shim, 0):
            process.wait(shim, 5)  # the supervisor records the exit and unmounts
        if self.rootless:  # it ends with the supervisor (its lifeline); a restarter may still hold that
            usernet.stop_helper(read_json(self.store.container_dir(record.id) / "network.json"))
        overlay.umount(overlay.layers_for(layer_root, self.store.init_dir(record.id), []))
        sandbox = self.store.container_dir(record.id) / "netns"
        if syscalls.is_mountpoint(sandbox):  # a supervisor too slow to unpin it: do it here, before the dir goes
            net.drop_netns(str(sandbox))
        if group is not None:
            try:
                group.destroy()
            except (Conflict, FileNotFoundError):
                pass  # busy, or already gone: the supervisor removes it when the last process is reaped
        # Taken away by rename and deleted in the background; rootless, a layer may hold files a container gave
        # its subordinate ids, which the user deletes inside a user namespace with the map (remove_tree).
        overlay.remove(layer_root, self.store.init_dir(record.id), self._discard, self.store.root / "tmp")

    def _discard(self, path: Path) -> bool:
        """:meth:`labkit.store.Store.discard` a container's tree, rootless through :func:`namespaces.remove_tree`."""
        if not self.rootless:
            return self.store.discard(path)
        return self.store.discard(path, lambda trash: namespaces.remove_tree(self.idmap, str(trash)))

    def update(self, record: ContainerRecord) -> None:
        """Write the running container's new limits into its cgroup (``docker update``), each write traced.

        Rootless without a delegated cgroup there is nothing to write: the limits are discarded, as at start.
        """
        c = record.config
        self._watch_restart(record)
        group = self._group_or_none(record)
        if group is None:
            return
        have = group.layout.controllers
        group.update(cgroups.Limits(
            memory=(c.memory or None) if "memory" in have else None,
            memory_swap=(c.memory_swap or None) if "memory" in have else None,
            nano_cpus=(c.nano_cpus or None) if "cpu" in have else None,
            pids_limit=(c.pids_limit or -1) if "pids" in have else None,
        ))
        for path, value in group.written:
            self.emit(events.cgroup_write(path, value, _LIMIT_WHY.get(path.rsplit("/", 1)[-1], "a limit")), record.id)

    def _watch_restart(self, record: ContainerRecord) -> None:
        """A restart policy given to a running container whose supervisor was started without one (it will
        exec no restarter when PID 1 ends): a restarter that waits for that supervisor takes its place, once."""
        shim = record.state.shim_pid
        if record.config.restart_policy == "no" or not shim or not self._supervised(record):
            return
        try:
            with open(f"/proc/{shim}/cmdline", "rb") as f:
                if b"labkit.restarter" in f.read():
                    return  # its supervisor runs the restarter already
        except OSError:
            return
        marker = self.store.container_dir(record.id) / "restart-watcher"
        try:
            with open(f"/proc/{int(marker.read_text())}/cmdline", "rb") as f:
                if record.id.encode() in f.read():
                    return  # a watcher of this run is there already
        except (OSError, ValueError):
            pass
        pid = helpers.spawn_detached(helpers.python("labkit.restarter", str(self.store.root), record.id,
                                                    *(("rootless",) if self.rootless else ()), "--after", str(shim)))
        marker.write_text(str(pid))


@contextlib.contextmanager
def _stdin_pipe(open_stdin: bool, source: int | None) -> Iterator[tuple[int | None, int | None, Any]]:
    """PID 1's stdin for ``-i`` without a terminal: a pipe whose read end PID 1 gets (``--stdin``).

    With ``source`` (an attached ``run -i``), the write end is fed from ``source`` by a thread of this
    process, started by the yielded ``feed()`` once PID 1 runs, and closed at ``source``'s end, so PID 1
    reads end of file then (Docker's ``StdinOnce``). Without one (``run -di``, a later ``start``), the
    supervisor holds the write end (``--stdin-hold``) and nothing writes it: PID 1's reads wait, as in
    Docker. Yields (read end, held write end, feed); (None, None, a no-op) without ``open_stdin``.
    """
    if not open_stdin:
        yield None, None, lambda: None
        return
    read_end, write_end = os.pipe()
    fed = False

    def feed() -> None:
        nonlocal fed
        if source is not None:  # a copy of the caller's descriptor: the caller may close its own at once
            threading.Thread(target=_copy_then_close, args=(os.dup(source), write_end), daemon=True).start()
            fed = True

    try:
        yield read_end, (write_end if source is None else None), feed
    finally:
        os.close(read_end)  # the supervisor and PID 1 have their own copies now
        if not fed:
            os.close(write_end)

def _copy_then_close(source: int, sink: int) -> None:
    """Copy ``source`` into ``sink`` until its end, then close both (PID 1 reads end of file); a PID 1
    that closed its stdin first (EPIPE) ends the copy too."""
    try:
        while chunk := os.read(source, 65536):
            stdio._write_all(sink, chunk)
    except OSError:
        pass
    finally:
        os.close(sink)
        os.close(source)


#: What each cgroup file a container's limits are written to means, for the trace.
_LIMIT_WHY = {
    "memory.limit_in_bytes": "the most memory the container may use (v1)",
    "memory.memsw.limit_in_bytes": "memory plus swap (v1)",
    "memory.max": "the most memory the container may use (v2)",
    "memory.swap.max": "the most swap it may use (v2)",
    "pids.max": "the most processes it may have",
    "cpu.cfs_quota_us": "CPU time per period (v1)",
    "cpu.cfs_period_us": "the CPU accounting period (v1)",
    "cpu.max": "CPU time per period (v2)",
}
