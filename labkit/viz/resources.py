"""Resources over time: memory and process count against the cgroup's limits.

The kernel keeps the counters (cgroups(7)): ``memory.usage_in_bytes`` (v1) or
``memory.current`` (v2), ``pids.current``, and the OOM killer's tally
(``oom_kill`` in ``memory.oom_control`` / ``memory.events``). :func:`sample`
reads them every few milliseconds while the container runs, through the
engine's meter (the cgroup files on the real backend, the modelled counters
against simulated time on the simulator); :func:`draw` plots them under the
limit line and marks the moment the OOM killer struck.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from labkit.viz import palette as P

if TYPE_CHECKING:
    from labkit.engine import Engine

#: The y axis reaches this many times the limit: room above the limit line for its label and the OOM badge.
HEADROOM = 1.32


@dataclass(frozen=True)
class Sample:
    """One reading of the counters.

    Attributes:
        t: Seconds since sampling began.
        memory: Bytes charged to the cgroup (``None`` if unreadable).
        pids: Tasks in the cgroup (``None`` if unreadable).
    """

    t: float
    memory: int | None
    pids: int | None


@dataclass(frozen=True)
class Usage:
    """A container's usage over time.

    Attributes:
        name: The container's name.
        samples: Readings, oldest first.
        memory_limit: The memory limit in bytes, or ``None``.
        pids_limit: The pids limit, or ``None``.
        oom_at: When the OOM killer was first seen to act (seconds), or ``None``.
        exit_code: The exit code if the container ended while sampled.
        simulated: Read from the simulator's counters against its clock (the picture is stamped so).
    """

    name: str
    samples: tuple[Sample, ...]
    memory_limit: int | None = None
    pids_limit: int | None = None
    oom_at: float | None = None
    exit_code: int | None = None
    simulated: bool = False


def usage(name: str, samples: Iterable[Sample | Mapping[str, Any] | tuple[float, int | None, int | None]],
          memory_limit: int | None = None, pids_limit: int | None = None, oom_at: float | None = None,
          exit_code: int | None = None) -> Usage:
    """A :class:`Usage` from plain data: samples as ``(t, memory, pids)`` or ``{"t", "memory", "pids"}``."""
    out = []
    for s in samples:
        if isinstance(s, Sample):
            out.append(s)
        elif isinstance(s, Mapping):
            out.append(Sample(float(s["t"]), s.get("memory"), s.get("pids")))
        else:
            out.append(Sample(float(s[0]), s[1], s[2]))
    return Usage(name, tuple(out), memory_limit or None, pids_limit if pids_limit and pids_limit > 0 else None,
                 oom_at, exit_code)


def sample(engine: Engine, ref: str, seconds: float = 5.0, interval: float = 0.05) -> Usage:
    """Read a running container's counters every ``interval`` seconds until it exits or ``seconds`` pass.

    The counters and the clock come from :meth:`labkit.Engine.meter`: on the real
    backend the cgroup files against the host's clock; on the simulator its
    counters against simulated time, which each pause moves on (the container
    runs meanwhile), so the curve is the one its program makes. The group goes
    as soon as PID 1 ends, so the last readings are taken while it still exists;
    an OOM kill that ended the container is then known from ``inspect``'s
    ``State.OOMKilled``.
    """
    info = engine.inspect(ref)
    hc = info.get("HostConfig", {})
    name = info["Name"].lstrip("/")
    meter = engine.meter(info["Id"]) if info["State"]["Running"] else None
    readings: list[Sample] = []
    oom_at = None
    start = meter.clock() if meter is not None else 0.0
    kills0: int | None = None
    while meter is not None and meter.clock() - start < seconds:
        now = meter.read()
        if now is None:
            break  # the group is gone: PID 1 has ended
        t = now.at - start
        readings.append(Sample(t, now.memory, now.pids))
        if len(readings) == 1:
            kills0 = now.oom_kills
        elif oom_at is None and now.oom_kills is not None and kills0 is not None and now.oom_kills > kills0:
            oom_at = t
        if not engine.inspect(ref)["State"]["Running"]:
            break
        meter.pause(interval)
    state = engine.inspect(ref)["State"]
    if state["OOMKilled"] and oom_at is None:
        oom_at = readings[-1].t if readings else 0.0
    exit_code = None if state["Running"] else state["ExitCode"]
    return replace(usage(name, readings, hc.get("Memory") or None, hc.get("PidsLimit"), oom_at, exit_code),
                   simulated=engine.backend.simulated)


def draw(u: Usage) -> Any:
    """Memory (MiB) and processes over time, each under its limit; an OOM kill marked in vermillion.

    Artists: the usage lines carry ``gid`` ``usage:memory`` / ``usage:pids``, the
    limits ``limit:memory`` / ``limit:pids`` and their labels ``limit-label:memory`` /
    ``limit-label:pids``, the OOM mark ``oom`` and its badge ``oom-badge``. The limit's
    label stands at the end of the time axis away from the OOM mark, so neither the
    mark's line nor its badge covers it.
    """
    fig = P.figure(13.0, 7.5)
    axes = fig.subplots(2, 1, sharex=True)
    fig.subplots_adjust(left=0.1, right=0.97, top=0.88, bottom=0.1, hspace=0.25)
    title = f"{u.name}: usage against its cgroup limits"
    if u.exit_code is not None:
        title += f" (exited {u.exit_code})"
    fig.suptitle(title, fontsize=P.TITLE, fontweight="bold", family=P.FONT)
    ts = [s.t for s in u.samples]
    mib = 1024 * 1024
    series: tuple[tuple[str, list[Any], float | None, str, str], ...] = (
        ("memory", [None if s.memory is None else s.memory / mib for s in u.samples],
         u.memory_limit / mib if u.memory_limit else None, "memory (MiB)", P.BLUE),
        ("pids", [s.pids for s in u.samples], u.pids_limit, "processes", P.GREEN),
    )
    oom_right = _in_right_half(ts, u.oom_at)
    for ax, (key, ys, limit, label, colour) in zip(axes, series, strict=True):
        ax.plot(ts, [float("nan") if y is None else y for y in ys], color=colour, linewidth=3, gid=f"usage:{key}",
                label="usage")
        if u.oom_at is not None:
            ax.axvline(u.oom_at, color=P.CURRENT, linewidth=3, gid="oom" if key == "memory" else "oom:pids")
        # The limit's label goes to the side away from the OOM mark, so the mark's line and
        # badge never cross it; the headroom above the limit holds both.
        x, ha = (0.005, "left") if oom_right else (0.995, "right")
        if limit:
            ax.axhline(limit, color=P.CURRENT, linestyle="--", linewidth=2.5, gid=f"limit:{key}")
            shown = f"limit {limit:g} MiB" if key == "memory" else f"limit {limit:g}"
            ax.text(x, limit, shown, transform=ax.get_yaxis_transform(), ha=ha, va="bottom",
                    fontsize=P.TEXT, color=P.CURRENT, fontweight="bold", family=P.FONT, gid=f"limit-label:{key}")
            ax.set_ylim(0, limit * HEADROOM)
        else:
            ax.text(x, 0.95, "no limit", transform=ax.transAxes, ha=ha, va="top", fontsize=P.TEXT,
                    color=P.GREY, family=P.FONT)
            ax.set_ylim(bottom=0)
        ax.set_ylabel(label, fontsize=P.LABEL, family=P.FONT)
        ax.tick_params(labelsize=P.TEXT)
        ax.grid(True, color=P.LIGHT_GREY)
    if u.oom_at is not None:
        # The badge sits in the headroom above the limit line, on the inner side of the OOM line.
        axes[0].text(u.oom_at, 0.5 * (1 + 1 / HEADROOM), " ✝ OOM kill ", transform=axes[0].get_xaxis_transform(),
                     ha="right" if oom_right else "left", va="center", fontsize=P.LABEL, fontweight="bold",
                     color=P.WHITE, family=P.FONT, gid="oom-badge",
                     bbox={"boxstyle": "round,pad=0.3", "facecolor": P.CURRENT, "edgecolor": "none"})
    if not u.samples:
        axes[0].text(0.5, 0.5, "no readings: the container was not running", transform=axes[0].transAxes,
                     ha="center", va="center", fontsize=P.LABEL, color=P.GREY, family=P.FONT)
    axes[1].set_xlabel("seconds", fontsize=P.LABEL, family=P.FONT)
    # Plain seconds from 0: a short run must not read as microseconds on an offset axis.
    axes[1].set_xlim(0, max([*ts, u.oom_at or 0.0, 1.0]))
    axes[1].ticklabel_format(axis="x", style="plain", useOffset=False)
    return P.mark_simulated(fig, u.simulated)


def _in_right_half(ts: list[float], oom_at: float | None) -> bool:
    """Whether the OOM mark falls in the right half of the time axis (as autoscaling will lay it out)."""
    if oom_at is None:
        return False
    lo, hi = min([*ts, oom_at]), max([*ts, oom_at])
    return hi == lo or (oom_at - lo) / (hi - lo) >= 0.5


def picture(engine: Engine, ref: str, seconds: float = 5.0) -> Any:
    """Sample for up to ``seconds``, then draw."""
    return draw(sample(engine, ref, seconds))


__all__ = ["Sample", "Usage", "draw", "picture", "sample", "usage"]
