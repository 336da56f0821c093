"""The real backend: containers made by the Linux kernel.

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
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import ipaddress
import json
import os
import shutil
import signal as _signal
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, cast

from labkit import helpers
from labkit.errors import (
    BuildFailed,
    Conflict,
    HostUnsupported,
    InvalidArgument,
    LabkitError,
    NoSuchContainer,
    NotFound,
    StartFailed,
)
from labkit.images import tree
from labkit.images.base import ensure_busybox
from labkit.images.ownership import HostIds, Ownership
from labkit.images.store import Image, ImageStore
from labkit.linux import (
    capabilities,
    cgroups,
    copying,
    devices,
    freezer,
    namespaces,
    overlay,
    ownership,
    process,
    seccomp,
    stdio,
    supervisor,
    syscalls,
    usernet,
)
from labkit.linux import console as terminal
from labkit.linux import network as net
from labkit.model import events, hostconfig
from labkit.model.container import HOSTS, ContainerRecord, now_rfc3339, process_env
from labkit.model.overlay import LayerContents, Overlay
from labkit.model.runtime import Exited, Launched
from labkit.model.views import NetworkView, ProcessView
from labkit.networks import Networks
from labkit.store import Store, read_json, write_json

#: Where `run --init` mounts labkit's tiny init (Docker uses /sbin/docker-init).
INIT_PATH = "/sbin/labkit-init"
#: The cgroup controllers behind ``--memory``, ``--pids-limit`` and ``--cpus``.
LIMIT_CONTROLLERS = ("memory", "pids", "cpu")

class LinuxBackend:
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

    name = "linux"
    simulated = False
    #: ``--restart`` is applied by the restarter the supervisor execs (:mod:`labkit.restarter`).
    restarts_itself = False

    def __init__(self, store: Store, cgroup_layout: cgroups.Layout | None = None, rootless: bool = False) -> None:
        self.store = store
        self._layout = cgroup_layout
        self.rootless = rootless
        #: As root, a network is a bridge on the host; rootless, no veth can reach one (see above).
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
        self.shim_dir = str(store.root / "bin")  # the compiled supervisor and init, cached per state root
        self._seen: dict[str, set[tuple[str, str]]] = {}

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

    def storage(self, record: ContainerRecord, image: Image) -> dict[str, str]:
        return self._layers(record, image.lowerdirs()).graph_driver_data()

    # -- verbs ---------------------------------------------------------------------------------
    def _placeholders(self, record: ContainerRecord) -> tuple[str, ...]:
        return (INIT_PATH,) if record.config.init else ()

    def create(self, record: ContainerRecord, image: Image) -> None:
        supervisor.command(self.shim_dir)  # no shim, no compiler: refused before anything is made
        layers = self._layers(record, image.lowerdirs())
        overlay.prepare(layers, self.store.init_dir(record.id), self._placeholders(record), self.store.root / "tmp")
        self.emit(events.create_layer(layers.upper), record.id)

    def _write_etc(self, cdir: Path, record: ContainerRecord, info: dict | None) -> dict[str, str]:  # type: ignore[type-arg]
        """The per-container /etc files, bind-mounted over the init layer's placeholders.

        Each is written once: rewriting a file ext4 has not written out yet makes it start
        writing it out at once (``auto_da_alloc``).
        """
        c = record.config
        files = {
            "hostname": c.hostname + "\n",
            "hosts": self._hosts(info, hostconfig.extra_hosts_lines(
                c.extra_hosts, self._gateway(info) if any(h.endswith(":host-gateway") for h in c.extra_hosts) else "")),
            "resolv.conf": hostconfig.resolv_conf(_host_resolv_conf(), c.dns),
        }
        for name, text in files.items():
            (cdir / name).write_text(text)
        return {str(cdir / name): f"/etc/{name}" for name in files}

    # -- network -------------------------------------------------------------------------------
    def _endpoints(self, network: str | None = None) -> list[dict]:  # type: ignore[type-arg]
        """Live endpoints (containers whose network namespace is pinned) of this state root."""
        out = []
        base = self.store.root / "containers"
        for cid in os.listdir(base):
            info = read_json(base / cid / "network.json")
            if info and syscalls.is_mountpoint(info["Sandbox"]) and (network is None or info["Network"] == network):
                out.append(info)
        return out

    def _connect(self, record: ContainerRecord, cdir: Path) -> tuple[dict | None, list]:  # type: ignore[type-arg]
        """Bind published ports, then give the container an address on its bridge.

        Ports are bound first: a port in use is refused before anything else is made.
        Returns the endpoint record (None for ``none``/``host``) and the listening sockets.
        """
        c = record.config
        if c.network in ("none", "host"):
            return None, []  # Docker records -p bindings here but publishes nothing
        if self.rootless:
            if c.network != "bridge":
                raise HostUnsupported(f"network {c.network} needs root: rootless containers have the default "
                                      "network (through slirp4netns or pasta), none or host",
                                      "Use the default network, --network none or host, or run as root")
            # A restart: the last run's network helper may still hold the host ports (until its supervisor is gone).
            usernet.stop_helper(read_json(cdir / "network.json"))
            if not c.ports and usernet.network_helper() is None:
                return None, []  # no user-mode network stack: a network namespace of its own with lo only
            return usernet.plan_user_network(c.network, Networks(self.store).get(c.network)["Id"], c.name, c.hostname,
                                       c.ports), []
        networks = Networks(self.store)
        networks.get(c.network)  # refused here if unknown; the default network's record is made (under the lock)
        listeners: list = []
        published: dict[str, list[dict[str, str]]] = {}
        try:
            for p in c.ports:
                key = f"{p.container_port}/{p.protocol}"
                if p.protocol != "tcp":
                    raise InvalidArgument(f"publishing {key} is not supported", "labkit publishes tcp ports only")
                host_ip = p.host_ip or "127.0.0.1"  # a learner's lab is not reachable from the classroom network
                sock = net.listen(host_ip, int(p.host_port or 0))
                port = sock.getsockname()[1]
                listeners.append((sock, p.container_port))
                published.setdefault(key, []).append({"HostIp": host_ip, "HostPort": str(port)})
            with self.store.locked():
                rec = self._bring_up(networks, c.network, record.id)
                bridge = rec["Options"]["com.docker.network.bridge.name"]
                cfg = rec["IPAM"]["Config"][0]
                gateway, prefixlen = cfg["Gateway"], int(cfg["Subnet"].split("/")[1])
                for p in c.ports:
                    if not p.host_ip:  # other containers reach a published port through the gateway: only they
                        port = int(published[f"{p.container_port}/{p.protocol}"][0]["HostPort"])
                        listeners.append((net.listen(gateway, port, device=bridge), p.container_port))
                used = {e["IPAddress"] for e in self._endpoints(c.network)}
                ip = net.allocate(ipaddress.IPv4Network(cfg["Subnet"]), gateway, used)
                sandbox = str(cdir / "netns")
                net.make_netns(sandbox)
                endpoint = net.Endpoint(c.network, bridge, ip, prefixlen, gateway, net.mac_for(ip),
                                        net.veth_name(record.id), sandbox)
                info = {"Network": c.network, "NetworkID": rec["Id"], "Bridge": endpoint.bridge, "IPAddress": ip,
                        "IPPrefixLen": prefixlen, "Gateway": gateway, "MacAddress": endpoint.mac,
                        "Veth": endpoint.veth, "Sandbox": sandbox, "Ports": published, "Name": c.name,
                        "Hostname": c.hostname}
                write_json(cdir / "network.json", info)
            net.attach(endpoint)
            self.emit(events.network_attach(endpoint.veth, endpoint.bridge, ip, endpoint.mac), record.id)
        except BaseException:
            for sock, _ in listeners:
                sock.close()
            net.drop_netns(str(cdir / "netns"))
            raise
        return info, listeners

    def _bring_up(self, networks, name: str, cid: str) -> dict:  # type: ignore[no-untyped-def,type-arg]
        """Network ``name``'s record, with its bridge up: (re)made if it was not, its subnet checked first.

        Under the store's lock (a sweep taking idle bridges down waits) and the
        host-wide one (another state root bringing a bridge up waits): the subnet is
        checked against every address and route of the host, moved to a free pool
        if another root, Docker or anything else took it meanwhile, and the bridge
        made with it before anyone else may look.
        """
        rec = networks.get(name)
        bridge = rec["Options"]["com.docker.network.bridge.name"]
        if net.bridge_up(bridge):
            return rec  # checked when it was made; it holds its subnet's route since
        with net.host_lock():
            old = rec["IPAM"]["Config"][0]["Subnet"]
            rec, hit = networks.settle(name, net.subnets_in_use(exclude=bridge))
            cfg = rec["IPAM"]["Config"][0]
            net.make_bridge(bridge, ipaddress.IPv4Network(cfg["Subnet"]), cfg["Gateway"])
        if hit:
            self.emit(events.network_subnet_moved(name, old, hit, cfg["Subnet"]), cid)
        return rec

    def _gateway(self, info: dict | None) -> str:  # type: ignore[type-arg]
        """``--add-host NAME:host-gateway``'s address: the gateway of the container's bridge, else the default
        bridge's (the host's address on it, as Docker's host-gateway is)."""
        if info is not None and info.get("Gateway"):
            return str(info["Gateway"])
        return str(Networks(self.store).get("bridge")["IPAM"]["Config"][0]["Gateway"])

    def _hosts(self, info: dict | None, extra: str = "") -> str:  # type: ignore[type-arg]
        """/etc/hosts: localhost, ``--add-host``'s lines, the container's own address and, on a user network,
        every peer by name; each peer's /etc/hosts learns the container's name."""
        text = HOSTS + extra
        if info is None:
            return text
        text += f"{info['IPAddress']}\t{info['Hostname']}\n"
        peers = [] if info["Network"] == "bridge" else [
            e for e in self._endpoints(info["Network"]) if e["Sandbox"] != info["Sandbox"]]
        for peer in peers:
            text += f"{peer['IPAddress']}\t{peer['Name']}\n"
        for peer in peers:  # they learn the newcomer's name; written in place: the bind mount pins the inode
            hosts = Path(peer["Sandbox"]).parent / "hosts"
            try:
                with open(hosts, "r+") as f:
                    current = f.read()
                    line = f"{info['IPAddress']}\t{info['Name']}\n"
                    if line not in current:
                        f.write(line)
            except OSError:
                continue
        return text

    def drop_bridge(self, network: dict[str, Any]) -> None:
        """Delete a network's bridge interface if no live container is plugged into it."""
        if network.get("Driver") != "bridge" or self._endpoints(network["Name"]):
            return
        if net.bridge_exists(network["Options"]["com.docker.network.bridge.name"]):
            net.delete_bridge(network["Options"]["com.docker.network.bridge.name"])  # and its nftables table

    def network_settings(self, record: ContainerRecord) -> dict[str, Any]:
        """``NetworkSettings`` as inspect shows it: live addresses while running, empty ones after."""
        info = read_json(self.store.container_dir(record.id) / "network.json")
        running = self._net_live(record, info)
        if record.config.network in ("none", "host") or info is None or not running:
            # Not plugged in: no addresses, and Ports {} (Docker shows a stopped container's exposed ports nowhere).
            return net.network_settings(None, {}, (info or {}).get("NetworkID", ""), record.config.network)
        endpoint = net.Endpoint(info["Network"], info["Bridge"], info["IPAddress"], info["IPPrefixLen"],
                                info["Gateway"], info["MacAddress"], info["Veth"],
                                info.get("SandboxKey") or info["Sandbox"])
        ports: dict = {k: None for k in record.config.exposed_ports}
        ports.update(info["Ports"])
        return net.network_settings(endpoint, ports, info["NetworkID"])

    def _net_live(self, record: ContainerRecord, info: dict | None) -> bool:  # type: ignore[type-arg]
        """Whether the network ``network.json`` records is in place: its namespace pinned, or (rootless) its
        helper (slirp4netns or pasta) running for the container's PID 1."""
        if info is None:
            return False
        if info.get("Driver") in usernet.USER_NETWORK_DRIVERS:
            return (process.read_exit(str(self.store.container_dir(record.id))) is None
                    and process.alive(record.state.pid, record.state.pid_start_time) and usernet.helper_running(info))
        return syscalls.is_mountpoint(info["Sandbox"])

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
            if info is not None and info.get("Driver") in usernet.USER_NETWORK_DRIVERS:
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
        slirp = info if info is not None and info.get("Driver") in usernet.USER_NETWORK_DRIVERS else None
        if slirp is not None:
            (cdir / "resolv.conf").write_text(usernet.slirp_resolv_conf(_host_resolv_conf()))
            info = None  # nothing pinned, nothing to relay: the helper attaches to PID 1's own namespace

            def on_netns(pid: int, lifeline: int) -> None:
                slirp.update(usernet.attach_user_network(slirp, pid, lifeline, str(cdir / f"{slirp['Driver']}.log")))
                write_json(cdir / "network.json", slirp)
        mounted = events.mount_overlay(list(layers.lowers), layers.upper, layers.work, layers.merged)
        if not self.rootless:  # rootless, PID 1 mounts it, once in a mount namespace of its user namespace (pid1.c)
            overlay.mount(layers)
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
                seccomp=self._seccomp(c.security_opt, caps, c.privileged),
                caps=capabilities.mask(caps),
                user=c.user,
                rlimits=_rlimits(c.ulimits),
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
                                        attach=console.fileno() if console is not None else None)
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
            return None if info is None else self._exited(info)  # with a record: it is cleaning up
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
        if not pid or not process.alive(pid, 0):
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
        pid1 = bool(st.pid) and process.alive(st.pid, st.pid_start_time)
        doomed: list[int] = []
        if shims:
            doomed += process.supervisors_of(str(self.store.container_dir(record.id) / process.EXIT_FILE))
        if pid1:
            doomed.append(st.pid)  # PID 1: the kernel then kills the rest of its PID namespace
        process.kill_trees(doomed)
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
        if record.state.shim_pid and process.alive(record.state.shim_pid, 0):
            return process.wait(record.state.shim_pid, timeout)
        return process.read_exit(str(self.store.container_dir(record.id))) is not None or not process.alive(
            record.state.pid, record.state.pid_start_time)

    def signal(self, record: ContainerRecord, signum: int) -> None:
        if process.alive(record.state.pid, record.state.pid_start_time):
            os.kill(record.state.pid, signum)
            self.emit(events.signal(signum, record.state.pid), record.id)

    def service_problem(self) -> LabkitError | None:
        """Rootless, a service's replicas need a user-mode network stack to be reached."""
        if self.rootless and usernet.network_helper() is None:
            return usernet.no_user_network("a service")
        return None

    def listen(self, host_ip: str, host_port: int) -> socket.socket:
        return net.listen(host_ip, host_port)

    def reduced_network(self, network: str) -> str | None:
        if self.rootless and network not in ("none", "host") and usernet.network_helper() is None:
            return (f"network {network}: neither slirp4netns nor pasta is installed, so this rootless container "
                    "has only lo (apt-get install slirp4netns gives it an address and -p)")
        return None

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
                               rlimits=_rlimits(c.ulimits), detach=detach)

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

    def changes(self, record: ContainerRecord, image: Image) -> list[tuple[str, str]]:
        return overlay.changes(self._layers(record, image.lowerdirs()))

    def observe_layer(self, record: ContainerRecord, image: Image) -> None:
        """Record copy-ups, whiteouts and new files that appeared in the upper dir since the last look.

        The kernel does these silently; reading the upper dir (what is there now
        that was not before) is how a learner gets to see them. What is read is what
        the operations left, not each operation on the way: a tree made and moved
        with ``mv`` is told where it ended up, a tree made and removed not at all, and
        a file removed and made again (``rm f && echo x > f``) as a whiteout and an
        add, not a copy-up (:func:`labkit.linux.overlay.copied_up` tells the two
        apart by the origin overlayfs records on a copy-up).
        """
        layers = self._layers(record, image.lowerdirs())
        now = overlay.traced_changes(layers)
        before = self._seen.get(record.id, set())
        parents: list[str] = []  # directories copied up (ovl_copy_up() does parents first), not told yet

        def first(path: str | None) -> list[str]:
            """The parents copied up for ``path`` (all that are left, for None), in the order made."""
            mine = [d for d in parents if path is None or path.startswith(d.rstrip("/") + "/")]
            for d in mine:
                parents.remove(d)
            return mine

        for kind, path in now:
            if (kind, path) in before:
                continue
            full = os.path.join(layers.upper, path.lstrip("/"))
            if os.path.isdir(full) and not os.path.islink(full) and kind != overlay.DELETED:
                if overlay.is_opaque(full):
                    self._emit_all([*map(events.copy_up_dir, first(path)), events.opaque(path)], record.id)
                elif kind == overlay.CHANGED:
                    parents.append(path)
            elif kind == overlay.DELETED:
                self._emit_all([*map(events.copy_up_dir, first(path)), events.whiteout(path)], record.id)
            elif kind == overlay.RECREATED:
                # removed, then made again: the whiteout the removal left was replaced by the new file
                self._emit_all([*map(events.copy_up_dir, first(path)), events.whiteout(path),
                                events.added(path, os.lstat(full).st_size)], record.id)
            elif kind == overlay.CHANGED:
                rel = path.lstrip("/")
                src = overlay.lower_layer_of(list(layers.lowers[1:]), rel)
                below = overlay.lower_stat(layers.lowers[1:], rel)
                size = below.st_size if below is not None else os.lstat(full).st_size
                self._emit_all(events.copy_up_steps(path, size, src if src is not None else "?", first(path)),
                               record.id)
            else:
                self._emit_all([*map(events.copy_up_dir, first(path)), events.added(path, os.lstat(full).st_size)],
                               record.id)
        self._emit_all([events.copy_up_dir(d) for d in first(None)], record.id)
        self._seen[record.id] = set(now)

    def _emit_all(self, made: list[events.Event], cid: str) -> None:
        for event in made:
            self.emit(event, cid)

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
        self.emit(events.remove_layer(str(layer_root / "diff")), record.id)
        try:
            group = self._group(record)
        except NotFound:
            group = None
        if group is None and self.rootless and process.alive(record.state.pid, record.state.pid_start_time):
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
        if shim and process.alive(shim, 0):
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

    # -- docker cp: a tar stream in and out, resolved inside the container's root (labkit.linux.copying) --
    def stat_path(self, record: ContainerRecord, image: Image, path: str) -> dict[str, Any]:
        return cast(dict[str, Any], self._in_root(record, image, lambda: copying.path_stat(path)))

    def copy_out(self, record: ContainerRecord, image: Image, path: str, out: int) -> dict[str, Any]:
        return cast(dict[str, Any], self._in_root(record, image, lambda: copying.write_tar(path, out)))

    def copy_in(self, record: ContainerRecord, image: Image, path: str, tar: int, keep_owners: bool = False) -> None:
        if record.id not in self._seen:  # what was there before the copy is not this copy's (observe_layer)
            self._seen[record.id] = set(overlay.traced_changes(self._layers(record, image.lowerdirs())))
        self._in_root(record, image, lambda: copying.extract_tar(path, tar, keep_owners))

    def _in_root(self, record: ContainerRecord, image: Image, work: copying.Work) -> Any:
        """``work`` in a child whose ``/`` is the container's: PID 1's while it runs, else its overlay
        mounted for the child alone (see :mod:`labkit.linux.copying`)."""
        if record.state.pid and process.alive(record.state.pid, record.state.pid_start_time):
            return copying.in_container(record.state.pid, self.rootless, work)
        cdir = self.store.container_dir(record.id)
        binds = [(str(cdir / name), f"/etc/{name}") for name in overlay.ETC_FILES if (cdir / name).exists()]
        binds += [(str(self.store.volume_dir(m.source) / "_data") if m.type == "volume" else m.source, m.destination)
                  for m in record.config.mounts]
        layers = self._layers(record, image.lowerdirs())
        if not os.path.isdir(layers.work):
            overlay.prepare(layers, self.store.init_dir(record.id), self._placeholders(record))
        return copying.in_layers(layers, binds, self.idmap if self.rootless else None, work)

    def top(self, record: ContainerRecord, ps_args: list[str]) -> tuple[list[str], list[list[str]]]:
        """``ps ps_args`` on the host, kept to the processes in the container's cgroup (``cgroup.procs``), as
        dockerd's ``top`` does; rootless without a delegated cgroup, to those in PID 1's PID namespace."""
        try:
            group = self._group_or_none(record)
            pids = set(group.pids()) if group is not None else set()
        except (NotFound, OSError):
            pids = set()
        if not pids:
            pids = namespaces.pid_namespace_members(record.state.pid)
        return process.ps_table(ps_args, pids)

    # -- what a container sees (the walls and network pictures) ---------------------------------
    def process_view(self, record: ContainerRecord) -> ProcessView:
        """PID 1 as the kernel shows it to the host and to itself (see :func:`labkit.linux.namespaces.process_view`)."""
        return namespaces.process_view(record.state.pid, lambda script: self._sh(record, script),
                                       self._limit_texts(record))

    def network_view(self, record: ContainerRecord) -> NetworkView:
        """The host's interfaces and the container's, as the kernel lists them (:func:`labkit.linux.net.network_view`)."""
        info = read_json(self.store.container_dir(record.id) / "network.json")
        veth = info.get("Veth", "") if info is not None and self._net_live(record, info) else ""
        return net.network_view(record.state.pid, lambda script: self._sh(record, script), veth,
                                record.config.network == "host")

    def http_get(self, record: ContainerRecord, port: int, path: str = "/") -> tuple[int, str]:
        """A GET from the container's ``port`` through the host's network (:func:`labkit.linux.network.http_get`)."""
        return net.http_get(self.network_settings(record), port, path)

    def _sh(self, record: ContainerRecord, script: str) -> tuple[int, str]:
        """``/bin/sh -c script`` in the container (see :meth:`_exec_text`)."""
        return self._exec_text(record, ["/bin/sh", "-c", script])

    def _exec_text(self, record: ContainerRecord, argv: list[str], workdir: str = "/") -> tuple[int, str]:
        """Run ``argv`` in the container: its exit code and what it printed (stdout and stderr together)."""
        with tempfile.TemporaryFile() as out:
            code = self.exec(record, argv, list(record.config.env), workdir, out, out)
            out.seek(0)
            return cast(int, code), out.read().decode(errors="replace")  # without a terminal: always a code

    def _limit_texts(self, record: ContainerRecord) -> tuple[str | None, str | None]:
        """The container's memory and pids limit files as the host reads them (None where absent)."""
        try:
            group = self._group_or_none(record)
        except (NotFound, OSError):
            group = None
        if group is None:
            return None, None
        layout = group.layout
        texts: list[str | None] = []
        for path in (group.interface_file("memory", "memory.max" if layout.is_unified("memory")
                                          else "memory.limit_in_bytes"), group.interface_file("pids", "pids.max")):
            try:
                texts.append(Path(path).read_text() if path else None)
            except OSError:
                texts.append(None)
        return texts[0], texts[1]
    # -- what the pictures ask ------------------------------------------------------------------
    def layer_contents(self, record: ContainerRecord, image: Image, path: str | None = None) -> LayerContents:
        """The upper dir as it is on disk, against the image's layer directories (the init layer left out)."""
        lowers = image.lowerdirs()
        return overlay.contents(self._layers(record, lowers).upper, lowers, path)

    def files(self, record: ContainerRecord, under: str) -> list[str]:
        """``find UNDER -xdev -type f`` run inside the container (``/proc`` and ``/sys`` left out).

        Raises:
            OSError: ``find`` failed for another reason than an unreadable or missing name (exit 0 or 1).
        """
        code, text = self._exec_text(record, ["find", under, "-xdev", "-type", "f"], record.config.workdir)
        if code not in (0, 1):
            raise OSError(errno.EIO, f"find exited {code}", under)
        return sorted(p for p in text.splitlines() if p.startswith("/") and not p.startswith(("/proc/", "/sys/")))

    def meter(self, record: ContainerRecord) -> cgroups.Meter | None:
        """The container's cgroup files, read against the host's clock; ``None`` when its group cannot be found."""
        try:
            return cgroups.Meter(self._group(record), pid=record.state.pid)
        except (LabkitError, OSError):
            return None

    def layer_model(self, record: ContainerRecord) -> Overlay | None:
        """None: the layers are directories on the host (:meth:`storage` names them)."""
        return None

    def kernel_memory_limit(self, record: ContainerRecord) -> int | None:
        """``memory.max`` (v2) or ``memory.limit_in_bytes`` (v1) of the container's group; None if unreadable."""
        try:
            group = cgroups.Cgroup.open(self.layout, record.id)
            path = group.interface_file("memory", "memory.max" if self.layout.is_unified("memory")
                                        else "memory.limit_in_bytes")
            with open(path or "") as f:
                text = f.read().strip()
            return None if text == "max" else int(text)
        except (OSError, ValueError, LabkitError):
            return None

    def host_has_pid1(self, record: ContainerRecord) -> bool:
        """``/proc/PID`` exists: a container's PID 1 is an ordinary host process."""
        return record.state.pid > 0 and os.path.isdir(f"/proc/{record.state.pid}")

    def shared_namespaces(self, record: ContainerRecord, kinds: tuple[str, ...]) -> list[str]:
        """The kinds whose ``/proc/PID/ns/KIND`` link names the same namespace as this process's (namespaces(7))."""
        pid = record.state.pid
        return [kind for kind in kinds if os.readlink(f"/proc/{pid}/ns/{kind}") == os.readlink(f"/proc/self/ns/{kind}")]

    # -- building images -----------------------------------------------------------------------
    def ensure_base(self, image_store: ImageStore) -> Image:
        """``busybox:latest`` from the host's static busybox (:func:`labkit.images.base.ensure_busybox`)."""
        return ensure_busybox(image_store)

    def write_upper(self, record: ContainerRecord, image: Image, dest: str) -> None:
        """The upper dir as it is on disk, copied with its whiteouts, opaque xattrs, owners and times.

        Reading an upper dir under a mounted overlay is allowed (overlayfs.rst, "Changes to underlying
        filesystems" forbids only changing it). Rootless, files a container made as a subordinate id
        may be unreadable to the user: the copy runs as root in a user namespace with the containers'
        own id map, where those ids are mapped and chown(2) to them is allowed.
        """
        upper = self._layers(record, image.lowerdirs()).upper

        def copy() -> bool:
            tree.copy_tree(upper, dest)
            return True

        if self.rootless and self.idmap.kind == "range":
            if not namespaces.as_root_inside(self.idmap, copy):
                raise HostUnsupported(f"the writable layer {upper} could not be read inside the user namespace",
                                      "Check that /etc/subuid and /etc/subgid still grant this user its range")
        else:
            copy()

    def build_runner(self, lowers: list[str], upper: str, argv: list[str], env: list[str], workdir: str) -> tuple[int, str]:
        """Run one build step (``RUN``) in a real container whose writable layer is ``upper``."""
        scratch = Path(tempfile.mkdtemp(prefix="build-", dir=self.store.root / "tmp"))
        work, merged, state = scratch / "work", scratch / "merged", scratch / "state"
        for d in (work, merged, state):
            d.mkdir()
        layers = overlay.Layers(tuple(lowers), upper, str(work), str(merged))
        try:
            if not self.rootless:
                overlay.mount(layers)
            spec = process.LaunchSpec(
                rootfs=str(merged), argv=argv, env=env, cwd=workdir or "/", hostname="buildkit",
                state_dir=str(state), log_path=str(state / "json.log"), network="host",
                cleanup_umounts=() if self.rootless else (str(merged),),
                userns=self.idmap if self.rootless else None,
                overlay=overlay.mount_options(layers, userxattr=True) if self.rootless else None,
                seccomp=self._seccomp(()),  # RUN steps run under Docker's default profile, as BuildKit's do
            )
            try:
                started = process.start(spec, supervisor.command(self.shim_dir))
            except Exception as err:
                raise BuildFailed(str(err), "Check the RUN line's command") from err
            process.wait(started.shim_pid, None)
            info = process.read_exit(str(state)) or {"ExitCode": 255}
            out = []
            try:
                with open(state / "json.log") as f:
                    out = [json.loads(x).get("log", "") for x in f if x.strip()]
            except FileNotFoundError:
                pass
            return int(info["ExitCode"]), "".join(out)
        finally:
            overlay.umount(layers)
            shutil.rmtree(work, ignore_errors=True)  # overlayfs leaves a root-owned work/work dir
            shutil.rmtree(scratch, ignore_errors=True)


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


def _rlimits(ulimits: tuple[tuple[str, int, int], ...]) -> tuple[tuple[int, int, int], ...]:
    """``--ulimit``s as the shim's ``--rlimit`` takes them: (RLIMIT_* number, soft, hard)."""
    return tuple((hostconfig.RLIMITS[name], soft, hard) for name, soft, hard in ulimits)


def _own_bounding_set() -> int:
    """This process's bounding set (``CapBnd`` of ``/proc/self/status``, proc(5))."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapBnd:"):
                return int(line.split()[1], 16)
    return capabilities.mask(capabilities.NAMES)


def _last_cap() -> int:
    """The highest capability number this kernel knows (``/proc/sys/kernel/cap_last_cap``)."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except (OSError, ValueError):
        return len(capabilities.NAMES) - 1


def _host_resolv_conf() -> str:
    """The host's resolv.conf without loopback name servers (unreachable from a new network namespace)."""
    try:
        with open("/etc/resolv.conf") as f:
            lines = [ln for ln in f if not ln.strip().startswith("nameserver 127.")]
    except OSError:
        lines = []
    return "".join(lines)


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
