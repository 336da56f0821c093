"""A container's place on a network, as both backends give it and inspect shows it.

Pure facts, shared by the real backend (:mod:`labkit.linux.network`,
:mod:`labkit.linux.usernet`) and the simulator (:mod:`labkit.sim.network`),
which models the same addresses: an endpoint on a bridge and its
``NetworkSettings``, Docker's MAC for an address, and what the user-mode
network stack of a rootless container (slirp4netns or pasta) gives it — the
same fixed addresses whichever carries it.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from typing import Any

from labkit.errors import Conflict, HostUnsupported, InvalidArgument
from labkit.model.container import ContainerConfig, endpoint_json, network_settings_json, unplugged_networks


@dataclass(frozen=True)
class Endpoint:
    """One container's place on a network.

    Attributes:
        network: The network's name (``bridge`` or a user network).
        bridge: The host's bridge interface.
        ip: The container's address.
        prefixlen: The subnet's prefix length.
        gateway: The bridge's address: the container's default route.
        mac: ``02:42`` followed by the address's four bytes.
        veth: The host end of the veth pair.
        sandbox: The file that pins the container's network namespace.
    """

    network: str
    bridge: str
    ip: str
    prefixlen: int
    gateway: str
    mac: str
    veth: str
    sandbox: str


def mac_for(ip: str) -> str:
    """Docker's MAC for an address: ``02:42:ac:11:00:02`` for 172.17.0.2."""
    return "02:42:" + ":".join(f"{b:02x}" for b in ipaddress.IPv4Address(ip).packed)


def network_settings(endpoint: Endpoint | None, ports: dict[str, Any], network_id: str = "",
                     network: str | None = None) -> dict[str, Any]:
    """``inspect``'s NetworkSettings for a container on a bridge (API 1.51 keeps the top-level copies).

    Without an endpoint (not running, or ``--network none|host``) the addresses are empty; ``network``
    then names the network the container is on, shown unplugged with its ``network_id``.
    """
    if endpoint is None:
        unplugged = {network: endpoint_json(network_id)} if network else {}
        return network_settings_json(ports, unplugged)
    endpoint_id = hashlib.sha256(endpoint.sandbox.encode()).hexdigest()
    ep = endpoint_json(network_id, endpoint_id, endpoint.gateway, endpoint.ip, endpoint.prefixlen, endpoint.mac)
    return network_settings_json(ports, {endpoint.network: ep}, endpoint.bridge,
                                 hashlib.sha256(f"sandbox\0{endpoint.sandbox}".encode()).hexdigest(),
                                 endpoint.sandbox, ep)


def allocate(subnet: ipaddress.IPv4Network, gateway: str, used: set[str], wanted: str = "") -> str:
    """The lowest free address of ``subnet`` after the gateway, or ``wanted`` (``--ip``) if it is free there."""
    if wanted:
        try:
            asked = ipaddress.IPv4Address(wanted)
        except ValueError:
            raise InvalidArgument(f"invalid IPv4 address: {wanted}", "Write it as four numbers, e.g. 172.30.0.9") from None
        if asked not in subnet or asked in (subnet.network_address, subnet.broadcast_address):
            raise InvalidArgument(f"no configured subnet contains IP address {wanted}",
                                  f"Pick an address in {subnet}")
        if wanted == gateway or wanted in used:
            raise Conflict("Address already in use", f"{wanted} is taken on {subnet}: pick another, or leave --ip out")
        return wanted
    for host in subnet.hosts():
        text = str(host)
        if text != gateway and text not in used:
            return text
    raise Conflict(f"no available IPv4 addresses on this network's address pools: {subnet}",
                   "Stop containers on this network, or make a bigger one")


def endpoints_of(info: dict[str, Any]) -> list[dict[str, Any]]:
    """The endpoints a container's network.json records as plugged in: ``--network``'s (unless ``network
    disconnect`` took it away) and each ``network connect``'s (``Extra``), in the order they were made."""
    first = [info] if info.get("Veth") and not info.get("Unplugged") else []
    return first + list(info.get("Extra", ()))


def unplugged_settings(config: ContainerConfig, info: dict[str, Any] | None) -> dict[str, Any]:
    """``NetworkSettings`` of a container on bridge networks that holds no address now: an empty entry for each
    network it is on, with the network's id as its last run knew it."""
    ids = {e["Network"]: e["NetworkID"] for e in ([info, *info.get("Extra", ())] if info else []) if "Network" in e}
    return network_settings_json({}, unplugged_networks(config, ids))


def endpoint_id(sandbox: str, network: str, first: bool) -> str:
    """``EndpointID``: a digest of the namespace and, for a network joined later, the network's name."""
    return hashlib.sha256((sandbox if first else f"{sandbox}\0{network}").encode()).hexdigest()


def live_network_settings(endpoints: list[dict[str, Any]], ports: dict[str, Any], config: ContainerConfig,
                          sandbox: str, bridge: str) -> dict[str, Any]:
    """``inspect``'s NetworkSettings for a running container plugged into ``endpoints`` (network.json's records:
    ``--network``'s and each ``network connect``'s), one ``Networks`` entry each, by network name.

    The top-level ``IPAddress``, ``Gateway``, ``MacAddress`` and ``EndpointID`` repeat the default ``bridge``
    network's entry when the container is on it, as Docker's (API 1.51) do; else those of the network it was
    created on (where Docker leaves them empty: labkit's lessons read them there).
    """
    networks: dict[str, Any] = {}
    for e in sorted(endpoints, key=lambda e: e["Network"]):  # by name, as Docker's JSON orders a map
        networks[e["Network"]] = endpoint_json(e["NetworkID"], endpoint_id(sandbox, e["Network"], not e.get("Connected")),
                                               e["Gateway"], e["IPAddress"], e["IPPrefixLen"], e["MacAddress"],
                                               config.endpoint(e["Network"]))
    first = next((networks[e["Network"]] for e in endpoints if not e.get("Connected")), None)
    return network_settings_json(ports, networks, bridge, hashlib.sha256(f"sandbox\0{sandbox}".encode()).hexdigest(),
                                 sandbox, networks.get("bridge") or first)



# -- a rootless container's user-mode network ----------------------------------------------------


#: What ``slirp4netns --configure`` gives the container, as rootless Podman has it: its address on a
#: /24, the gateway (the host, as seen from inside) and the DNS forwarder (the host's resolvers).
SLIRP_ADDRESS, SLIRP_PREFIXLEN, SLIRP_GATEWAY, SLIRP_DNS = "10.0.2.100", 24, "10.0.2.2", "10.0.2.3"

#: The tap device slirp4netns makes inside the container's network namespace.
SLIRP_TAP = "tap0"

#: ``Driver`` of a rootless container's ``network.json``.
SLIRP = "slirp4netns"

#: ``Driver`` of a rootless container's ``network.json`` when pasta carries it.
PASTA = "pasta"

#: The drivers of a rootless container's network: a helper runs for each such container.
USER_NETWORK_DRIVERS = (SLIRP, PASTA)



def no_user_network(what: str) -> HostUnsupported:
    """The error for ``what`` (publishing ports, a network) when no user-mode network helper is installed."""
    return HostUnsupported(f"{what} needs root, or a user-mode network stack rootless: a veth pair cannot reach "
                           "a host bridge from a user namespace, and neither slirp4netns nor pasta is installed",
                           "Install the slirp4netns package (apt-get install slirp4netns; or passt, for pasta), "
                           "or use --network none or host")



def slirp_resolv_conf(host: str) -> str:
    """The container's resolv.conf: slirp4netns's DNS forwarder, then the host's search and options lines."""
    kept = [ln for ln in host.splitlines() if ln.strip() and not ln.strip().startswith("nameserver")]
    return "".join(f"{ln}\n" for ln in [f"nameserver {SLIRP_DNS}", *kept])

