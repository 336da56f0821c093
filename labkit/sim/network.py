"""Simulated networking: the container's network namespace and its link to the host's bridge.

A container made with ``--network none`` has only ``lo``; on a bridge network
(the default) it also has ``eth0``, its end of a veth pair whose host end is
plugged into the bridge (:func:`interfaces`, :func:`host_interfaces`;
``/proc/net/dev`` lists the same names).

For a learner without root the simulator models what the real rootless
backend does instead (:func:`attach_user`): no bridge and no veth (a user
namespace cannot plug into the host's bridge), but a user-mode network stack
— slirp4netns or pasta — giving the container a ``tap0`` with 10.0.2.100/24,
gateway 10.0.2.2 and DNS 10.0.2.3, and published ports listening on
127.0.0.1 of the host. Published ports
(``-p 3000:3000``) are recorded by the engine; a request sent to one is
answered by the process listening on that port inside the container
(:func:`labkit.sim.programs.http_get`), as a connection through the port
mapping would be.

This module holds addresses and interfaces only: it runs no process, so
``/proc/net/dev`` (:mod:`labkit.sim.procfs`) can list its interfaces.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from labkit.errors import Conflict, InvalidArgument
from labkit.model.endpoints import SLIRP_ADDRESS, SLIRP_GATEWAY, SLIRP_PREFIXLEN, SLIRP_TAP, allocate, mac_for
from labkit.model.views import Interface
from labkit.sim.kernel import World


def addresses(record: Any) -> dict[str, Any]:
    """What the container can be reached at: only loopback (``--network none``) or the host's (``host``)."""
    if record.config.network == "host":
        return {"network": "host", "addresses": ["host"]}
    return {"network": "none", "addresses": ["127.0.0.1"]}


# -- addresses on a simulated bridge ------------------------------------------------------------


def attach(world: Any, ct: Any, record: Any, network: dict[str, Any]) -> dict[str, Any]:
    """Give a container an address on its network, as the linux backend does, without touching the host.

    The next free address after the gateway (Docker's order), a MAC derived from it, and the
    published ports as asked (a host port of 0 gets the next free one from 32768, as the kernel's
    ephemeral range would). Returns what inspect's NetworkSettings reports.
    """
    cfg = network["IPAM"]["Config"][0]
    subnet = ipaddress.IPv4Network(cfg["Subnet"])
    used = {e["IPAddress"] for e in endpoints_on(world, network["Name"])}
    ip = next(str(h) for h in subnet.hosts() if str(h) != cfg["Gateway"] and str(h) not in used)
    taken = _host_ports(world)
    ports: dict[str, list[dict[str, str]]] = {}
    for p in record.config.ports:
        port = int(p.host_port or 0)
        if port and port in taken:
            raise Conflict(f"driver failed programming external connectivity on endpoint: Bind for "
                           f"{p.host_ip or '127.0.0.1'}:{port} failed: address already in use",
                           "Pick another host port, e.g. -p 3001:3000, or stop whatever uses it")
        if not port:
            port = next(n for n in range(32768, 61000) if n not in taken)
        taken.add(port)
        ports.setdefault(f"{p.container_port}/{p.protocol}", []).append(
            {"HostIp": p.host_ip or "127.0.0.1", "HostPort": str(port)})
    mac = "02:42:" + ":".join(f"{b:02x}" for b in ipaddress.IPv4Address(ip).packed)
    ct.net = {"Network": network["Name"], "NetworkID": network["Id"], "IPAddress": ip,
              "IPPrefixLen": subnet.prefixlen, "Gateway": cfg["Gateway"], "MacAddress": mac,
              "Bridge": network["Options"].get("com.docker.network.bridge.name", ""), "Ports": ports,
              "Cid": record.id, "Name": record.config.name, "Hostname": record.config.hostname}
    return ct.net


def reattach(world: Any, ct: Any, net: dict[str, Any] | None) -> dict[str, Any] | None:
    """The address a container had, for the run its restart policy starts: given back if no other running
    container holds it now (else the next free one of its subnet, Docker's order), its published ports
    with it. ``None``: it had no network of its own."""
    if net is None:
        return None
    if not net["Bridge"]:
        return dict(net)  # rootless: each container has the same address in a network stack of its own
    used = {e["IPAddress"] for c in world.containers.values() if c is not ct for e in endpoints(c)
            if e["Network"] == net["Network"]}
    ip = net["IPAddress"]
    if ip in used:
        subnet = ipaddress.IPv4Network(f"{net['Gateway']}/{net['IPPrefixLen']}", strict=False)
        ip = next(str(h) for h in subnet.hosts() if str(h) != net["Gateway"] and str(h) not in used)
    return {**net, "IPAddress": ip, "MacAddress": "02:42:" + ":".join(f"{b:02x}" for b in ipaddress.IPv4Address(ip).packed)}


def endpoints(ct: Any) -> list[dict[str, Any]]:
    """The endpoints ``ct`` holds now: ``--network``'s (unless ``network disconnect`` took it away) and each
    ``network connect``'s, in the order they were made (as the linux backend's ``endpoints_of``)."""
    net = getattr(ct, "net", None)
    first = [net] if net and net.get("Bridge") and not net.get("Unplugged") else []
    return first + list(getattr(ct, "nets", ()))


def endpoints_on(world: Any, network: str) -> list[dict[str, Any]]:
    """Every endpoint the world's containers hold on ``network``."""
    return [e for c in world.containers.values() for e in endpoints(c) if e["Network"] == network]


def plug(world: Any, ct: Any, record: Any, network: dict[str, Any], spec: Any) -> dict[str, Any]:
    """Plug a running container into one more network (``network connect``), as the linux backend's ``_plug``:
    its next ``ethN``, ``spec.ip`` or the next free address, a MAC derived from it; kept in ``ct.nets``.
    (The model keeps no routes: the default route's gateway is the linux backend's alone.)"""
    cfg = network["IPAM"]["Config"][0]
    subnet = ipaddress.IPv4Network(cfg["Subnet"])
    ip = allocate(subnet, cfg["Gateway"], {e["IPAddress"] for e in endpoints_on(world, network["Name"])}, spec.ip)
    index = getattr(ct, "next_if", 1)  # eth1, eth2, … in the order made, never reused (as the linux backend)
    ct.next_if = index + 1
    added = {"Network": network["Name"], "NetworkID": network["Id"], "IPAddress": ip,
             "IPPrefixLen": subnet.prefixlen, "Gateway": cfg["Gateway"], "MacAddress": mac_for(ip),
             "Bridge": network["Options"].get("com.docker.network.bridge.name", ""), "Ports": {},
             "Veth": f"{veth_name(record.id)}x{index}", "Cid": record.id, "Name": record.config.name,
             "Hostname": record.config.hostname, "Aliases": list(spec.aliases), "Index": index, "Connected": True,
             "Interface": f"eth{index}"}
    ct.nets = (*getattr(ct, "nets", ()), added)
    return added


def unplug(ct: Any, network: str) -> dict[str, Any] | None:
    """Take a running container off ``network`` (``network disconnect``); the endpoint it held there, or None."""
    gone = next((e for e in endpoints(ct) if e["Network"] == network), None)
    if gone is not None and gone is ct.net:
        ct.net = {**ct.net, "Unplugged": True}
    elif gone is not None:
        ct.nets = tuple(e for e in ct.nets if e is not gone)
    return gone


def _host_ports(world: Any) -> set[int]:
    """Host ports the world's running containers have published."""
    return {int(b["HostPort"]) for c in world.containers.values() if getattr(c, "net", None)
            for binds in c.net["Ports"].values() for b in binds}


def attach_user(world: Any, ct: Any, record: Any, network: dict[str, Any], helper: str) -> dict[str, Any]:
    """A rootless container's address, as slirp4netns or pasta give it (as the real backend plans it).

    Every container has the same 10.0.2.100 (each has a network stack of its
    own); published ports listen on 127.0.0.1 unless an address is given, a
    host port of 0 gets a free one, and a port another container holds is
    refused as the host's bind(2) would refuse it.
    """

    taken = _host_ports(world)
    ports: dict[str, list[dict[str, str]]] = {}
    for p in record.config.ports:
        key = f"{p.container_port}/{p.protocol}"
        if p.protocol != "tcp":
            raise InvalidArgument(f"publishing {key} is not supported", "labkit publishes tcp ports only")
        host_ip = p.host_ip or "127.0.0.1"
        port = int(p.host_port or 0)
        if port and port in taken:
            raise Conflict(f"listen tcp4 {host_ip}:{port}: bind: address already in use",
                           "Pick another host port, e.g. -p 3001:3000, or stop whatever uses it")
        if not port:
            port = next(n for n in range(32768, 61000) if n not in taken)
        taken.add(port)
        ports.setdefault(key, []).append({"HostIp": host_ip, "HostPort": str(port)})
    ip = SLIRP_ADDRESS
    ct.net = {"Network": network["Name"], "NetworkID": network["Id"], "Driver": helper, "Interface": SLIRP_TAP,
              "IPAddress": ip, "IPPrefixLen": SLIRP_PREFIXLEN, "Gateway": SLIRP_GATEWAY,
              "MacAddress": "02:42:" + ":".join(f"{b:02x}" for b in ipaddress.IPv4Address(ip).packed),
              "Bridge": "", "Ports": ports}
    return ct.net


# -- the interfaces each namespace holds -----------------------------------------------------------

#: The simulated host's loopback: the only interface it has besides labkit's bridges and veths.
HOST_LO = Interface("lo", ("127.0.0.1/8",), "00:00:00:00:00:00")


def veth_name(cid: str) -> str:
    """The host end of a simulated container's veth pair (the name the trace's network step uses)."""
    return f"veth{cid[:7]}"


def host_interfaces(world: World) -> tuple[Interface, ...]:
    """The simulated host's network namespace: ``lo``, each bridge in use with its gateway, each veth end on it.

    A bridge exists while a container is plugged into it (the linux backend makes it at the
    first attach and removes it when idle); each attached container adds the host end of its
    veth pair, enslaved to that bridge.
    """
    bridges: dict[str, Interface] = {}
    veths = []
    for cid, ct in sorted(world.containers.items()):
        for net in endpoints(ct):  # a rootless container's tap0 lives in its own namespace: nothing on the host's side
            if net["Bridge"] not in bridges:
                gateway_mac = "02:42:" + ":".join(f"{b:02x}" for b in ipaddress.IPv4Address(net["Gateway"]).packed)
                bridges[net["Bridge"]] = Interface(net["Bridge"], (f"{net['Gateway']}/{net['IPPrefixLen']}",),
                                                   gateway_mac)
            veths.append(Interface(net.get("Veth") or veth_name(cid), (), "", net["Bridge"]))
    return (HOST_LO, *bridges.values(), *veths)


def interfaces(world: World, ct: Any, host_mode: bool = False) -> tuple[Interface, ...]:
    """The interfaces of ``ct``'s network namespace: the host's with ``--network host``, else ``lo``
    and, while it holds an address on a bridge, ``eth0`` (the container's end of its veth pair)."""
    if host_mode:
        return host_interfaces(world)
    net = getattr(ct, "net", None)
    if net and not net["Bridge"]:  # rootless: its user-mode stack's tap0
        return (HOST_LO, Interface(net.get("Interface") or "eth0", (f"{net['IPAddress']}/{net['IPPrefixLen']}",),
                                   net["MacAddress"]))
    return (HOST_LO, *(Interface(e.get("Interface") or "eth0", (f"{e['IPAddress']}/{e['IPPrefixLen']}",),
                                 e["MacAddress"]) for e in endpoints(ct)))
