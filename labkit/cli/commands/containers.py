"""The commands on containers that exist: start, attach, stop, restart, kill, pause, unpause, wait, rm, ps,
inspect, diff, logs and exec."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import time
from collections.abc import Mapping, Sequence
from typing import IO, Any

from labkit.cli.commands.run import check_terminal, cpus_arg, env_arg, env_from, int64_arg, size_arg, swap_arg
from labkit.cli.errors import PROG, NotATerminal, UsageError, describe
from labkit.cli.formatters import PS_HEADERS, PS_TABLE, full_image_ref, ps_fields, render_rows
from labkit.cli.session import Command, Session, detached, each, fileno, stream_logs
from labkit.cli.templates import Template, TemplateError, json_text
from labkit.errors import InvalidArgument, LabkitError, NotFound, StartFailed
from labkit.model.terminal import detach_keys


def cmd_start(session: Session, args: argparse.Namespace) -> int:
    """Start containers; with ``-a``, stream the output and exit with the container's code."""
    engine = session.engine
    if args.attach:
        if len(args.containers) > 1:
            raise InvalidArgument("you cannot start and attach multiple containers at once", "Name one container")
        ref = args.containers[0]
        if (engine.inspect(ref).get("Config") or {}).get("Tty"):
            session.out.flush()
            code = engine.attach(ref, stdin=0 if args.interactive else None, stdout=fileno(session.out),
                                 detach_keys=args.detach_keys, start=True)
            return detached(session, code, said=False, escaped=0)
        seen = sum(1 for _ in engine.logs(ref))  # output of earlier runs is not replayed
        engine.start(ref, **({"stdin": 0} if args.interactive else {}))
        entries = engine.logs(ref, follow=True)
        for _ in range(seen):
            next(entries, None)
        stream_logs(session, entries)
        return int(engine.wait(ref))
    failed = []
    for ref in args.containers:
        try:
            engine.start(ref)
        except (LabkitError, OSError) as error:
            session.error(describe(error, "start")[0])
            failed.append(ref)
            continue
        session.print(ref)
    if failed:
        session.error("Error: failed to start containers: " + ", ".join(failed))
        return 1
    return 0


def cmd_stop(session: Session, args: argparse.Namespace) -> int:
    """Stop containers: the stop signal, then SIGKILL after the timeout."""
    return each(session, args.containers, lambda r: session.engine.stop(r, timeout=args.time, signal=args.signal))


def cmd_restart(session: Session, args: argparse.Namespace) -> int:
    """Stop, then start, each container."""
    return each(session, args.containers, lambda r: session.engine.restart(r, timeout=args.time))


def cmd_kill(session: Session, args: argparse.Namespace) -> int:
    """Send a signal (SIGKILL by default) to each container's main process."""
    return each(session, args.containers, lambda r: session.engine.kill(r, signal=args.signal or "KILL"))


def cmd_pause(session: Session, args: argparse.Namespace) -> int:
    """Freeze every process of each container (the cgroup freezer)."""
    return each(session, args.containers, session.engine.pause)


def cmd_unpause(session: Session, args: argparse.Namespace) -> int:
    """Thaw each paused container."""
    return each(session, args.containers, session.engine.unpause)


def cmd_rm(session: Session, args: argparse.Namespace) -> int:
    """Remove containers (and with ``-v`` their anonymous volumes)."""
    return each(session, args.containers, lambda r: session.engine.rm(r, force=args.force, volumes=args.volumes))


def cmd_wait(session: Session, args: argparse.Namespace) -> int:
    """Block until each container stops, then print its exit code."""
    return each(session, args.containers, session.engine.wait, echo=False)


_PS_STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")


def _parse_filters(filters: Sequence[str]) -> dict[str, list[str]]:
    """``-f name=web -f status=exited`` → ``{"name": ["web"], "status": ["exited"]}``."""
    parsed: dict[str, list[str]] = {}
    for text in filters:
        key, sep, value = text.partition("=")
        key = key.strip().lower()
        if not sep:  # Docker's client refuses it as a flag it cannot read: 125
            raise UsageError(f"{PROG} ps", f"invalid argument \"{text}\" for -f/--filter: bad format of filter "
                             "(expected name=value); write it like -f name=web")
        if key not in ("name", "status", "id", "label", "ancestor"):
            raise InvalidArgument(f"invalid filter '{key}'", "Filter on name, status, id, label or ancestor")
        if key == "status" and value not in _PS_STATUSES:
            raise InvalidArgument(f"invalid filter 'status={value}'", "A status is one of " + ", ".join(_PS_STATUSES))
        if key == "name":
            try:
                re.compile(value)
            except re.error as error:
                raise InvalidArgument(f"invalid filter 'name={value}': {error}", "A name filter is a regexp") from None
        parsed.setdefault(key, []).append(value)
    return parsed


def _matches(item: Mapping[str, Any], filters: Mapping[str, list[str]]) -> bool:
    """Docker's rule: values of one key are alternatives; different keys must all hold."""
    names = [n.lstrip("/") for n in item.get("Names") or []]
    labels = item.get("Labels") or {}
    for key, values in filters.items():
        if key == "name":
            ok = any(re.search(v, n) or re.search(v, "/" + n) for v in values for n in names)
        elif key == "status":
            ok = item.get("State") in values
        elif key == "id":
            ok = any(item.get("Id", "").startswith(v) for v in values)
        elif key == "ancestor":
            ok = any(
                item.get("Image") in (v, full_image_ref(v)) or item.get("ImageID", "").startswith(v) for v in values
            )
        else:
            ok = all(
                (k in labels and (not sep or labels[k] == v))
                for k, sep, v in (value.partition("=") for value in values)
            )
        if not ok:
            return False
    return True


def cmd_ps(session: Session, args: argparse.Namespace) -> int:
    """List containers as ``docker ps`` does."""
    filters = _parse_filters(args.filter)
    last = 1 if args.latest else args.last
    # A status filter looks at every container, as -a does: `ps -f status=exited` lists the exited ones.
    # The engine's list is newest first by the full-precision creation time (Created is whole seconds).
    items = list(session.engine.ps(all=args.all or last is not None or "status" in filters,
                                   **({"size": True} if args.size else {})))
    items = [item for item in items if _matches(item, filters)]
    if last is not None and last >= 0:
        items = items[:last]
    now = time.time()
    rows = [ps_fields(item, not args.no_trunc, now) for item in items]
    if args.quiet:
        session.out.write("".join(row["ID"] + "\n" for row in rows))
        return 0
    session.out.write(render_rows(args.format or (PS_TABLE + "\\t{{.Size}}" if args.size else PS_TABLE), rows,
                                  PS_HEADERS, "container"))
    return 0


def cmd_inspect(session: Session, args: argparse.Namespace) -> int:
    """Print objects as a JSON array (or through ``-f``), looking in containers, images, volumes."""
    engine = session.engine
    lookups = {"container": (lambda ref: engine.inspect(ref, size=True)) if args.size else engine.inspect,
               "image": engine.image_inspect, "volume": engine.volume_inspect, "network": engine.network_inspect}
    kinds = [args.type] if args.type else list(lookups)
    try:
        template = Template(args.format) if args.format else None
    except TemplateError as error:
        session.error(error.one_line())
        return 64  # Docker's inspect exits 64 (sysexits' EX_USAGE) when its template does not parse
    found, errors = [], []
    for name in args.names:
        for kind in kinds:
            try:
                found.append(lookups[kind](name))
                break
            except NotFound as error:
                last_error = error
        else:
            if args.type:
                errors.append(f"Error response from daemon: {last_error.one_line()}")
            else:
                errors.append(f"Error: No such object: {name}")
    if template is not None:
        session.out.write("".join(template.render(obj) + "\n" for obj in found))
    else:
        session.print(json_text(found, indent=4))
    for line in errors:
        session.error(line)
    return 1 if errors else 0


_DIFF_KIND = {0: "C", 1: "A", 2: "D"}


def cmd_diff(session: Session, args: argparse.Namespace) -> int:
    """List what changed in the container's writable layer: ``C /app``, ``A /x``, ``D /y``."""
    for change in session.engine.diff(args.container):
        session.print(f"{_DIFF_KIND.get(change.get('Kind'), '?')} {change.get('Path')}")
    return 0


def _tail_arg(text: str) -> int | None:
    if text == "all":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid --tail value {text!r}: give a number of lines or 'all'") from None


def cmd_logs(session: Session, args: argparse.Namespace) -> int:
    """Print what the container wrote, to stdout and stderr as it wrote it (``--since``/``--until``: a window)."""
    from datetime import datetime, timezone  # only when logs are asked for

    from labkit.model.humanize import parse_timestamp

    bounds: dict[str, float] = {}
    now = datetime.now(timezone.utc).astimezone()
    for name in ("since", "until"):
        value = getattr(args, name)
        if value:
            try:
                bounds[name] = parse_timestamp(value, now)
            except InvalidArgument as error:  # refused by Docker's client before it asks the daemon
                session.error(f'invalid value for "{name}": {error.message}')
                return 1
    entries = session.engine.logs(args.container, follow=args.follow, tail=args.tail, timestamps=args.timestamps,
                                  **bounds)
    stream_logs(session, entries, timestamps=args.timestamps)
    return 0


def cmd_attach(session: Session, args: argparse.Namespace) -> int:
    """Attach this terminal to a running container's PID 1; exit with its code, or 0 after the detach keys."""
    session.out.flush()
    detach_keys(args.detach_keys or None)
    stdin = None if args.no_stdin else 0
    info = session.engine.inspect(args.container)
    state = info.get("State") or {}
    # Docker's client refuses these itself, in its own words (no "Error response from daemon").
    if not state.get("Running"):
        session.error(f"You cannot attach to a stopped container, start it first. See what it wrote: "
                      f"{PROG} logs {args.container}")
        return 1
    if state.get("Paused"):
        session.error(f"You cannot attach to a paused container, unpause it first. {PROG} unpause {args.container}")
        return 1
    tty = bool((info.get("Config") or {}).get("Tty"))
    if stdin is not None and tty and not os.isatty(0):
        raise NotATerminal()
    try:
        code = session.engine.attach(args.container, stdin=stdin, stdout=fileno(session.out),
                                     stderr=fileno(session.err), detach_keys=args.detach_keys)
    except KeyboardInterrupt:
        # Without a terminal Ctrl-C reaches this process: proxy it as Docker's CLI does (--sig-proxy), then let
        # go, as run does (through the resident engine the caller has gone by now).
        if not tty and args.sig_proxy:
            with contextlib.suppress(LabkitError, OSError):
                session.engine.kill(args.container, signal="INT")
            session.error(f"{PROG}: sent SIGINT to {args.container}; it may still be running (see '{PROG} ps')")
        raise
    return detached(session, code)


def _go_bool(text: str) -> bool:
    """A boolean flag's value as Go's strconv.ParseBool reads it (``--sig-proxy=false``)."""
    value = {"1": True, "t": True, "true": True, "TRUE": True, "True": True,
             "0": False, "f": False, "false": False, "FALSE": False, "False": False}.get(text)
    if value is None:
        raise argparse.ArgumentTypeError(f'invalid boolean value "{text}"')
    return value


def cmd_exec(session: Session, args: argparse.Namespace) -> int:
    """Run another process in a running container; exit with its code."""
    if not args.command:
        raise UsageError(f"{PROG} exec", "requires at least 2 arguments: CONTAINER COMMAND [ARG...]", code=1)
    check_terminal(args, "exec", attached=not args.detach)
    try:
        if args.tty and not args.detach:
            code = session.engine.exec(args.container, list(args.command),
                                       env=env_from(args.env, os.environ) or None, workdir=args.workdir,
                                       stdin=0 if args.interactive else None, stdout=fileno(session.out), tty=True,
                                       detach_keys=args.detach_keys, **({"user": args.user} if args.user else {}))
            return detached(session, code)
        env = env_from(args.env, os.environ)
        with _byte_sink(session.out) as out, _byte_sink(session.err) as err:
            code = session.engine.exec(
                args.container,
                list(args.command),
                env=env or None,
                workdir=args.workdir,
                detach=args.detach,
                stdout=out,
                stderr=err,
                stdin=0 if args.interactive else None,  # the caller's fd 0, in-process or handed to the engine
                **({"user": args.user} if args.user else {}),
            )
    except StartFailed as error:
        if args.detach:
            raise
        # Docker's daemon has already answered the attached exec when its process fails to start: it writes
        # the error into the output stream (moby's postContainerExecStart) and records exit code 126.
        said = error.message
        if said.startswith("OCI runtime"):  # containerd ends a runtime's refusal with its gRPC code
            said += ": unknown"
        session.out.write(f"{said}\r\n")
        return 126
    return int(code or 0)


def cmd_rename(session: Session, args: argparse.Namespace) -> int:
    """Give a container a new name (nothing printed, as Docker's rename)."""
    try:
        session.engine.rename(args.container, args.new_name)
    except LabkitError as error:  # a missing container too: docker's client adds its line after every refusal
        session.error(describe(error, "rename")[0])
        session.error(f"Error: failed to rename container named {args.container}")
        return 1
    return 0


def cmd_update(session: Session, args: argparse.Namespace) -> int:
    """Change limits and the restart policy of containers; echo each name as typed."""
    changes = {"memory": args.memory, "memory_swap": args.memory_swap, "cpus": args.cpus,
               "pids_limit": args.pids_limit, "restart": args.restart}
    if all(value is None for value in changes.values()):
        session.error("you must provide one or more flags when using this command")
        return 1
    return each(session, args.containers, lambda ref: session.engine.update(ref, **changes))


@contextlib.contextmanager
def _byte_sink(stream: IO[str]) -> Any:
    """A file descriptor whose bytes end up in ``stream``, for the engine to relay a container's output to.

    A real terminal or file is given as its own descriptor (the container
    itself only ever gets a pipe, see :mod:`labkit.linux.stdio`); a Python
    text stream (a notebook, a test) gets a pipe whose bytes are copied in.
    """
    try:
        stream.flush()
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        fd = -1
    if fd >= 0:
        yield fd
        return
    import threading  # only for a Python stream (a notebook, a test), never a terminal's command

    read_end, write_end = os.pipe()

    def copy() -> None:
        with open(read_end, "rb", closefd=True) as pipe:
            for chunk in iter(lambda: pipe.read1(65536), b""):
                stream.write(chunk.decode("utf-8", "replace"))

    thread = threading.Thread(target=copy, daemon=True)
    thread.start()
    try:
        yield write_end
    finally:
        os.close(write_end)
        thread.join()


def register(command: Command) -> None:
    """The lifecycle verbs, ``attach``, ``ps``, ``inspect``, ``diff``, ``logs`` and ``exec``."""
    sub = command("start", cmd_start, "Start one or more stopped containers")
    sub.add_argument("-a", "--attach", action="store_true", help="attach stdout/stderr and wait")
    sub.add_argument("-i", "--interactive", action="store_true", help="attach stdin (a -t container's terminal)")
    sub.add_argument("--detach-keys", metavar="KEYS", help="keys that detach from the container (ctrl-p,ctrl-q)")
    sub.add_argument("containers", nargs="+", metavar="CONTAINER")

    sub = command("attach", cmd_attach, "Attach local standard input, output, and error streams to a running container")
    sub.add_argument("--detach-keys", metavar="KEYS", help="keys that detach from the container (ctrl-p,ctrl-q)")
    sub.add_argument("--no-stdin", action="store_true", help="do not attach stdin")
    sub.add_argument("--sig-proxy", nargs="?", const="true", default="true", type=_go_bool, metavar="BOOL",
                     help="send Ctrl-C to the container as SIGINT without a terminal (default true)")
    sub.add_argument("container", metavar="CONTAINER")

    sub = command("stop", cmd_stop, "Stop one or more running containers")
    sub.add_argument("-t", "--time", "--timeout", type=int64_arg, metavar="SECONDS", help="seconds before SIGKILL")
    sub.add_argument("-s", "--signal", metavar="SIG", help="signal to send first")
    sub.add_argument("containers", nargs="+", metavar="CONTAINER")

    sub = command("restart", cmd_restart, "Restart one or more containers")
    sub.add_argument("-t", "--time", "--timeout", type=int64_arg, metavar="SECONDS", help="seconds before SIGKILL")
    sub.add_argument("containers", nargs="+", metavar="CONTAINER")

    sub = command("kill", cmd_kill, "Kill one or more running containers")
    sub.add_argument("-s", "--signal", default="KILL", metavar="SIG", help="signal to send (default KILL)")
    sub.add_argument("containers", nargs="+", metavar="CONTAINER")

    for name, handler, text in (
        ("pause", cmd_pause, "Pause all processes within one or more containers"),
        ("unpause", cmd_unpause, "Unpause all processes within one or more containers"),
        ("wait", cmd_wait, "Block until one or more containers stop, then print their exit codes"),
    ):
        command(name, handler, text).add_argument("containers", nargs="+", metavar="CONTAINER")

    sub = command("rm", cmd_rm, "Remove one or more containers")
    sub.add_argument("-f", "--force", action="store_true", help="kill a running container first")
    sub.add_argument("-v", "--volumes", action="store_true", help="remove its anonymous volumes too")
    sub.add_argument("containers", nargs="+", metavar="CONTAINER")

    sub = command("ps", cmd_ps, "List containers")
    sub.add_argument("-a", "--all", action="store_true", help="show all containers (default: running only)")
    sub.add_argument("-q", "--quiet", action="store_true", help="only ids")
    sub.add_argument("--no-trunc", action="store_true", help="do not truncate output")
    sub.add_argument("-n", "--last", type=int, metavar="N", help="the N most recently created containers")
    sub.add_argument("-l", "--latest", action="store_true", help="the most recently created container")
    sub.add_argument(
        "-f",
        "--filter",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="name=, status=, id=, label=, ancestor=",
    )
    sub.add_argument("--format", metavar="TEMPLATE", help="Go template, e.g. '{{.Names}}' or 'table {{.ID}}'")
    sub.add_argument("-s", "--size", action="store_true", help="show the writable layer's size (and the image's)")

    sub = command("inspect", cmd_inspect, "Return low-level information on containers, images or volumes")
    sub.add_argument("-f", "--format", metavar="TEMPLATE", help="Go template, e.g. '{{.State.Status}}'")
    sub.add_argument("--type", choices=("container", "image", "volume", "network"), help="only this kind of object")
    sub.add_argument("-s", "--size", action="store_true", help="containers: add SizeRw and SizeRootFs")
    sub.add_argument("names", nargs="+", metavar="NAME")

    command("diff", cmd_diff, "Inspect changes to files on a container's filesystem").add_argument(
        "container", metavar="CONTAINER"
    )

    sub = command("logs", cmd_logs, "Fetch the logs of a container")
    sub.add_argument("-f", "--follow", action="store_true", help="keep printing new output")
    sub.add_argument("-t", "--timestamps", action="store_true", help="show timestamps")
    sub.add_argument("-n", "--tail", type=_tail_arg, default=None, metavar="N", help="only the last N lines")
    sub.add_argument("--since", metavar="TIME", help="from this time on: 2024-05-01T12:00:00Z, 10m, or unix seconds")
    sub.add_argument("--until", metavar="TIME", help="up to this time: 2024-05-01T12:00:00Z, 10m, or unix seconds")
    sub.add_argument("container", metavar="CONTAINER")

    sub = command("exec", cmd_exec, "Execute a command in a running container")
    sub.add_argument("-e", "--env", action="append", default=[], type=env_arg, metavar="K=V",
                     help="set an environment variable")
    sub.add_argument("-w", "--workdir", help="working directory inside the container")
    sub.add_argument("-d", "--detach", action="store_true", help="run the command in the background")
    sub.add_argument("-u", "--user", metavar="USER[:GROUP]", help="run as this uid[:gid] or name of /etc/passwd")
    sub.add_argument("-i", "--interactive", action="store_true", help="pass stdin to the command (through a pipe)")
    sub.add_argument("-t", "--tty", action="store_true", help="give the command a terminal of the container's")
    sub.add_argument("--detach-keys", metavar="KEYS", help="keys that detach from the command (ctrl-p,ctrl-q)")
    sub.add_argument("container", metavar="CONTAINER")
    sub.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND [ARG...]")

    sub = command("rename", cmd_rename, "Rename a container")
    sub.add_argument("container", metavar="CONTAINER")
    sub.add_argument("new_name", metavar="NEW_NAME")

    sub = command("update", cmd_update, "Update configuration of one or more containers")
    sub.add_argument("-m", "--memory", type=size_arg, metavar="BYTES", help="memory limit, e.g. 64m")
    sub.add_argument("--memory-swap", type=swap_arg, metavar="BYTES",
                     help="memory plus swap; -1: unlimited swap")
    sub.add_argument("--cpus", type=cpus_arg, metavar="N", help="number of CPUs, e.g. 0.5")
    sub.add_argument("--pids-limit", type=int64_arg, metavar="N", help="the most processes (-1: unlimited)")
    sub.add_argument("--restart", metavar="POLICY", help="no, on-failure[:N], always or unless-stopped")
    sub.add_argument("containers", nargs="+", metavar="CONTAINER")
