"""Whatever the simulator produced says so: its pictures are stamped, its steps and the lesson's cells say it."""

from __future__ import annotations

import pytest

from labkit.viz import layers, lifecycle, network, resources, stepper, walls
from labkit.viz import palette as P


@pytest.fixture(params=["linux", "sim"])
def either(request):
    """The session's real engine (root) or the simulator, each with the lesson's images."""
    if request.param == "linux":
        from tests.conftest import IS_ROOT

        if not IS_ROOT:
            pytest.skip("needs root and the real kernel")
        engine = request.getfixturevalue("engine")
        engine.setup(on_step=lambda _line: None)
        return engine
    return request.getfixturevalue("sim_lab")


def test_every_picture_of_the_simulator_is_stamped_and_no_real_one(either):
    """The layers, network, walls, resources and lifecycle pictures, a stepper's pictures and its caption say
    SIMULATED when they come from the simulator, and never when they come from this host's kernel."""
    simulated = either.backend.simulated
    with either.tracing() as steps:
        c = either.run("frontend-app:v2.1.0", ["sleep", "600"], name="viz-stamped", detach=True, memory="64m")
        c.exec(["sh", "-c", "echo x >> /app/server.js"])
    figures = {
        "layers": layers.draw(layers.gather(either, ["viz-stamped"], path="/app/server.js")),
        "network": network.draw(network.gather(either, "viz-stamped")),
        "walls": walls.draw(walls.gather(either, "viz-stamped")),
        "resources": resources.draw(resources.sample(either, "viz-stamped", seconds=0.2)),
        "lifecycle": lifecycle.picture(either, "viz-stamped"),
        "stepper layers": stepper.TracePictures(steps)(len(steps) - 1),
        "stepper lifecycle": stepper.TracePictures(steps, picture="lifecycle")(0),
    }
    for what, fig in figures.items():
        assert (P.SIMULATED in P.texts(fig)) == simulated, what
    assert all(s.simulated == simulated for s in steps)
    s = stepper.Stepper(steps)
    assert ("simulated, as the kernel would do it" in s.caption.value) == simulated
    again = P.mark_simulated(P.mark_simulated(figures["layers"], simulated), simulated)
    assert P.texts(again).count(P.SIMULATED) == int(simulated)  # drawn again, stamped once
    c.remove(force=True)


def test_a_cell_that_used_the_simulator_says_so_and_no_other(sim_lab, capsys):
    """The lesson prints its SIMULATED line under a cell that entered a simulated world, and nothing under a
    cell that did not (the same checks a notebook's cells pass through)."""
    from labkit.lesson import SIMULATED_NOTE, Lesson

    lesson = Lesson(sim_lab)
    try:
        lesson._before_cell()
        print("a cell without the engine")
        lesson._after_cell(None)
        assert SIMULATED_NOTE not in capsys.readouterr().out
        lesson._before_cell()
        sim_lab.run("busybox", ["true"], auto_remove=True)
        lesson._after_cell(None)
        assert SIMULATED_NOTE in capsys.readouterr().out
    finally:
        lesson.detach()
        lesson.cleanup(quiet=True)
