"""``labkit volume create|ls|rm|prune|inspect``: storage that outlives its containers."""

from __future__ import annotations

import argparse
from collections.abc import Mapping

from labkit.cli.errors import Parser
from labkit.cli.formatters import VOLUME_HEADERS, VOLUME_TABLE, render_rows, volume_fields
from labkit.cli.session import Command, Session, each, print_inspected, usage_for
from labkit.model import humanize


def cmd_volume_create(session: Session, args: argparse.Namespace) -> int:
    """Create a named (or anonymous) volume and print its name."""
    volume = session.engine.volume_create(args.name)
    session.print(volume.get("Name", args.name) if isinstance(volume, Mapping) else volume)
    return 0


def cmd_volume_ls(session: Session, args: argparse.Namespace) -> int:
    """List volumes: DRIVER and VOLUME NAME, or what ``--format`` asks."""
    volumes = session.engine.volume_ls()
    if args.quiet:
        session.out.write("".join(v.get("Name", "") + "\n" for v in volumes))
        return 0
    rows = [volume_fields(v) for v in volumes]
    session.out.write(render_rows(args.format or VOLUME_TABLE, rows, VOLUME_HEADERS, "volume"))
    return 0


def cmd_volume_rm(session: Session, args: argparse.Namespace) -> int:
    """Remove volumes; echo each name."""
    return each(session, args.volumes, lambda n: session.engine.volume_rm(n, force=args.force))


def cmd_volume_inspect(session: Session, args: argparse.Namespace) -> int:
    """Print volumes as a JSON array, or each through ``-f``."""
    return print_inspected(session, args.volumes, session.engine.volume_inspect, args.format)


def cmd_volume_prune(session: Session, args: argparse.Namespace) -> int:
    """Remove unused anonymous volumes (``-a``: every unused one) after Docker's prompt (``-f``: without it)."""
    what = "all local volumes" if args.all else "anonymous local volumes"
    if not args.force:
        session.out.write(f"WARNING! This will remove {what} not used by at least one container.\n"
                          "Are you sure you want to continue? [y/N] ")
        session.out.flush()
        try:
            answer = input()
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            return 0
    pruned = session.engine.volume_prune(all=args.all)
    if pruned["VolumesDeleted"]:
        session.print("Deleted Volumes:\n" + "".join(name + "\n" for name in pruned["VolumesDeleted"]))
    session.print(f"Total reclaimed space: {humanize.human_size(pruned['SpaceReclaimed'])}")
    return 0


def register(command: Command) -> None:
    """``volume`` and its subcommands."""
    volume: argparse.ArgumentParser = command("volume", lambda s, a: usage_for(s, volume), "Manage volumes")
    volumes = volume.add_subparsers(dest="volume_command", metavar="COMMAND", parser_class=Parser)
    sub = volumes.add_parser("create", help="Create a volume")
    sub.set_defaults(handler=cmd_volume_create)
    sub.add_argument("name", nargs="?", metavar="NAME")
    sub = volumes.add_parser("ls", help="List volumes")
    sub.set_defaults(handler=cmd_volume_ls)
    sub.add_argument("-q", "--quiet", action="store_true", help="only names")
    sub.add_argument("--format", metavar="TEMPLATE", help="Go template, 'table TEMPLATE' or 'json'")
    sub = volumes.add_parser("rm", help="Remove one or more volumes")
    sub.set_defaults(handler=cmd_volume_rm)
    sub.add_argument("-f", "--force", action="store_true", help="remove even if in use")
    sub.add_argument("volumes", nargs="+", metavar="VOLUME")
    sub = volumes.add_parser("prune", help="Remove unused local volumes")
    sub.set_defaults(handler=cmd_volume_prune)
    sub.add_argument("-a", "--all", action="store_true", help="remove named volumes too, not only anonymous ones")
    sub.add_argument("-f", "--force", action="store_true", help="do not prompt for confirmation")
    sub = volumes.add_parser("inspect", help="Display detailed information on one or more volumes")
    sub.set_defaults(handler=cmd_volume_inspect)
    sub.add_argument("-f", "--format", metavar="TEMPLATE", help="Go template")
    sub.add_argument("volumes", nargs="+", metavar="VOLUME")
