"""Watching containers: ``port``, ``top``, ``stats`` and ``events``, with Docker's columns and words.

``top`` lists the processes of a container's cgroup as ``ps`` shows them on the host;
``stats`` reads its cgroup counters (CPU time, memory against its limit, network and
block bytes, processes), once with ``--no-stream`` or every second until Ctrl-C;
``events`` prints the engine's own record of what happened, between ``--since`` and
``--until`` (without ``--until``, as it happens, until Ctrl-C).
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from labkit.cli.formatters import render_rows, short_id, tabwrite
from labkit.cli.session import Command, Session
from labkit.cli.templates import Fields, Template
from labkit.errors import InvalidArgument, LabkitError
from labkit.model import humanize


def _port_key(key: str) -> tuple[int, str]:
    number, _, proto = key.partition("/")
    return int(number) if number.isdigit() else 0, proto


def cmd_port(session: Session, args: argparse.Namespace) -> int:
    """List the container's published ports (``3000/tcp -> 127.0.0.1:3000``), or one port's bindings."""
    ports: Mapping[str, Any] = (session.engine.inspect(args.container).get("NetworkSettings") or {}).get("Ports") or {}
    if args.port:
        number, _, proto = args.port.partition("/")
        if not number.isdigit():
            raise InvalidArgument(f"Error: invalid port ({args.port})", "Give a port such as 3000 or 3000/tcp")
        bindings = ports.get(f"{number}/{proto or 'tcp'}")
        if not bindings:
            session.error(f"Error: No public port '{args.port}' published for {args.container}")
            return 1
        for b in bindings:
            session.print(_host_port(b))
        return 0
    for key in sorted(ports, key=_port_key):
        for b in ports[key] or ():
            session.print(f"{key} -> {_host_port(b)}")
    return 0


def _host_port(binding: Mapping[str, Any]) -> str:
    ip = binding.get("HostIp") or "0.0.0.0"
    return f"[{ip}]:{binding.get('HostPort')}" if ":" in ip else f"{ip}:{binding.get('HostPort')}"


def cmd_top(session: Session, args: argparse.Namespace) -> int:
    """Show the container's processes (``ps -ef`` unless other ``ps`` options follow the name)."""
    table = session.engine.top(args.container, list(args.ps_args) or None)
    lines = ["\t".join(table["Titles"])] + ["\t".join(row) for row in table["Processes"]]
    session.out.write(tabwrite(lines, minwidth=20, padding=3))
    return 0


STATS_HEADERS = {
    "Container": "CONTAINER", "ID": "CONTAINER ID", "Name": "NAME", "CPUPerc": "CPU %", "MemUsage": "MEM USAGE / LIMIT",
    "MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O", "PIDs": "PIDS",
}
STATS_TABLE = ("table {{.ID}}\\t{{.Name}}\\t{{.CPUPerc}}\\t{{.MemUsage}}\\t{{.MemPerc}}\\t{{.NetIO}}\\t{{.BlockIO}}"
               "\\t{{.PIDs}}")
#: How far apart the two readings of ``--no-stream`` are (CPU % is CPU time over wall time between them).
SAMPLE_SECONDS = 0.5


def stats_fields(before: Mapping[str, Any], now: Mapping[str, Any], trunc: bool) -> Fields:
    """One ``stats`` row from two readings of a container (:meth:`labkit.Engine.stats`)."""
    wall = now["Read"] - before["Read"]
    cpu = 100.0 * (now["CpuNs"] - before["CpuNs"]) / (wall * 1e9) if wall > 0 and now["Running"] else 0.0
    limit = now["MemoryLimit"]
    used = now["Memory"]
    return Fields(
        Container=short_id(now["Id"]) if trunc else now["Id"],
        ID=short_id(now["Id"]) if trunc else now["Id"],
        Name=now["Name"],
        CPUPerc=f"{max(cpu, 0.0):.2f}%",
        MemUsage=f"{humanize.bytes_size(used)} / {humanize.bytes_size(limit)}",
        MemPerc=f"{100.0 * used / limit if limit else 0.0:.2f}%",
        NetIO=f"{humanize.human_size(now['NetRx'], 3)} / {humanize.human_size(now['NetTx'], 3)}",
        BlockIO=f"{humanize.human_size(now['BlockRead'], 3)} / {humanize.human_size(now['BlockWrite'], 3)}",
        PIDs=str(now["Pids"]),
    )


def cmd_stats(session: Session, args: argparse.Namespace) -> int:
    """Show containers' resource use from their cgroup counters: once (``--no-stream``) or every second."""
    engine = session.engine
    if args.containers:
        refs = list(args.containers)
        for ref in refs:  # Docker refuses the whole command for one that does not exist, before any table
            engine.stats(ref)
    else:
        refs = [item["Id"] for item in engine.ps(all=args.all)]
    fmt = args.format or STATS_TABLE
    before = {ref: _reading(engine, ref) for ref in refs}
    while True:
        time.sleep(SAMPLE_SECONDS)
        now = {ref: _reading(engine, ref) for ref in refs}
        rows = [stats_fields(was, reading, not args.no_trunc) for ref in refs
                if (was := before.get(ref)) is not None and (reading := now.get(ref)) is not None]
        text = render_rows(fmt, rows, STATS_HEADERS, "stats")
        if args.no_stream:
            session.out.write(text)
            return 0
        session.out.write("\x1b[2J\x1b[H" + text)  # Docker's client clears the screen before each table
        session.out.flush()
        before = now
        if not args.containers:  # newly started containers join, removed ones leave
            refs = [item["Id"] for item in engine.ps(all=args.all)]
            before.update({ref: now.get(ref) or _reading(engine, ref) for ref in refs if ref not in before})


def _reading(engine: Any, ref: str) -> dict[str, Any] | None:
    """A reading of ``ref``, or None once it is gone (removed while ``stats`` watches)."""
    try:
        return engine.stats(ref)
    except LabkitError:
        return None


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def time_arg(text: str, now: float | None = None) -> float:
    """``--since``/``--until`` as Docker reads them: a Go duration before now (``10m``, ``1h30m``), a Unix
    time (``1700000000.5``), or an RFC 3339 date or time (``2024-05-01``, ``2024-05-01T12:00:00Z``)."""
    now = time.time() if now is None else now
    value = text.strip()
    if value and _DURATION.sub("", value) == "":
        return now - sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION.findall(value))
    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InvalidArgument(f'failed to parse value as time or duration: "{text}"',
                              "Give a duration such as 10m, a Unix time, or a date such as 2024-05-01T12:00:00Z") \
            from None
    return (moment if moment.tzinfo else moment.astimezone()).timestamp()


def _event_time(nanoseconds: int) -> str:
    """Go's RFC3339NanoFixed in this host's zone: ``2024-05-01T12:00:00.123456789Z`` (or ``+02:00``)."""
    moment = datetime.fromtimestamp(nanoseconds // 10**9).astimezone()
    offset = moment.strftime("%z")
    zone = "Z" if offset in ("+0000", "") else f"{offset[:3]}:{offset[3:]}"
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{nanoseconds % 10**9:09d}" + zone


def event_line(event: Mapping[str, Any]) -> str:
    """One event as ``docker events`` prints it: time, type, action, actor id, its attributes sorted."""
    actor = event.get("Actor") or {}
    attributes = ", ".join(f"{k}={v}" for k, v in sorted((actor.get("Attributes") or {}).items()))
    return (f"{_event_time(int(event.get('timeNano', 0)))} {event.get('Type', '')} {event.get('Action', '')} "
            f"{actor.get('ID', '')}" + (f" ({attributes})" if attributes else ""))


_EVENT_FILTERS = ("container", "event", "image", "label", "network", "type", "volume")


def _event_filters(filters: list[str]) -> dict[str, list[str]]:
    parsed: dict[str, list[str]] = {}
    for text in filters:
        key, sep, value = text.partition("=")
        if not sep:
            raise InvalidArgument(f"bad format of filter (expected name=value): {text}", "Write it like -f type=container")
        if key not in _EVENT_FILTERS:
            raise InvalidArgument(f"invalid filter '{key}'", "Filter on " + ", ".join(_EVENT_FILTERS))
        parsed.setdefault(key, []).append(value)
    return parsed


def _event_matches(event: Mapping[str, Any], filters: Mapping[str, list[str]]) -> bool:
    """Docker's rule: values of one key are alternatives; different keys must all hold."""
    actor = event.get("Actor") or {}
    attributes = actor.get("Attributes") or {}
    kind, action, actor_id = event.get("Type", ""), event.get("Action", ""), actor.get("ID", "")
    for key, values in filters.items():
        if key == "type":
            ok = kind in values
        elif key == "event":
            ok = action in values or action.split(":")[0] in values
        elif key in ("container", "volume", "network"):
            ok = kind == key and any(actor_id.startswith(v) or attributes.get("name") == v for v in values)
        elif key == "image":
            ok = attributes.get("image") in values or event.get("from") in values
        else:
            ok = all(attributes.get(k) == v if sep else k in attributes
                     for k, sep, v in (value.partition("=") for value in values))
        if not ok:
            return False
    return True


def cmd_events(session: Session, args: argparse.Namespace) -> int:
    """Print what happened, from ``--since`` (default: now) until ``--until`` (default: until Ctrl-C)."""
    now = time.time()
    since = time_arg(args.since, now) if args.since else None
    until = time_arg(args.until, now) if args.until else None
    filters = _event_filters(args.filter)
    template = Template(args.format) if args.format else None
    for event in session.engine.events(since=since, until=until):
        if not _event_matches(event, filters):
            continue
        session.print(template.render(event) if template is not None else event_line(event))
        session.out.flush()
    return 0


def register(command: Command) -> None:
    """``port``, ``top``, ``stats`` and ``events``."""
    sub = command("port", cmd_port, "List port mappings or a specific mapping for the container")
    sub.add_argument("container", metavar="CONTAINER")
    sub.add_argument("port", nargs="?", metavar="PRIVATE_PORT[/PROTO]")

    sub = command("top", cmd_top, "Display the running processes of a container")
    sub.add_argument("container", metavar="CONTAINER")
    sub.add_argument("ps_args", nargs=argparse.REMAINDER, metavar="[ps OPTIONS]")

    sub = command("stats", cmd_stats, "Display a live stream of container(s) resource usage statistics")
    sub.add_argument("-a", "--all", action="store_true", help="show all containers (default: running only)")
    sub.add_argument("--no-stream", action="store_true", help="one reading, then exit")
    sub.add_argument("--no-trunc", action="store_true", help="do not truncate output")
    sub.add_argument("--format", metavar="TEMPLATE", help="Go template, e.g. 'table {{.Name}}\\t{{.CPUPerc}}'")
    sub.add_argument("containers", nargs="*", metavar="CONTAINER")

    sub = command("events", cmd_events, "Get real time events from the server")
    sub.add_argument("--since", metavar="TIME", help="from this time: 10m, a Unix time or 2024-05-01T12:00:00Z")
    sub.add_argument("--until", metavar="TIME", help="up to this time (default: until Ctrl-C)")
    sub.add_argument("-f", "--filter", action="append", default=[], metavar="KEY=VALUE",
                     help="type=, container=, event=, image=, label=, volume=, network=")
    sub.add_argument("--format", metavar="TEMPLATE", help="Go template, e.g. '{{json .}}'")

