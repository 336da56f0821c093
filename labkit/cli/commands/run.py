"""``labkit run`` and ``labkit create``: a container from an image, with Docker's flags, checks and warnings.

Their flags are read as Docker's client reads them: what it refuses before it
asks the daemon (a bad size, an env file that is not there, ``--rm`` with
``--restart``) is refused here, exit 125 for ``create`` as for ``run``.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

from labkit.cli.errors import PROG, FlagValue, NotATerminal
from labkit.cli.formatters import full_image_ref
from labkit.cli.session import Command, Session, detached, fileno, stream_logs
from labkit.errors import InvalidArgument, InvalidOption, LabkitError, LabkitWarning, NoSuchImage
from labkit.model import humanize
from labkit.model.terminal import detach_keys


def size_arg(text: str) -> int:
    try:
        return humanize.parse_size(text)
    except InvalidArgument as error:
        raise argparse.ArgumentTypeError(error.one_line()) from error


def swap_arg(text: str) -> int:
    return -1 if text.strip() == "-1" else size_arg(text)


def cpus_arg(text: str) -> float:
    """``--cpus``: a finite number (``nan``, ``inf`` and ``1e400`` are not numbers of CPUs)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"invalid value '{text}': it is not a number of CPUs. Give one such as 0.5")
    return value


def int64_arg(text: str) -> int:
    """A whole number that fits Docker's 64-bit field (``--pids-limit``, ``--stop-timeout``, ``-t``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid value '{text}': give a whole number") from None
    if not -(2**63) <= value < 2**63:
        raise argparse.ArgumentTypeError(f"invalid value '{text}': out of range for a 64-bit number")
    return value


def env_arg(text: str) -> str:
    """``-e``: ``NAME=value`` or ``NAME``; a name is never empty and never holds a space."""
    name = text.partition("=")[0]
    if not name or name != name.strip() or " " in name:
        raise argparse.ArgumentTypeError(f"invalid environment variable: {text}. Write it as NAME=value")
    return text


def _label_arg(text: str) -> str:
    """``-l``: ``KEY=value`` or ``KEY``, with a key that is not empty."""
    if not text.partition("=")[0].strip():
        raise argparse.ArgumentTypeError(f"invalid label '{text}': empty name. Write it as KEY=value")
    return text


def env_from(entries: Iterable[str], environ: Mapping[str, str]) -> list[str]:
    """``K=V`` kept as is; a bare ``K`` takes its value from this shell, or is dropped if unset."""
    env = []
    for entry in entries:
        name, sep, _ = entry.partition("=")
        if not name or name != name.strip() or " " in name:
            raise InvalidArgument(f"invalid environment variable: {entry}", "Write it as NAME=value")
        if sep:
            env.append(entry)
        elif name in environ:
            env.append(f"{name}={environ[name]}")
    return env


def _read_env_file(path: str) -> list[str]:
    """The lines of an ``--env-file``: ``K=V`` or ``K``; blank lines and ``#`` comments skipped."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except FileNotFoundError:
        raise InvalidArgument(f"open {path}: no such file or directory", "Check the path given to --env-file") from None
    except OSError as error:
        raise InvalidArgument(f"open {path}: {error.strerror}", "Check the path given to --env-file") from error
    return [line.lstrip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _labels(entries: Iterable[str]) -> dict[str, str]:
    labels = {}
    for entry in entries:
        key, _, value = entry.partition("=")
        labels[key] = value
    return labels


def _create_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The engine's ``create`` keywords from run/create flags, checked as Docker's command line checks them.

    What Docker's client refuses before it asks the daemon (an env file, a port, a restart count
    that is not a number, ``--rm`` with ``--restart``) is refused here as :class:`InvalidOption`:
    exit 125 for ``create`` as for ``run``.
    """
    from labkit.engine import parse_port  # the engine loads when a command first needs it, never for --help

    try:
        env = env_from(_read_env_file(args.env_file) if args.env_file else [], os.environ)
        env += env_from(args.env, os.environ)
        for spec in args.publish:
            parse_port(spec)
    except InvalidArgument as error:
        raise InvalidOption(error.message, error.hint) from error
    _, colon, count = (args.restart or "").partition(":")
    if colon and not count.lstrip("-").isdigit():
        raise InvalidOption("invalid restart policy format: maximum retry count must be an integer",
                            "Write it like on-failure:3")
    if args.rm and (args.restart or "no").partition(":")[0] != "no":
        raise InvalidOption("conflicting options: cannot specify both --restart and --rm",
                            "Use one or the other: --rm removes the container when it exits, --restart starts it again")
    if args.network == "":
        raise InvalidOption("no name set for network", "Give --network a name: bridge, host, none or one you created")
    _client_checks(args)
    return dict(
        name=args.name,
        entrypoint=args.entrypoint,
        env=env or None,
        workdir=args.workdir,
        hostname=args.hostname,
        ports=args.publish or None,
        publish_all=args.publish_all,
        volumes=args.volume or None,
        memory=args.memory,
        memory_swap=args.memory_swap,
        pids_limit=args.pids_limit,
        cpus=args.cpus,
        restart=args.restart,
        network=args.network,
        auto_remove=args.rm,
        labels=_labels(args.label) or None,
        stop_signal=args.stop_signal,
        stop_timeout=args.stop_timeout,
        init=args.init,
        security_opt=args.security_opt or None,
        **({"tty": True, "console_size": _console_size()} if args.tty else {}),
        **({"open_stdin": True} if args.interactive else {}),
        # Docker's client attaches an undetached run or create to stdout and stderr, and -i adds stdin.
        **({"attach": ("stdout", "stderr", *(("stdin",) if args.interactive else ()))}
           if not getattr(args, "detach", False) else {}),
        **{key: value for key, value in (
            ("user", args.user), ("read_only", args.read_only), ("tmpfs", args.tmpfs), ("mounts", args.mount),
            ("add_host", args.add_host), ("dns", args.dns), ("cap_add", args.cap_add), ("cap_drop", args.cap_drop),
            ("privileged", args.privileged), ("ulimits", args.ulimit), ("platform", args.platform)) if value},
    )


def _client_checks(args: argparse.Namespace) -> None:
    """What Docker's client refuses in ``--add-host``, ``--dns``, ``--ulimit`` and ``--mount`` before it asks the
    daemon: ``invalid argument "X" for "--flag" flag: …``, exit 125 for create as for run."""
    # labkit.model.hostconfig loads dataclasses and inspect: it loads when run or create checks its flags, not
    # when every other command starts
    from labkit.model import hostconfig

    for flag, values, check in (("--add-host", args.add_host, hostconfig.parse_add_host),
                                 ("--dns", args.dns, hostconfig.parse_dns),
                                 ("--ulimit", args.ulimit, hostconfig.parse_ulimit),
                                 ("--mount", args.mount, hostconfig.parse_mount)):
        for value in values:
            try:
                check(value)
            except InvalidArgument as error:
                raise FlagValue(f'invalid argument "{value}" for "{flag}" flag: {error.message}',
                                error.hint) from error


def _console_size() -> tuple[int, int] | None:
    """``(rows, columns)`` of the caller's terminal, for a ``-t`` container's first size (Docker's ConsoleSize)."""
    for fd in (1, 0):
        try:
            size = os.get_terminal_size(fd)
        except OSError:
            continue
        return size.lines, size.columns
    return None


def check_terminal(args: argparse.Namespace, verb: str, attached: bool) -> None:
    """``-it`` attached needs a terminal to read from, as Docker's does; the detach keys must parse."""
    if attached and args.tty and args.interactive and not os.isatty(0):
        raise NotATerminal()
    if getattr(args, "detach_keys", None):
        detach_keys(args.detach_keys)  # refused before anything is made, as Docker's client refuses it


def _cid(container: Any) -> str:
    """The id of whatever ``create`` returned: an object with ``id``, a dict, or a string."""
    if isinstance(container, str):
        return container
    if isinstance(container, Mapping):
        return str(container.get("Id") or container.get("id"))
    return str(getattr(container, "id", None) or container.Id)


def cmd_run(session: Session, args: argparse.Namespace) -> int:
    """Create and start a container; attached, stream its output and exit with its code."""
    detach = getattr(args, "detach", False)
    check_terminal(args, args.verb, attached=not detach)
    engine = session.engine
    kwargs = _create_kwargs(args)
    if not detach and not args.tty:
        # Attached: this process reads the exit code, then removes the container itself. With a terminal,
        # the caller may detach: --rm stays the container's, to remove it whenever it ends.
        kwargs["auto_remove"] = False
    container = _create(session, args, kwargs)
    cid = _cid(container)
    if detach:
        # Docker prints the id before it starts the container.
        session.print(cid)
        session.out.flush()
    elif args.tty:
        session.out.flush()
        session.err.flush()
        try:
            code = engine.attach(cid, stdin=0 if args.interactive else None, stdout=fileno(session.out),
                                 detach_keys=args.detach_keys, start=True)
        except KeyboardInterrupt:
            # Without -i the terminal is not raw, so Ctrl-C reaches this process: proxy it as Docker's CLI does.
            # With -i, Ctrl-C is a byte for the container's terminal; an interrupt here means the caller went
            # (its terminal closed), and the container goes on, as it would after the detach keys.
            if not args.interactive:
                with contextlib.suppress(LabkitError, OSError):
                    engine.kill(cid, signal="INT")
                session.error(f"{PROG}: sent SIGINT to {cid[:12]}; it may still be running (see '{PROG} ps')")
            raise
        except BaseException:
            if args.rm:
                with contextlib.suppress(LabkitError, OSError):
                    engine.rm(cid, force=True)
            raise
        return detached(session, code, said=False, escaped=0)
    try:
        # Attached -i: what is piped in reaches PID 1; detached (-di), its stdin stays open with nothing written.
        engine.start(cid, **({"stdin": 0} if args.interactive and not detach else {}))
    except BaseException:
        if args.rm:  # Docker removes a --rm container whose start failed, whatever failed (a taken port too)
            with contextlib.suppress(LabkitError, OSError):
                engine.rm(cid, force=True)
        raise
    if detach:
        return 0
    try:
        stream_logs(session, engine.logs(cid, follow=True))
        code = int(engine.wait(cid))
    except KeyboardInterrupt:
        # Docker's CLI proxies Ctrl-C to the container as SIGINT; do the same, then let go.
        with contextlib.suppress(LabkitError, OSError):
            engine.kill(cid, signal="INT")
        session.error(f"{PROG}: sent SIGINT to {cid[:12]}; it may still be running (see '{PROG} ps')")
        raise
    if args.rm:
        engine.rm(cid, force=True)
    return code


def cmd_create(session: Session, args: argparse.Namespace) -> int:
    """Create a container and print its full id."""
    check_terminal(args, "create", attached=False)
    session.print(_cid(_create(session, args, _create_kwargs(args))))
    return 0


def _create(session: Session, args: argparse.Namespace, kwargs: dict[str, Any]) -> Any:
    """``engine.create`` for run and create, its warnings printed as Docker prints them (``WARNING: …``)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LabkitWarning)
            container = session.engine.create(args.image, args.command or None, **kwargs)
    except NoSuchImage:
        session.error(f"Unable to find image '{full_image_ref(args.image)}' locally")
        raise
    for text in container.warnings:
        session.error(f"WARNING: {text}")
    return container


def _add_create_options(parser: argparse.ArgumentParser, run: bool) -> None:
    """The flags ``run`` and ``create`` share (and ``-d`` for run)."""
    parser.add_argument("--help", action="help", help="show this help and exit")
    if run:
        parser.add_argument("-d", "--detach", action="store_true", help="run in the background and print the id")
    parser.add_argument("-i", "--interactive", action="store_true", help="keep stdin open (with -t)")
    parser.add_argument("-t", "--tty", action="store_true", help="give the container a terminal of its own")
    parser.add_argument("--detach-keys", metavar="KEYS", help="keys that detach from the container (ctrl-p,ctrl-q)")
    parser.add_argument("--name", help="name the container")
    parser.add_argument("--rm", action="store_true", help="remove the container when it exits")
    parser.add_argument("-e", "--env", action="append", default=[], type=env_arg, metavar="K=V",
                        help="set an environment variable")
    parser.add_argument("--env-file", metavar="FILE", help="read environment variables from a file")
    parser.add_argument(
        "-p",
        "--publish",
        action="append",
        default=[],
        metavar="[IP:]HOST:CTR[/PROTO]",
        help="publish a container port on the host",
    )
    parser.add_argument("-P", "--publish-all", action="store_true", help="publish every exposed port")
    parser.add_argument("-v", "--volume", action="append", default=[], metavar="SRC:DST[:ro]", help="mount a volume")
    parser.add_argument("-w", "--workdir", help="working directory inside the container")
    parser.add_argument("-h", "--hostname", help="the container's hostname")
    parser.add_argument("--entrypoint", help="override the image's ENTRYPOINT")
    parser.add_argument("-m", "--memory", type=size_arg, metavar="SIZE", help="memory limit, e.g. 64m")
    parser.add_argument("--memory-swap", type=swap_arg, metavar="SIZE", help="memory plus swap limit (-1: unlimited)")
    parser.add_argument("--pids-limit", type=int64_arg, metavar="N", help="most processes at once")
    parser.add_argument("--cpus", type=cpus_arg, metavar="N", help="CPUs the container may use, e.g. 0.5")
    parser.add_argument("--restart", metavar="POLICY", help="no, on-failure[:N], always, unless-stopped")
    parser.add_argument("--network", metavar="NET", help="bridge (default), host, none, or a network you created")
    parser.add_argument("--init", action="store_true", help="run a tiny init as PID 1 that forwards signals")
    parser.add_argument("--security-opt", action="append", default=[], metavar="OPT",
                        help="seccomp=unconfined (no seccomp filter) or seccomp=PROFILE.json")
    parser.add_argument("--stop-signal", metavar="SIG", help="signal that stops the container (default SIGTERM)")
    parser.add_argument("--stop-timeout", type=int64_arg, metavar="SECONDS", help="seconds to wait before SIGKILL")
    parser.add_argument("-l", "--label", action="append", default=[], type=_label_arg, metavar="K=V",
                        help="set a label")
    parser.add_argument("-u", "--user", metavar="USER[:GROUP]",
                        help="run as this uid[:gid] or name of the image's /etc/passwd")
    parser.add_argument("--read-only", action="store_true", help="mount the container's / read-only")
    parser.add_argument("--mount", action="append", default=[], metavar="type=…,target=…",
                        help="type=bind|volume|tmpfs,source=…,target=…[,readonly]")
    parser.add_argument("--tmpfs", action="append", default=[], metavar="PATH[:OPTS]",
                        help="mount an empty tmpfs at PATH, e.g. /run:size=64m")
    parser.add_argument("--add-host", action="append", default=[], metavar="NAME:IP", help="add a line to /etc/hosts")
    parser.add_argument("--dns", action="append", default=[], metavar="IP", help="a name server for /etc/resolv.conf")
    parser.add_argument("--cap-add", action="append", default=[], metavar="CAP",
                        help="grant a capability (NET_ADMIN, CAP_SYS_TIME, ALL)")
    parser.add_argument("--cap-drop", action="append", default=[], metavar="CAP", help="take away a capability (or ALL)")
    parser.add_argument("--privileged", action="store_true",
                        help="every capability, no seccomp, no masked paths, the host's devices: "
                             "dangerous on a shared machine")
    parser.add_argument("--ulimit", action="append", default=[], metavar="NAME=SOFT[:HARD]",
                        help="a resource limit, e.g. nofile=1024:2048")
    parser.add_argument("--platform", metavar="OS/ARCH", help="only this machine's platform, e.g. linux/amd64")
    parser.add_argument("image", metavar="IMAGE")
    parser.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND [ARG...]")


def register(command: Command) -> None:
    """``run`` and ``create``."""
    _add_create_options(command("run", cmd_run, "Create and start a container", add_help=False), run=True)
    _add_create_options(command("create", cmd_create, "Create a container", add_help=False), run=False)
