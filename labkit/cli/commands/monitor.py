"""Watching containers: ``port``, ``top``, ``stats`` and ``events``, with Docker's columns and words.

``top`` lists the processes of a container's cgroup as ``ps`` shows them on the host;
``stats`` reads its cgroup counters (CPU time, memory against its limit, network and
block bytes, processes), once with ``--no-stream`` or every second until Ctrl-C;
``events`` prints the engine's own record of what happened, between ``--since`` and
``--until`` (without ``--until``, as it happens, until Ctrl-C).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping
from typing import Any

from labkit.cli.formatters import render_rows, short_id, tabwrite
from labkit.cli.session import Command, Session
from labkit.cli.templates import Fields
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

