"""The cubicle walls: the same process seen from the host and from inside its container.

"A container is an isolated process" becomes something to look at: on the left
what the host sees (a PID like 722, the host's hostname and network cards, every
mount, the cgroup with its limits), on the right what that same process sees
(PID 1, its own hostname, only ``lo``, a handful of mounts, a cgroup root of
``/``). Each row is one namespace or one cgroup: pid_namespaces(7),
uts_namespaces(7), network_namespaces(7), mount_namespaces(7),
cgroup_namespaces(7).

The host side is read from ``/proc/<pid>/…`` and the cgroup files; the container
side from inside, through ``exec`` (what ``docker exec`` would print). Parsing is
pure (:func:`view` takes the raw texts), so the simulator can feed it too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from labkit.errors import InvalidArgument
from labkit.viz import palette as P

#: Limits at or above this are "no limit" (cgroup v1 writes 2^63 rounded down to a page).
UNLIMITED = 1 << 60


@dataclass(frozen=True)
class Side:
    """What one side of the wall sees.

    Attributes:
        pid: The process's PID in this view.
        hostname: The hostname in this view.
        interfaces: Network interfaces in this view.
        mounts: How many mounts this view has.
        cgroup: The process's cgroup path in this view.
        memory: The memory limit as seen here, in words.
        pids: The process-count limit as seen here, in words.
    """

    pid: int
    hostname: str
    interfaces: tuple[str, ...]
    mounts: int
    cgroup: str
    memory: str
    pids: str


@dataclass(frozen=True)
class WallsView:
    """Both sides of the wall for one container."""

    name: str
    host: Side
    inside: Side


# -- pure parsing ----------------------------------------------------------------------------------

def parse_nspid(status: str) -> tuple[int, ...]:
    """``NSpid:`` of ``/proc/<pid>/status``: the PID in each nested PID namespace, outermost first."""
    for line in status.splitlines():
        if line.startswith("NSpid:"):
            return tuple(int(x) for x in line.split()[1:])
    for line in status.splitlines():
        if line.startswith("Pid:"):
            return (int(line.split()[1]),)
    return ()


def parse_net_dev(text: str) -> tuple[str, ...]:
    """Interface names from ``/proc/net/dev`` (its first two lines are headers)."""
    return tuple(line.split(":", 1)[0].strip() for line in text.splitlines()[2:] if ":" in line)


def count_mounts(text: str) -> int:
    """Lines of ``/proc/<pid>/mounts``."""
    return sum(1 for line in text.splitlines() if line.strip())


def parse_cgroup(text: str) -> str:
    """The cgroup path from ``/proc/<pid>/cgroup``: the memory controller's, else the v2 (``0::``) one."""
    paths = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for ctl in parts[1].split(",") or [""]:
                paths[ctl] = parts[2]
    return paths.get("memory") or paths.get("") or next(iter(paths.values()), "?")


def parse_limit(text: str | None) -> int | None:
    """A cgroup limit file's value in bytes/count; ``None`` for ``max`` or an effectively unlimited number."""
    if text is None:
        return None
    word = text.strip().split()[0] if text.strip() else "max"
    if word == "max" or not word.lstrip("-").isdigit():
        return None
    value = int(word)
    return None if value >= UNLIMITED or value < 0 else value


def parse_memtotal(meminfo: str) -> int | None:
    """``MemTotal`` of ``/proc/meminfo`` in bytes."""
    for line in meminfo.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return None


def _binary(n: int) -> str:
    from labkit.model.humanize import bytes_size

    return bytes_size(n)


def view(name: str, host: Mapping[str, Any], inside: Mapping[str, Any]) -> WallsView:
    """Both sides from raw texts.

    Args:
        name: The container's name.
        host: ``{"status", "hostname", "net_dev", "mounts", "cgroup", "memory_limit", "pids_limit"}``:
            the process's ``/proc/<pid>/status`` and ``cgroup``, the host's hostname,
            ``/proc/net/dev`` and mounts, and the texts of the cgroup limit files (``None`` if absent).
        inside: ``{"status", "hostname", "net_dev", "mounts", "cgroup", "meminfo", "cgroup_files"}``: the same
            files read from inside, plus ``/proc/meminfo`` and how many files ``/sys/fs/cgroup`` shows.
    """
    mem = parse_limit(host.get("memory_limit"))
    pids = parse_limit(host.get("pids_limit"))
    host_side = Side(
        pid=parse_nspid(host["status"])[0],
        hostname=host["hostname"].strip(),
        interfaces=parse_net_dev(host["net_dev"]),
        mounts=count_mounts(host["mounts"]),
        cgroup=parse_cgroup(host["cgroup"]),
        memory=f"limit {_binary(mem)}" if mem else "no limit",
        pids=f"pids.max {pids}" if pids else "no limit",
    )
    total = parse_memtotal(inside.get("meminfo", ""))
    hidden = "not visible" if not inside.get("cgroup_files") else "visible"
    nspid = parse_nspid(inside["status"])
    in_side = Side(
        pid=nspid[-1] if nspid else 0,
        hostname=inside["hostname"].strip(),
        interfaces=parse_net_dev(inside["net_dev"]),
        mounts=count_mounts(inside["mounts"]),
        cgroup=parse_cgroup(inside["cgroup"]),
        memory=f"limit {hidden}; meminfo: {_binary(total)}" if total else f"limit {hidden}",
        pids=f"limit {hidden}, but enforced",
    )
    return WallsView(name, host_side, in_side)


# -- the engine adapter ------------------------------------------------------------------------------

_SEP = "@@labkit-walls@@"
_INSIDE = (f"cat /proc/1/status; echo {_SEP}; hostname; echo {_SEP}; cat /proc/net/dev; echo {_SEP}; "
           f"cat /proc/1/mounts; echo {_SEP}; cat /proc/1/cgroup; echo {_SEP}; cat /proc/meminfo; echo {_SEP}; "
           "ls /sys/fs/cgroup 2>/dev/null | wc -l")


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def gather(engine: Any, ref: str, proc: str = "/proc") -> WallsView:
    """Read both sides for a running container.

    The host side comes from ``<proc>/<pid>/status`` and ``cgroup``, this host's
    hostname, ``<proc>/self/net/dev`` and mounts, and the container's cgroup limit
    files; the inside from one ``exec`` of ``cat``s in the container.

    Raises:
        InvalidArgument: The container is not running (a stopped one has no process to look at).
    """
    info = engine.inspect(ref)
    pid = info["State"]["Pid"]
    name = info["Name"].lstrip("/")
    if not info["State"]["Running"] or not pid:
        raise InvalidArgument(f"{name} is not running, so there is no process whose walls could be shown",
                              f"Start it first: labkit start {name}")
    memory, pids = _limit_texts(engine, info)
    host = {
        "status": _read(f"{proc}/{pid}/status"),
        "cgroup": _read(f"{proc}/{pid}/cgroup"),
        "hostname": os.uname().nodename,
        "net_dev": _read(f"{proc}/self/net/dev"),
        "mounts": _read(f"{proc}/self/mounts"),
        "memory_limit": memory,
        "pids_limit": pids,
    }
    code, out = engine.exec_output(ref, ["/bin/sh", "-c", _INSIDE])
    parts = [p.strip("\n") for p in out.split(_SEP)]
    if code != 0 or len(parts) != 7:
        raise InvalidArgument(f"could not read {name}'s own view of itself (exit code {code})",
                              "The image needs /bin/sh, cat, hostname, ls and wc (busybox has them)")
    keys = ("status", "hostname", "net_dev", "mounts", "cgroup", "meminfo")
    inside: dict[str, Any] = dict(zip(keys, parts[:6], strict=True))
    inside["net_dev"] = parts[2] + "\n"
    inside["cgroup_files"] = int(parts[6].strip() or 0)
    return view(name, host, inside)


def _limit_texts(engine: Any, info: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The container's memory and pids limit files, as the kernel shows them to the host."""
    layout = getattr(engine.backend, "layout", None)
    if layout is None:
        hc = info.get("HostConfig", {})
        return (str(hc.get("Memory") or "max"), str(hc.get("PidsLimit") or "max"))
    from labkit.linux import cgroups

    try:
        group = cgroups.Cgroup.open(layout, info["Id"])
    except Exception:
        return None, None
    mem_file = group.interface_file("memory", "memory.max" if layout.is_unified("memory") else
                                    "memory.limit_in_bytes")
    pid_file = group.interface_file("pids", "pids.max")
    out = []
    for path in (mem_file, pid_file):
        try:
            out.append(_read(path) if path else None)
        except OSError:
            out.append(None)
    return out[0], out[1]


# -- the figure ----------------------------------------------------------------------------------------

ROWS = (
    ("PID", "pid", "pid namespace"),
    ("hostname", "hostname", "UTS namespace"),
    ("network", "interfaces", "network namespace"),
    ("mounts", "mounts", "mount namespace"),
    ("cgroup", "cgroup", "cgroup namespace"),
    ("memory", "memory", "cgroup memory"),
    ("processes", "pids", "cgroup pids"),
)


def _value(side: Side, attr: str) -> str:
    v = getattr(side, attr)
    if attr == "interfaces":
        shown = ", ".join(v[:5]) + (f" +{len(v) - 5}" if len(v) > 5 else "")
        return shown or "none"
    if attr == "mounts":
        return f"{v} mounts"
    if attr == "cgroup":
        return v if len(v) <= 30 else v[:29] + "…"
    return str(v)


def draw(v: WallsView) -> Any:
    """Host view and container view side by side, with the wall between them.

    Row labels name the namespace or cgroup controller that makes the difference.
    Artists: ``side:host`` and ``side:container`` (the two panels), ``wall``.
    """
    from matplotlib.patches import FancyBboxPatch, Rectangle

    fig = P.figure(14.0, 7.5)
    ax = P.blank_axes(fig)
    ax.text(50, 97, f"The cubicle walls of {v.name}: one process, two views", ha="center", va="top",
            fontsize=P.TITLE, fontweight="bold", family=P.FONT)
    top, bottom = 86.0, 4.0
    ax.add_patch(FancyBboxPatch((23, bottom), 33, top - bottom, boxstyle="round,pad=0.3", facecolor=P.WHITE,
                                edgecolor=P.HOST, linewidth=3, gid="side:host"))
    ax.add_patch(FancyBboxPatch((64, bottom), 34, top - bottom, boxstyle="round,pad=0.3", facecolor=P.WHITE,
                                edgecolor=P.UPPER, linewidth=3, gid="side:container"))
    ax.add_patch(Rectangle((58.2, bottom - 1), 3.6, top - bottom + 4, facecolor=P.GREY, edgecolor=P.BLACK,
                           hatch="--", linewidth=1.5, gid="wall"))
    ax.text(39.5, top - 2, "seen from the host", ha="center", va="top", fontsize=P.LABEL, fontweight="bold",
            color=P.HOST, family=P.FONT)
    ax.text(81, top - 2, "seen from inside", ha="center", va="top", fontsize=P.LABEL, fontweight="bold",
            color=VERMILLION_TEXT, family=P.FONT)
    row_h = (top - bottom - 10) / len(ROWS)
    for i, (label, attr, mech) in enumerate(ROWS):
        y = top - 12 - i * row_h
        ax.text(1.5, y, label, ha="left", va="center", fontsize=P.LABEL, fontweight="bold", family=P.FONT)
        ax.text(1.5, y - 3.2, mech, ha="left", va="center", fontsize=P.SMALL, color=P.GREY, family=P.FONT)
        h, c = _value(v.host, attr), _value(v.inside, attr)
        ax.text(25, y, h, ha="left", va="center", fontsize=P.TEXT, family=P.FONT)
        ax.text(66, y, c, ha="left", va="center", fontsize=P.TEXT, family=P.FONT,
                fontweight="bold" if h != c else "normal")
        if i:
            ax.plot([1.5, 98], [y + row_h / 2, y + row_h / 2], color=P.LIGHT_GREY, linewidth=1, zorder=0)
    return fig


#: Orange text on white is faint; the panel's title uses the darker vermillion of the same palette.
VERMILLION_TEXT = P.VERMILLION


def picture(engine: Any, ref: str) -> Any:
    """Gather and draw in one call."""
    return draw(gather(engine, ref))


__all__ = ["ROWS", "Side", "WallsView", "count_mounts", "draw", "gather", "parse_cgroup", "parse_limit",
           "parse_memtotal", "parse_net_dev", "parse_nspid", "picture", "view"]
