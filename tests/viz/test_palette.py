"""The figure helpers every picture shares: a widget's PNG, and a figure drawn again."""

from __future__ import annotations

import io

from labkit.viz import palette as P


def test_png_is_an_opaque_picture_at_the_widgets_resolution():
    """png gives an RGB PNG of the figure's inches at DPI; another dpi scales it and leaves the figure's own."""
    from PIL import Image

    fig = P.figure(4.0, 2.5)
    P.blank_axes(fig).text(50, 50, "hello", fontsize=P.TEXT)
    image = Image.open(io.BytesIO(P.png(fig)))
    assert (image.format, image.mode, image.size) == ("PNG", "RGB", (4 * P.DPI, int(2.5 * P.DPI)))
    assert image.getpixel((0, 0)) == (255, 255, 255)
    half = Image.open(io.BytesIO(P.png(fig, dpi=P.DPI // 2)))
    assert half.size == (2 * P.DPI, int(1.25 * P.DPI)) and fig.dpi == P.DPI


def test_png_of_a_figure_made_elsewhere_lends_it_a_canvas():
    """A Figure made without this module's helpers (no raster canvas) still gives a PNG, and keeps its own canvas."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2.0, 1.0), dpi=50)
    own = fig.canvas
    assert P.png(fig).startswith(b"\x89PNG") and fig.canvas is own and fig.dpi == 50


def test_a_figure_passed_back_is_emptied_resized_and_keeps_its_axes():
    """figure(into=fig) removes the old picture's artists, takes the new size and blank_axes finds the same axes."""
    fig = P.figure(4.0, 3.0)
    ax = P.blank_axes(fig)
    ax.text(10, 10, "before")
    ax.plot([0, 1], [0, 1])
    again = P.figure(5.0, 3.0, into=fig)
    assert again is fig and tuple(fig.get_size_inches()) == (5.0, 3.0)
    assert P.blank_axes(fig, ylim=(-10.0, 100.0)) is ax and ax.get_ylim() == (-10.0, 100.0)
    assert P.texts(fig) == [] and not ax.lines and len(fig.axes) == 1
    assert P.blank_axes(fig, rect=(0.0, 0.0, 0.5, 1.0)) is not ax, "other axes are made, not taken from the figure"
