"""The cubicle walls: the same process seen from the host and from inside its container.

"A container is an isolated process" becomes something to look at: on the left
what the host sees (a PID like 722, the host's hostname and network cards, every
mount, the cgroup with its limits), on the right what that same process sees
(PID 1, its own hostname, only ``lo``, a handful of mounts, a cgroup root of
``/``). Each row is one namespace or one cgroup: pid_namespaces(7),
uts_namespaces(7), network_namespaces(7), mount_namespaces(7),
cgroup_namespaces(7).

Both backends report the two views through the engine
(:meth:`labkit.engine.Engine.process_view`): the linux backend reads the host's
``/proc/<pid>/…`` and the cgroup files, and asks the container itself what it
sees (what ``docker exec`` would print); the simulator reports its model, and
never looks a simulated PID up in the host's ``/proc``. Turning those facts
into words (:func:`view`) is pure.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from labkit.errors import InvalidArgument
from labkit.model.humanize import bytes_size
from labkit.model.views import (
    ProcessView,
    count_mounts,
    parse_cgroup,
    parse_limit,
    parse_memtotal,
    parse_net_dev,
    parse_nspid,
)
from labkit.viz import palette as P

if TYPE_CHECKING:
    from labkit.engine import Engine


@dataclass(frozen=True)
class Side:
    """What one side of the wall sees, in the picture's words.

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
    simulated: bool = False  # the simulator's model of both sides (the picture is stamped so)


def _binary(n: int) -> str:
    return bytes_size(n)


def view(name: str, seen: ProcessView) -> WallsView:
    """Both sides in words: the host names the limits; inside, they are enforced but not visible.

    Args:
        name: The container's name.
        seen: What the backend reports (:class:`labkit.model.views.ProcessView`).
    """
    h, i = seen.host, seen.inside
    host_side = Side(h.pid, h.hostname, h.interfaces, h.mounts, h.cgroup,
                     memory=f"limit {_binary(h.memory_limit)}" if h.memory_limit else "no limit",
                     pids=f"pids.max {h.pids_limit}" if h.pids_limit else "no limit")
    hidden = "visible" if i.cgroup_files else "not visible"
    in_side = Side(i.pid, i.hostname, i.interfaces, i.mounts, i.cgroup,
                   memory=f"limit {hidden}; meminfo: {_binary(i.mem_total)}" if i.mem_total else f"limit {hidden}",
                   pids=f"limit {hidden}, but enforced")
    return WallsView(name, host_side, in_side)


def gather(engine: Engine, ref: str) -> WallsView:
    """Both sides for a running container, as its backend reports them (:meth:`Engine.process_view`).

    Raises:
        InvalidArgument: The container is not running (a stopped one has no process to look at).
    """
    info = engine.inspect(ref)
    name = info["Name"].lstrip("/")
    if not info["State"]["Running"] or not info["State"]["Pid"]:
        raise InvalidArgument(f"{name} is not running, so there is no process whose walls could be shown",
                              f"Start it first: labkit start {name}")
    return replace(view(name, engine.process_view(ref)), simulated=engine.backend.simulated)


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
    # matplotlib loads when a picture is drawn, not when labkit.viz is imported
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
    return P.mark_simulated(fig, v.simulated)


#: Orange text on white is faint; the panel's title uses the darker vermillion of the same palette.
VERMILLION_TEXT = P.VERMILLION


def picture(engine: Engine, ref: str) -> Any:
    """Gather and draw in one call."""
    return draw(gather(engine, ref))


__all__ = ["ROWS", "Side", "WallsView", "count_mounts", "draw", "gather",
           "parse_cgroup", "parse_limit", "parse_memtotal", "parse_net_dev", "parse_nspid", "picture", "view"]
