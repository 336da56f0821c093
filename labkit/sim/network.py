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

from labkit.errors import Conflict
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
    used = {c.net["IPAddress"] for c in world.containers.values()
            if getattr(c, "net", None) and c.net["Network"] == network["Name"]}
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
              "Bridge": network["Options"].get("com.docker.network.bridge.name", ""), "Ports": ports}
    return ct.net


def reattach(world: Any, ct: Any, net: dict[str, Any] | None) -> dict[str, Any] | None:
    """The address a container had, for the run its restart policy starts: given back if no other running
    container holds it now (else the next free one of its subnet, Docker's order), its published ports
    with it. ``None``: it had no network of its own."""
    if net is None:
        return None
    if not net["Bridge"]:
        return dict(net)  # rootless: each container has the same address in a network stack of its own
    used = {c.net["IPAddress"] for c in world.containers.values()
            if c is not ct and getattr(c, "net", None) and c.net["Network"] == net["Network"]}
    ip = net["IPAddress"]
    if ip in used:
        subnet = ipaddress.IPv4Network(f"{net['Gateway']}/{net['IPPrefixLen']}", strict=False)
        ip = next(str(h) for h in subnet.hosts() if str(h) != net["Gateway"] and str(h) not in used)
    return {**net, "IPAddress": ip, "MacAddress": "02:42:" + ":".join(f"{b:02x}" for b in ipaddress.IPv4Address(ip).packed)}


def _host_ports(world: Any) -> set[int]:
    """Host ports the world's running containers have published."""
    return {int(b["HostPort"]) for c in world.containers.values() if getattr(c, "net", None)
            for binds in c.net["Ports"].values() for b in binds}


def attach_user(world: Any, ct: Any, record: Any, network: dict[str, Any], helper: str) -> dict[str, Any]:
    """A rootless container's address, as slirp4netns or pasta give it (labkit.linux.usernet.plan_user_network).

    Every container has the same 10.0.2.100 (each has a network stack of its
    own); published ports listen on 127.0.0.1 unless an address is given, a
    host port of 0 gets a free one, and a port another container holds is
    refused as the host's bind(2) would refuse it.
    """
    from labkit.errors import Conflict, InvalidArgument

    # The real backend's rule, stated once; loaded where used, so that importing the simulator loads no kernel code
    from labkit.linux import usernet

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
    ip = usernet.SLIRP_ADDRESS
    ct.net = {"Network": network["Name"], "NetworkID": network["Id"], "Driver": helper, "Interface": usernet.SLIRP_TAP,
              "IPAddress": ip, "IPPrefixLen": usernet.SLIRP_PREFIXLEN, "Gateway": usernet.SLIRP_GATEWAY,
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
        net = ct.net
        if not net or not net["Bridge"]:
            continue  # a rootless container's tap0 lives in its own namespace: nothing on the host's side
        if net["Bridge"] not in bridges:
            gateway_mac = "02:42:" + ":".join(f"{b:02x}" for b in ipaddress.IPv4Address(net["Gateway"]).packed)
            bridges[net["Bridge"]] = Interface(net["Bridge"], (f"{net['Gateway']}/{net['IPPrefixLen']}",),
                                               gateway_mac)
        veths.append(Interface(veth_name(cid), (), "", net["Bridge"]))
    return (HOST_LO, *bridges.values(), *veths)


def interfaces(world: World, ct: Any, host_mode: bool = False) -> tuple[Interface, ...]:
    """The interfaces of ``ct``'s network namespace: the host's with ``--network host``, else ``lo``
    and, while it holds an address on a bridge, ``eth0`` (the container's end of its veth pair)."""
    if host_mode:
        return host_interfaces(world)
    net = getattr(ct, "net", None)
    if not net:
        return (HOST_LO,)
    name = net.get("Interface") or "eth0"
    return (HOST_LO, Interface(name, (f"{net['IPAddress']}/{net['IPPrefixLen']}",), net["MacAddress"]))
