"""Helpers for reading what a figure contains (imported by the tests of this folder)."""

from __future__ import annotations

from typing import Any


def by_gid(fig: Any, gid: str) -> list[Any]:
    """Every artist of ``fig`` whose gid is ``gid``."""
    return [a for a in fig.findobj() if a.get_gid() == gid]


def gids(fig: Any, prefix: str = "") -> set[str]:
    """The gids on ``fig`` that start with ``prefix``."""
    return {a.get_gid() for a in fig.findobj() if a.get_gid() and a.get_gid().startswith(prefix)}


def hex_face(artist: Any) -> str:
    """An artist's facecolour as ``#RRGGBB`` (upper case, as the palette writes it)."""
    from matplotlib.colors import to_hex

    return to_hex(artist.get_facecolor()).upper()


def hex_colour(artist: Any) -> str:
    """A line's or arrow's colour as ``#RRGGBB``."""
    from matplotlib.colors import to_hex

    get = getattr(artist, "get_color", None) or artist.get_edgecolor
    return to_hex(get()).upper()
