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


def extent(fig: Any, artist: Any) -> Any:
    """Where ``artist`` lands on the Agg canvas, in pixels (a text's rounded box included, if it has one).

    The figure is drawn once first, so every text's box is where the picture shows it.
    """
    if not getattr(fig, "_drawn_for_extents", False):
        fig.canvas.draw()
        fig._drawn_for_extents = True
    renderer = fig.canvas.get_renderer()
    patch = artist.get_bbox_patch() if hasattr(artist, "get_bbox_patch") else None
    box = artist.get_window_extent(renderer)
    return box if patch is None else box.union([box, patch.get_window_extent(renderer)])


def apart(a: Any, b: Any, gap: float = 2.0) -> bool:
    """Two pixel boxes are at least ``gap`` pixels apart (neither overlapping nor touching)."""
    return a.x1 + gap <= b.x0 or b.x1 + gap <= a.x0 or a.y1 + gap <= b.y0 or b.y1 + gap <= a.y0
