"""The layer picture shows what overlayfs did: shared read-only layers, one writable layer each,
copy-ups as arrows with their bytes, whiteouts as tombstones, opaque dirs, and who serves a path."""

from __future__ import annotations

import os

import pytest

from labkit.model import events
from labkit.model.events import Step
from labkit.model.overlay import Overlay
from labkit.viz import layers
from labkit.viz import palette as P
from tests.viz.vizfigs import apart, by_gid, extent, gids, hex_colour, hex_face

LAYERS = [
    {"role": "base OS", "size": 1_982_425, "files": 285},
    {"role": "runtime", "size": 104_330_536, "files": 14},
    {"role": "app code", "size": 1577, "files": 3},
]
WEB1 = {
    "name": "web1",
    "upper": [
        {"path": "/app", "type": "dir", "size": 0},
        {"path": "/app/server.js", "type": "file", "size": 1470},
        {"path": "/app/package.json", "type": "whiteout", "size": 0},
        {"path": "/etc", "type": "dir", "size": 0, "opaque": True},
        {"path": "/tmp", "type": "dir", "size": 0},
        {"path": "/tmp/new.txt", "type": "file", "size": 5},
    ],
    "below": {"/app": {"layer": 3, "size": 0}, "/app/server.js": {"layer": 3, "size": 1459},
              "/etc": {"layer": 1, "size": 0}, "/tmp": {"layer": 1, "size": 0}},
    "serves": "upper",
}
WEB2 = {"name": "web2", "upper": [], "below": {}, "serves": 3}


def lesson_scene(path="/app/server.js"):
    return layers.scene("frontend-app:v2.1.0", LAYERS, [WEB1, WEB2], path)


def test_scene_classifies_upper_entries_by_overlayfs_rules():
    """A file the image also has is a copy-up (lower size = bytes copied), char 0/0 a whiteout, an xattr'd dir opaque, the rest new."""
    sc = lesson_scene()
    kinds = {c.path: (c.kind, c.bytes, c.from_layer) for c in sc.containers[0].changes}
    assert kinds == {
        "/app/server.js": ("copy-up", 1459, 3),
        "/app/package.json": ("whiteout", 0, None),
        "/etc": ("opaque", 0, None),
        "/tmp/new.txt": ("add", 5, None),
    }
    assert sc.containers[0].files == 6 and sc.containers[0].size == 1475
    assert [lay.number for lay in sc.layers] == [1, 2, 3]


def test_figure_labels_each_layer_with_role_size_and_file_count():
    """Every image layer's role, size and file count, and each container's name and files, are written on the figure."""
    fig = layers.draw(lesson_scene())
    text = "\n".join(P.texts(fig))
    for role in ("base OS", "runtime", "app code"):
        assert role in text
    assert "104.3MB · 14 files · read-only" in text
    assert "285 files" in text
    for name in ("web1", "web2", "/app/server.js", "/app/package.json", "/tmp/new.txt"):
        assert name in text


def test_upper_and_lower_layers_have_their_own_colours():
    """Writable layers are orange and read-only layers blue: one hue, one meaning."""
    fig = layers.draw(lesson_scene())
    assert gids(fig, "lower:") == {"lower:1", "lower:2", "lower:3"}
    assert gids(fig, "upper:") == {"upper:web1", "upper:web2"}
    assert all(hex_face(a) == P.LOWER for n in (1, 2, 3) for a in by_gid(fig, f"lower:{n}"))
    assert all(hex_face(a) == P.UPPER for n in ("web1", "web2") for a in by_gid(fig, f"upper:{n}"))
    assert P.LOWER != P.UPPER


def test_copy_up_is_an_arrow_with_its_bytes_and_whiteout_a_tombstone():
    """The copy-up is an arrow from layer 3 up to the writable layer labelled 1.459kB; the whiteout a tombstone; the opaque dir marked."""
    fig = layers.draw(lesson_scene())
    (arrow,) = by_gid(fig, "copy-up:/app/server.js")
    (x0, y0), (x1, y1) = arrow._posA_posB  # from the layer band up to the writable layer
    lo, hi = layers._lower_band(lesson_scene(), 3)
    assert lo <= y0 <= hi and y1 == layers._UP_BOTTOM and x0 == x1
    assert "server.js 1.459kB" in P.texts(fig)
    assert len(by_gid(fig, "tombstone:/app/package.json")) == 1
    assert hex_face(by_gid(fig, "tombstone:/app/package.json")[0]) == P.WHITEOUT
    assert len(by_gid(fig, "opaque:/etc")) == 1
    assert not gids(fig, "copy-up:/tmp")  # a new file is not a copy-up


def crowded_scene():
    """Two containers with more entries than fit: new files sort first by path, copy-ups and whiteouts after."""
    cache = [{"path": f"/app/cache/p{i}.html", "type": "file", "size": 2000} for i in range(12)]
    web1 = {**WEB1, "upper": WEB1["upper"] + cache + [{"path": "/app/cache", "type": "dir", "size": 0}],
            "below": {**WEB1["below"], "/etc/hosts": {"layer": 1, "size": 174}}}
    web1["upper"].append({"path": "/etc/hosts", "type": "file", "size": 180})
    web2 = {"name": "web2", "upper": cache[:9] + [{"path": "/etc/motd", "type": "whiteout", "size": 0}],
            "below": {}, "serves": 3}
    return layers.scene("frontend-app:v2.1.0", LAYERS, [web1, web2], "/app/server.js")


def test_crowded_layer_lists_what_overlayfs_did_first_and_counts_the_rest():
    """With more entries than rows, copy-ups, whiteouts and opaque dirs are listed before new files, and the rest counted."""
    sc = crowded_scene()
    shown, more = layers.shown_entries(sc.containers[0])
    assert [c.kind for c in shown] == ["copy-up", "copy-up", "whiteout", "opaque", "add"]
    assert more == len(sc.containers[0].changes) - len(shown) > 0
    fig = layers.draw(sc)
    assert f"… and {more} more" in P.texts(fig)
    assert by_gid(fig, "tombstone:/etc/motd")  # web2's only whiteout is listed, though nine new files sort before it


def test_crowded_layer_rows_stay_apart_and_inside_their_box():
    """Each writable layer's rows, its "… and N more" line and its serving note neither touch nor leave the box."""
    fig = layers.draw(crowded_scene())
    for name in ("web1", "web2"):
        (box,) = by_gid(fig, f"upper:{name}")
        frame = extent(fig, box)
        rows = [t for t in fig.findobj() if (t.get_gid() or "").startswith((f"entry:{name}:", f"more:{name}"))]
        rows += [t for t in fig.findobj() if hasattr(t, "get_text") and t.get_text().startswith("/app/server.js: ")
                 and frame.x0 <= extent(fig, t).x0 <= frame.x1]
        assert len(rows) == layers.MAX_LINES + 1
        boxes = [(t.get_text(), extent(fig, t)) for t in rows]
        for i, (text, b) in enumerate(boxes):
            assert frame.x0 <= b.x0 and b.x1 <= frame.x1 and frame.y0 <= b.y0 and b.y1 <= frame.y1, text
            for other, ob in boxes[i + 1:]:
                assert apart(b, ob), f"{text!r} touches {other!r}"
    labels = [extent(fig, t) for t in fig.findobj() if (t.get_gid() or "").startswith("copy-up-label:")]
    assert len(labels) == 2
    assert all(apart(a, b) for i, a in enumerate(labels) for b in labels[i + 1:])


def test_chosen_path_is_framed_in_the_layer_that_serves_it():
    """web1 serves /app/server.js from its writable layer, web2 from L3: each gets a green frame and says so."""
    fig = layers.draw(lesson_scene())
    assert gids(fig, "serves:") == {"serves:web1", "serves:web2"}
    text = P.texts(fig)
    assert "/app/server.js: served by the writable layer" in text
    assert "/app/server.js: served by L3 (app code)" in text


def test_image_alone_draws_its_layers_and_no_writable_layer():
    """Without containers only the shared layers are drawn."""
    fig = layers.draw(layers.scene("busybox:latest", LAYERS[:1]))
    assert gids(fig, "upper:") == set() and gids(fig, "lower:") == {"lower:1"}


def test_pure_overlay_model_feeds_the_same_picture():
    """The simulator's overlay model gives the same scene: copy-up bytes, whiteout, new file, serving layer."""
    base = Overlay.from_trees({"app": {"server.js": "x" * 100, "package.json": "{}"}}, {"etc": {"passwd": "root"}})
    ov, _ = base.write("/app/server.js", b"y", append=True)
    ov, _ = ov.unlink("/app/package.json")
    ov, _ = ov.write("/tmp.txt", b"hello")
    sc = layers.scene_from_overlays({"web": ov, "idle": base}, roles=("base OS", "app code"), image="demo",
                                    path="/etc/passwd")
    kinds = {c.path: (c.kind, c.bytes, c.from_layer) for c in sc.containers[0].changes}
    assert kinds == {"/app/server.js": ("copy-up", 100, 2), "/app/package.json": ("whiteout", 0, None),
                     "/tmp.txt": ("add", 5, None)}
    assert [(lay.number, lay.role) for lay in sc.layers] == [(1, "base OS"), (2, "app code")]
    assert sc.containers[0].serves == 1 and sc.containers[1].serves == 1
    fig = layers.draw(sc)
    assert by_gid(fig, "copy-up:/app/server.js") and by_gid(fig, "tombstone:/app/package.json")


def test_trace_steps_replay_onto_the_scene():
    """Replaying create-layer, copy-up and whiteout steps builds the writable layer; remove-layer takes it away."""
    cid = "c" * 64
    base = layers.scene("demo", LAYERS)
    mk = [events.create_layer("/u"), events.copy_up("/app/server.js", 1459, 3), events.whiteout("/app/package.json")]
    steps = [Step(i, "run", cid, *e) for i, e in enumerate(mk)]
    sc = layers.replay(base, steps)
    (w,) = sc.containers
    assert w.id == cid and {c.path: c.kind for c in w.changes} == {"/app/server.js": "copy-up",
                                                                   "/app/package.json": "whiteout"}
    gone = sc.after(Step(9, "rm", cid, *events.remove_layer("/u")))
    assert gone.containers == ()


@pytest.mark.root
def test_real_container_write_and_delete_show_arrow_and_tombstone(engine, lesson_image):
    """A real container that appends to an image file and deletes another: the picture has the copy-up arrow and the tombstone."""
    engine.run(lesson_image, ["sleep", "30"], detach=True, name="viz-layers-a")
    engine.run(lesson_image, ["sleep", "30"], detach=True, name="viz-layers-b")
    code, out = engine.exec_output("viz-layers-a", "echo more >> /app/server.js && rm /app/package.json")
    assert code == 0, out
    sc = layers.gather(engine, ["viz-layers-a", "viz-layers-b"], path="/app/server.js")
    assert [lay.role for lay in sc.layers] == ["base OS", "runtime", "app code"]
    a, b = sc.containers
    changes = {c.path: c for c in a.changes}
    size = os.path.getsize(os.path.join(engine.image_store.get(lesson_image).layers[2].path, "app/server.js"))
    assert changes["/app/server.js"].kind == "copy-up" and changes["/app/server.js"].bytes == size
    assert changes["/app/server.js"].from_layer == 3
    assert changes["/app/package.json"].kind == "whiteout"
    assert (a.serves, b.serves) == ("upper", 3)
    fig = layers.draw(sc)
    assert by_gid(fig, "copy-up:/app/server.js") and by_gid(fig, "tombstone:/app/package.json")
    assert f"server.js {P.size_text(size)}" in P.texts(fig)


@pytest.mark.root
def test_real_image_alone_and_mixed_images_refused(engine, lesson_image):
    """An image name draws its three layers; containers of different images are refused in one sentence."""
    sc = layers.gather(engine, [lesson_image])
    assert len(sc.layers) == 3 and sc.containers == ()
    engine.run(lesson_image, ["sleep", "30"], detach=True, name="viz-layers-c")
    engine.run("busybox", ["sleep", "30"], detach=True, name="viz-layers-d")
    from labkit.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match="different images"):
        layers.gather(engine, ["viz-layers-c", "viz-layers-d"])


# -- the same picture from a simulator engine --------------------------------------------------------

def test_sim_copy_up_is_drawn_in_the_writable_layer_that_now_serves_the_file(sim_lab):
    """On the simulator, an append to /app/server.js shows in A's writable layer as a vermillion copy-up arrow from
    L3 with the file's bytes, A's green frame moves to its writable layer, and B's layer stays empty, served by L3."""
    from labkit.viz import explorer

    sim_lab.run("frontend-app:v2.1.0", ["sleep", "600"], detach=True, name="sim-layers-a")
    sim_lab.run("frontend-app:v2.1.0", ["sleep", "600"], detach=True, name="sim-layers-b")
    change = explorer.run_action(sim_lab, "sim-layers-a", "append", "/app/server.js")
    assert change.exit_code == 0 and change.copied > 0
    assert {"Path": "/app/server.js", "Kind": 0} in sim_lab.diff("sim-layers-a")
    sc = layers.gather(sim_lab, ["sim-layers-a", "sim-layers-b"], path="/app/server.js")
    assert [lay.role for lay in sc.layers] == ["base OS", "runtime", "app code"]
    a, b = sc.containers
    assert [(c.kind, c.path, c.bytes, c.from_layer) for c in a.changes] == [
        ("copy-up", "/app/server.js", change.copied, 3)]
    assert (a.serves, b.serves) == ("upper", 3) and b.changes == ()
    fig = layers.draw(sc)
    (arrow,) = by_gid(fig, "copy-up:/app/server.js")
    assert hex_colour(arrow) == P.COPY_UP
    assert all(hex_face(p) == P.UPPER for n in ("sim-layers-a", "sim-layers-b") for p in by_gid(fig, f"upper:{n}"))
    assert all(hex_face(p) == P.LOWER for n in (1, 2, 3) for p in by_gid(fig, f"lower:{n}"))
    (frame_a,) = by_gid(fig, "serves:sim-layers-a")
    (frame_b,) = by_gid(fig, "serves:sim-layers-b")
    assert frame_a.get_y() == layers._UP_BOTTOM and frame_b.get_y() == layers._lower_band(sc, 3)[0]
    text = P.texts(fig)
    assert "/app/server.js  copied up from L3" in text
    assert f"server.js {P.size_text(change.copied)}" in text
    assert "/app/server.js: served by the writable layer" in text and "/app/server.js: served by L3 (app code)" in text
    assert text.count("empty: nothing written yet") == 1  # B's only


def test_sim_delete_is_a_tombstone_and_hides_the_path(sim_lab):
    """On the simulator, deleting /etc/group (base OS) copies /etc up, draws a grey tombstone and says the path is
    hidden."""
    from labkit.viz import explorer

    sim_lab.run("frontend-app:v2.1.0", ["sleep", "600"], detach=True, name="sim-layers-c")
    gone = explorer.run_action(sim_lab, "sim-layers-c", "delete", "/etc/group")
    # overlayfs copies the parent directory up first, then puts the whiteout in it
    assert [(s.kind, s.change["path"]) for s in gone.steps] == [("copy-up-dir", "/etc"), ("whiteout", "/etc/group")]
    sc = layers.gather(sim_lab, ["sim-layers-c"], path="/etc/group")
    assert [(c.kind, c.path) for c in sc.containers[0].changes] == [("whiteout", "/etc/group")]
    assert sc.containers[0].serves == "hidden"
    fig = layers.draw(sc)
    (stone,) = by_gid(fig, "tombstone:/etc/group")
    assert hex_face(stone) == P.WHITEOUT
    assert "/etc/group: hidden by a whiteout" in P.texts(fig)
    assert not gids(fig, "serves:")


def test_sim_file_removed_and_made_again_is_drawn_new_as_its_trace_tells_it(sim_lab):
    """On the simulator, /etc/group removed and made again is a new file of the writable layer in the picture, not
    a copy-up arrow, and the trace of the exec, replayed, ends with the same: a whiteout, then the add."""
    sim_lab.run("frontend-app:v2.1.0", ["sleep", "600"], detach=True, name="sim-layers-remade")
    base = layers.gather(sim_lab, ["sim-layers-remade"])
    with sim_lab.tracing() as steps:
        sim_lab.exec_output("sim-layers-remade", ["sh", "-c", "rm /etc/group && echo g > /etc/group"])
    assert [(s.kind, s.change["path"]) for s in steps if s.kind in ("copy-up", "whiteout", "add")] == [
        ("whiteout", "/etc/group"), ("add", "/etc/group")]
    sc = layers.gather(sim_lab, ["sim-layers-remade"], path="/etc/group")
    assert [(c.kind, c.path, c.bytes) for c in sc.containers[0].changes] == [("add", "/etc/group", 2)]
    assert [(c.kind, c.path, c.bytes) for c in layers.replay(base, steps).containers[0].changes] == [
        ("add", "/etc/group", 2)]
    fig = layers.draw(sc)
    assert not gids(fig, "copy-up:") and not gids(fig, "tombstone:")


@pytest.mark.root
def test_real_file_removed_and_made_again_is_drawn_new(engine, lesson_image):
    """On the kernel, /app/package.json removed and made again has no overlay.origin: the picture draws a new
    file of the writable layer, not a copy-up arrow."""
    engine.run(lesson_image, ["sleep", "30"], detach=True, name="viz-layers-remade")
    code, out = engine.exec_output("viz-layers-remade", "rm /app/package.json && echo '{}' > /app/package.json")
    assert code == 0, out
    sc = layers.gather(engine, ["viz-layers-remade"], path="/app/package.json")
    assert [(c.kind, c.path, c.bytes) for c in sc.containers[0].changes] == [("add", "/app/package.json", 3)]
    assert not gids(layers.draw(sc), "copy-up:")


def test_sim_container_show_layers_draws_its_own_layers_and_the_serving_one(sim_lab):
    """Container.show_layers(path=...) is layers.picture for that container: its writable layer, the image's
    three layers, and which layer serves the path."""
    c = sim_lab.run("frontend-app:v2.1.0", ["sleep", "600"], detach=True, name="sim-layers-show")
    c.exec(["rm", "/etc/group"])
    fig = c.show_layers(path="/etc/group")
    text = P.texts(fig)
    assert "frontend-app:v2.1.0: 1 container on 3 shared read-only layers" in text
    assert f"{P.PENCIL} sim-layers-show  (running)" in text
    assert "/etc/group  whiteout" in text and "/etc/group: hidden by a whiteout" in text
    assert [t for t in text if t.startswith("L")][:3] == ["L1  base OS", "L2  runtime", "L3  app code"]
    assert P.texts(c.show_layers()) == P.texts(layers.picture(sim_lab, "sim-layers-show"))


def test_real_layer_contents_are_read_from_the_upper_dir(tmp_path):
    """The real backend reads the upper dir on disk: a file the image has is a copy-up of the image's bytes,
    a new file is new, a directory that only holds them says nothing, and the upper copy serves the path."""
    from labkit.linux import overlay

    top, bottom, upper = tmp_path / "l2", tmp_path / "l1", tmp_path / "upper"
    (top / "app").mkdir(parents=True)
    (top / "app" / "server.js").write_text("x" * 100)
    (bottom / "etc").mkdir(parents=True)
    (bottom / "etc" / "passwd").write_text("root")
    (upper / "app").mkdir(parents=True)
    (upper / "app" / "server.js").write_text("x" * 101)
    (upper / "app" / "new.txt").write_text("hello")
    lowers = [str(top), str(bottom)]
    contents = overlay.contents(str(upper), lowers, "/app/server.js")
    sc = layers.scene("demo", LAYERS[:2], [layers.container_data("web", contents)], "/app/server.js")
    (w,) = sc.containers
    assert {c.path: (c.kind, c.bytes, c.from_layer) for c in w.changes} == {
        "/app/server.js": ("copy-up", 100, 2), "/app/new.txt": ("add", 5, None)}
    assert w.serves == "upper" and w.files == 3 and w.size == 106
    assert overlay.contents(str(upper), lowers, "/etc/passwd").serves == 1
