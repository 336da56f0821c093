"""``labkit pull|push|login|logout|search``: refused, in one sentence, because labkit works offline.

A learner types these from muscle memory; each answer says that labkit talks to no
registry and how an image gets here instead: ``build`` (a Labfile or Dockerfile),
``load`` (a ``docker save`` tar), ``import`` (a root filesystem tar), or ``setup``
(busybox and the lesson's images, made from this host). The exit code is Docker's
for a pull that failed: 1.
"""

from __future__ import annotations

import argparse

from labkit.cli.errors import PROG
from labkit.cli.session import Command, Session

#: How an image comes to labkit, said after every refusal.
HOW = (f"make it with '{PROG} build -t NAME DIR', bring it in with '{PROG} load -i FILE.tar' (from docker save) "
       f"or '{PROG} import FILE.tar NAME' (a root filesystem), or run '{PROG} setup' for busybox and the "
       "lesson's images")


def refusal(verb: str, what: str = "") -> str:
    """The one sentence for ``verb`` (``pull``, ``push``, ``login``, ``logout``, ``search``)."""
    if verb == "push":
        return (f"labkit works offline and pushes {what or 'nothing'} to no registry: share an image with "
                f"'{PROG} save -o FILE.tar {what or 'IMAGE'}', and '{PROG} load -i FILE.tar' on the other side")
    if verb == "search":
        return (f"labkit works offline and searches no registry for {what!r}: '{PROG} images' lists the images "
                f"here; {HOW}")
    if verb in ("login", "logout"):
        return f"labkit works offline and has no registry to log {'in to' if verb == 'login' else 'out of'}; {HOW}"
    return f"labkit works offline and pulls {what or 'nothing'} from no registry: {HOW}"


def cmd_offline(session: Session, args: argparse.Namespace) -> int:
    """Refuse a registry command in one sentence (exit 1, as a failed ``docker pull``)."""
    session.error("Error response from daemon: " + refusal(args.verb, getattr(args, "what", "") or ""))
    return 1


def register(command: Command) -> None:
    """``pull``, ``push``, ``login``, ``logout``, ``search``, with Docker's flags (so the refusal, not a flag
    error, is what a learner reads)."""
    sub = command("pull", cmd_offline, "Download an image from a registry (labkit works offline: refused)")
    sub.add_argument("-a", "--all-tags", action="store_true", help="every tag")
    sub.add_argument("-q", "--quiet", action="store_true", help="no progress")
    sub.add_argument("--platform", metavar="PLATFORM", help="the platform to pull")
    sub.add_argument("--disable-content-trust", action="store_true", help="skip image verification")
    sub.add_argument("what", metavar="NAME[:TAG]")
    sub = command("push", cmd_offline, "Upload an image to a registry (labkit works offline: refused)")
    sub.add_argument("-a", "--all-tags", action="store_true", help="every tag")
    sub.add_argument("-q", "--quiet", action="store_true", help="no progress")
    sub.add_argument("--platform", metavar="PLATFORM", help="the platform to push")
    sub.add_argument("--disable-content-trust", action="store_true", help="skip image signing")
    sub.add_argument("what", metavar="NAME[:TAG]")
    sub = command("login", cmd_offline, "Log in to a registry (labkit works offline: refused)")
    sub.add_argument("-u", "--username", metavar="USER", help="user name")
    sub.add_argument("-p", "--password", metavar="PASSWORD", help="password")
    sub.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    sub.add_argument("what", nargs="?", metavar="SERVER")
    sub = command("logout", cmd_offline, "Log out from a registry (labkit works offline: refused)")
    sub.add_argument("what", nargs="?", metavar="SERVER")
    sub = command("search", cmd_offline, "Search a registry for images (labkit works offline: refused)")
    sub.add_argument("-f", "--filter", action="append", default=[], metavar="FILTER", help="filter the results")
    sub.add_argument("--format", metavar="TEMPLATE", help="Go template")
    sub.add_argument("--limit", type=int, metavar="N", help="the most results")
    sub.add_argument("--no-trunc", action="store_true", help="do not truncate")
    sub.add_argument("what", metavar="TERM")
