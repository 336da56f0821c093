"""Image references: Docker's ``NAME[:TAG]`` grammar, and the name it normalises one to.

``busybox``, ``busybox:latest`` and ``docker.io/library/busybox:latest`` name one
image: :func:`parse_ref` splits a reference into its repository and tag, and
refuses, in Docker's words, what Docker refuses.
"""

from __future__ import annotations

import re

from labkit.errors import InvalidArgument

# docker/distribution's reference grammar (reference/regexp.go), without digests.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?)"
_NAME_RE = re.compile(rf"^(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")


def parse_ref(ref: str) -> tuple[str, str]:
    """Split an image reference into ``(repository, tag)`` the way Docker normalises it.

    ``busybox`` → ``("busybox", "latest")``; ``docker.io/library/nginx:1.25``
    → ``("nginx", "1.25")``; ``localhost:5000/app`` keeps its registry.

    Raises:
        InvalidArgument: ``invalid reference format`` (Docker's words) for
            anything the reference grammar rejects, such as upper case,
            an empty tag or a digest (labkit images have no registry digests).
    """
    if not isinstance(ref, str) or not ref or "@" in ref:
        raise InvalidArgument("invalid reference format", _ref_hint(ref))
    name, tag = ref, "latest"
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        name, tag = ref[:colon], ref[colon + 1 :]
        if not _TAG_RE.match(tag):
            raise InvalidArgument("invalid reference format", _ref_hint(ref))
    if len(name) > 255 or not _NAME_RE.match(name):
        if name.lower() != name and _NAME_RE.match(name.lower()):
            raise InvalidArgument(
                f"invalid reference format: repository name ({name}) must be lowercase", _ref_hint(ref)
            )
        raise InvalidArgument("invalid reference format", _ref_hint(ref))
    for prefix in ("docker.io/library/", "index.docker.io/library/", "docker.io/", "index.docker.io/"):
        if name.startswith(prefix) and "/" not in name[len(prefix) :]:
            name = name[len(prefix) :]
            break
    return name, tag


def _ref_hint(ref: object) -> str:
    return f"{ref!r} is not NAME[:TAG]; names are lower case, like 'busybox' or 'frontend-app:v2.1.0'"


def normalize_ref(ref: str) -> str:
    """``name:tag`` for a reference (``nginx`` → ``nginx:latest``), or ``ref`` unchanged if it is an id."""
    if ref.startswith("sha256:"):
        return ref
    try:
        name, tag = parse_ref(ref)
    except InvalidArgument:
        return ref
    return f"{name}:{tag}"
