"""Which images ``docker images`` lists: ``-a``, ``REPOSITORY[:TAG]`` and ``--filter``, as Docker decides.

Docker lists every image except the intermediate ones (untagged images that
other images were made from) unless ``-a``; ``dangling=true`` keeps untagged
images only, ``reference=PATTERN`` images with a tag matching a shell pattern
(``busybox``, ``busy*:1.*``), ``before=``/``since=`` images made before or after
the one named, ``label=KEY`` or ``label=KEY=VALUE`` images with that label.
A filter repeated with different values matches any of them; different
filters must all match (moby's daemon/images/images.go).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Sequence
from typing import Any

from labkit.errors import InvalidArgument

#: The filters ``images --filter`` knows.
KNOWN = ("dangling", "reference", "before", "since", "label")


def parse(specs: Sequence[str]) -> dict[str, list[str]]:
    """``["dangling=true", "label=a"]`` → ``{"dangling": ["true"], "label": ["a"]}``.

    Raises:
        InvalidArgument: Docker's words for a filter without ``=`` (``bad format of filter (expected
            name=value)``), an unknown one (``invalid filter 'x'``) or a dangling value that is no boolean.
    """
    out: dict[str, list[str]] = {}
    for spec in specs:
        key, eq, value = spec.partition("=")
        if not eq:
            raise InvalidArgument("bad format of filter (expected name=value)", "Write it as NAME=VALUE, e.g. "
                                  "--filter dangling=true")
        key = key.strip().lower()
        if key not in KNOWN:
            raise InvalidArgument(f"invalid filter '{key}'", "labkit images filters by " + ", ".join(KNOWN))
        if key == "dangling" and value.lower() not in ("true", "false", "1", "0"):
            raise InvalidArgument(f"invalid filter 'dangling={value}'", "Give dangling=true or dangling=false")
        out.setdefault(key, []).append(value)
    return out


def _tag_matches(pattern: str, tags: list[str]) -> bool:
    """Docker's reference filter: the pattern against ``repo:tag``, and a pattern without a tag against
    the repository alone (so ``busybox`` matches ``busybox:latest`` and ``busybox:1.36``)."""
    for tag in tags:
        repo = tag.rpartition(":")[0]
        if fnmatch.fnmatchcase(tag, pattern) or (":" not in pattern.rpartition("/")[2]
                                                 and fnmatch.fnmatchcase(repo, pattern)):
            return True
    return False


def select(items: list[dict[str, Any]], show_all: bool, filters: dict[str, list[str]],
           resolve: Callable[[str], str], created: Callable[[str], float],
           reference: str | None = None) -> list[dict[str, Any]]:
    """The items of ``GET /images/json`` that ``images`` shows (each has ``Id``, ``ParentId``,
    ``RepoTags``, ``Created``, ``Labels``).

    Args:
        show_all: ``-a``: intermediate images too.
        filters: From :func:`parse`.
        resolve: Turns an image reference into its id (``before``/``since``; raises NoSuchImage).
        created: An image id's creation time in seconds, finer than ``Created``'s whole ones.
        reference: The ``REPOSITORY[:TAG]`` argument, a ``reference`` filter of its own.
    """
    parents = {item.get("ParentId") for item in items if item.get("ParentId")}
    limits = {key: [created(resolve(ref)) for ref in filters.get(key, [])] for key in ("before", "since")}
    dangling = filters.get("dangling", [])
    out = []
    for item in items:
        tags = list(item.get("RepoTags") or [])
        if not show_all and not tags and item["Id"] in parents and not dangling:
            continue  # an intermediate image: Docker shows it with -a only
        if dangling and any(v.lower() in ("true", "1") for v in dangling) != (not tags):
            continue
        patterns = [*filters.get("reference", []), *([reference] if reference else [])]
        if patterns:
            # Docker lists only the tags that match, so an image tagged twice shows one row
            tags = [t for t in tags if all(_tag_matches(p, [t]) for p in ([reference] if reference else []))
                    and (not filters.get("reference") or any(_tag_matches(p, [t]) for p in filters["reference"]))]
            if not tags:
                continue
            item = {**item, "RepoTags": tags}
        if limits["before"] and not all(created(item["Id"]) < t for t in limits["before"]):
            continue
        if limits["since"] and not all(created(item["Id"]) > t for t in limits["since"]):
            continue
        labels = item.get("Labels") or {}
        wanted = filters.get("label", [])
        if wanted and not all(_has_label(labels, spec) for spec in wanted):
            continue
        out.append(item)
    return out


def _has_label(labels: dict[str, str], spec: str) -> bool:
    key, eq, value = spec.partition("=")
    return key in labels and (not eq or labels[key] == value)
