"""The commands about labkit itself and this host: trace, setup, show, doctor, version, server and info."""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from collections.abc import Iterable
from typing import Any

import labkit
from labkit.cli.commands.images import cmd_images
from labkit.cli.errors import PROG, UsageError
from labkit.cli.session import Command, Session, parsed_template
from labkit.cli.templates import json_text
from labkit.daemon import client as daemon
from labkit.errors import HostUnsupported
from labkit.model import humanize


def cmd_trace(session: Session, args: argparse.Namespace) -> int:
    """``labkit trace run busybox true``: the command's own output, then its steps, one per line."""
    if not args.inner or args.inner[0] == "trace":
        raise UsageError(f"{PROG} trace", "trace needs a command to run, e.g. 'labkit trace run busybox true'",
                         code=1)
    engine = session.engine
    with engine.tracing() as steps:
        code = session.main(["--backend", args.backend, *(["--root", args.root] if args.root else []), *args.inner],
                            engine_factory=lambda **_kw: engine, stdout=session.out, stderr=session.err)
    for step in steps:
        session.print(step)
    return code


def cmd_setup(session: Session, args: argparse.Namespace) -> int:
    """Build busybox:latest and the lesson's images, then list the images."""
    def step(line: str) -> None:
        session.print(line)
        session.out.flush()

    session.engine.setup(on_step=step)
    return cmd_images(session, argparse.Namespace(quiet=False, all=False, no_trunc=False, digests=False, format=None, filter=None,
                                                  reference=None))


def cmd_show(session: Session, args: argparse.Namespace) -> int:
    """Draw a picture of the real state and save it as PNG or SVG; print the file's name."""
    ext = os.path.splitext(args.output)[1].lower()
    if ext not in (".png", ".svg"):
        raise UsageError(f"{PROG} show", f"cannot save a picture as {args.output}: name the file .png or .svg")
    if args.kind != "layers" and len(args.names) != 1:
        raise UsageError(f"{PROG} show {args.kind}", f"'{args.kind}' draws exactly one container")
    from labkit.viz import layers, lifecycle, network, palette, resources, walls  # matplotlib loads only here

    engine = session.engine
    name = args.names[0]
    if args.kind == "layers":
        fig = layers.picture(engine, *args.names, path=args.path)
    elif args.kind == "lifecycle":
        fig = lifecycle.picture(engine, name, all_statuses=args.all)
    elif args.kind == "walls":
        fig = walls.picture(engine, name)
    elif args.kind == "network":
        fig = network.picture(engine, name)
    else:
        fig = resources.picture(engine, name, seconds=args.seconds)
    palette.save(fig, args.output)
    session.print(args.output)
    return 0


def cmd_server(session: Session, args: argparse.Namespace) -> int:
    """``labkit server status|stop``: the resident engine the ``labkit`` command hands its work to."""
    directory = daemon.socket_dir()
    pid = daemon.running(directory)
    if args.action == "stop":
        daemon.stop(directory)
        session.print(f"stopped the engine server (pid {pid})" if pid else "no engine server was running")
        return 0
    if pid:
        session.print(f"running (pid {pid}), listening on {os.path.join(directory, daemon.SOCKET)}")
    else:
        session.print("not running: the next labkit command starts it (LABKIT_NO_SERVER=1 keeps every "
                      "command in its own process)")
    return 0


def cmd_doctor(session: Session, args: argparse.Namespace) -> int:
    """Say in plain words what this host allows and which backend labkit uses.

    It works even where no backend can run (that is when it is needed most):
    then it says why, runs the host checks directly and exits 1.
    """
    try:
        engine = session.engine
    except HostUnsupported as error:
        from labkit.doctor import checks as host_checks  # the host checks load only when no backend could

        session.print(f"backend: none. {error.one_line()}")
        checks, code = list(host_checks()), 1
    else:
        session.print(f"backend: {engine.backend_name} ({engine.backend_reason})")
        checks, code = list(engine.doctor()), 0
    width = max((len(c.get("check", "")) for c in checks), default=0)
    for check in checks:
        mark = "ok " if check.get("ok") else "NO "
        session.print(f"  [{mark}] {check.get('check', ''):<{width}}  {check.get('detail', '')}")
        if check.get("meaning"):
            indent = " " * (width + 10)
            session.print(textwrap.fill(check["meaning"], 100, initial_indent=indent, subsequent_indent=indent))
    return code


def _label_lines(pairs: Iterable[tuple[str, Any]], indent: str, width: int) -> list[str]:
    return [f"{indent}{label + ':':<{width}}{value}" for label, value in pairs if value not in (None, "")]


def _arch() -> str:
    import platform  # platform is heavy and only version asks it

    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def _labkit_version() -> str:
    try:
        from importlib.metadata import version  # heavy, and only version and info ask it

        return version("labkit")
    except Exception:  # not installed as a distribution: a source checkout
        return str(getattr(labkit, "__version__", "dev"))


def _client_version() -> dict[str, Any]:
    """``docker version``'s ``Client`` half, with labkit's values."""
    return {"Platform": {"Name": "labkit"}, "Version": _labkit_version(), "ApiVersion": "1.51",
            "DefaultAPIVersion": "1.51", "GitCommit": "", "GoVersion": "python" + sys.version.split()[0],
            "Os": sys.platform, "Arch": _arch(), "BuildTime": "", "Context": "default"}


def _formatted(session: Session, template: Any, data: dict[str, Any]) -> int:
    """Print ``data`` through a ``--format`` template (``json`` is ``{{json .}}``), as version and info do."""
    session.print(json_text(data) if template == "json" else template.render(data))
    return 0


def cmd_version(session: Session, args: argparse.Namespace) -> int:
    """Print the client's and the engine's versions, laid out like ``docker version``, or through ``--format``
    (its dot is ``{Client, Server}``)."""
    if args.format:
        template = "json" if args.format.strip() == "json" else parsed_template(session, args.format)
        if template is False:
            return 64
        data: dict[str, Any] = {"Client": _client_version(), "Server": None}
        try:
            data["Server"] = session.engine.version()
        except Exception:
            # Docker prints the template with the client half, then why the server did not answer (exit 1).
            _formatted(session, template, data)
            raise
        return _formatted(session, template, data)
    client = ["Client:"] + _label_lines(
        [
            ("Version", _labkit_version()),
            ("Python version", sys.version.split()[0]),
            ("OS/Arch", f"{sys.platform}/{_arch()}"),
        ],
        " ",
        19,
    )
    # Like Docker, the client half is printed even when the engine cannot answer.
    session.print("\n".join(client))
    session.out.flush()
    server = session.engine.version()
    api = server.get("ApiVersion")
    if api and server.get("MinAPIVersion"):
        api = f"{api} (minimum version {server['MinAPIVersion']})"
    os_arch = f"{server.get('Os', '')}/{server.get('Arch', '')}" if server.get("Os") else ""
    lines = ["", f"Server: {(server.get('Platform') or {}).get('Name') or 'labkit'}", " Engine:"]
    lines += _label_lines(
        [
            ("Version", server.get("Version")),
            ("API version", api),
            ("Backend", f"{session.engine.backend_name} ({session.engine.backend_reason})"),
            ("Kernel version", server.get("KernelVersion")),
            ("OS/Arch", os_arch),
        ],
        "  ",
        18,
    )
    session.print("\n".join(lines))
    return 0


_INFO_LABELS = (
    ("Images", "Images"),
    ("ServerVersion", "Server Version"),
    ("Driver", "Storage Driver"),
    ("CgroupDriver", "Cgroup Driver"),
    ("CgroupVersion", "Cgroup Version"),
    ("KernelVersion", "Kernel Version"),
    ("OperatingSystem", "Operating System"),
    ("OSType", "OSType"),
    ("Architecture", "Architecture"),
    ("NCPU", "CPUs"),
    ("MemTotal", "Total Memory"),
    ("Name", "Name"),
    ("DockerRootDir", "Root Dir"),
)


def cmd_info(session: Session, args: argparse.Namespace) -> int:
    """Print what the engine knows about itself and the host, like ``docker info``, or through ``--format``
    (its dot is the engine's ``/info`` with ``ClientInfo`` beside it)."""
    if args.format:
        template = "json" if args.format.strip() == "json" else parsed_template(session, args.format)
        if template is False:
            return 64
        data = {**session.engine.info(), "ClientInfo": {"Version": _labkit_version(), "Context": "default",
                                                         "Debug": False, "Plugins": [], "Warnings": None}}
        return _formatted(session, template, data)
    info = session.engine.info()
    lines = ["Client:", f" Version:    {_labkit_version()}", "", "Server:"]
    lines.append(f" Containers: {info.get('Containers', 0)}")
    for key, label in (
        ("ContainersRunning", "Running"),
        ("ContainersPaused", "Paused"),
        ("ContainersStopped", "Stopped"),
    ):
        lines.append(f"  {label}: {info.get(key, 0)}")
    lines.append(f" Backend: {session.engine.backend_name} ({session.engine.backend_reason})")
    for key, label in _INFO_LABELS:
        if key in info:
            value = humanize.bytes_size(info[key]) if key == "MemTotal" else info[key]
            lines.append(f" {label}: {value}")
    if info.get("SecurityOptions"):  # as docker info prints "name=seccomp,profile=builtin"
        lines.append(" Security Options:")
        for option in info["SecurityOptions"]:
            fields = dict(part.partition("=")[::2] for part in option.split(","))
            lines.append(f"  {fields.pop('name', option)}")
            lines += [f"   {key.capitalize()}: {value}" for key, value in fields.items()]
    session.print("\n".join(lines))
    return 0


def register(command: Command) -> None:
    """``trace``, ``setup``, ``show``, ``doctor``, ``version``, ``server`` and ``info``."""
    sub = command("trace", cmd_trace, "Run another labkit command and print each step the kernel took")
    sub.add_argument("inner", nargs=argparse.REMAINDER, metavar="COMMAND", help="e.g. run busybox true")

    command("setup", cmd_setup, "Build the base image and the lesson's images (offline)")
    sub = command("show", cmd_show, "Draw a picture of a container or image and save it (PNG or SVG)")
    sub.add_argument("kind", choices=("layers", "lifecycle", "walls", "resources", "network"), metavar="KIND",
                     help="layers, lifecycle, walls, resources or network")
    sub.add_argument("names", nargs="+", metavar="NAME", help="container(s); for layers also an image")
    sub.add_argument("-o", "--output", required=True, metavar="FILE", help="where to save: FILE.png or FILE.svg")
    sub.add_argument("--path", metavar="PATH", help="layers: mark the layer that serves this path")
    sub.add_argument("--all", action="store_true", help="lifecycle: draw every status, not only the lesson's five")
    sub.add_argument("--seconds", type=float, default=5.0, metavar="S", help="resources: how long to sample")

    command("doctor", cmd_doctor, "Explain what this host allows and which backend labkit will use")
    sub = command("version", cmd_version, "Show the labkit version information")
    sub.add_argument("-f", "--format", metavar="TEMPLATE", help="Go template, e.g. '{{.Server.Version}}', or 'json'")
    sub = command("server", cmd_server, "Show or stop the resident engine that runs labkit commands")
    sub.add_argument("action", choices=("status", "stop"), help="status: is it running; stop: end it")
    sub = command("info", cmd_info, "Display system-wide information")
    sub.add_argument("-f", "--format", metavar="TEMPLATE", help="Go template, e.g. '{{.ServerVersion}}', or 'json'")
