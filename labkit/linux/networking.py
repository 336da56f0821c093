"""The real backend's networks: a container's address on its bridge, its /etc files, published ports.

As root a container's network is a network namespace pinned under its state
dir with one end of a veth pair in it, the other end on the network's bridge
(:mod:`labkit.linux.network`, veth(4)); published ports are sockets labkit's
supervisor holds on the host and relays. Rootless, no veth can reach a host
bridge: the default network goes through slirp4netns or pasta
(:mod:`labkit.linux.usernet`). The container's ``/etc/hosts``, ``/etc/hostname``
and ``/etc/resolv.conf`` are written here, since the addresses they name are.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path
from typing import Any

from labkit.errors import Conflict, HostUnsupported, InvalidArgument, LabkitError
from labkit.linux import network as net
from labkit.linux import process, procfs, syscalls, usernet
from labkit.linux.base import LinuxBase
from labkit.model import endpoints, events, hostconfig
from labkit.model.container import HOSTS, ContainerRecord, EndpointSpec
from labkit.networks import Networks
from labkit.store import read_json, write_json


class Networking(LinuxBase):
    """Connecting a container to its network, and what inspect and the services ask of it."""

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
            "resolv.conf": hostconfig.resolv_conf(host_resolv_conf(), c.dns),
        }
        for name, text in files.items():
            (cdir / name).write_text(text)
        return {str(cdir / name): f"/etc/{name}" for name in files}

    def _endpoints(self, network: str | None = None) -> list[dict]:  # type: ignore[type-arg]
        """Live endpoints (of containers whose network namespace is pinned) of this state root, on ``network``."""
        out = []
        base = self.store.root / "containers"
        for cid in os.listdir(base):
            info = read_json(base / cid / "network.json")
            if info and info.get("Sandbox") and syscalls.is_mountpoint(info["Sandbox"]):
                out += [e for e in endpoints.endpoints_of(info) if network is None or e["Network"] == network]
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
                ip = endpoints.allocate(ipaddress.IPv4Network(cfg["Subnet"]), gateway, used)
                sandbox = str(cdir / "netns")
                net.make_netns(sandbox)
                endpoint = endpoints.Endpoint(c.network, bridge, ip, prefixlen, gateway, endpoints.mac_for(ip),
                                        net.veth_name(record.id), sandbox)
                info = {"Network": c.network, "NetworkID": rec["Id"], "Bridge": endpoint.bridge, "IPAddress": ip,
                        "IPPrefixLen": prefixlen, "Gateway": gateway, "MacAddress": endpoint.mac,
                        "Veth": endpoint.veth, "Sandbox": sandbox, "Ports": published, "Name": c.name,
                        "Hostname": c.hostname}
                write_json(cdir / "network.json", info)
            net.attach(endpoint)
            self.emit(events.network_attach(endpoint.veth, endpoint.bridge, ip, endpoint.mac), record.id)
            for name in c.networks[1:]:  # the networks it joined later (network connect), eth1, eth2… in order
                info = self._plug(record, networks.get(name), c.endpoint(name) or EndpointSpec(name))
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
        """/etc/hosts: localhost, ``--add-host``'s lines, the container's own address on each of its networks
        and, on a user network, every peer there by name (and alias); each peer's /etc/hosts learns the
        container's name."""
        text = HOSTS + extra
        if info is None:
            return text
        if info.get("Driver") in endpoints.USER_NETWORK_DRIVERS:  # rootless: its own address, no peers
            return hostconfig.hosts_with(text, [hostconfig.hosts_line(info["IPAddress"], [info["Hostname"]])])
        for endpoint in endpoints.endpoints_of(info):
            text = hostconfig.hosts_with(text, self._meet_peers(endpoint))
        return text

    def _meet_peers(self, endpoint: dict) -> list[str]:  # type: ignore[type-arg]
        """The /etc/hosts lines a container's ``endpoint`` brings: its own address, and, on a user network,
        its peers there by name and alias. Each peer's /etc/hosts learns the container's name and aliases (in
        place: the bind mount pins the file's inode)."""
        lines = [hostconfig.hosts_line(endpoint["IPAddress"], [endpoint["Hostname"]])]
        if endpoint["Network"] == "bridge":
            return lines  # the default network resolves no names, as Docker's does not
        peers = [e for e in self._endpoints(endpoint["Network"]) if e["Sandbox"] != endpoint["Sandbox"]]
        lines += [hostconfig.hosts_line(p["IPAddress"], [p["Name"], *p.get("Aliases", ())]) for p in peers]
        mine = hostconfig.hosts_line(endpoint["IPAddress"], [endpoint["Name"], *endpoint.get("Aliases", ())])
        for peer in peers:
            _rewrite_hosts(Path(peer["Sandbox"]).parent / "hosts", lambda t: hostconfig.hosts_with(t, [mine]))
        return lines

    def _plug(self, record: ContainerRecord, network: dict[str, Any], spec: EndpointSpec) -> dict[str, Any]:
        """Plug the container whose namespace is pinned into ``network`` as its next interface; save it in its
        network.json's ``Extra`` and return that record. The address is taken and saved under the store's
        lock, so two containers joining at once never get the same one."""
        cdir = self.store.container_dir(record.id)
        with self.store.locked():
            info = read_json(cdir / "network.json")
            if not info or not syscalls.is_mountpoint(info.get("Sandbox", "")):
                raise Conflict(f"container {record.id} is not running", "Start it first")
            rec = self._bring_up(Networks(self.store), network["Name"], record.id)
            cfg = rec["IPAM"]["Config"][0]
            subnet = ipaddress.IPv4Network(cfg["Subnet"])
            used = {e["IPAddress"] for e in self._endpoints(rec["Name"])}
            ip = endpoints.allocate(subnet, cfg["Gateway"], used, spec.ip)
            extra = info.setdefault("Extra", [])
            # libnetwork counts a sandbox's interfaces up and never reuses a number: eth1, eth2, … in order made.
            index = info["NextIndex"] = info.get("NextIndex", 1)
            info["NextIndex"] = index + 1
            ifname = f"eth{index}"
            endpoint = endpoints.Endpoint(rec["Name"], rec["Options"]["com.docker.network.bridge.name"], ip,
                                    subnet.prefixlen, cfg["Gateway"], endpoints.mac_for(ip), net.veth_name(record.id, index),
                                    info["Sandbox"])
            added = {"Network": rec["Name"], "NetworkID": rec["Id"], "Bridge": endpoint.bridge, "IPAddress": ip,
                     "IPPrefixLen": subnet.prefixlen, "Gateway": cfg["Gateway"], "MacAddress": endpoint.mac,
                     "Veth": endpoint.veth, "Sandbox": info["Sandbox"], "Name": record.config.name,
                     "Hostname": record.config.hostname, "Aliases": list(spec.aliases), "Interface": ifname,
                     "Index": index, "Connected": True}
            extra.append(added)
            write_json(cdir / "network.json", info)
        try:
            net.plug(endpoint, ifname)
        except BaseException:
            with self.store.locked():
                info = read_json(cdir / "network.json") or info
                info["Extra"] = [e for e in info.get("Extra", []) if e["Index"] != index]
                write_json(cdir / "network.json", info)
            raise
        self.emit(events.network_plug(endpoint.veth, endpoint.bridge, ifname, ip, endpoint.mac, rec["Name"]),
                  record.id)
        return info

    def connect_network(self, record: ContainerRecord, network: dict[str, Any], spec: EndpointSpec) -> None:
        """``network connect`` of a running container: its next ``ethN`` on ``network`` now (:func:`net.plug`),
        its own address line and its peers' names in its /etc/hosts, its name in theirs."""
        info = self._plug(record, network, spec)
        added = info["Extra"][-1]
        self._route(info)
        _rewrite_hosts(self.store.container_dir(record.id) / "hosts",
                       lambda t: hostconfig.hosts_with(t, self._meet_peers(added)))

    def _route(self, info: dict[str, Any]) -> None:
        """Route the container's namespace through the gateway Docker would pick of its endpoints now
        (:func:`net.gateway_endpoint`)."""
        chosen = net.gateway_endpoint(endpoints.endpoints_of(info))
        if chosen is not None:
            net.route_through(info["Sandbox"], chosen["Gateway"])

    def disconnect_network(self, record: ContainerRecord, network: str) -> None:
        """``network disconnect`` of a running container: the veth pair of its endpoint on ``network`` goes
        (:func:`net.unplug`), and so do the /etc/hosts lines of that address, its own and its peers'."""
        cdir = self.store.container_dir(record.id)
        with self.store.locked():
            info = read_json(cdir / "network.json")
            if info is None or info.get("Driver") in endpoints.USER_NETWORK_DRIVERS:
                raise HostUnsupported(f"network disconnect {network}: this container's network stack cannot be "
                                      "changed while it runs", "Stop it first")
            gone = next((e for e in endpoints.endpoints_of(info) if e["Network"] == network), None)
            if gone is None:
                raise Conflict(f"container {record.id} is not connected to network {network}", "")
            if gone is info:
                info["Unplugged"] = True
            else:
                info["Extra"] = [e for e in info["Extra"] if e is not gone]
            write_json(cdir / "network.json", info)
        net.unplug(gone["Veth"])
        self._route(info)
        self.emit(events.network_unplug(gone["Veth"], gone["Bridge"], gone.get("Interface", "eth0"), gone["IPAddress"],
                                        network), record.id)
        peers = [] if network == "bridge" else self._endpoints(network)
        # It forgets its peers there, and they forget it.
        _rewrite_hosts(cdir / "hosts",
                       lambda t: hostconfig.hosts_without(t, [gone["IPAddress"], *(p["IPAddress"] for p in peers)]))
        for peer in peers:
            _rewrite_hosts(Path(peer["Sandbox"]).parent / "hosts",
                           lambda t: hostconfig.hosts_without(t, [gone["IPAddress"]]))

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
        c = record.config
        if c.network == "host" or c.network_mode == "none" or info is None or not running:
            # Not plugged in: no addresses, and Ports {} (Docker shows a stopped container's exposed ports nowhere).
            if c.network == "host" or c.network_mode == "none":
                return endpoints.network_settings(None, {}, "", c.network)
            return endpoints.unplugged_settings(c, info)
        ports: dict = {k: None for k in c.exposed_ports}
        ports.update(info["Ports"])
        if info.get("Driver") not in endpoints.USER_NETWORK_DRIVERS:  # on bridges: each network joined, in order
            return endpoints.live_network_settings(endpoints.endpoints_of(info), ports, c, info["Sandbox"], info["Bridge"])
        endpoint = endpoints.Endpoint(info["Network"], info["Bridge"], info["IPAddress"], info["IPPrefixLen"],
                                info["Gateway"], info["MacAddress"], info["Veth"],
                                info.get("SandboxKey") or info["Sandbox"])
        return endpoints.network_settings(endpoint, ports, info["NetworkID"])

    def _net_live(self, record: ContainerRecord, info: dict | None) -> bool:  # type: ignore[type-arg]
        """Whether the network ``network.json`` records is in place: its namespace pinned, or (rootless) its
        helper (slirp4netns or pasta) running for the container's PID 1."""
        if info is None:
            return False
        if info.get("Driver") in endpoints.USER_NETWORK_DRIVERS:
            return (process.read_exit(str(self.store.container_dir(record.id))) is None
                    and procfs.alive(record.state.pid, record.state.pid_start_time) and usernet.helper_running(info))
        return syscalls.is_mountpoint(info["Sandbox"])

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

    def http_get(self, record: ContainerRecord, port: int, path: str = "/") -> tuple[int, str]:
        """A GET from the container's ``port`` through the host's network (:func:`labkit.linux.network.http_get`)."""
        return net.http_get(self.network_settings(record), port, path)


def _rewrite_hosts(path: Path, change: Any) -> None:
    """Rewrite a container's /etc/hosts in place with ``change`` (text -> text): the bind mount over the
    container's /etc/hosts pins the file's inode, so it is truncated and written, not replaced."""
    try:
        with open(path, "r+") as f:
            text = f.read()
            new = change(text)
            if new != text:
                f.seek(0)
                f.write(new)
                f.truncate()
    except OSError:
        pass  # its container is gone


def host_resolv_conf() -> str:
    """The host's resolv.conf without loopback name servers (unreachable from a new network namespace)."""
    try:
        with open("/etc/resolv.conf") as f:
            lines = [ln for ln in f if not ln.strip().startswith("nameserver 127.")]
    except OSError:
        lines = []
    return "".join(lines)

