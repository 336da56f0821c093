"""Pictures and widgets: what the kernel did, drawn from the engine's real (or simulated) state.

Every picture is a plain function that returns a :class:`matplotlib.figure.Figure`
(Agg canvas: it works outside Jupyter, and the CLI saves it with
``labkit show KIND NAME -o FILE``). Each module follows one shape:

* ``draw(data)`` — plain data in, figure out (pure, testable, fed by either backend);
* ``gather(engine, ...)`` — the thin adapter that reads the engine's real state;
* ``picture(engine, ...)`` — both in one call (``labkit.viz.layers.picture(lab, "web1", path=...)``);
  a :class:`labkit.Container` draws its own with ``show_layers(path=...)`` and ``show_walls()``.

Modules: :mod:`~labkit.viz.layers` (the layer stack, copy-ups, whiteouts),
:mod:`~labkit.viz.lifecycle` (the transitions table), :mod:`~labkit.viz.walls`
(host view vs container view), :mod:`~labkit.viz.resources` (cgroup counters over
time), :mod:`~labkit.viz.network`. Widgets (ipywidgets) compose the pictures:
:class:`~labkit.viz.stepper.Stepper`, :class:`~labkit.viz.explorer.CopyUpExplorer`,
:class:`~labkit.viz.lifecycle.LifecycleWidget`.

matplotlib is imported when a picture is drawn, ipywidgets when a widget is made;
``import labkit`` imports neither.
"""

from __future__ import annotations

from labkit._lazy import lazy

__all__ = ["CopyUpExplorer", "LifecycleWidget", "Stepper"]

__getattr__ = lazy(__name__, {"Stepper": "stepper", "CopyUpExplorer": "explorer", "LifecycleWidget": "lifecycle"})
