"""Colours, type sizes and the figure helpers every picture shares.

The colours are the Okabe–Ito palette (Okabe & Ito, *Color Universal Design*,
2008): eight hues that people with any common colour-vision deficiency can
still tell apart. Each picture gives a hue one meaning and keeps it — read-only
image layers are always blue, a container's writable layer always orange — and
never relies on hue alone: shapes (a tombstone, an arrow, a hatch) and words
carry the same information.

Type is large on purpose: the pictures are shown on projectors at the back of a
room, so nothing is smaller than :data:`SMALL` points on a figure about 13
inches wide.

Figures are built with :class:`matplotlib.figure.Figure` and the Agg canvas
directly, never through ``pyplot``: no global state, no display needed, and
nothing left open after a notebook cell or a CLI command.
"""

from __future__ import annotations

import io
from typing import Any

from labkit.model.humanize import human_size

# -- Okabe–Ito -------------------------------------------------------------------------------
BLACK = "#000000"
ORANGE = "#E69F00"
SKY_BLUE = "#56B4E9"
GREEN = "#009E73"
YELLOW = "#F0E442"
BLUE = "#0072B2"
VERMILLION = "#D55E00"
PURPLE = "#CC79A7"
GREY = "#7F7F7F"
LIGHT_GREY = "#E6E6E6"
WHITE = "#FFFFFF"

# -- meanings (one hue, one meaning, in every picture) ---------------------------------------
#: Read-only image layers (lowerdir).
LOWER = SKY_BLUE
#: A container's writable layer (upperdir) and everything about "the container".
UPPER = ORANGE
#: A copy-up: data moving from a lower layer into the upper one.
COPY_UP = VERMILLION
#: A whiteout (tombstone) hiding a lower name.
WHITEOUT = GREY
#: An opaque directory.
OPAQUE = PURPLE
#: "This layer serves the chosen path."
SERVES = GREEN
#: The host, seen from outside the container.
HOST = BLUE
#: The current state (lifecycle) and limits that were hit.
CURRENT = VERMILLION
#: Statuses and boxes that are not current.
IDLE = LIGHT_GREY

# -- type ------------------------------------------------------------------------------------
TITLE = 20
LABEL = 16
TEXT = 14
SMALL = 12
FONT = "DejaVu Sans"  # ships with matplotlib, so every machine draws the same glyphs (✎, ✝, →)

#: The writable-layer mark the lesson uses.
PENCIL = "\u270e"


#: The widgets' resolution (dots per inch). Figures are made at it, so a widget's PNG is drawn on the
#: renderer the figure already measured its text with (a new resolution would lay every label out again).
DPI = 80


def figure(width: float = 13.0, height: float = 7.5, into: Any = None) -> Any:
    """A new figure on the Agg canvas (no pyplot, no display), in inches.

    Args:
        width: Inches.
        height: Inches.
        into: A figure the same picture made here before, to draw on again instead of making a
            new one: its axes are emptied (:func:`blank_axes` finds them again) and it is resized.
            A widget that redraws on every click passes its own back, which keeps the canvas, its
            renderer and the text sizes measured on it (a new figure measures every label again).
    """
    if into is not None:
        for ax in into.axes:
            for artist in [*ax.texts, *ax.patches, *ax.lines, *ax.collections, *ax.images]:
                artist.remove()
            ax.ignore_existing_data_limits = True
        if tuple(into.get_size_inches()) != (width, height):
            into.set_size_inches(width, height)
        return into
    # matplotlib loads when a picture is drawn, not when labkit.viz is imported
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, facecolor=WHITE)
    FigureCanvasAgg(fig)
    return fig


#: The stamp on every picture drawn from the simulator's model (:func:`mark_simulated`).
SIMULATED = "SIMULATED"


def mark_simulated(fig: Any, simulated: bool = True) -> Any:
    """Stamp ``fig`` in its top left corner as drawn from the simulator's model, not from this host's kernel (a
    figure drawn again keeps one stamp; ``simulated`` false takes it away). Returns the figure."""
    for t in [t for t in fig.texts if t.get_gid() == "simulated"]:
        t.remove()
    if simulated:
        fig.text(0.005, 0.995, SIMULATED, ha="left", va="top", fontsize=SMALL, fontweight="bold", family=FONT,
                 color=WHITE,
                 gid="simulated", zorder=10,
                 bbox={"boxstyle": "round,pad=0.3", "facecolor": VERMILLION, "edgecolor": VERMILLION})
    return fig


def blank_axes(fig: Any, rect: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0),
               xlim: tuple[float, float] = (0.0, 100.0), ylim: tuple[float, float] = (0.0, 100.0)) -> Any:
    """Axes without ticks or frame, in a coordinate box of our choosing (0–100 by default).

    On a figure passed back to :func:`figure` (``into``), the blank axes already at ``rect``
    are used again.
    """
    ax = next((a for a in fig.axes if not a.axison and tuple(a.get_position(original=True).bounds) == rect), None)
    if ax is None:
        ax = fig.add_axes(rect)
        ax.set_axis_off()
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    return ax


def add_arrow(ax: Any, arrow: Any) -> Any:
    """Put a :class:`~matplotlib.patches.FancyArrowPatch` on axes from :func:`blank_axes`.

    ``add_patch`` would also grow the axes' data limits by the arrow's path, which means
    clipping its curve to the boxes it joins (0.8 ms for a curved arrow, against 0.05) for
    limits that blank axes fix anyway; ``add_artist`` does the rest of the same work.
    """
    return ax.add_artist(arrow)


#: Text is rasterised without FreeType's hinting: at these sizes it looks the same, and laying out
#: and drawing every label costs about a third less (text is most of a picture's render time).
RC: dict[str, Any] = {"text.hinting": "none"}


def png(fig: Any, dpi: int = DPI) -> bytes:
    """The figure as PNG bytes (for widgets and tests).

    Drawn on the figure's own canvas (at :data:`DPI`, the resolution it was made at, nothing is
    laid out again) and encoded by Pillow as RGB at zlib level 1: the figures are opaque, and
    without an alpha channel the file is 7–11 % smaller and encodes 13–25 % faster than
    Matplotlib's RGBA at level 3 (time a stepper click feels; the level matters less than the channel).
    """
    # Pillow loads when a picture is saved as PNG, not with every picture
    # matplotlib loads when a picture is drawn, not when labkit.viz is imported
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    own, old = fig.canvas, fig.dpi
    # A figure made elsewhere (a renderer of one's own) may have no raster canvas: lend it one.
    canvas = own if isinstance(own, FigureCanvasAgg) else FigureCanvasAgg(fig)
    try:
        if dpi != old:
            fig.set_dpi(dpi)
        with matplotlib.rc_context(RC):  # type: ignore[arg-type]
            canvas.draw()
        rgba = Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
        image = rgba.convert("RGB")
    finally:
        if dpi != old:
            fig.set_dpi(old)
        if canvas is not own:
            fig.set_canvas(own)
    buf = io.BytesIO()
    image.save(buf, format="png", compress_level=1)
    return buf.getvalue()


def save(fig: Any, path: str) -> None:
    """Save as PNG or SVG (by the file's extension), at a resolution fit for a projector."""
    # matplotlib loads when a picture is drawn, not when labkit.viz is imported
    import matplotlib

    with matplotlib.rc_context(RC):  # type: ignore[arg-type]
        fig.savefig(path, dpi=120, facecolor=fig.get_facecolor(), bbox_inches="tight")


def texts(fig: Any) -> list[str]:
    """Every string drawn on the figure (titles, labels, annotations): what a reader can read."""
    # matplotlib loads when a picture is drawn, not when labkit.viz is imported
    from matplotlib.text import Text

    return [t.get_text() for t in fig.findobj(Text) if t.get_text()]


def size_text(n: int) -> str:
    """Bytes as a short human size (``1.5 kB``, ``104 MB``), in Docker's decimal units."""
    return human_size(n)
