"""The stepper walks any trace forward and back; each step shows its sentence, mechanism and picture."""

from __future__ import annotations

import pytest

from labkit.model import events
from labkit.model.events import Step
from labkit.viz import layers, stepper

CID = "d" * 64
LAYERS = [{"role": "base OS", "size": 100, "files": 3}, {"role": "app code", "size": 10, "files": 1}]


def trace():
    made = [
        events.create_layer("/u"),
        events.mount_overlay(["/l2", "/l1"], "/u", "/w", "/m"),
        events.execve(["sleep", "9"], 4242),
        events.copy_up("/app/server.js", 10, 2),
        events.whiteout("/etc/old.conf"),
    ]
    return [Step(i, "run", CID, *e) for i, e in enumerate(made)]


def test_buttons_and_slider_move_and_redraw():
    """Step and Back move one step and change caption and picture; Reset returns to the first step."""
    s = stepper.Stepper(trace(), base=layers.scene("demo", LAYERS))
    assert s.index == 0 and "step 1 of 5" in s.caption.value and s.back_button.disabled
    first = s.image.value
    s.step_button.click()
    s.step_button.click()
    s.step_button.click()
    assert s.index == 3
    assert "copy-up" in s.caption.value and "overlayfs copy-up" in s.caption.value
    assert s.image.value != first
    s.back_button.click()
    assert s.index == 2 and "execve(2)" in s.caption.value
    s.slider.value = 4
    assert "whiteout" in s.caption.value and s.step_button.disabled
    s.reset_button.click()
    assert s.index == 0 and s.image.value == first


def test_play_drives_the_slider():
    """The Play widget is linked to the slider: its ticks move the shown step."""
    s = stepper.Stepper(trace(), base=layers.scene("demo", LAYERS))
    s.play.value = 3
    assert s.index == 3 and "copy-up" in s.caption.value


def test_default_picture_accumulates_layer_changes():
    """The layer picture after step N has exactly the copy-ups and whiteouts up to N."""
    steps = trace()
    base = layers.scene("demo", LAYERS)
    assert layers.replay(base, steps[:3]).containers[0].changes == ()
    after = layers.replay(base, steps[:5]).containers[0]
    assert {c.kind for c in after.changes} == {"copy-up", "whiteout"}


def test_lifecycle_trace_draws_the_status_reached():
    """A trace without layer steps is drawn as the lifecycle with the status reached so far."""
    steps = [Step(0, "run", CID, *events.execve(["true"], 1)), Step(1, "run", CID, *events.exited(0))]
    assert stepper.status_after(steps, 0) == "running" and stepper.status_after(steps, 1) == "exited"
    s = stepper.Stepper(steps)
    running = s.image.value
    s.step()
    assert s.image.value != running


def test_empty_trace_is_refused():
    """There is nothing to step through in an empty trace."""
    from labkit.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match="empty"):
        stepper.Stepper([])


@pytest.mark.root
def test_real_trace_steps(engine, lesson_image):
    """A real run's trace steps through to the copy-up the container caused."""
    base = layers.gather(engine, [lesson_image])
    with engine.tracing() as steps:
        engine.run(lesson_image, ["sleep", "30"], detach=True, name="viz-step")
        engine.exec_output("viz-step", "echo x >> /app/server.js")
    s = stepper.Stepper(steps, base=base)
    s.slider.value = len(steps) - 1
    assert "copy-up" in s.caption.value
    final = layers.replay(base, steps)
    assert [c.path for c in final.containers[0].changes if c.kind == "copy-up"] == ["/app/server.js"]
