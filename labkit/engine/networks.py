"""Networks: ``docker network``'s verbs, and the bridges labkit takes down once idle (``lab.networks``).

A network's record is :mod:`labkit.networks`'s; its bridge, veths and addresses are the
backend's, made when a container on it starts. This room joins them: ``lab.networks.create``
records a network (refused rootless), ``rm`` forgets it and drops its bridge, and a bridge
nobody is plugged into goes a few seconds after its last container left
(:func:`bridge_idle_seconds`).
"""

from __future__ import annotations

import atexit
import dataclasses
import os
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from labkit.engine.collection import Collection, verb
from labkit.errors import Conflict, HostUnsupported, InvalidArgument, NoSuchContainer
from labkit.model import events
from labkit.model.container import ContainerConfig, ContainerRecord, EndpointSpec
from labkit.model.lifecycle import is_running
from labkit.networks import PREDEFINED, Networks, rootless_refusal

if TYPE_CHECKING:
    from labkit.engine.core import Engine


def bridge_idle_seconds() -> float:
    """How long a bridge nobody is plugged into stays up (``LABKIT_BRIDGE_IDLE``, default 5 s).

    Long enough that back-to-back containers share one bridge, as they share Docker's docker0
    (taking a bridge down holds the kernel's RTNL lock through an RCU grace period, which the
    next container would wait for), short enough that an idle lab leaves nothing on the host.
    """
    try:
        return max(0.0, float(os.environ.get("LABKIT_BRIDGE_IDLE", "5")))
    except ValueError:
        return 5.0


class _BridgeJanitor:
    """Takes idle bridges down a while after their last container left, and at the latest at exit.

    One timer per state root, re-armed whenever a container leaves a bridge. A
    process that exits with a timer still armed does the check then (atexit), so
    a ``labkit`` command run in-process does not leave a bridge behind. (A worker
    of the resident engine exits without it: the server sweeps for its workers,
    see :mod:`labkit.daemon.server`.)
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pending: dict[str, tuple[threading.Timer, Engine]] = {}

    def arm(self, engine: Engine) -> None:
        key = str(engine.store.root)
        timer = threading.Timer(bridge_idle_seconds(), self.fire, args=(key,))
        timer.daemon = True
        with self.lock:
            old = self.pending.pop(key, None)
            self.pending[key] = (timer, engine)
        if old is not None:
            old[0].cancel()
        timer.start()

    def fire(self, key: str) -> None:
        with self.lock:
            item = self.pending.pop(key, None)
        if item is not None:
            _release_quietly(item[1])

    def flush(self) -> None:
        with self.lock:
            items = list(self.pending.values())
            self.pending.clear()
        for timer, engine in items:
            timer.cancel()
            _release_quietly(engine)


def _joined(c: ContainerConfig, spec: EndpointSpec) -> ContainerConfig:
    """``c`` on ``spec.network`` too: as its first network if it had none (a stopped container joins again
    with the same network's new aliases and address, as Docker's does)."""
    endpoints = tuple(e for e in c.endpoints if e.network != spec.network) + (spec,)
    network = spec.network if c.network in ("none", "host") or c.network == spec.network else c.network
    return dataclasses.replace(c, network=network, endpoints=endpoints)


def _left(c: ContainerConfig, name: str) -> ContainerConfig:
    """``c`` off network ``name``: the next network it joined becomes its first, ``none`` if it has none left
    (``HostConfig.NetworkMode`` stays as created, as Docker's does)."""
    rest = [n for n in c.networks if n != name]
    return dataclasses.replace(c, network=rest[0] if rest else "none",
                               endpoints=tuple(e for e in c.endpoints if e.network != name))


def _release_quietly(engine: Engine) -> None:
    try:
        engine.networks.prune()
    except Exception:  # a sweep that fails leaves the bridge for the next one (or `labkit network prune`)
        pass


_bridges = _BridgeJanitor()
atexit.register(_bridges.flush)


class NetworkCollection(Collection):
    """The state root's networks (``bridge``, ``host``, ``none`` and user networks) as ``lab.networks``."""

    @property
    def records(self) -> Networks:
        """The networks' records on disk (:class:`labkit.networks.Networks`)."""
        return Networks(self.engine.store)

    def get(self, ref: str) -> dict[str, Any]:
        """A network's record by name, id or id prefix (Docker's "network X not found" if none)."""
        return self.records.get(ref)

    def bridges(self) -> list[str]:
        """Every bridge interface name this state root's networks use."""
        return self.records.bridges()

    @verb("network-create")
    def create(self, name: str, subnet: str | None = None) -> dict[str, Any]:
        """``docker network create``: a bridge network whose containers find each other by name.

        Raises:
            HostUnsupported: Rootless: containers there cannot share a network
                (:func:`~labkit.networks.rootless_refusal`); nothing is made.
        """
        if self.engine.backend.rootless:
            raise rootless_refusal(f"network create {name}")
        rec = self.records.create(name, subnet)
        self.engine._record(events.network_create(name, rec["Options"]["com.docker.network.bridge.name"],
                                                  rec["IPAM"]["Config"][0]["Subnet"]))
        self.engine.journal.add("network", "create", rec["Id"], {"name": name, "type": rec["Driver"]})
        return rec

    def ls(self) -> list[dict[str, Any]]:
        """``docker network ls``: the predefined three first, then user networks by name."""
        return self.records.ls()

    def inspect(self, ref: str) -> dict[str, Any]:
        """``docker network inspect``: the record, with the running containers on it and their addresses."""
        rec = dict(self.records.get(ref))
        rec["Containers"] = {
            r.id: {"Name": r.name, **{k: v for k, v in
                                      (self.settings(r) or {}).get("Networks", {}).get(rec["Name"], {}).items()
                                      if k in ("IPAddress", "MacAddress")}}
            for r in self.engine._records() if rec["Name"] in r.config.networks and is_running(r.status)
        }
        return rec

    @verb("network-rm")
    def rm(self, ref: str) -> str:
        """``docker network rm``: refused while any container (even a stopped one) is on it."""
        rec = self.records.get(ref)
        users = [r.id for r in self.engine._records() if rec["Name"] in r.config.networks]
        name = self.records.rm(ref, users)
        self.engine.backend.drop_bridge(rec)
        self.engine._record(events.network_remove(name, rec["Options"]["com.docker.network.bridge.name"]))
        self.engine.journal.add("network", "destroy", rec["Id"], {"name": name, "type": rec["Driver"]})
        return name

    def prune(self) -> None:
        """``docker network prune``, as far as the host is concerned: take down the bridge of every
        network no container is plugged into, now. (An engine does this by itself a few seconds
        after a bridge's last container left, see :func:`bridge_idle_seconds`.) A network's record
        stays; its bridge comes back with the next container.

        Under the store's lock: a container starting meanwhile pins its network namespace
        under the same lock before it plugs into the bridge, so it is seen, and keeps it.
        """
        if not self.engine.backend.host_bridges:
            return
        # Listed before the lock is taken: listing may make the default network's record, under it.
        bridges = [rec for rec in self.records.ls() if rec["Driver"] == "bridge"]
        with self.engine.store.locked():
            busy = {n for r in self.engine._records() if is_running(r.status) for n in r.config.networks}
            for rec in bridges:
                if rec["Name"] not in busy:
                    self.engine.backend.drop_bridge(rec)

    @verb("network-connect")
    def connect(self, network: str, ref: str, aliases: Sequence[str] = (), ip: str = "") -> None:
        """``docker network connect [--alias NAME]... [--ip ADDR] NETWORK CONTAINER``.

        A running container gets one more interface at once (a veth pair whose end inside its network
        namespace is the next ``ethN``, with the next free address of ``network``, or ``ip``); its peers on
        a user network find it by its name and ``aliases`` from then on, and it finds them. A container that
        is not running is put on the network for its next start. A container may be on several networks;
        ``host`` and ``none`` stand alone, as in Docker.

        Raises:
            NoSuchContainer: No container ``ref``.
            NoSuchNetwork: No network ``network``.
            InvalidArgument: ``host`` or ``none`` is involved; ``--alias`` or ``--ip`` on the default network;
                ``--ip`` on a network whose subnet labkit picked, or outside its subnet.
            Conflict: The running container is on ``network`` already, or ``ip`` is taken.
            HostUnsupported: Rootless: a user network, or a running container (see :func:`rootless_refusal`).
        """
        rec = self.engine._get(ref)
        net = self.get(network)  # Docker: "network X not found"
        name, current = net["Name"], rec.config.network
        if name == "host" or current == "host":
            raise InvalidArgument("container sharing network namespace with another container or host cannot be "
                                  "connected to any other network" if current == "host" else
                                  "container cannot be disconnected from host network or connected to host network",
                                  "Create a new container with --network host instead" if name == "host" else
                                  "Create a new container without --network host instead")
        if name == "none" or rec.config.network_mode == "none":
            raise InvalidArgument("container cannot be connected to multiple networks with one of the networks in "
                                  "private (none) mode", "Create a new container on a network instead of --network none")
        if name == "bridge" and aliases:
            raise InvalidArgument("network-scoped alias is supported only for containers in user defined networks",
                                  "Create a network (labkit network create NAME) and connect to it with --alias")
        if ip and name == "bridge":
            raise InvalidArgument("user specified IP address is supported on user defined networks only",
                                  "Create a network with --subnet and connect to it with --ip")
        if ip and not self.records.given(name):
            raise InvalidArgument("user specified IP address is supported only when connecting to networks with "
                                  "user configured subnets", "Create the network with --subnet to choose addresses")
        running = is_running(rec.status)
        if running and name in rec.config.networks:
            raise Conflict(f"endpoint with name {rec.name} already exists in network {name}",
                           "It is on that network already")
        if self.engine.backend.rootless and (name not in PREDEFINED or running):
            raise rootless_refusal(f"network connect {name}") if name not in PREDEFINED else HostUnsupported(
                f"network connect {name}: a running rootless container cannot join a network, because its network "
                "stack (slirp4netns or pasta) is made once, when it starts", f"Stop it, connect it, start it: "
                f"labkit stop {ref}")
        spec = EndpointSpec(name, tuple(dict.fromkeys(aliases)), ip)
        if running:
            self.engine.backend.connect_network(rec, net, spec)
        try:
            self._set_networks(rec, lambda c: _joined(c, spec))
        except BaseException:
            if running:
                self.engine.backend.disconnect_network(rec, name)
            raise
        self.engine.journal.add("network", "connect", net["Id"], {"container": rec.id, "name": name,
                                                                  "type": net["Driver"]})

    @verb("network-disconnect")
    def disconnect(self, network: str, ref: str, force: bool = False) -> None:
        """``docker network disconnect``: the container leaves ``network``; while it runs, its interface on that
        network goes at once (with its address, and its name from its peers' /etc/hosts)."""
        rec = self.engine._get(ref)
        net = self.get(network)
        name = net["Name"]
        if name == "host" or rec.config.network == "host":
            raise InvalidArgument("container cannot be disconnected from host network or connected to host network",
                                  "Create a new container without --network host instead")
        if name == "none" and rec.config.network_mode == "none":
            return  # Docker leaves a --network none container as it is, and says nothing
        if name not in rec.config.networks:
            on = ", ".join(rec.config.networks) or "no network"
            raise Conflict(f"container {rec.id} is not connected to network {name}", f"It is on {on}")
        if is_running(rec.status):
            if self.engine.backend.rootless:
                raise HostUnsupported(f"network disconnect {name}: a running rootless container keeps the network "
                                      "stack (slirp4netns or pasta) it started with",
                                      f"Stop it first: labkit stop {ref}")
            self.engine.backend.disconnect_network(rec, name)
        self._set_networks(rec, lambda c: _left(c, name))
        self.engine.journal.add("network", "disconnect", net["Id"], {"container": rec.id, "name": name,
                                                                     "type": net["Driver"]})
        if is_running(rec.status):
            self.left_bridge(rec)

    def _set_networks(self, rec: ContainerRecord, change: Callable[[ContainerConfig], ContainerConfig]) -> None:
        """Save ``rec`` with its networks changed by ``change`` (read again under the store's lock)."""
        with self.engine.store.locked():
            rec = self.engine.store.load(rec.id) or rec
            if not self.engine._save(dataclasses.replace(rec, config=change(rec.config))):
                raise NoSuchContainer(rec.id)

    def settings(self, rec: ContainerRecord) -> dict[str, Any]:
        """A container's ``NetworkSettings``, as the backend reports them."""
        return self.engine.backend.network_settings(rec)

    def left_bridge(self, rec: ContainerRecord) -> None:
        """A container left its network (it ended, or went): take the bridge down once it has been idle a while."""
        if rec.config.networks and self.engine.backend.host_bridges:
            _bridges.arm(self.engine)
