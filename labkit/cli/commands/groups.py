"""``labkit container …``, ``labkit image …`` and ``labkit system …``: Docker's management groups.

Each command of a group is the flat command a learner also knows (``container ls`` is
``ps``, ``image rm`` is ``rmi``, ``system info`` is ``info``), with the same flags,
output and exit codes: the group is built by running each command module's
``register`` once more with a ``command`` helper that files the commands the group
has under their names in it, and drops the rest. The few commands only a group has
are here: ``container prune``, ``system df``, ``system prune`` and ``system reset``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any

from labkit.cli.errors import Parser
from labkit.cli.formatters import short_id, tabwrite
from labkit.cli.session import Command, Session, usage_for
from labkit.model import humanize

#: For each group: its help, and each flat command it has, with its names in the group (the first shown).
GROUPS: dict[str, tuple[str, dict[str, tuple[str, ...]]]] = {
    "container": ("Manage containers", {
        "attach": ("attach",), "commit": ("commit",), "cp": ("cp",), "create": ("create",), "diff": ("diff",),
        "exec": ("exec",), "export": ("export",), "inspect": ("inspect",), "kill": ("kill",), "logs": ("logs",),
        "ps": ("ls", "list", "ps"), "pause": ("pause",), "port": ("port",), "rename": ("rename",),
        "restart": ("restart",), "rm": ("rm", "remove"), "run": ("run",), "start": ("start",), "stats": ("stats",),
        "stop": ("stop",), "top": ("top",), "unpause": ("unpause",), "update": ("update",), "wait": ("wait",),
    }),
    "image": ("Manage images", {
        "build": ("build",), "history": ("history",), "import": ("import",), "inspect": ("inspect",),
        "load": ("load",), "images": ("ls", "list"), "pull": ("pull",), "push": ("push",), "rmi": ("rm", "remove"),
        "save": ("save",), "tag": ("tag",),
    }),
    "system": ("Manage labkit", {"events": ("events",), "info": ("info",)}),
}


def _only(kind: str, handler: Callable[..., int]) -> Callable[..., int]:
    """``container inspect`` / ``image inspect``: ``inspect --type KIND``."""

    def inspect_only(session: Session, args: argparse.Namespace) -> int:
        args.type = kind
        return handler(session, args)

    return inspect_only


def _group(command: Command, name: str, modules: Iterable[ModuleType]) -> argparse._SubParsersAction:
    """Add group ``name`` with every flat command it has; return its subcommands for the group's own."""
    text, members = GROUPS[name]
    group: argparse.ArgumentParser = command(name, lambda s, a: usage_for(s, group), text)
    sub = group.add_subparsers(dest="group_command", metavar="COMMAND", parser_class=Parser)

    def file(flat: str, handler: Callable[..., int], help: str, **kwargs: Any) -> argparse.ArgumentParser:
        names = members.get(flat)
        if not names:
            return Parser(add_help=False)  # not in this group: its flags go nowhere
        if flat == "inspect" and name in ("container", "image"):
            handler = _only(name, handler)
        parser = sub.add_parser(names[0], aliases=list(names[1:]), help=help, description=help, **kwargs)
        # verb: the flat command's name, by which errors are worded and numbered (run's 125).
        parser.set_defaults(handler=handler, verb=flat)
        return parser

    for module in modules:
        module.register(file)
    return sub


def cmd_container_prune(session: Session, args: argparse.Namespace) -> int:
    """Remove every stopped container, as ``docker container prune -f`` does."""
    if not args.force and not _confirm(session, "This will remove all stopped containers."):
        return 0
    removed = session.engine.prune_containers()
    session.print("Deleted Containers:" if removed else "", end="\n" if removed else "")
    for cid in removed:
        session.print(cid)
    if removed:
        session.print()
    session.print("Total reclaimed space: 0B")
    return 0


def cmd_system_prune(session: Session, args: argparse.Namespace) -> int:
    """Remove stopped containers, take down idle networks' bridges and, with ``--volumes``, remove unused
    volumes; images stay (labkit makes them offline, and a prune could not bring them back)."""
    if not args.force and not _confirm(session, "This will remove:\n  - all stopped containers\n"
                                                "  - all networks not used by at least one container"):
        return 0
    removed = session.engine.prune_containers()
    if removed:
        session.print("Deleted Containers:\n" + "".join(cid + "\n" for cid in removed))
    session.engine.prune_networks()
    if args.volumes:
        names = session.engine.volume_prune()["VolumesDeleted"]
        if names:
            session.print("Deleted Volumes:\n" + "".join(n + "\n" for n in names))
    session.print("Total reclaimed space: 0B")
    return 0


def cmd_system_reset(session: Session, args: argparse.Namespace) -> int:
    """``labkit system reset``: after a yes (or ``--force``), remove everything labkit keeps for this user — every
    container, service, volume, network and image — and the state root (:meth:`labkit.engine.system.System.reset`)."""
    root = session.engine.store.root
    if not args.force and not _confirm(session, f"This will remove everything labkit keeps for you in {root}:\n"
                                                "  - every container (running ones are killed) and every service\n"
                                                "  - every volume and network\n"
                                                "  - every image ('labkit setup' builds the lesson's again)"):
        return 0
    gone = session.engine.reset()
    counts = ", ".join(f"{n} {kind if n != 1 else kind.removesuffix('s')}" for kind, n in gone.items())
    if root.exists():
        others = ", ".join(sorted(os.listdir(root)))
        session.print(f"Removed {counts} and labkit's state in {root}, which stays for what labkit did not make "
                      f"there: {others}")
    else:
        session.print(f"Removed {counts} and the state root {root}")
    return 0


def _confirm(session: Session, what: str) -> bool:
    """Docker's prompt before a prune; anything but y or yes (or no input) keeps everything."""
    session.out.write(f"WARNING! {what}\nAre you sure you want to continue? [y/N] ")
    session.out.flush()
    try:
        answer = input()
    except EOFError:
        answer = ""
    return answer.strip().lower() in ("y", "yes")


def cmd_system_df(session: Session, args: argparse.Namespace) -> int:
    """``docker system df``: images, containers and local volumes, how many, how many in use, their size."""
    engine = session.engine
    usage = engine.disk_usage()
    rows = ["TYPE\tTOTAL\tACTIVE\tSIZE\tRECLAIMABLE"]
    for label, key in (("Images", "Images"), ("Containers", "Containers"), ("Local Volumes", "Volumes"),
                       ("Build Cache", "BuildCache")):
        item = usage[key]
        size, reclaim = item["Size"], item["Reclaimable"]
        share = f" ({round(100 * reclaim / size)}%)" if size and key != "BuildCache" else ""
        rows.append(f"{label}\t{item['Total']}\t{item['Active']}\t{humanize.human_size(size, 3)}\t"
                    f"{humanize.human_size(reclaim, 3)}{share}")
    session.out.write(tabwrite(rows))
    if args.verbose:
        session.print()
        session.print("Containers space usage:\n")
        lines = ["CONTAINER ID\tIMAGE\tSIZE\tNAMES"] + [
            f"{short_id(c['Id'])}\t{c['Image']}\t{humanize.human_size(c['Size'], 3)}\t{c['Name']}"
            for c in usage["Containers"]["Items"]]
        session.out.write(tabwrite(lines))
    return 0


def register(command: Command, modules: Iterable[ModuleType]) -> None:
    """The three groups, after every flat command is registered (``modules``: the command modules)."""
    modules = list(modules)
    containers = _group(command, "container", modules)
    sub = containers.add_parser("prune", help="Remove all stopped containers")
    sub.set_defaults(handler=cmd_container_prune, verb="container prune")
    sub.add_argument("-f", "--force", action="store_true", help="do not prompt for confirmation")
    _group(command, "image", modules)
    system = _group(command, "system", modules)
    sub = system.add_parser("df", help="Show labkit disk usage")
    sub.set_defaults(handler=cmd_system_df, verb="system df")
    sub.add_argument("-v", "--verbose", action="store_true", help="show detailed information on space usage")
    sub = system.add_parser("prune", help="Remove stopped containers and take down unused networks")
    sub.set_defaults(handler=cmd_system_prune, verb="system prune")
    sub.add_argument("-f", "--force", action="store_true", help="do not prompt for confirmation")
    sub.add_argument("--volumes", action="store_true", help="remove volumes no container uses too")
    sub = system.add_parser("reset", help="Remove every container, service, volume, network and image of yours, "
                                          "and the state root")
    sub.set_defaults(handler=cmd_system_reset, verb="system reset")
    sub.add_argument("-f", "--force", action="store_true", help="do not prompt for confirmation")
