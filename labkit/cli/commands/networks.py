"""``labkit network create|ls|rm|prune|inspect|connect|disconnect``: bridges whose containers find each other by name."""

from __future__ import annotations

import argparse

from labkit.cli.errors import Parser
from labkit.cli.formatters import NETWORK_HEADERS, NETWORK_TABLE, network_fields, render_rows, short_id
from labkit.cli.session import Command, Session, each, print_inspected, usage_for


def cmd_network_create(session: Session, args: argparse.Namespace) -> int:
    """Create a network and print its id."""
    session.print(session.engine.network_create(args.name, subnet=args.subnet)["Id"])
    return 0


def cmd_network_ls(session: Session, args: argparse.Namespace) -> int:
    """List networks: NETWORK ID, NAME, DRIVER, SCOPE, or what ``--format`` asks."""
    nets = session.engine.network_ls()
    if args.quiet:
        session.out.write("".join((n["Id"] if args.no_trunc else short_id(n["Id"])) + "\n" for n in nets))
        return 0
    rows = [network_fields(n, not args.no_trunc) for n in nets]
    session.out.write(render_rows(args.format or NETWORK_TABLE, rows, NETWORK_HEADERS, "network"))
    return 0


def cmd_network_rm(session: Session, args: argparse.Namespace) -> int:
    """Remove networks, echoing each name as typed."""
    return each(session, args.networks, session.engine.network_rm)


def cmd_network_prune(session: Session, args: argparse.Namespace) -> int:
    """Delete idle bridges (they come back when a container needs them)."""
    session.engine.network_prune()
    return 0


def cmd_network_inspect(session: Session, args: argparse.Namespace) -> int:
    """Print networks as a JSON array, or each through ``-f``; a missing one is named on stderr (exit 1)."""
    return print_inspected(session, args.networks, session.engine.network_inspect, args.format)


def cmd_network_connect(session: Session, args: argparse.Namespace) -> int:
    """Put a container on one more network, at once if it runs (nothing printed, as Docker)."""
    session.engine.network_connect(args.network, args.container, aliases=args.alias, ip=args.ip or "")
    return 0


def cmd_network_disconnect(session: Session, args: argparse.Namespace) -> int:
    """Take a container off a network, at once if it runs (nothing printed, as Docker)."""
    session.engine.network_disconnect(args.network, args.container, force=args.force)
    return 0


def register(command: Command) -> None:
    """``network`` and its subcommands."""
    network: argparse.ArgumentParser = command("network", lambda s, a: usage_for(s, network), "Manage networks")
    networks = network.add_subparsers(dest="network_command", metavar="COMMAND", parser_class=Parser)
    sub = networks.add_parser("create", help="Create a bridge network (its containers find each other by name)")
    sub.set_defaults(handler=cmd_network_create)
    sub.add_argument("--subnet", metavar="CIDR", help="e.g. 172.30.0.0/16 (default: the next free private /16)")
    sub.add_argument("name", metavar="NAME")
    sub = networks.add_parser("ls", help="List networks")
    sub.set_defaults(handler=cmd_network_ls)
    sub.add_argument("-q", "--quiet", action="store_true", help="only ids")
    sub.add_argument("--no-trunc", action="store_true", help="do not truncate the ids")
    sub.add_argument("--format", metavar="TEMPLATE", help="Go template, 'table TEMPLATE' or 'json'")
    sub = networks.add_parser("rm", help="Remove one or more networks")
    sub.set_defaults(handler=cmd_network_rm)
    sub.add_argument("networks", nargs="+", metavar="NETWORK")
    sub = networks.add_parser("prune", help="Take down the bridges no running container uses")
    sub.set_defaults(handler=cmd_network_prune)
    sub = networks.add_parser("connect", help="Connect a container to a network (a running one at once)")
    sub.set_defaults(handler=cmd_network_connect)
    sub.add_argument("--alias", action="append", default=[], metavar="NAME",
                     help="another name the container's peers on the network find it by")
    sub.add_argument("--ip", metavar="ADDR", help="its IPv4 address there (on a network made with --subnet)")
    sub.add_argument("network", metavar="NETWORK")
    sub.add_argument("container", metavar="CONTAINER")
    sub = networks.add_parser("disconnect", help="Disconnect a container from a network (a running one at once)")
    sub.set_defaults(handler=cmd_network_disconnect)
    sub.add_argument("-f", "--force", action="store_true", help="force the container to disconnect")
    sub.add_argument("network", metavar="NETWORK")
    sub.add_argument("container", metavar="CONTAINER")
    sub = networks.add_parser("inspect", help="Display detailed information on one or more networks")
    sub.set_defaults(handler=cmd_network_inspect)
    sub.add_argument("-f", "--format", metavar="TEMPLATE", help="Go template, e.g. '{{.IPAM.Config}}'")
    sub.add_argument("networks", nargs="+", metavar="NETWORK")
