"""``labkit images`` and ``labkit build``: the images on this host, and a new one from a Labfile."""

from __future__ import annotations

import argparse
import time
from typing import Any

from labkit.cli.formatters import (
    IMAGE_HEADERS,
    IMAGE_TABLE,
    full_image_ref,
    render_rows,
    short_id,
    split_repo_tag,
    unix_time_text,
)
from labkit.cli.session import Command, Session
from labkit.cli.templates import Fields
from labkit.errors import InvalidArgument
from labkit.model import humanize


def _tag_arg(text: str) -> str:
    """``build -t``: a reference Docker's grammar accepts (lower case, one tag)."""
    from labkit.images.store import parse_ref  # the image store loads only when build -t is read, not for --help

    try:
        parse_ref(text)
    except InvalidArgument as error:
        raise argparse.ArgumentTypeError(error.one_line()) from None
    return text


def cmd_images(session: Session, args: argparse.Namespace) -> int:
    """List images: one row per tag, newest first."""
    images = sorted(session.engine.images(), key=lambda i: i.get("Created", 0), reverse=True)
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
    session.out.write(render_rows(args.format or IMAGE_TABLE, rows, IMAGE_HEADERS, "image"))
    return 0


def cmd_build(session: Session, args: argparse.Namespace) -> int:
    """Build an image from a Labfile (or Dockerfile) in DIR."""

    def step(event: Any) -> None:
        session.print(event)
        session.out.flush()

    image_id = session.engine.build(args.path, args.tag, file=args.file, on_step=step)
    session.print(f"Successfully built {short_id(str(image_id))}")
    session.print(f"Successfully tagged {full_image_ref(args.tag)}")
    return 0


def register(command: Command) -> None:
    """``images`` and ``build``."""
    sub = command("images", cmd_images, "List images")
    sub.add_argument("-q", "--quiet", action="store_true", help="only image ids")
    sub.add_argument("--no-trunc", action="store_true", help="full image ids")
    sub.add_argument("--format", metavar="TEMPLATE", help="Go template, e.g. '{{.Repository}}:{{.Tag}}'")

    sub = command("build", cmd_build, "Build an image from a Labfile")
    sub.add_argument("-t", "--tag", required=True, type=_tag_arg, metavar="NAME:TAG", help="name and tag of the image")
    sub.add_argument("-f", "--file", metavar="FILE", help="the Labfile (default DIR/Labfile or DIR/Dockerfile)")
    sub.add_argument("path", metavar="DIR")
