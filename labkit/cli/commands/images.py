"""The image commands: ``images``, ``build``, ``commit``, ``history``, ``rmi``, ``tag``, ``save``, ``load``,
``export`` and ``import`` (``image ls``, ``image rm``… are the same commands, filed by :mod:`.groups`).

``save`` and ``load`` are the offline way to move images: what ``docker save`` wrote loads here and runs,
and what ``labkit save`` writes loads into Docker.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import tempfile
import time
from collections.abc import Iterator
from typing import IO, Any

from labkit.cli.formatters import (
    IMAGE_DIGESTS_TABLE,
    IMAGE_HEADERS,
    IMAGE_TABLE,
    ellipsis,
    render_rows,
    short_id,
    split_repo_tag,
    unix_time_text,
)
from labkit.cli.session import Command, Session, each
from labkit.cli.templates import Fields
from labkit.errors import InvalidArgument
from labkit.model import humanize

#: ``history``'s columns, as Docker's formatter names them.
HISTORY_HEADERS = {
    "ID": "IMAGE",
    "CreatedSince": "CREATED",
    "CreatedAt": "CREATED AT",
    "CreatedBy": "CREATED BY",
    "Size": "SIZE",
    "Comment": "COMMENT",
}
HISTORY_TABLE = "table {{.ID}}\\t{{.CreatedSince}}\\t{{.CreatedBy}}\\t{{.Size}}\\t{{.Comment}}"

#: What Docker's client says when an archive would go to a terminal.
TO_TERMINAL = "cowardly refusing to save to a terminal. Use the -o flag or redirect"


def _tag_arg(text: str) -> str:
    """``build -t``: a reference Docker's grammar accepts (lower case, one tag)."""
    from labkit.images.store import parse_ref  # the image store loads only when build -t is read, not for --help

    try:
        parse_ref(text)
    except InvalidArgument as error:
        raise argparse.ArgumentTypeError(error.one_line()) from None
    return text


def cmd_images(session: Session, args: argparse.Namespace) -> int:
    """List images: one row per tag, newest first (``-a`` intermediate ones too; ``--filter``; ``REPO[:TAG]``)."""
    from labkit.images import filters  # parsing --filter needs no engine

    images = session.engine.images(all=args.all, filters=filters.parse(args.filter or []),
                                   reference=args.reference)
    images = sorted(images, key=lambda i: i.get("Created", 0), reverse=True)
    now = time.time()
    rows = []
    for image in images:
        created = image.get("Created", 0)
        ident = image.get("Id", "")
        for ref in image.get("RepoTags") or ["<none>:<none>"]:
            repo, tag = ("<none>", "<none>") if ref == "<none>:<none>" else split_repo_tag(ref)
            rows.append(
                Fields(
                    Repository=repo,
                    Tag=tag,
                    Digest="<none>",  # a registry's digest: labkit pulls from none (RepoDigests is empty)
                    ID=ident if args.no_trunc else short_id(ident),
                    CreatedSince=humanize.human_duration(now - created) + " ago" if created else "N/A",
                    CreatedAt=unix_time_text(created),
                    Size=humanize.human_size(image.get("Size", 0), 3),
                )
            )
            rows[-1].kind = "image"
    if args.quiet:
        session.out.write("".join(row["ID"] + "\n" for row in rows))
        return 0
    table = IMAGE_DIGESTS_TABLE if args.digests else IMAGE_TABLE
    session.out.write(render_rows(args.format or table, rows, IMAGE_HEADERS, "image"))
    return 0


def cmd_build(session: Session, args: argparse.Namespace) -> int:
    """Build an image from a Labfile (or Dockerfile) in DIR; ``-q`` prints only its id."""

    def step(event: Any) -> None:
        session.print(event)
        session.out.flush()

    image_id = session.engine.build(args.path, args.tag, file=args.file,
                                    on_step=(lambda _line: None) if args.quiet else step)
    if args.quiet:
        session.print(image_id)
    return 0


def cmd_commit(session: Session, args: argparse.Namespace) -> int:
    """A new image from a container's changes; prints its id."""
    image_id = session.engine.commit(args.container, args.repository, author=args.author or "",
                                     message=args.message or "", changes=args.change or [],
                                     pause=args.pause.lower() not in ("false", "0"))
    session.print(image_id)
    return 0


def cmd_history(session: Session, args: argparse.Namespace) -> int:
    """The steps that made an image, newest first."""
    now = time.time()
    rows = []
    for step in session.engine.image_history(args.image):
        ident = step["Id"]
        created_by = step.get("CreatedBy", "").replace("\t", " ")
        row = Fields(
            ID=ident if ident == "<missing>" or args.no_trunc else short_id(ident),
            CreatedSince=(humanize.human_duration(now - step["Created"]) + " ago") if args.human
            else _rfc3339(step["Created"]),
            CreatedAt=_rfc3339(step["Created"]),
            CreatedBy=created_by if args.no_trunc else ellipsis(created_by, 45),
            Size=humanize.human_size(step.get("Size", 0), 3) if args.human else str(step.get("Size", 0)),
            Comment=step.get("Comment", ""),
        )
        row.kind = "history"
        rows.append(row)
    if args.quiet:
        session.out.write("".join(row["ID"] + "\n" for row in rows))
        return 0
    session.out.write(render_rows(args.format or HISTORY_TABLE, rows, HISTORY_HEADERS, "history"))
    return 0


def _rfc3339(seconds: float) -> str:
    """Go's ``time.RFC3339`` in local time, as ``history -H=false`` prints it."""
    from datetime import datetime  # only when a row is shown

    text = datetime.fromtimestamp(seconds).astimezone().isoformat(timespec="seconds")
    return text.replace("+00:00", "Z")


def cmd_rmi(session: Session, args: argparse.Namespace) -> int:
    """Remove images: ``Untagged:`` and ``Deleted:`` lines, one error line per image that stays."""

    def remove(ref: str) -> str:
        done = session.engine.rmi(ref, force=args.force, prune=not args.no_prune)
        return "\n".join(f"{kind}: {what}" for item in done for kind, what in item.items())

    return each(session, args.images, remove, echo=False)


def cmd_tag(session: Session, args: argparse.Namespace) -> int:
    """Give an image another name; prints nothing. A name the grammar refuses is refused by the client, in
    Docker's client's words (docker/cli client/image_tag.go), before the engine is asked."""
    from labkit.images.store import parse_ref  # the image store loads only when tag runs, not for --help

    try:
        parse_ref(args.target)
    except InvalidArgument as error:
        # Docker's client names a one-part repository as its normalised ``library/NAME``.
        why = re.sub(r"repository name \(([^/)]+)\)", r"repository name (library/\1)", error.message)
        raise _Refused(f'Error parsing reference: "{args.target}" is not a valid repository/tag: {why}') from None
    session.engine.tag(args.source, args.target)
    return 0


@contextlib.contextmanager
def _output(session: Session, path: str | None) -> Iterator[IO[bytes]]:
    """Where an archive goes: the file ``-o`` names (written beside it, renamed in place only when whole),
    else stdout, which must not be a terminal."""
    if path is None:
        fd = _fd(session.out)
        if os.isatty(fd):
            raise _Refused(TO_TERMINAL)
        with os.fdopen(os.dup(fd), "wb") as out:
            yield out
        return
    target = os.path.abspath(path)
    fd, tmp = tempfile.mkstemp(prefix=".labkit-", dir=os.path.dirname(target))
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
        os.chmod(tmp, 0o644 & ~_umask())
        os.rename(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fd(stream: IO[str]) -> int:
    stream.flush()
    return stream.fileno()


class _Refused(Exception):
    """What Docker's client refuses on its own (to a terminal, from an empty stdin): one line, exit 1."""


@contextlib.contextmanager
def _input(path: str | None) -> Iterator[IO[bytes]]:
    """Where an archive comes from: the file named, else stdin, which must not be a terminal."""
    if path is None or path == "-":
        if os.isatty(0):
            raise _Refused("requested load from stdin, but stdin is empty")
        with os.fdopen(os.dup(0), "rb") as stream:
            yield stream
        return
    try:
        stream = open(path, "rb")
    except OSError as error:  # Docker's client's words: Go's os.PathError, open PATH: the errno's text
        raise _Refused(f"open {path}: {(error.strerror or str(error)).lower()}") from None
    with stream:
        yield stream


def _refusing(handler: Any) -> Any:
    """Print a client-side refusal (:class:`_Refused`) as Docker does: the sentence alone, exit 1."""

    def run(session: Session, args: argparse.Namespace) -> int:
        try:
            return handler(session, args)
        except _Refused as refused:
            session.error(str(refused))
            return 1

    run.__doc__ = handler.__doc__
    return run


def cmd_save(session: Session, args: argparse.Namespace) -> int:
    """Write images to a tar archive (``-o FILE`` or stdout) that ``load`` reads, here or in Docker."""
    engine = session.engine
    for ref in args.images:
        engine.image_inspect(ref)  # refused before anything is written, as Docker's client does
    with _output(session, args.output) as out:
        engine.save(args.images, out)
    return 0


def cmd_load(session: Session, args: argparse.Namespace) -> int:
    """Load images from a tar archive (``-i FILE`` or stdin) that ``docker save`` or ``labkit save`` wrote."""
    with _input(args.input) as stream:
        lines = session.engine.load(stream)
    for line in lines:
        session.print(line)
    return 0


def cmd_export(session: Session, args: argparse.Namespace) -> int:
    """Write a container's filesystem as a tar (``-o FILE`` or stdout)."""
    engine = session.engine
    engine.inspect(args.container)  # an unknown container is refused before a file is made
    with _output(session, args.output) as out:
        engine.export(args.container, out)
    return 0


def cmd_import(session: Session, args: argparse.Namespace) -> int:
    """Make an image of one layer from a tar of a filesystem (a file, or ``-`` for stdin); prints its id."""
    if "://" in args.source:
        raise InvalidArgument(f"labkit works offline and does not fetch {args.source}",
                              "Download the tar first, then 'labkit import FILE'")
    with _input(args.source) as stream:
        image_id = session.engine.import_image(stream, args.repository, changes=args.change or [],
                                               message=args.message or "", source="-")
    session.print(image_id)
    return 0


def _images_flags(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("-a", "--all", action="store_true", help="show all images (intermediate ones too)")
    sub.add_argument("-q", "--quiet", action="store_true", help="only image ids")
    sub.add_argument("--no-trunc", action="store_true", help="full image ids")
    sub.add_argument("--digests", action="store_true", help="show digests (<none>: labkit's images come from no registry)")
    sub.add_argument("-f", "--filter", action="append", metavar="FILTER",
                     help="dangling=true, reference=PATTERN, before=IMAGE, since=IMAGE, label=KEY[=VALUE]")
    sub.add_argument("--format", metavar="TEMPLATE", help="Go template, e.g. '{{.Repository}}:{{.Tag}}'")
    sub.add_argument("reference", nargs="?", metavar="REPOSITORY[:TAG]")


def _build_flags(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("-t", "--tag", type=_tag_arg, metavar="NAME:TAG", help="name and tag of the image")
    sub.add_argument("-f", "--file", metavar="FILE", help="the Labfile (default DIR/Labfile or DIR/Dockerfile)")
    sub.add_argument("-q", "--quiet", action="store_true", help="print only the image id")
    sub.add_argument("path", metavar="DIR")


def _history_flags(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("-H", "--human", nargs="?", const=True, default=True,
                     type=lambda v: v.lower() not in ("false", "0"), help="sizes and dates for people (default)")
    sub.add_argument("--no-trunc", action="store_true", help="do not shorten ids and commands")
    sub.add_argument("-q", "--quiet", action="store_true", help="only image ids")
    sub.add_argument("--format", metavar="TEMPLATE", help="Go template, e.g. '{{.CreatedBy}}'")
    sub.add_argument("image", metavar="IMAGE")


def _rmi_flags(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("-f", "--force", action="store_true", help="force removal")
    sub.add_argument("--no-prune", action="store_true", help="do not delete untagged parents")
    sub.add_argument("images", nargs="+", metavar="IMAGE")


def _tag_flags(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("source", metavar="SOURCE_IMAGE[:TAG]")
    sub.add_argument("target", metavar="TARGET_IMAGE[:TAG]")


def _save_flags(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("-o", "--output", metavar="FILE", help="write to a file, not stdout")
    sub.add_argument("images", nargs="+", metavar="IMAGE")


def _load_flags(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("-i", "--input", metavar="FILE", help="read from a tar file, not stdin")
    sub.add_argument("-q", "--quiet", action="store_true", help="accepted; labkit prints no progress")


def _import_flags(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("-c", "--change", action="append", metavar="LINE", help="a Labfile line: CMD, ENV, …")
    sub.add_argument("-m", "--message", metavar="TEXT", help="the image's comment")
    sub.add_argument("source", metavar="file|-")
    sub.add_argument("repository", nargs="?", metavar="REPOSITORY[:TAG]")


def register(command: Command) -> None:
    """``images``, ``build``, ``commit``, ``history``, ``rmi``, ``tag``, ``save``, ``load``, ``export`` and
    ``import`` (:mod:`.groups` files them under ``image …`` and ``container …`` too)."""
    _images_flags(command("images", cmd_images, "List images"))
    _build_flags(command("build", cmd_build, "Build an image from a Labfile"))

    sub = command("commit", cmd_commit, "Create a new image from a container's changes")
    sub.add_argument("-a", "--author", metavar="NAME", help='author (e.g. "Ada <ada@example.com>")')
    sub.add_argument("-c", "--change", action="append", metavar="LINE", help="a Labfile line: CMD, ENV, …")
    sub.add_argument("-m", "--message", metavar="TEXT", help="commit message")
    sub.add_argument("-p", "--pause", nargs="?", const="true", default="true", metavar="BOOL",
                     help="pause the container while committing (default true)")
    sub.add_argument("container", metavar="CONTAINER")
    sub.add_argument("repository", nargs="?", metavar="REPOSITORY[:TAG]")

    _history_flags(command("history", cmd_history, "Show the history of an image"))
    _rmi_flags(command("rmi", cmd_rmi, "Remove one or more images"))
    _tag_flags(command("tag", _refusing(cmd_tag), "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE"))
    _save_flags(command("save", _refusing(cmd_save), "Save one or more images to a tar archive"))
    _load_flags(command("load", _refusing(cmd_load), "Load images from a tar archive"))
    sub = command("export", _refusing(cmd_export), "Export a container's filesystem as a tar archive")
    sub.add_argument("-o", "--output", metavar="FILE", help="write to a file, not stdout")
    sub.add_argument("container", metavar="CONTAINER")
    _import_flags(command("import", _refusing(cmd_import), "Import a tar of a filesystem as an image"))
