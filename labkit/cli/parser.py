"""The whole ``labkit`` command line: the global options, then each command module's commands, in order."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from labkit.cli.commands import (
    containers,
    copy,
    groups,
    images,
    monitor,
    networks,
    registry,
    run,
    services,
    system,
    volumes,
)
from labkit.cli.errors import PROG, Parser
from labkit.grading.cli import add_grade_command  # stdlib-only at import: --help stays fast

#: The command modules, in the order ``labkit --help`` lists their commands.
MODULES = (run, containers, copy, monitor, images, registry, volumes, networks, services, system)


def build_parser() -> Parser:
    """The whole ``labkit`` command line."""
    parser = Parser(
        prog=PROG,
        description="Run real containers and see what the kernel does (Docker's commands, offline).",
    )
    parser.add_argument(
        "--backend",
        choices=("auto", "linux", "rootless", "sim"),
        help="which backend runs containers (env LABKIT_BACKEND; default auto)",
    )
    parser.add_argument(
        "--root", metavar="DIR", help="state directory (env LABKIT_ROOT)"
    )
    commands = parser.add_subparsers(dest="verb", metavar="COMMAND", parser_class=Parser)

    def command(name: str, handler: Callable[..., int], help: str, **kwargs: Any) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help, **kwargs)
        sub.set_defaults(handler=handler)
        return sub

    for module in MODULES:
        module.register(command)
    groups.register(command, MODULES)  # container …, image …, system …: the same commands again, by group
    add_grade_command(command, Parser)
    return parser
