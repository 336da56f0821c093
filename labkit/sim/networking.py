"""The simulator's networks: a container's address, its /etc files, and what a GET to one of its ports answers.

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

import errno
import socket
from pathlib import Path
from typing import Any

from labkit import helpers
from labkit.errors import Conflict, HostUnsupported, LabkitError, NoSuchContainer
from labkit.model import endpoints, events, hostconfig
from labkit.model.container import HOSTS, ContainerRecord, EndpointSpec
from labkit.networks import Networks
from labkit.sim import network, programs
from labkit.sim.base import SimBase
from labkit.sim.kernel import SimContainer, World
from labkit.sim.overlay import ETC_FILES


class Networking(SimBase):
    """Connecting a container to the model's network, and what inspect and the services ask of it."""

    def _write_etc(self, record: ContainerRecord) -> dict[str, str]:
        cdir = self.store.container_dir(record.id)
        if not cdir.is_dir():  # removed by another process since the record was read: make nothing
            raise NoSuchContainer(record.id)
        c = record.config
        gateway = ""
        if any(h.endswith(":host-gateway") for h in c.extra_hosts):
            gateway = Networks(self.store).get("bridge")["IPAM"]["Config"][0]["Gateway"]
        files = {"hostname": c.hostname + "\n", "hosts": HOSTS + hostconfig.extra_hosts_lines(c.extra_hosts, gateway),
                 "resolv.conf": hostconfig.resolv_conf(_resolv_conf(), c.dns)}
        for name, text in files.items():
            (cdir / name).write_text(text)
        return {f"/etc/{name}": str(cdir / name) for name in ETC_FILES}

    def _attach_user(self, w: World, ct: SimContainer, record: ContainerRecord) -> dict[str, Any] | None:
        """A rootless container's network, as the rootless backend's ``_connect`` plans it (None: ``lo`` only)."""
        c = record.config
        if c.network != "bridge":
            raise HostUnsupported(f"network {c.network} needs root: rootless containers have the default "
                                  "network (through slirp4netns or pasta), none or host",
                                  "Use the default network, --network none or host, or run as root")
        helper = helpers.network_helper()
        if helper is None:
            if c.ports:
                raise endpoints.no_user_network("publishing ports")
            return None  # no user-mode network stack: a network namespace of its own with lo only
        info = network.attach_user(w, ct, record, Networks(self.store).get(c.network), helper)
        (self.store.container_dir(record.id) / "resolv.conf").write_text(endpoints.slirp_resolv_conf(_resolv_conf()))
        return info

    def _meet_peers(self, w: World, endpoint: dict[str, Any]) -> list[str]:
        """The /etc/hosts lines a container's ``endpoint`` brings (its own address; on a user network its peers
        there by name and alias), and its name and aliases written into each peer's, as the linux backend's."""
        lines = [hostconfig.hosts_line(endpoint["IPAddress"], [endpoint["Hostname"]])]
        if endpoint["Network"] == "bridge":
            return lines
        peers = [e for e in network.endpoints_on(w, endpoint["Network"])
                 if e.get("Cid") and e.get("Cid") != endpoint.get("Cid")]
        lines += [hostconfig.hosts_line(p["IPAddress"], [p.get("Name", ""), *p.get("Aliases", ())]) for p in peers]
        mine = hostconfig.hosts_line(endpoint["IPAddress"], [endpoint["Name"], *endpoint.get("Aliases", ())])
        for peer in peers:
            _rewrite_hosts(self.store.container_dir(peer["Cid"]) / "hosts", lambda t: hostconfig.hosts_with(t, [mine]))
        return lines

    def _plug(self, w: World, ct: SimContainer, record: ContainerRecord, net_rec: dict[str, Any],
              spec: EndpointSpec) -> dict[str, Any]:
        added = network.plug(w, ct, record, net_rec, spec)
        self._step(w, events.network_plug(added["Veth"], added["Bridge"], added["Interface"], added["IPAddress"],
                                          added["MacAddress"], added["Network"]), record.id)
        return added

    def connect_network(self, record: ContainerRecord, network: dict[str, Any], spec: EndpointSpec) -> None:
        """``network connect`` of a running container: its next ``ethN`` in the model, and the /etc/hosts lines
        the linux backend writes (:meth:`labkit.linux.backend.LinuxBackend.connect_network`)."""
        with self._locked() as w:
            ct = w.containers.get(record.id)
            if ct is None or not ct.pid1:
                raise Conflict(f"container {record.id} is not running", "Start it first")
            added = self._plug(w, ct, record, network, spec)
            lines = self._meet_peers(w, added)
        _rewrite_hosts(self.store.container_dir(record.id) / "hosts", lambda t: hostconfig.hosts_with(t, lines))

    def disconnect_network(self, record: ContainerRecord, network: str) -> None:
        """``network disconnect`` of a running container: its endpoint on ``network`` goes from the model, and the
        /etc/hosts lines of that address from its own file and its peers'. (``network`` shadows the module here.)"""
        with self._locked() as w:
            ct = w.containers.get(record.id)
            gone = _network.unplug(ct, network) if ct is not None else None
            if gone is None:
                raise Conflict(f"container {record.id} is not connected to network {network}", "")
            self._step(w, events.network_unplug(gone.get("Veth") or _network.veth_name(record.id), gone["Bridge"],
                                                gone.get("Interface", "eth0"), gone["IPAddress"], network), record.id)
            peers = [] if network == "bridge" else [p for p in _network.endpoints_on(w, network) if p.get("Cid")]
        # It forgets its peers there, and they forget it.
        _rewrite_hosts(self.store.container_dir(record.id) / "hosts",
                       lambda t: hostconfig.hosts_without(t, [gone["IPAddress"], *(p["IPAddress"] for p in peers)]))
        for peer in peers:
            _rewrite_hosts(self.store.container_dir(peer["Cid"]) / "hosts",
                           lambda t: hostconfig.hosts_without(t, [gone["IPAddress"]]))

    def network_settings(self, record: ContainerRecord) -> dict[str, Any]:
        """``NetworkSettings``: the simulated address while running, empty ones after (as the linux backend)."""
        c = record.config
        with self._locked() as w:
            ct = w.containers.get(record.id)
            info = getattr(ct, "net", None) if ct is not None else None
            live = network.endpoints(ct) if ct is not None else []
        if info is None:
            if c.network == "host" or c.network_mode == "none":
                return endpoints.network_settings(None, {}, "", c.network)
            return endpoints.unplugged_settings(c, None)
        ports: dict[str, Any] = {k: None for k in c.exposed_ports}
        ports.update(info["Ports"])
        if info["Bridge"]:  # on bridges: each network joined, in order
            return endpoints.live_network_settings(live, ports, c, str(self.store.container_dir(record.id) / "netns"),
                                             info["Bridge"])
        # Rootless: no veth and no pinned namespace, as the rootless backend says.
        endpoint = endpoints.Endpoint(info["Network"], "", info["IPAddress"], info["IPPrefixLen"], info["Gateway"],
                                info["MacAddress"], "", "")
        return endpoints.network_settings(endpoint, ports, info["NetworkID"])

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
        if self.rootless and network not in ("none", "host") and helpers.network_helper() is None:
            return (f"network {network}: neither slirp4netns nor pasta is installed, so this rootless container "
                    "has only lo (apt-get install slirp4netns gives it an address and -p)")
        return None

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


def _rewrite_hosts(path: Path, change: Any) -> None:
    """Rewrite a container's /etc/hosts file with ``change`` (text -> text), as the linux backend does in place."""
    try:
        text = path.read_text()
        new = change(text)
        if new != text:
            path.write_text(new)
    except OSError:
        pass  # its container is gone


#: :mod:`labkit.sim.network` under a name no parameter shadows (``disconnect_network``'s ``network`` is a name).
_network = network


def _resolv_conf() -> str:
    """The host's resolv.conf without loopback name servers, as the real backend writes it."""
    try:
        with open("/etc/resolv.conf") as f:
            return "".join(ln for ln in f if not ln.strip().startswith("nameserver 127."))
    except OSError:
        return ""
