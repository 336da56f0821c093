"""``labkit service create|ls|scale|rm``: replicas of one image behind one load-balanced port."""

from __future__ import annotations

import argparse

from labkit.cli.errors import PROG, Parser, UsageError
from labkit.cli.formatters import tabwrite
from labkit.cli.session import Command, Session, each, usage_for


def converge(session: Session, args: argparse.Namespace, name: str) -> int:
    """Wait, as Docker's ``service create``/``scale`` do unless ``--detach``, until the replicas asked for run.

    Docker prints ``overall progress: N out of M tasks`` as tasks start and ``verify: Service
    converged`` at the end (``--quiet`` keeps both back). Docker waits for ever; a learner's cell must
    not, so after :func:`~labkit.engine.services.converge_seconds` the command says how far the service
    got and exits 1 — the controller goes on trying, as Docker's does after Ctrl-C.
    """
    if args.detach:
        return 0
    timeout = session.engine.services.converge_seconds()

    def progress(running: int, asked: int) -> None:
        if not args.quiet:
            session.print(f"overall progress: {min(running, asked)} out of {asked} tasks")  # extras are on their way out
            session.out.flush()

    running, asked = session.engine.service_converge(name, timeout, progress)
    if running != asked:
        why = session.engine.services.last_note(name)
        session.error(f"service {name}: {running} of {asked} replicas running after {timeout:g} s"
                      + (f" (its controller's last note: {why})" if why else "")
                      + f"; the controller goes on trying: 'labkit service ls' counts them, "
                        f"'labkit ps -a' shows replicas that exited and 'labkit logs {name}.1' what one printed")
        return 1
    if not args.quiet:
        session.print("verify: Service converged")
    return 0


def cmd_service_create(session: Session, args: argparse.Namespace) -> int:
    """Create a service, print its name, and wait until its replicas run (:func:`converge`)."""
    rec = session.engine.service_create(args.name, args.image, replicas=args.replicas, ports=args.publish,
                                        command=args.command or None, env=args.env or None, network=args.network)
    session.print(rec["Name"])
    session.out.flush()
    return converge(session, args, rec["Name"])


def cmd_service_ls(session: Session, args: argparse.Namespace) -> int:
    """List services: NAME, REPLICAS (running/asked), IMAGE, PORTS."""
    lines = ["NAME\tREPLICAS\tIMAGE\tPORTS"]
    for rec in session.engine.service_ls():
        ports = ", ".join(f"{p['HostIp']}:{p['HostPort']}->{p['ContainerPort']}/tcp" for p in rec["Ports"])
        lines.append(f"{rec['Name']}\t{rec['Running']}/{rec['Replicas']}\t{rec['Image']}\t{ports}")
    session.out.write(tabwrite(lines))
    return 0


def cmd_service_scale(session: Session, args: argparse.Namespace) -> int:
    """Scale services: ``web=5``."""
    for pair in args.pairs:
        name, _, count = pair.partition("=")
        if not count.isdigit():
            raise UsageError(f"{PROG} service scale", f"invalid scale specifier '{pair}': write NAME=REPLICAS",
                             code=1)
        session.engine.service_scale(name, int(count))
        session.print(f"{name} scaled to {count}")
        session.out.flush()
        if converge(session, args, name):
            return 1
    return 0


def cmd_service_rm(session: Session, args: argparse.Namespace) -> int:
    """Remove services, echoing each name."""
    return each(session, args.services, session.engine.service_rm)


def _wait_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("-d", "--detach", action="store_true",
                     help="Exit immediately instead of waiting for the service to converge")
    sub.add_argument("-q", "--quiet", action="store_true", help="Suppress progress output")


def register(command: Command) -> None:
    """``service`` and its subcommands."""
    service: argparse.ArgumentParser = command("service", lambda s, a: usage_for(s, service), "Manage services (replicas behind one port)")
    services = service.add_subparsers(dest="service_command", metavar="COMMAND", parser_class=Parser)
    sub = services.add_parser("create", help="Start N replicas of an image behind one load-balanced port")
    sub.set_defaults(handler=cmd_service_create)
    sub.add_argument("--name", required=True, metavar="NAME")
    sub.add_argument("--replicas", type=int, default=1, metavar="N")
    sub.add_argument("-p", "--publish", action="append", default=[], metavar="[IP:]HOSTPORT:CONTAINERPORT",
                     help="published on 127.0.0.1 unless an address is given, so it is not reachable from "
                          "other machines by default")
    sub.add_argument("-e", "--env", action="append", default=[], metavar="K=V")
    sub.add_argument("--network", metavar="NET")
    _wait_options(sub)
    sub.add_argument("image", metavar="IMAGE")
    sub.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND")
    sub = services.add_parser("ls", help="List services")
    sub.set_defaults(handler=cmd_service_ls)
    sub = services.add_parser("scale", help="Change a service's number of replicas: NAME=N")
    sub.set_defaults(handler=cmd_service_scale)
    _wait_options(sub)
    sub.add_argument("pairs", nargs="+", metavar="NAME=N")
    sub = services.add_parser("rm", help="Remove services and their replicas")
    sub.set_defaults(handler=cmd_service_rm)
    sub.add_argument("services", nargs="+", metavar="SERVICE")
