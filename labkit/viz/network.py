"""The network picture: the container's network namespace, the host's, and what links them.

Drawn from what exists, nothing more (network_namespaces(7)): ``inspect``'s
``HostConfig.NetworkMode`` and ``NetworkSettings`` (address, MAC, gateway,
bridge, published ports), the network's subnet, and the interfaces each side
really has, as the backend reports them (:meth:`labkit.engine.Engine.network_view`:
the kernel's for the linux backend, the model's for the simulator).

* On a bridge network the host holds labkit's bridge, with the gateway
  address, and one veth pair per container (veth(4)): its host end is plugged
  into the bridge, its other end is the container's ``eth0``. Published ports
  are arrows from the host's ``ip:port`` to the container's port.
* With ``--network none`` the container's namespace holds only ``lo``, with no
  link to the host's.
* With ``--network host`` there is one namespace: the container's processes
  use the host's interfaces directly.

On a busy host the bridge and the container's veth are always drawn; only the
host's other interfaces are cut short.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from labkit.errors import InvalidArgument
from labkit.model.views import Interface, NetworkView, parse_ip
from labkit.viz import palette as P

if TYPE_CHECKING:
    from labkit.engine import Engine

#: How many of the host's other interfaces (not lo, labkit's bridge or the container's veth) are listed.
OTHERS_SHOWN = 3


@dataclass(frozen=True)
class Port:
    """One published port: the host's address and port, and the container's port with its protocol."""

    host_ip: str
    host_port: str
    container_port: str

    @property
    def label(self) -> str:
        """``127.0.0.1:8080 → 3000/tcp``."""
        return f"{self.host_ip}:{self.host_port} → {self.container_port}"


@dataclass(frozen=True)
class NetView:
    """The network as one container sees it.

    Attributes:
        name: The container's name.
        mode: ``HostConfig.NetworkMode`` (``none``, ``host``, a network's name).
        host: The host's interfaces.
        inside: The container's interfaces (the host's own, for ``host`` mode).
        ip: ``NetworkSettings.IPAddress`` ("" when none); ``prefixlen``: its prefix length.
        mac: The container's ``eth0`` MAC ("" when none).
        gateway: The bridge's address, the container's default route ("" when none).
        bridge: The host's bridge interface ("" when none).
        subnet: The network's subnet ("" when unknown).
        veth: The host end of the container's veth pair ("" when none).
        ports: Published ports.
        simulated: The simulator's model of the host and the container (the picture is stamped so).
    """

    name: str
    mode: str
    host: tuple[Interface, ...]
    inside: tuple[Interface, ...]
    ip: str = ""
    prefixlen: int = 0
    mac: str = ""
    gateway: str = ""
    bridge: str = ""
    subnet: str = ""
    veth: str = ""
    ports: tuple[Port, ...] = ()
    simulated: bool = False


def ports_of(settings: Mapping[str, Any]) -> tuple[Port, ...]:
    """``NetworkSettings.Ports``: only the ports bound on the host."""
    out = []
    for key, binds in sorted((settings.get("Ports") or {}).items()):
        for b in binds or ():
            out.append(Port(b.get("HostIp") or "0.0.0.0", str(b.get("HostPort")), key))
    return tuple(out)


def view(info: Mapping[str, Any], seen: NetworkView, subnet: str = "") -> NetView:
    """A :class:`NetView` from ``inspect``'s JSON, the backend's interfaces and the network's subnet (pure)."""
    settings = info.get("NetworkSettings") or {}
    return NetView(
        name=info["Name"].lstrip("/"),
        mode=(info.get("HostConfig") or {}).get("NetworkMode") or "none",
        host=seen.host,
        inside=seen.inside,
        ip=settings.get("IPAddress") or "",
        prefixlen=int(settings.get("IPPrefixLen") or 0),
        mac=settings.get("MacAddress") or "",
        gateway=settings.get("Gateway") or "",
        bridge=settings.get("Bridge") or "",
        subnet=subnet,
        veth=seen.veth,
        ports=ports_of(settings),
    )


def gather(engine: Engine, ref: str) -> NetView:
    """Read ``inspect``, the network's subnet and both sides' interfaces for a running container.

    Raises:
        InvalidArgument: The container is not running.
    """
    info = engine.inspect(ref)
    name = info["Name"].lstrip("/")
    if not info["State"]["Running"]:
        raise InvalidArgument(f"{name} is not running, so it has no network namespace to draw",
                              f"Start it first: labkit start {name}")
    mode = (info.get("HostConfig") or {}).get("NetworkMode") or "none"
    subnet = ""
    if mode not in ("none", "host"):
        try:
            subnet = engine.network_inspect(mode)["IPAM"]["Config"][0]["Subnet"]
        except (LookupError, TypeError):
            subnet = ""
    return replace(view(info, engine.network_view(ref), subnet), simulated=engine.backend.simulated)


def host_shown(v: NetView, others: int = OTHERS_SHOWN) -> tuple[list[Interface], int]:
    """The host's interfaces to list, and how many are left out.

    ``lo`` always; the bridge and the container's veth are drawn as shapes, so never listed
    and never cut; of the rest, the first ``others`` with an IPv4 address come first.
    """
    drawn = {v.bridge, v.veth} - {""}
    rest = [i for i in v.host if i.name not in drawn and i.name != "lo"]
    rest.sort(key=lambda i: not _ipv4(i))
    lo = [i for i in v.host if i.name == "lo"]
    return lo + rest[:others], max(len(rest) - others, 0)


def _ipv4(i: Interface) -> list[str]:
    return [a for a in i.addresses if ":" not in a]


def _line(i: Interface) -> str:
    v4 = _ipv4(i)
    return f"{i.name}  {', '.join(v4) if v4 else '(no IPv4 address)'}"


def _eth0(v: NetView) -> Interface | None:
    """The container's end of its veth pair: ``eth0`` (or the interface with its MAC)."""
    if not v.veth:
        return None
    for i in v.inside:
        if i.name == "eth0" or (v.mac and i.mac == v.mac):
            return i
    return Interface("eth0", (f"{v.ip}/{v.prefixlen}",) if v.ip else (), v.mac)


def draw(v: NetView) -> Any:
    """The host's namespace and the container's, the bridge, the veth pair and the published ports.

    Artists: ``netns:host``; ``netns:container`` when the container has a namespace of its own;
    ``bridge`` when the host has the container's bridge; ``veth:host`` (the host end, on the
    bridge), ``veth:plug`` (its link to the bridge), ``veth`` (the pair's link across) and
    ``veth:container`` (``eth0``) when it has a veth pair; ``port:HOSTPORT`` per published port
    (an arrow); ``process:container`` in host mode.
    """
    # matplotlib loads when a picture is drawn, not when labkit.viz is imported
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    fig = P.figure(14.0, 8.0)
    ax = P.blank_axes(fig)
    ax.text(50, 97, f"{v.name}: network mode '{v.mode}'", ha="center", va="top", fontsize=P.TITLE,
            fontweight="bold", family=P.FONT)

    def text(x: float, y: float, s: str, **kw: Any) -> Any:
        kw.setdefault("fontsize", P.TEXT)
        return ax.text(x, y, s, family=P.FONT, **kw)

    def box(x: float, y: float, w: float, h: float, gid: str, face: str = P.WHITE, edge: str = P.BLACK,
            lw: float = 2) -> None:
        ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.4", facecolor=face, edgecolor=edge,
                                    linewidth=lw, gid=gid))

    shown, hidden = host_shown(v)
    more = f"… and {hidden} more interface{'s' if hidden != 1 else ''}"
    lines = [_line(i) for i in shown] + ([more] if hidden else [])
    if v.mode == "host":
        box(2, 6, 96, 80, "netns:host", edge=P.HOST, lw=3)
        text(4, 83, f"the host's network namespace, shared by {v.name}", ha="left", va="top", fontsize=P.LABEL,
             fontweight="bold", color=P.HOST)
        for n, line in enumerate([_line(i) for i in v.host[:12]] + ([f"… and {len(v.host) - 12} more"]
                                                                    if len(v.host) > 12 else [])):
            text(5, 74 - n * 5.5, line, ha="left", va="top")
        box(58, 24, 36, 22, "process:container", face=P.UPPER)
        text(76, 35, f"{v.name}'s processes\nuse these interfaces directly", ha="center", va="center")
        return P.mark_simulated(fig, v.simulated)

    box(2, 6, 48, 80, "netns:host", edge=P.HOST, lw=3)
    text(4, 83, "the host's network namespace", ha="left", va="top", fontsize=P.LABEL, fontweight="bold",
         color=P.HOST)
    # The list ends above the bridge's box (its top, with the box's padding, is at 52.4): a long list's
    # lines close up rather than run into it.
    gap = min(5.5, (75 - 57) / max(1, len(lines) - 1))
    for n, line in enumerate(lines):
        text(5, 75 - n * gap, line, ha="left", va="top", gid=f"host-line:{n}")
    box(58, 6, 40, 80, "netns:container", edge=P.UPPER, lw=3)
    text(60, 83, f"{v.name}'s own network namespace", ha="left", va="top", fontsize=P.LABEL, fontweight="bold",
         color=P.VERMILLION)
    eth0 = _eth0(v)
    inside = [i for i in v.inside if eth0 is None or i.name != eth0.name]
    for n, i in enumerate(inside):
        text(61, 75 - n * 5.5, _line(i), ha="left", va="top")
    link_y = 44.0
    if v.bridge and (v.veth or any(i.name == v.bridge for i in v.host)):
        bridge = next((i for i in v.host if i.name == v.bridge), None)
        address = (_ipv4(bridge) or [""])[0] if bridge else ""
        address = address or (f"{v.gateway}/{v.prefixlen}" if v.gateway else "")
        box(5, link_y - 8, 24, 16, "bridge", face=P.LIGHT_GREY)
        text(17, link_y, "\n".join(s for s in (f"bridge {v.bridge}", f"gateway {address}",
                                               f"subnet {v.subnet}" if v.subnet else "") if s),
             ha="center", va="center", fontsize=P.SMALL)
    if eth0 is not None:
        box(37, link_y - 3.5, 11.5, 7, "veth:host", face=P.HOST)
        text(42.75, link_y, v.veth, ha="center", va="center", fontsize=P.SMALL, color=P.WHITE, fontweight="bold")
        if v.bridge:
            ax.plot([29.4, 36.6], [link_y, link_y], color=P.BLACK, linewidth=2.5, gid="veth:plug")
        ax.plot([48.9, 58.6], [link_y, link_y], color=P.BLACK, linewidth=4, solid_capstyle="round", gid="veth")
        text(54, link_y + 2.5, "veth pair", ha="center", va="bottom", fontsize=P.SMALL, style="italic")
        box(59, link_y - 7, 26, 14, "veth:container", face=P.UPPER)
        eth_lines = [eth0.name, ", ".join(_ipv4(eth0)) or (f"{v.ip}/{v.prefixlen}" if v.ip else ""),
                     f"MAC {eth0.mac or v.mac}" if (eth0.mac or v.mac) else ""]
        text(72, link_y, "\n".join(s for s in eth_lines if s), ha="center", va="center", fontsize=P.SMALL)
        if v.gateway:
            text(61, link_y - 10, f"default route via {v.gateway}", ha="left", va="top", fontsize=P.SMALL,
                 color=P.GREY)
    elif all(i.name == "lo" for i in v.inside):
        text(78, 30, "only loopback: nothing\nleaves this namespace", ha="center", va="center",
             style="italic", color=P.GREY)
    for n, port in enumerate(v.ports):
        y = 24 - n * 6
        text(5, y, f"{port.host_ip}:{port.host_port}", ha="left", va="center", fontweight="bold",
             bbox={"boxstyle": "round,pad=0.3", "facecolor": P.WHITE, "edgecolor": P.HOST})
        P.add_arrow(ax, FancyArrowPatch((25, y), (70, y), arrowstyle="-|>", mutation_scale=18, linewidth=2,
                                         color=P.HOST, gid=f"port:{port.host_port}"))
        text(47, y + 1, port.label, ha="center", va="bottom", fontsize=P.SMALL,
             bbox={"boxstyle": "round,pad=0.2", "facecolor": P.WHITE, "edgecolor": "none"})
        text(71, y, f":{port.container_port}", ha="left", va="center", fontweight="bold")
    return P.mark_simulated(fig, v.simulated)


def picture(engine: Engine, ref: str) -> Any:
    """Gather and draw in one call."""
    return draw(gather(engine, ref))


__all__ = ["OTHERS_SHOWN", "Interface", "NetView", "NetworkView", "Port", "draw", "gather", "host_shown",
           "parse_ip", "picture", "ports_of", "view"]
