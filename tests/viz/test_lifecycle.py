"""The lifecycle diagram is the transitions table drawn; the widget's buttons obey the same table."""

from __future__ import annotations

import pytest

from labkit.model.lifecycle import TRANSITIONS, USER_VERBS, Move, Refused, Status, Verb
from labkit.viz import lifecycle
from labkit.viz import palette as P
from tests.viz.vizfigs import apart, by_gid, extent, gids, hex_colour, hex_face


def test_every_drawn_arrow_is_a_move_in_the_table():
    """Each edge's verbs lead from its source to its target in TRANSITIONS, and every such Move is drawn or boxed."""
    arrows, everywhere = lifecycle.edges()
    drawn = {(e.source, v): e.target for e in arrows for v in e.verbs}
    for (src, verb), dst in drawn.items():
        assert isinstance(TRANSITIONS[src][verb], Move) and TRANSITIONS[src][verb].to == dst
    boxed = dict(everywhere)
    assert boxed == {Verb.RESTART: Status.RUNNING, Verb.RM_FORCE: Status.DELETED}
    for src in lifecycle.LESSON:
        for verb, out in TRANSITIONS.get(src, {}).items():
            if isinstance(out, Move) and out.to != src and out.to in lifecycle.LESSON:
                assert drawn.get((src, verb)) == out.to or boxed.get(verb) == out.to, (src, verb)


def test_changing_the_table_changes_the_picture():
    """A table with one more Move gets one more arrow: the picture is read from the table, not drawn by hand."""
    table = {s: dict(row) for s, row in TRANSITIONS.items()}
    table[Status.CREATED][Verb.PAUSE] = Move(Status.PAUSED)
    fig = lifecycle.draw(table=table)
    assert "edge:created->paused" in gids(fig, "edge:")
    assert "edge:created->paused" not in gids(lifecycle.draw(), "edge:")


def test_statuses_are_written_and_the_current_one_highlighted():
    """All five lesson statuses appear; only the current one is vermillion, and arrows leaving it too."""
    fig = lifecycle.draw("paused", name="web")
    text = P.texts(fig)
    for s in ("created", "running", "paused", "exited", "deleted"):
        assert s in text
    assert hex_face(by_gid(fig, "status:paused")[0]) == P.CURRENT
    for s in ("created", "running", "exited", "deleted"):
        assert hex_face(by_gid(fig, f"status:{s}")[0]) == P.IDLE
    assert hex_colour(by_gid(fig, "edge:paused->running")[0]) == P.CURRENT
    assert hex_colour(by_gid(fig, "edge:created->running")[0]) == P.GREY
    assert "The container lifecycle: web is paused" in text
    assert any("refused: start, pause, rm, exec" in t for t in text)


def test_all_statuses_and_an_unusual_current_status_are_drawn():
    """With all_statuses every status has a box; a current status outside the lesson's five is added."""
    assert gids(lifecycle.draw(all_statuses=True), "status:") == {f"status:{s.value}" for s in Status}
    assert "status:restarting" in gids(lifecycle.draw("restarting"), "status:")


@pytest.mark.parametrize("current", [None, *Status])
@pytest.mark.parametrize("all_statuses", [True, False])
def test_arrow_labels_neither_touch_each_other_nor_the_boxes(current, all_statuses):
    """Every arrow's label keeps clear of every other label, every status box and the note, in both views."""
    fig = lifecycle.draw(current, all_statuses=all_statuses)
    labels = [t for t in fig.findobj() if (t.get_gid() or "").startswith("label:")]
    assert len(labels) == len(lifecycle.edges(statuses=list(Status) if all_statuses else
                                             list({*lifecycle.LESSON, *([current] if current else [])}))[0])
    boxes = [extent(fig, a) for a in fig.findobj() if (a.get_gid() or "").startswith("status:")]
    boxes += [extent(fig, a) for a in by_gid(fig, "everywhere")]
    placed = [(t.get_text(), extent(fig, t)) for t in labels]
    for i, (name, box) in enumerate(placed):
        for other, other_box in placed[i + 1:]:
            assert apart(box, other_box, gap=8), f"{name!r} touches {other!r}"
        assert all(apart(box, b, gap=8) for b in boxes), f"{name!r} touches a status box or the note"


def test_refusal_words_come_from_the_table():
    """The widget's error text for an illegal verb is the table's Refused message, filled in."""
    assert lifecycle.refusal(Status.EXITED, Verb.PAUSE, cid="abc") == "container abc is not running"
    assert lifecycle.refusal(Status.RUNNING, Verb.STOP) is None
    assert lifecycle.refusal(Status.DELETED, Verb.START, ref="web") == "No such container: web"
    moves, same, refused = lifecycle.verbs_from(Status.RUNNING)
    assert set(moves) | set(same) | set(refused) == set(USER_VERBS)
    assert all(isinstance(TRANSITIONS[Status.RUNNING][v], Refused) for v in refused)


@pytest.mark.root
def test_widget_buttons_call_the_engine_and_show_dockers_error(engine):
    """Legal buttons change the real container's status and the picture; an illegal one shows the table's error."""
    c = engine.create("busybox", ["sleep", "30"], name="viz-life")
    w = lifecycle.LifecycleWidget(engine, "viz-life", stop_timeout=0.5)
    assert w.status is Status.CREATED
    assert w.buttons[Verb.START].button_style == "success" and w.buttons[Verb.PAUSE].button_style == "danger"
    assert w.buttons[Verb.PAUSE].tooltip == f"container {c.id} is not running"
    first = w.image.value
    w.buttons[Verb.START].click()
    assert engine.inspect("viz-life")["State"]["Status"] == "running"
    assert w.status is Status.RUNNING and w.image.value != first
    assert "created → running" in w.message.value
    w.buttons[Verb.UNPAUSE].click()
    assert f"Container {c.id} is not paused" in w.message.value
    w.buttons[Verb.PAUSE].click()
    assert w.status is Status.PAUSED
    w.buttons[Verb.RM_FORCE].click()
    assert w.status is Status.DELETED
    assert w.buttons[Verb.START].tooltip == "No such container: viz-life"


def test_widget_says_a_removed_container_is_gone_and_how_to_bring_it_back(sim_lab):
    """A click on a container the notebook's clean-up removed shows Docker's error and what to do, not silence."""
    sim_lab.run("busybox", ["sleep", "300"], name="sim-life-gone", detach=True)
    w = lifecycle.LifecycleWidget(sim_lab, "sim-life-gone", stop_timeout=0.5)
    sim_lab.rm("sim-life-gone", force=True)
    w.buttons[Verb.STOP].click()
    assert "No such container: sim-life-gone" in w.message.value
    assert "sim-life-gone is gone" in w.message.value and "run the cell that creates it again" in w.message.value
    assert w.status is Status.DELETED
