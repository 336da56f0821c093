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
    s.slider.value = 5
    assert "whiteout" in s.caption.value and s.step_button.disabled
    s.reset_button.click()
    assert s.index == 0 and s.image.value == first


def test_play_drives_the_slider():
    """The Play widget is linked to the slider: its ticks move the shown step."""
    s = stepper.Stepper(trace(), base=layers.scene("demo", LAYERS))
    s.play.value = 4
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
    """A real run's trace steps through to the copy-up the container caused: its lookup, /app copied up, the copy
    and the write on it."""
    base = layers.gather(engine, [lesson_image])
    with engine.tracing() as steps:
        engine.run(lesson_image, ["sleep", "30"], detach=True, name="viz-step")
        engine.exec_output("viz-step", "echo x >> /app/server.js")
    s = stepper.Stepper(steps, base=base)
    assert [st.kind for st in steps][-4:] == ["lookup", "copy-up-dir", "copy-up", "write-upper"]
    s.goto(len(steps) - 2)
    assert "copy-up" in s.caption.value
    final = layers.replay(base, steps)
    assert [c.path for c in final.containers[0].changes if c.kind == "copy-up"] == ["/app/server.js"]


def long_layer_trace(n=1000):
    """Two containers created, then n steps of copy-ups, whiteouts and new files over a few dozen paths."""
    other = "e" * 64
    made = [(CID, events.create_layer("/u1")), (other, events.create_layer("/u2"))]
    for i in range(n - 2):
        cid = (CID, other)[i % 2]
        pick = i % 3
        e = (events.copy_up(f"/etc/f{i % 17}", 10 + i, 1 + i % 2) if pick == 0 else
             events.whiteout(f"/var/w{i % 7}") if pick == 1 else events.added(f"/tmp/n{i % 13}", i))
        made.append((cid, e))
    return [Step(i, "exec", cid, *e) for i, (cid, e) in enumerate(made)]


def test_walk_backed_scene_matches_replaying_the_prefix():
    """At every position the stepper's layer scene holds the same entries as replaying every step up to it."""
    steps = long_layer_trace(200)
    base = layers.scene("demo", LAYERS)
    pics = stepper.TracePictures(steps, base)
    order = list(range(len(steps))) + list(range(len(steps) - 1, -1, -7))  # forward, then jumps back
    for i in order:
        got = pics.scene(i)
        want = layers.replay(base, steps[: i + 1])
        assert [w.id for w in got.containers] == [w.id for w in want.containers], i
        for g, w in zip(got.containers, want.containers, strict=True):
            assert [(c.path, c.kind, c.bytes, c.from_layer) for c in g.changes] == \
                   [(c.path, c.kind, c.bytes, c.from_layer) for c in w.changes], i


def test_back_replays_a_bounded_number_of_steps(monkeypatch):
    """Back at the end of a 1 000-step trace applies at most one checkpoint's worth of steps, not the whole prefix."""
    from labkit.model import walk

    steps = long_layer_trace(1000)
    s = stepper.Stepper(steps, base=layers.scene("demo", LAYERS))
    s.goto(len(steps) - 1)
    applied = []
    real = walk.apply
    monkeypatch.setattr(walk, "apply", lambda state, step: (applied.append(step.seq), real(state, step))[1])
    for _ in range(3):
        before = len(applied)
        s.back()
        assert len(applied) - before <= walk.CHECKPOINT
    before = len(applied)
    s.step()  # onto positions already shown: their cached pictures, no walking at all
    s.step()
    assert len(applied) == before and "step 999 of 1000" in s.caption.value


def test_base_containers_gain_the_traces_entries_and_statuses():
    """A container of the base scene keeps its entries, gains the trace's, shows the walked status and who serves the path."""
    base = layers.scene("demo", LAYERS, [{"id": CID, "name": "web", "status": "running",
                                          "upper": [{"path": "/etc/old", "type": "whiteout", "size": 0}]}],
                        path="/app/server.js")
    steps = [Step(0, "exec", CID, *events.copy_up("/app/server.js", 10, 2)), Step(1, "pause", CID, *events.freeze(True)),
             Step(2, "rm", CID, *events.remove_layer("/u"))]
    pics = stepper.TracePictures(steps, base)
    (w,) = pics.scene(0).containers
    assert {c.path: c.kind for c in w.changes} == {"/etc/old": "whiteout", "/app/server.js": "copy-up"}
    assert (w.name, w.status, w.serves, w.size, w.files) == ("web", "running", "upper", 10, 2)
    assert pics.scene(1).containers[0].status == "paused"
    assert pics.scene(2).containers == ()
    assert pics.scene(0).containers[0].changes[0].path == "/app/server.js"  # back again after the removal


def test_lifecycle_status_of_a_container_made_before_the_trace():
    """A trace recorded around stop shows no status until the exit says exited, then deleted once its layer is gone."""
    steps = [Step(0, "stop", CID, *events.signal(15, 42)), Step(1, "stop", CID, *events.exited(143)),
             Step(2, "rm", CID, *events.remove_layer("/u"))]
    pics = stepper.TracePictures(steps)
    assert [pics.status(i) for i in (0, 1, 2, 1, 0)] == [None, "exited", "deleted", "exited", None]


def test_cache_keeps_the_last_positions_only():
    """Playing through a long trace keeps at most CACHE pictures; the latest positions stay cached."""
    steps = [Step(i, "run", CID, *events.freeze(i % 2 == 0)) for i in range(stepper.CACHE + 5)]
    s = stepper.Stepper(steps, render=lambda i: _tiny_figure())
    for i in range(len(steps)):
        s.goto(i)
    assert len(s._cache) == stepper.CACHE and len(steps) - 1 in s._cache and 0 not in s._cache


def _tiny_figure():
    from labkit.viz import palette as P

    return P.figure(1, 1)


def test_goto_jumps_to_any_step_and_redraws():
    """goto(i) shows step i's caption and picture, -1 is the last step, and an index past the end is refused."""
    from labkit.errors import InvalidArgument

    s = stepper.Stepper(trace(), base=layers.scene("demo", LAYERS))
    first = s.image.value
    s.goto(3)
    assert s.index == 3 and "copy-up" in s.caption.value and s.image.value != first
    s.goto(-1)
    assert s.index == 4 and s.step_button.disabled
    s.goto(0)
    assert s.image.value == first
    for bad in (5, -6):
        with pytest.raises(InvalidArgument):
            s.goto(bad)
    assert s.index == 0, "a refused goto leaves the stepper where it was"


def test_state_is_the_model_after_the_shown_step():
    """state follows the shown step: PID 1 and its command, the layers, the writable layer's entries, the status."""
    s = stepper.Stepper(trace(), base=layers.scene("demo", LAYERS))
    assert s.state[CID].upper == {} and s.state[CID].pid == 0
    s.goto(2)
    box = s.state[CID]
    assert (box.status, box.pid, box.argv, box.lowers, box.mounted) == (
        "running", 4242, ("sleep", "9"), ("/l2", "/l1"), True)
    s.goto(-1)
    assert dict(s.state[CID].upper) == {"/app/server.js": {"kind": "copy-up", "bytes": 10, "from_layer": 2},
                                        "/etc/old.conf": {"kind": "whiteout"}}
    s.back()
    assert "/etc/old.conf" not in s.state[CID].upper, "Back takes the whiteout away again"
    with pytest.raises(TypeError):
        s.state[CID] = None  # type: ignore[index]
    with pytest.raises(AttributeError):
        s.state = {}  # type: ignore[misc]


def test_served_by_after_the_shown_step():
    """Which layer serves a path changes as the steps do: the image layer a copy-up names, then the upper, or hidden."""
    s = stepper.Stepper(trace(), base=layers.scene("demo", LAYERS))
    s.goto(2)
    assert s.served_by(CID, "/app/server.js") == 2 and s.served_by(CID, "/etc/old.conf") == "image"
    s.goto(-1)
    assert s.served_by(CID, "/app/server.js") == "upper" and s.served_by(CID, "/etc/old.conf") == "hidden"


def test_state_with_a_renderer_of_ones_own():
    """A custom renderer still gets a state to read: the stepper walks the steps itself."""
    s = stepper.Stepper(trace(), render=lambda i: layers.draw(layers.scene("demo", LAYERS)))
    s.goto(3)
    assert s.state[CID].upper["/app/server.js"]["kind"] == "copy-up"


@pytest.mark.parametrize("layered", [True, False])
def test_a_figure_drawn_again_is_the_same_picture_as_a_new_one(layered):
    """Drawing a position on the figure of earlier positions gives the same PNG as drawing it on a new figure."""
    from labkit.viz import palette as P

    steps = long_layer_trace(60) if layered else [Step(i, "run", CID, *events.freeze(i % 2 == 0)) for i in range(9)]
    pics = stepper.TracePictures(steps, layers.scene("demo", LAYERS))
    assert pics.layered is layered
    fig = None
    for i in (len(steps) - 1, 3, 0, len(steps) // 2):
        fig = pics(i, into=fig)
        assert P.png(fig) == P.png(pics(i)), i
        assert P.texts(fig) == P.texts(pics(i)), i


def texts(fig):
    """Every text the figure shows."""
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def test_the_slider_reads_the_step_the_caption_names():
    """At every position the slider shows the number the caption counts ("step 3 of 5" sits at 3)."""
    s = stepper.Stepper(trace(), base=layers.scene("demo", LAYERS))
    for k in range(5):
        s.goto(k)
        assert s.slider.value == k + 1 and f"step {k + 1} of 5" in s.caption.value
        assert s.play.min == s.slider.min == 1 and s.play.max == s.slider.max == 5


def test_a_single_step_is_shown_without_controls():
    """Over one step, Step, Back, Play and the slider would do nothing: only the caption and picture are shown."""
    s = stepper.Stepper(trace()[:1])
    assert s.widget.children == (s.caption, s.image)
    assert len(stepper.Stepper(trace()).widget.children) == 3


def test_without_a_base_the_picture_stacks_the_layers_the_trace_mounted():
    """The title counts the read-only layers the mount-overlay step stacked, at every step (before the mount
    too: an image's layers do not change), and never claims layer sizes the trace does not hold."""
    pictures = stepper.TracePictures(trace())
    for k in range(len(trace())):
        title = texts(pictures(k))
        assert "image: 1 container on 2 shared read-only layers" in title, (k, title)
        assert any("its size is not in the trace" in t for t in title)


def test_after_a_remove_the_picture_says_the_container_was_removed():
    """After remove-layer the writable layer is gone and the picture says so, not "no container yet"."""
    steps = trace() + [Step(5, "rm", CID, *events.remove_layer("/u"))]
    fig = stepper.TracePictures(steps)(5)
    said = texts(fig)
    assert not any("no container yet" in t for t in said)
    assert any(t.startswith(CID[:12]) and "removed" in t for t in said), said


def test_a_running_container_with_no_traced_write_is_not_called_empty():
    """A real trace holds the engine's writes only: once PID 1 ran, no entry means none recorded, not none made."""
    steps = [Step(0, "run", CID, *events.create_layer("/u")), Step(1, "run", CID, *events.mount_overlay(["/l"], "/u", "/w", "/m")),
             Step(2, "run", CID, "clone", "start", "clone(2)", {"status": "running", "pid": 7})]
    pictures = stepper.TracePictures(steps)
    assert any("nothing written yet" in t for t in texts(pictures(1)))
    after = texts(pictures(2))
    assert not any("nothing written yet" in t for t in after)
    assert any("no write recorded in this trace" in t for t in after)


def test_a_container_made_before_the_trace_is_not_called_empty():
    """A trace that begins by killing a container (07's fix: rm -f, then run) met a layer it did not see
    written: the picture says it was made before the trace, never "empty: nothing written yet"."""
    steps = [Step(0, "rm", CID, "signal", "kill", "kill(2)", {"signal": "SIGKILL"}),
             Step(1, "rm", CID, "exit", "ended", "wait4(2)", {"status": "exited", "exit_code": 137}),
             Step(2, "rm", CID, *events.remove_layer("/u"))]
    pictures = stepper.TracePictures(steps)
    for i in (0, 1):
        said = texts(pictures(i))
        assert not any("nothing written yet" in t for t in said), said
        assert any("made before this trace" in t for t in said), said


def test_the_lifecycle_picture_can_be_asked_for_over_a_layered_trace():
    """picture="lifecycle" draws the lifecycle diagram, with the status the Walk reached at each step."""
    steps = [Step(0, "run", CID, *events.create_layer("/u")),
             Step(1, "run", CID, "clone", "start", "clone(2)", {"status": "running", "pid": 7}),
             Step(2, "rm", CID, *events.remove_layer("/u"))]
    pictures = stepper.TracePictures(steps, picture="lifecycle")
    assert not pictures.layered
    for k, status in enumerate(["created", "running", "deleted"]):
        fig = pictures(k)
        assert pictures.status(k) == status
        boxes = {a.get_gid() for ax in fig.axes for a in ax.patches if (a.get_gid() or "").startswith("status:")}
        assert f"status:{status}" in boxes, (k, boxes)
    with pytest.raises(Exception, match="no picture named"):
        stepper.TracePictures(steps, picture="both")


@pytest.fixture(params=["linux", "sim"])
def either(request):
    """The session's real engine (root) or the simulator: the stepper must be right on both."""
    if request.param == "linux":
        from tests.conftest import IS_ROOT

        if not IS_ROOT:
            pytest.skip("needs root and the real kernel")
        return request.getfixturevalue("engine")
    return request.getfixturevalue("sim_lab")


def test_every_step_of_a_real_or_simulated_trace_is_drawn_from_the_walk(either):
    """08's recap (run, a write, stop, rm) stepped through without a base: at every step the caption and slider
    name it, the caption and the picture call the container by its name (never its id), the layer picture counts the containers and the read-only layers the walk holds, labels each writable
    layer with the status reached, says the container was removed after rm (never "no container yet"), and the
    lifecycle picture highlights the walk's status."""
    from matplotlib.colors import to_hex

    from labkit.viz import palette as P

    try:
        either.rm("viz-recap", force=True)
    except Exception:
        pass
    with either.tracing() as steps:
        c = either.run("busybox", ["sleep", "600"], name="viz-recap", detach=True)
        c.exec(["sh", "-c", "echo changed >> /etc/hostname"])
        c.stop(timeout=1)
        c.remove()
    mounted = [len((s.change or {}).get("lowers", ())) for s in steps if s.kind == "mount-overlay"]
    assert mounted and mounted[0] >= 1
    assert {st.name for st in steps if st.container} == {"viz-recap"}
    short_id = c.id[:12]
    s = stepper.Stepper(steps)
    pictures = stepper.TracePictures(steps)
    life = stepper.TracePictures(steps, picture="lifecycle")
    made = False
    for k, step in enumerate(steps):
        s.goto(k)
        assert s.slider.value == k + 1 and f"step {k + 1} of {len(steps)}" in s.caption.value
        state = pictures.state(k)
        said = texts(pictures(k))
        head = s.caption.value.split("</b>")[0]  # the sentence may name a path, such as the cgroup's, by the id
        assert "viz-recap" in head and short_id not in head, head
        assert not any(short_id in t for t in said), (k, step.kind, said)
        made = made or step.kind == "create-layer"
        if made:
            assert any("viz-recap" in t for t in said), (k, step.kind, said)
        if state:
            n = len(state)
            title = f"image: {n} container{'s' if n != 1 else ''} on {mounted[0]} shared read-only layer"
            assert any(t.startswith(title) for t in said), (k, step.kind, said[:2])
            for box in state.values():
                if box.status:
                    assert any(f"({box.status})" in t for t in said), (k, step.kind, box.status, said)
        elif made:
            assert any("removed: its writable layer was deleted with it" in t for t in said), (k, step.kind, said)
        assert not (made and any("no container yet" in t for t in said)), (k, step.kind)
        status = life.status(k)
        if status:
            fig = life(k)
            hot = [p.get_gid() for ax in fig.axes for p in ax.patches
                   if (p.get_gid() or "").startswith("status:") and to_hex(p.get_facecolor()).upper() == P.CURRENT.upper()]
            assert hot == [f"status:{status}"], (k, step.kind, status, hot)
    assert pictures.status(len(steps) - 1) == "deleted"
