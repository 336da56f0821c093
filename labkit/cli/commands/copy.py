"""``labkit cp``: files between this host and a container, running or not, as ``docker cp`` copies them.

The engine moves a tar stream in and out of the container (``copy_to``, ``copy_from``,
resolved inside the container's own root); this client decides, as Docker's does, what
lands where:

* ``cp SRC CONTAINER:DEST`` — into DEST if it is a directory (``SRC/.``: what SRC holds),
  else as DEST (its directory must exist); ``cp - CONTAINER:DIR`` unpacks a tar from stdin;
* ``cp CONTAINER:SRC DEST`` — the same rules on this host; ``cp CONTAINER:SRC -`` writes
  the tar to stdout.

Errors are Docker's lines with exit 1: ``no such directory``, ``cannot copy directory``,
``Could not find the file /x in container web``, ``lstat /abs/path: no such file or directory``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import sys
import threading
from collections.abc import Iterator
from typing import IO, cast

from labkit.cli.session import Command, Session
from labkit.errors import NotFound
from labkit.model import humanize


def _split(arg: str) -> tuple[str | None, str]:
    """``CONTAINER:PATH`` → (container, path); a local path (``/x``, ``./x``, ``-``, no colon) → (None, path)."""
    if arg.startswith(("/", ".")) or ":" not in arg:
        return None, arg
    container, _, path = arg.partition(":")
    return container, path


class _Refused(Exception):
    """The client's own refusal: one line on stderr, exit 1."""


def cmd_cp(session: Session, args: argparse.Namespace) -> int:
    """Copy between a container and this host; nothing printed but errors (and, on a terminal, the size)."""
    (src_ref, src), (dst_ref, dst) = _split(args.src), _split(args.dest)
    try:
        if src_ref and dst_ref:
            raise _Refused("copying between containers is not supported")
        if not src_ref and not dst_ref:
            raise _Refused("must specify at least one container source")
        if src_ref:
            copied = _from_container(session, src_ref, src, dst, args.follow_link)
            where = dst
        else:
            copied = _to_container(session, src, dst_ref or "", dst, args.archive, args.follow_link)
            where = f"{dst_ref}:{dst}"
    except _Refused as refusal:
        session.error(str(refusal))
        return 1
    if copied is not None and not args.quiet and _is_terminal(session.err):
        session.error(f"Successfully copied {humanize.human_size(copied, 3)} to {where}")
    return 0


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return os.isatty(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return False


def _to_container(session: Session, src: str, ref: str, dst: str, keep_owners: bool, follow: bool) -> int | None:
    engine = session.engine
    if src == "-":
        found = engine.stat_path(ref, dst)
        if not found["isDir"]:
            raise _Refused(f'destination "{ref}:{dst}" must be a directory')
        engine.copy_to(ref, dst, sys.stdin.fileno(), keep_owners)
        return None
    local = os.path.abspath(src)
    try:
        os.stat(local) if follow else os.lstat(local)
    except OSError as err:
        raise _Refused(f"lstat {local}: {(err.strerror or str(err)).lower()}") from None
    is_dir = os.path.isdir(local) and (follow or not os.path.islink(local))
    contents = src.endswith(("/.", "/./")) and is_dir
    try:
        target = engine.stat_path(ref, dst)
    except NotFound:
        target = None
    if target is not None and target["isDir"]:
        into, name = dst, os.path.basename(local.rstrip("/"))
    elif target is not None:
        if is_dir:
            raise _Refused("cannot copy directory")
        into, name = os.path.dirname(dst.rstrip("/")) or "/", os.path.basename(dst.rstrip("/"))
    else:
        if dst.endswith("/"):
            raise _Refused("no such directory")
        into, name = os.path.dirname(dst) or "/", os.path.basename(dst)
        if not engine.stat_path(ref, into)["isDir"]:  # NotFound: Docker's "Could not find the file …"
            raise _Refused("no such directory")
    with _tar_of(local, name, contents, follow) as (stream, counted):
        engine.copy_to(ref, into, stream, keep_owners)
    return counted[0]


@contextlib.contextmanager
def _tar_of(local: str, name: str, contents: bool, follow: bool) -> Iterator[tuple[int, list[int]]]:
    """A pipe the tar of ``local`` (named ``name``, or its entries alone with ``contents``) is written into
    by a thread; yields its reading end and, once done, how many bytes went through."""
    import tarfile  # only when cp runs: --help and every other command start without it

    read_end, write_end = os.pipe()
    counted = [0]
    failure: list[BaseException] = []

    class Counting:
        def __init__(self, fd: int) -> None:
            self.fd = fd

        def write(self, data: bytes) -> int:
            view = memoryview(data)
            while view:
                done = os.write(self.fd, view)
                view = view[done:]
            counted[0] += len(data)
            return len(data)

    def produce() -> None:
        try:
            sink = cast(IO[bytes], Counting(write_end))  # tarfile writes, and asks nothing else of it
            with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                top = os.path.realpath(local) if follow else local
                if contents:
                    for child in sorted(os.listdir(top)):
                        tar.add(os.path.join(top, child), arcname=child)
                else:
                    tar.add(top, arcname=name)
        except BaseException as err:  # the reader sees the stream end; the error is raised below
            failure.append(err)
        finally:
            os.close(write_end)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        yield read_end, counted
    finally:
        os.close(read_end)  # a reader that stopped early: the writer's next write fails and it ends
        thread.join()
    if failure and not isinstance(failure[0], BrokenPipeError):
        raise failure[0]


def _from_container(session: Session, ref: str, src: str, dst: str, follow: bool) -> int | None:
    engine = session.engine
    found = engine.stat_path(ref, src)  # NotFound: Docker's "Could not find the file …"
    if dst == "-":
        session.out.flush()
        out = getattr(session.out, "buffer", None)
        if out is not None:
            out.flush()
        engine.copy_from(ref, src, session.out.fileno())
        return None
    contents = src.endswith(("/.", "/./")) and found["isDir"]
    local = os.path.abspath(dst)
    if os.path.isdir(local):
        into, rename = local, None
    elif os.path.lexists(local):
        if found["isDir"]:
            raise _Refused("cannot copy directory")
        into, rename = os.path.dirname(local), os.path.basename(local)
    else:
        if dst.endswith("/"):
            raise _Refused("no such directory")
        into, rename = os.path.dirname(local), os.path.basename(local)
        if not os.path.isdir(into):
            raise _Refused(f"lstat {into}: no such file or directory")
    import tarfile  # only when cp runs: --help and every other command start without it

    from labkit import tars

    read_end, write_end = os.pipe()
    counted = [0]
    failure: list[BaseException] = []
    top = found["name"] if found["name"] != "/" else "."

    def consume() -> None:
        try:
            with os.fdopen(read_end, "rb") as pipe, tarfile.open(fileobj=pipe, mode="r|") as tar:
                for member in tar:
                    counted[0] += member.size
                    name = member.name
                    if contents:
                        if name == top:
                            continue
                        name = name[len(top) + 1:]
                    elif rename is not None:
                        name = rename + name[len(top):]
                    renamed = copy.copy(member)
                    renamed.name = name
                    tars.extract(tar, tars.member_in(renamed, into), into)
        except BaseException as err:
            failure.append(err)

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    try:
        engine.copy_from(ref, src, write_end)
    finally:
        os.close(write_end)
        thread.join()
    if failure:
        raise _Refused(f"{failure[0]}")
    return counted[0]


def register(command: Command) -> None:
    """``cp``."""
    sub = command("cp", cmd_cp, "Copy files/folders between a container and the local filesystem")
    sub.add_argument("-a", "--archive", action="store_true", help="keep uid/gid of the copied files")
    sub.add_argument("-L", "--follow-link", action="store_true", help="follow a symbolic link given as SRC_PATH")
    sub.add_argument("-q", "--quiet", action="store_true", help="print nothing on success, even on a terminal")
    sub.add_argument("src", metavar="SRC_PATH", help="CONTAINER:PATH, a path here, or - (a tar on stdin)")
    sub.add_argument("dest", metavar="DEST_PATH", help="CONTAINER:PATH, a path here, or - (a tar on stdout)")
