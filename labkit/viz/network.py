"""The network picture: which network namespace the container's process lives in, and what is in it.

Drawn from what exists, nothing more: ``inspect``'s ``HostConfig.NetworkMode``
and ``NetworkSettings``, and the interfaces and addresses each side really has
(network_namespaces(7)). With ``--network none`` the container has a namespace
of its own holding only ``lo``, with no link to the host's; with ``--network
host`` it shares the host's namespace, so it sees the host's cards. Bridges,
veth pairs and published ports appear once ``inspect`` reports them.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from labkit.errors import InvalidArgument
from labkit.viz import palette as P


@dataclass(frozen=True)
class Interface:
    """A network interface and its addresses."""

    name: str
    addresses: tuple[str, ...] = ()


@dataclass(frozen=True)
class NetView:
    """The network as one container sees it.

    Attributes:
        name: The container's name.
        mode: ``HostConfig.NetworkMode`` (``none``, ``host``, a network's name).
        host: The host's interfaces.
        inside: The container's interfaces (the host's own, for ``host`` mode).
        ip: ``NetworkSettings.IPAddress`` ("" when none).
        ports: Published ports as ``"HOST:PORT → PORT/PROTO"``.
    """

    name: str
    mode: str
    host: tuple[Interface, ...]
    inside: tuple[Interface, ...]
    ip: str = ""
    ports: tuple[str, ...] = ()


def parse_ip_addr(text: str) -> tuple[Interface, ...]:
    """Interfaces and addresses from ``ip -o addr`` (iproute2 and busybox print the same one-line form)."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 4 or not parts[0].rstrip(":").isdigit():
            continue
        name = parts[1].rstrip(":").split("@")[0]
        found.setdefault(name, [])
        if parts[2] in ("inet", "inet6"):
            found[name].append(parts[3])
    return tuple(Interface(n, tuple(a)) for n, a in found.items())


def ports_of(settings: Mapping[str, Any]) -> tuple[str, ...]:
    """``NetworkSettings.Ports`` as short lines (only ports bound on the host)."""
    out = []
    for key, binds in sorted((settings.get("Ports") or {}).items()):
        for b in binds or ():
            out.append(f"{b.get('HostIp') or '0.0.0.0'}:{b.get('HostPort')} → {key}")
    return tuple(out)


def view(info: Mapping[str, Any], host_addr: str, inside_addr: str) -> NetView:
    """A :class:`NetView` from ``inspect``'s JSON and the two sides' ``ip -o addr`` texts (pure)."""
    settings = info.get("NetworkSettings") or {}
    return NetView(
        name=info["Name"].lstrip("/"),
        mode=(info.get("HostConfig") or {}).get("NetworkMode") or "none",
        host=parse_ip_addr(host_addr),
        inside=parse_ip_addr(inside_addr),
        ip=settings.get("IPAddress") or "",
        ports=ports_of(settings),
    )


def gather(engine: Any, ref: str) -> NetView:
    """Read both sides: ``ip -o addr`` on the host and, through ``exec``, inside the running container.

    Raises:
        InvalidArgument: The container is not running.
    """
    info = engine.inspect(ref)
    name = info["Name"].lstrip("/")
    if not info["State"]["Running"]:
        raise InvalidArgument(f"{name} is not running, so it has no network namespace to draw",
                              f"Start it first: labkit start {name}")
    host = ""
    if shutil.which("ip"):
        host = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True, check=False).stdout
    _code, inside = engine.exec_output(ref, ["ip", "-o", "addr"])
    return view(info, host, inside)


def _box_lines(ifaces: Sequence[Interface], limit: int = 6) -> list[str]:
    lines = []
    for i in ifaces[:limit]:
        v4 = [a for a in i.addresses if ":" not in a]
        lines.append(f"{i.name}  {', '.join(v4) if v4 else '(no IPv4 address)'}")
    if len(ifaces) > limit:
        lines.append(f"… and {len(ifaces) - limit} more")
    return lines


def draw(v: NetView) -> Any:
    """The host's namespace and the container's, with their interfaces.

    Artists: ``netns:host`` and, when the container has its own namespace, ``netns:container``.
    """
    from matplotlib.patches import FancyBboxPatch

    fig = P.figure(13.0, 7.0)
    ax = P.blank_axes(fig)
    ax.text(50, 97, f"{v.name}: network mode '{v.mode}'", ha="center", va="top", fontsize=P.TITLE,
            fontweight="bold", family=P.FONT)
    shared = v.mode == "host"
    host_w = 96 if shared else 52
    ax.add_patch(FancyBboxPatch((2, 8), host_w, 78, boxstyle="round,pad=0.5", facecolor=P.WHITE,
                                edgecolor=P.HOST, linewidth=3, gid="netns:host"))
    ax.text(4, 83, "the host's network namespace", ha="left", va="top", fontsize=P.LABEL, fontweight="bold",
            color=P.HOST, family=P.FONT)
    for i, line in enumerate(_box_lines(v.host)):
        ax.text(5, 74 - i * 6.5, line, ha="left", va="top", fontsize=P.TEXT, family=P.FONT)
    if shared:
        ax.add_patch(FancyBboxPatch((58, 20), 36, 22, boxstyle="round,pad=0.5", facecolor=P.UPPER,
                                    edgecolor=P.BLACK, linewidth=2, gid="process:container"))
        ax.text(76, 31, f"{v.name}'s processes\nuse these interfaces directly", ha="center", va="center",
                fontsize=P.TEXT, family=P.FONT)
    else:
        ax.add_patch(FancyBboxPatch((60, 8), 38, 78, boxstyle="round,pad=0.5", facecolor=P.WHITE,
                                    edgecolor=P.UPPER, linewidth=3, gid="netns:container"))
        ax.text(62, 83, f"{v.name}'s own network namespace", ha="left", va="top", fontsize=P.LABEL,
                fontweight="bold", color=P.VERMILLION, family=P.FONT)
        lines = _box_lines(v.inside) or ["no interfaces"]
        for i, line in enumerate(lines):
            ax.text(63, 74 - i * 6.5, line, ha="left", va="top", fontsize=P.TEXT, family=P.FONT)
        if v.ip:
            ax.text(63, 74 - len(lines) * 6.5, f"IP address {v.ip}", ha="left", va="top", fontsize=P.TEXT,
                    family=P.FONT)
        if not v.ip and all(i.name == "lo" for i in v.inside):
            ax.text(79, 20, "only loopback: nothing\nleaves this namespace", ha="center", va="center",
                    fontsize=P.TEXT, style="italic", color=P.GREY, family=P.FONT)
    if v.ports:
        ax.text(50, 4, "published: " + "; ".join(v.ports), ha="center", va="center", fontsize=P.TEXT,
                family=P.FONT)
    return fig


def picture(engine: Any, ref: str) -> Any:
    """Gather and draw in one call."""
    return draw(gather(engine, ref))


__all__ = ["Interface", "NetView", "draw", "gather", "parse_ip_addr", "picture", "ports_of", "view"]
