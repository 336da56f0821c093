"""``labkit container …``, ``labkit image …`` and ``labkit system …``: Docker's management groups.

Each command of a group is the flat command a learner also knows (``container ls`` is
``ps``, ``image rm`` is ``rmi``, ``system info`` is ``info``), with the same flags,
output and exit codes: the group is built by running each command module's
``register`` once more with a ``command`` helper that files the commands the group
has under their names in it, and drops the rest. The few commands only a group has
are here: ``container prune``, ``image prune``, ``system df``, ``system prune`` and ``system reset``.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any

from labkit.cli.errors import Parser
from labkit.cli.formatters import ps_fields, render_rows, short_id, split_repo_tag, tabwrite
from labkit.cli.session import Command, Session, usage_for
from labkit.cli.templates import Fields
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
    removed = session.engine.container_prune()
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
    removed = session.engine.container_prune()
    if removed:
        session.print("Deleted Containers:\n" + "".join(cid + "\n" for cid in removed))
    session.engine.network_prune()
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


#: ``system df``'s columns, as Docker's formatter names them.
DF_HEADERS = {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE", "Reclaimable": "RECLAIMABLE"}
DF_TABLE = "table {{.Type}}\\t{{.TotalCount}}\\t{{.Active}}\\t{{.Size}}\\t{{.Reclaimable}}"


def _reclaimable(reclaim: int, total: int) -> str:
    """Docker's RECLAIMABLE cell: the bytes, and their whole percent of the total when there is one."""
    return humanize.human_size(reclaim) + (f" ({reclaim * 100 // total}%)" if total > 0 else "")


def cmd_system_df(session: Session, args: argparse.Namespace) -> int:
    """``docker system df``: images, containers, local volumes and build cache, how many, how many in use, their
    size and what a prune would reclaim (``--format``); ``-v`` lists each image, container and volume."""
    usage = session.engine.disk_usage()
    rows = []
    for label, key in (("Images", "Images"), ("Containers", "Containers"), ("Local Volumes", "Volumes"),
                       ("Build Cache", "BuildCache")):
        item = usage[key]
        # In Docker's JSON order (its formatter marshals a map): keys sorted.
        row = Fields(Active=str(item["Active"]),
                     Reclaimable=_reclaimable(item["Reclaimable"], item["Size"] if key != "BuildCache" else 0),
                     Size=humanize.human_size(item["Size"]), TotalCount=str(item["Total"]), Type=label)
        row.kind = "df"
        rows.append(row)
    if not args.verbose:
        session.out.write(render_rows(args.format or DF_TABLE, rows, DF_HEADERS, "df"))
        return 0
    now = time.time()
    lines = ["REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE\tSHARED SIZE\tUNIQUE SIZE\tCONTAINERS"]
    for image in usage["Images"]["Items"]:
        for ref in image["RepoTags"] or ["<none>:<none>"]:
            repo, tag = ("<none>", "<none>") if ref == "<none>:<none>" else split_repo_tag(ref)
            lines.append(f"{repo}\t{tag}\t{short_id(image['Id'])}\t{humanize.human_duration(now - image['Created'])} "
                         f"ago\t{humanize.human_size(image['Size'], 3)}\t{humanize.human_size(image['SharedSize'])}\t"
                         f"{humanize.human_size(image['Size'] - image['SharedSize'])}\t{image['Containers']}")
    session.print("Images space usage:\n")
    session.out.write(tabwrite(lines))
    lines = ["CONTAINER ID\tIMAGE\tCOMMAND\tLOCAL VOLUMES\tSIZE\tCREATED\tSTATUS\tNAMES"]
    for c in usage["Containers"]["Items"]:
        f = ps_fields(c, True, now)
        lines.append(f"{f['ID']}\t{f['Image']}\t{f['Command']}\t{len(c['Mounts'])}\t"
                     f"{humanize.human_size(c['Size'])}\t{f['RunningFor']}\t{f['Status']}\t{f['Names']}")
    session.print("\nContainers space usage:\n")
    session.out.write(tabwrite(lines))
    lines = ["VOLUME NAME\tLINKS\tSIZE"] + [f"{v['Name']}\t{v['Links']}\t{humanize.human_size(v['Size'])}"
                                          for v in usage["Volumes"]["Items"]]
    session.print("\nLocal Volumes space usage:\n")
    session.out.write(tabwrite(lines))
    session.print("\nBuild cache usage: 0B\n")
    session.out.write(tabwrite(["CACHE ID\tCACHE TYPE\tSIZE\tCREATED\tLAST USED\tUSAGE\tSHARED"]))
    return 0


def cmd_image_prune(session: Session, args: argparse.Namespace) -> int:
    """``docker image prune [-a] [-f]``: after a yes, remove the dangling images (``-a``: every image no
    container uses); print what went, lower-case as Docker's client does, and the bytes reclaimed."""
    what = "all images without at least one container associated to them" if args.all else "all dangling images"
    if not args.force and not _confirm(session, f"This will remove {what}."):
        return 0
    report = session.engine.image_prune(all=args.all)
    if report["ImagesDeleted"]:
        session.print("Deleted Images:\n" + "".join(f"{kind.lower()}: {what}\n" for item in report["ImagesDeleted"]
                                                    for kind, what in item.items()))
    session.print(f"Total reclaimed space: {humanize.human_size(report['SpaceReclaimed'])}")
    return 0


def register(command: Command, modules: Iterable[ModuleType]) -> None:
    """The three groups, after every flat command is registered (``modules``: the command modules)."""
    modules = list(modules)
    containers = _group(command, "container", modules)
    sub = containers.add_parser("prune", help="Remove all stopped containers")
    sub.set_defaults(handler=cmd_container_prune, verb="container prune")
    sub.add_argument("-f", "--force", action="store_true", help="do not prompt for confirmation")
    images = _group(command, "image", modules)
    sub = images.add_parser("prune", help="Remove unused images")
    sub.set_defaults(handler=cmd_image_prune, verb="image prune")
    sub.add_argument("-a", "--all", action="store_true", help="remove all unused images, not just dangling ones")
    sub.add_argument("-f", "--force", action="store_true", help="do not prompt for confirmation")
    system = _group(command, "system", modules)
    sub = system.add_parser("df", help="Show labkit disk usage")
    sub.set_defaults(handler=cmd_system_df, verb="system df")
    sub.add_argument("--format", metavar="TEMPLATE", help="Go template, e.g. '{{.Type}} {{.Size}}', or json")
    sub.add_argument("-v", "--verbose", action="store_true", help="show detailed information on space usage")
    sub = system.add_parser("prune", help="Remove stopped containers and take down unused networks")
    sub.set_defaults(handler=cmd_system_prune, verb="system prune")
    sub.add_argument("-f", "--force", action="store_true", help="do not prompt for confirmation")
    sub.add_argument("--volumes", action="store_true", help="remove volumes no container uses too")
    sub = system.add_parser("reset", help="Remove every container, service, volume, network and image of yours, "
                                          "and the state root")
    sub.set_defaults(handler=cmd_system_reset, verb="system reset")
    sub.add_argument("-f", "--force", action="store_true", help="do not prompt for confirmation")
