"""Networks as ``docker network`` shows them: the default ``bridge``, ``host``, ``none``, and user networks.

A network here is a record on disk (``networks/<name>.json`` under the state
root): a name, an id, a subnet and its gateway, and the bridge interface that
carries it. The kernel side — the bridge itself, veth pairs, addresses — is
made by the backend when a container on the network starts
(:mod:`labkit.linux.network`). On a user-defined network, containers find each
other by name, as Docker's do.

A subnet is chosen when the record is made, and checked again every time the
network's bridge is (re)made (:meth:`Networks.settle`): another state root,
Docker's ``docker0`` or a VPN may have taken it while the bridge was down. A
subnet labkit picked then moves to the next free pool, and the record says so
(``network inspect``; a container gets its address from the new subnet when it
starts); a subnet given with ``--subnet`` is not moved behind the user's back:
the start is refused, saying what holds it. Picking a subnet and naming a
bridge are the same for both backends (the simulator models the same
addresses), so they are here, beside the records, not in either backend.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import secrets
import socket
import struct
from typing import Any

from labkit.errors import Conflict, HostUnsupported, InvalidArgument, NoSuchNetwork
from labkit.model.container import now_rfc3339
from labkit.store import PRIVATE_DIR, Store, read_json, write_json

#: Networks every engine has; the first is the default for new containers.
PREDEFINED = ("bridge", "host", "none")
NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
#: A record's mark that its subnet was given with ``--subnet`` (kept off ``network inspect``).
GIVEN = "SubnetGiven"


def rootless_refusal(what: str) -> HostUnsupported:
    """The refusal of a user-defined network without root, for ``what`` (``network create mynet``, ``network mynet``).

    A user network is a bridge on the host that each container's veth joins; a
    user namespace cannot make a bridge or move a veth into the host's network
    namespace (network_namespaces(7)), so a rootless container gets a network
    stack of its own from slirp4netns or pasta, which no other container shares.
    Refused before anything is made: ``network create`` makes no record, ``run``
    no container.
    """
    return HostUnsupported(f"{what}: a user-defined network needs root, because each rootless container gets a "
                           "network stack of its own (slirp4netns or pasta) and no bridge can join them",
                           "Use the default network (publish ports with -p), --network none or host, "
                           "or run as root (sudo)")


class Networks:
    """The network records of one state root."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.dir = store.root / "networks"
        self.dir.mkdir(mode=PRIVATE_DIR, exist_ok=True)

    def _path(self, name: str) -> Any:
        return self.dir / f"{name}.json"

    def get(self, ref: str) -> dict[str, Any]:
        """A network by name, id or id prefix; ``bridge`` is made on first use."""
        rec = read_json(self._path(ref)) if NAME_RE.match(ref) else None
        if rec:
            return _public(rec)
        if ref in PREDEFINED:
            return self._predefined(ref)
        for other in self.ls():
            if other["Id"].startswith(ref) and len(ref) >= 3:
                return other
        raise NoSuchNetwork(ref)

    def _predefined(self, name: str) -> dict[str, Any]:
        if name == "bridge":
            with self.store.locked():
                rec = read_json(self._path(name))
                return rec or self._make(name, None)
        return {"Name": name, "Id": _stable_id(name), "Created": "0001-01-01T00:00:00Z", "Scope": "local",
                "Driver": "null" if name == "none" else "host", "IPAM": {"Driver": "default", "Config": []},
                "Options": {}, "Labels": {}, "Internal": False}

    def _make(self, name: str, subnet: str | None) -> dict[str, Any]:
        taken = host_subnets() + [ipaddress.IPv4Network(c["Subnet"])
                                      for r in self._records() for c in r["IPAM"]["Config"]]
        chosen = parse_subnet(subnet) if subnet else pick_subnet(taken)
        if subnet and any(chosen.overlaps(t) for t in taken):
            raise Conflict(f"Pool overlaps with other one on this address space: {chosen}",
                           "Pick a subnet no other network or host interface uses")
        gateway = str(next(chosen.hosts()))
        rec: dict[str, Any] = {
            "Name": name,
            "Id": _stable_id(name) if name == "bridge" else secrets.token_hex(32),
            "Created": now_rfc3339(),
            "Scope": "local",
            "Driver": "bridge",
            "EnableIPv6": False,
            "IPAM": {"Driver": "default", "Options": None, "Config": [{"Subnet": str(chosen), "Gateway": gateway}]},
            "Internal": False,
            "Options": {"com.docker.network.bridge.name": bridge_name(str(self.store.root), name)},
            "Labels": {},
        }
        if subnet:
            rec[GIVEN] = True
        write_json(self._path(name), rec)
        return rec

    def settle(self, name: str, in_use: list[tuple[ipaddress.IPv4Network, str]]) -> tuple[dict[str, Any], str]:
        """Check network ``name``'s subnet as its bridge comes up; move it to a free pool if it is taken.

        Call under the store's lock and :func:`labkit.linux.network.host_lock`, with
        ``in_use`` from :func:`labkit.linux.network.subnets_in_use` (every address and
        route of the host but this network's own bridge's). This root's other networks
        count as taken too, bridge up or not, so its records never overlap each other.

        Returns:
            The record, saved if its subnet moved, and what the old subnet clashed
            with ("" when it was free).

        Raises:
            Conflict: The subnet was given with ``--subnet`` and is taken.
        """
        rec = read_json(self._path(name)) or self.get(name)
        own = [(ipaddress.IPv4Network(c["Subnet"]), f"network {r['Name']} of this state root")
               for r in self._records() if r["Name"] != rec["Name"] for c in r["IPAM"]["Config"]]
        taken = in_use + own
        subnet = ipaddress.IPv4Network(rec["IPAM"]["Config"][0]["Subnet"])
        hit = clash(subnet, taken)
        if hit is None:
            return _public(rec), ""
        if rec.get(GIVEN):
            raise Conflict(f"network {rec['Name']}'s subnet {subnet} is in use on this host by {hit}",
                           "Stop what uses it, or make the network again with another --subnet (or without "
                           "one: labkit then picks a free subnet)")
        chosen = pick_subnet([t for t, _ in taken])
        rec["IPAM"]["Config"] = [{"Subnet": str(chosen), "Gateway": str(next(chosen.hosts()))}]
        write_json(self._path(rec["Name"]), rec)
        return _public(rec), hit

    def _records(self) -> list[dict[str, Any]]:
        out = []
        for entry in sorted(os.listdir(self.dir)):
            if entry.endswith(".json") and not entry.startswith("."):
                rec = read_json(self.dir / entry)
                if rec:
                    out.append(rec)
        return out

    def ls(self) -> list[dict[str, Any]]:
        """Every network: the predefined three first, then user networks by name."""
        user = [_public(r) for r in self._records() if r["Name"] not in PREDEFINED]
        return [self.get(n) for n in PREDEFINED] + user

    def create(self, name: str, subnet: str | None = None) -> dict[str, Any]:
        """``docker network create NAME [--subnet CIDR]``: a bridge network of its own."""
        if not NAME_RE.match(name):
            raise InvalidArgument(f"invalid network name {name!r}", "Use letters, digits, '_', '.' and '-'")
        with self.store.locked():
            if name in PREDEFINED or read_json(self._path(name)):
                raise Conflict(f"network with name {name} already exists", "Pick another name")
            return _public(self._make(name, subnet))

    def rm(self, ref: str, in_use: list[str]) -> str:
        """``docker network rm``: refused for the predefined networks and while containers use it."""
        rec = self.get(ref)
        if rec["Name"] in PREDEFINED:
            raise Conflict(f"{rec['Name']} is a pre-defined network and cannot be removed", "")
        if in_use:
            raise Conflict(f"error while removing network: network {rec['Name']} id {rec['Id']} has active endpoints",
                           "Remove the containers on it first")
        self._path(rec["Name"]).unlink(missing_ok=True)
        return rec["Name"]

    def given(self, name: str) -> bool:
        """Whether network ``name``'s subnet was given with ``--subnet`` (so ``network connect --ip`` may pick
        an address in it, as Docker allows only then)."""
        return bool((read_json(self._path(name)) or {}).get(GIVEN)) if NAME_RE.match(name) else False

    def bridges(self) -> list[str]:
        """Every bridge interface name this state root's networks use."""
        return [r["Options"]["com.docker.network.bridge.name"] for r in self._records() if r["Driver"] == "bridge"]


def _public(rec: dict[str, Any]) -> dict[str, Any]:
    """A record as ``network inspect`` shows it: Docker's keys, none of labkit's own."""
    return {k: v for k, v in rec.items() if k != GIVEN}


def _stable_id(name: str) -> str:
    return hashlib.sha256(f"labkit-network-{name}".encode()).hexdigest()


# -- a network's subnet and bridge name, as both backends pick them ----------------------------------

#: The address pools Docker picks default subnets from, in order.
POOLS = [f"172.{n}.0.0/16" for n in range(17, 32)] + [f"192.168.{n}.0/20" for n in range(0, 256, 16)]


def bridge_name(root: str, network: str) -> str:
    """A bridge name unique to this state root and network, within IFNAMSIZ (15 characters)."""
    digest = hashlib.sha256(f"{root}\0{network}".encode()).hexdigest()[:8]
    return f"lkbr{digest}"


def host_subnets() -> list[ipaddress.IPv4Network]:
    """The IPv4 subnets the host's main table routes (from /proc/net/route), routes shorter than /8 excluded.

    Cheap (no netlink) and enough for a network's first record; a bridge coming up
    checks more (:func:`subnets_in_use`).
    """
    nets = []
    try:
        with open("/proc/net/route") as f:
            next(f)
            for line in f:
                fields = line.split()
                dest, mask = int(fields[1], 16), int(fields[7], 16)
                bits = bin(mask).count("1")
                if bits < 8:  # a default route, or a VPN's stand-in for one (see subnets_in_use)
                    continue
                addr = socket.inet_ntoa(struct.pack("<I", dest))
                nets.append(ipaddress.IPv4Network(f"{addr}/{bits}", strict=False))
    except OSError:
        pass
    return nets


def clash(subnet: ipaddress.IPv4Network, in_use: list[tuple[ipaddress.IPv4Network, str]]) -> str | None:
    """The interface already using part of ``subnet`` (``docker0``, another root's bridge, …), or None."""
    for net, name in in_use:
        if subnet.overlaps(net):
            return f"{name} ({net})"
    return None


def pick_subnet(taken: list[ipaddress.IPv4Network]) -> ipaddress.IPv4Network:
    """The first pool subnet that overlaps nothing in ``taken`` (Docker's 172.17.0.0/16 when free)."""
    for text in POOLS:
        net = ipaddress.IPv4Network(text)
        if not any(net.overlaps(t) for t in taken):
            return net
    raise Conflict("could not find an available, non-overlapping IPv4 address pool among the defaults to "
                   "assign to the network", "Remove unused networks with 'labkit network rm'")


def parse_subnet(text: str) -> ipaddress.IPv4Network:
    """A ``--subnet`` value, refused plainly when it is not an IPv4 network."""
    try:
        return ipaddress.IPv4Network(text, strict=False)
    except ValueError:
        raise InvalidArgument(f"invalid subnet {text}", "Write it as an IPv4 network, e.g. 172.30.0.0/16") from None

