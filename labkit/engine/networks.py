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
from typing import TYPE_CHECKING, Any

from labkit.engine.collection import Collection, verb
from labkit.errors import Conflict, InvalidArgument, NoSuchContainer
from labkit.model import events
from labkit.model.container import ContainerRecord
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
            for r in self.engine._records() if r.config.network == rec["Name"] and is_running(r.status)
        }
        return rec

    @verb("network-rm")
    def rm(self, ref: str) -> str:
        """``docker network rm``: refused while any container (even a stopped one) is on it."""
        rec = self.records.get(ref)
        users = [r.id for r in self.engine._records() if r.config.network == rec["Name"]]
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
            busy = {r.config.network for r in self.engine._records() if is_running(r.status)}
            for rec in bridges:
                if rec["Name"] not in busy:
                    self.engine.backend.drop_bridge(rec)

    @verb("network-connect")
    def connect(self, network: str, ref: str) -> None:
        """``docker network connect``: the container joins ``network`` from its next start.

        labkit gives a container one network, fixed while it runs (its network namespace holds one
        endpoint), so a container joins a network when it is on none, and is not running; a
        running one, or one on another network, is refused with what to do instead.
        """
        rec = self.engine._get(ref)
        name = self.get(network)["Name"]  # Docker: "network X not found"
        current = rec.config.network
        if name == current:
            raise Conflict(f"endpoint with name {rec.name} already exists in network {name}",
                           "It is on that network already")
        if "host" in (name, current):
            raise InvalidArgument("container cannot be disconnected from host network or connected to host network",
                                  "Create a new container with --network host instead")
        if current != "none":
            raise Conflict(f"labkit gives a container one network, and {rec.name} is on {current}",
                           f"Disconnect it first: labkit network disconnect {current} {ref}")
        if is_running(rec.status):
            raise Conflict(f"labkit changes a container's network only while it is not running, and {rec.name} "
                           "runs", f"Stop it, connect it, start it: labkit stop {ref}")
        if self.engine.backend.rootless and name not in PREDEFINED:
            raise rootless_refusal(f"network connect {name}")
        self._put_on(rec, name)
        self.engine.journal.add("network", "connect", self.get(name)["Id"], {"container": rec.id, "name": name,
                                                                           "type": self.get(name)["Driver"]})

    @verb("network-disconnect")
    def disconnect(self, network: str, ref: str, force: bool = False) -> None:
        """``docker network disconnect``: the container leaves ``network`` (it has ``none`` then), while it is
        not running (see :meth:`connect`)."""
        rec = self.engine._get(ref)
        name = self.get(network)["Name"]
        if rec.config.network != name:
            raise Conflict(f"container {rec.id} is not connected to network {name}",
                           f"It is on {rec.config.network}")
        if name == "host":
            raise InvalidArgument("container cannot be disconnected from host network or connected to host network",
                                  "Create a new container without --network host instead")
        if is_running(rec.status):
            raise Conflict(f"labkit changes a container's network only while it is not running, and {rec.name} "
                           "runs", f"Stop it first: labkit stop {ref}")
        self._put_on(rec, "none")
        self.engine.journal.add("network", "disconnect", self.get(name)["Id"], {"container": rec.id, "name": name,
                                                                              "type": self.get(name)["Driver"]})

    def _put_on(self, rec: ContainerRecord, network: str) -> None:
        """Save ``rec`` on ``network``."""
        with self.engine.store.locked():
            rec = self.engine.store.load(rec.id) or rec
            if not self.engine._save(dataclasses.replace(rec, config=dataclasses.replace(rec.config,
                                                                                         network=network))):
                raise NoSuchContainer(rec.id)

    def settings(self, rec: ContainerRecord) -> dict[str, Any]:
        """A container's ``NetworkSettings``, as the backend reports them."""
        return self.engine.backend.network_settings(rec)

    def left_bridge(self, rec: ContainerRecord) -> None:
        """A container left its network (it ended, or went): take the bridge down once it has been idle a while."""
        if rec.config.network not in ("none", "host") and self.engine.backend.host_bridges:
            _bridges.arm(self.engine)
