"""Walking a trace: the state after every step, forward and back, for the same cost at any depth."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.model import events
from labkit.model.events import Step
from labkit.model.walk import CHECKPOINT, Walk, apply


def trace(cid: str = "c1") -> list[Step]:
    parts = [
        events.create_layer("/u"),
        events.network_attach("lk1", "br", "172.17.0.2", "02:42:ac:11:00:02"),
        events.mount_overlay(["/init", "/l1"], "/u", "/w", "/m"),
        events.cgroup_write("/sys/fs/cgroup/memory/labkit/c1/memory.limit_in_bytes", "67108864", "limit"),
        events.clone(pid=4242),
        events.execve(["sh"], 4242),
        events.copy_up("/etc/passwd", 75, 1),
        events.whiteout("/etc/group"),
        events.added("/tmp/n", 4),
        events.exited(0),
        events.remove_layer("/u"),
    ]
    return [Step(i, "run", cid, *p) for i, p in enumerate(parts)]


def test_state_after_each_step():
    """Each step changes what it says: address, layers, limits, PID and status, the writable layer, the exit."""
    w = Walk(trace())
    w.goto(5)
    box = w.state["c1"]
    assert (box.status, box.pid, box.address) == ("running", 4242, "172.17.0.2")
    assert box.lowers == ("/init", "/l1") and box.cgroup["memory.limit_in_bytes"] == "67108864"
    w.goto(8)
    assert w.state["c1"].upper["/etc/passwd"] == {"kind": "copy-up", "bytes": 75, "from_layer": 1}
    assert w.served_by("c1", "/etc/group") == "hidden" and w.served_by("c1", "/tmp/n") == "upper"
    assert w.served_by("c1", "/bin/sh") == "image"
    w.step()
    assert w.state["c1"].status == "exited" and w.state["c1"].exit_code == 0 and w.state["c1"].pid == 0
    w.step()
    assert "c1" not in w.state, "rm deletes the writable layer: the container is gone"


def test_back_undoes_a_step():
    """back() returns exactly the state before the last step."""
    w = Walk(trace())
    w.goto(7)
    before = w.state
    w.step()
    assert w.back() == before
    assert w.reset() == {}


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 3000), st.data())
def test_goto_agrees_with_stepping(n, data):
    """Jumping to any position gives the same state as stepping there one by one, in a long trace."""
    steps = []
    for i in range(n):
        kind = i % 3
        p = (events.copy_up(f"/f{i % 50}", i, 1) if kind == 0 else events.whiteout(f"/g{i % 40}") if kind == 1
             else events.freeze(i % 2 == 0))
        steps.append(Step(i, "exec", f"c{i % 4}", *p))
    target = data.draw(st.integers(-1, n - 1))
    w = Walk(steps)
    state = {}
    for s in steps[: target + 1]:
        state = apply(state, s)
    assert w.goto(target) == state
    w.goto(n - 1)
    assert w.goto(target) == state, "going back gives the same state again"


def test_replay_behind_a_goto_is_bounded():
    """Going back never replays more than CHECKPOINT steps, however long the trace."""
    calls = []
    steps = [Step(i, "exec", "c", *events.copy_up(f"/f{i}", 1, 1)) for i in range(10_000)]
    w = Walk(steps)
    w.goto(9_999)
    import labkit.model.walk as walk

    real = walk.apply

    def counted(state, step):
        calls.append(1)
        return real(state, step)

    walk.apply = counted
    try:
        w.back()
    finally:
        walk.apply = real
    assert len(calls) < CHECKPOINT


def hiding_trace() -> list[Step]:
    parts = [
        events.create_layer("/u"),
        events.mount_overlay(["/init-c1", "/l2", "/l1"], "/u", "/w", "/m"),
        events.whiteout("/home"),
        events.opaque("/etc"),
        events.added("/etc/hostname", 3),
    ]
    return [Step(i, "run", "c1", *p) for i, p in enumerate(parts)]


def test_whiteout_hides_everything_below_it():
    """A whiteout on a directory hides the directory and every path under it (overlayfs lookup stops there)."""
    w = Walk(hiding_trace())
    w.goto(len(w.steps) - 1)
    assert w.served_by("c1", "/home") == "hidden"
    assert w.served_by("c1", "/home/x") == "hidden" and w.served_by("c1", "/home/x/y/z") == "hidden"
    assert w.served_by("c1", "/homework") == "image", "a sibling whose name starts alike is not below it"


def test_opaque_dir_hides_the_lower_contents():
    """Below an opaque dir only the upper copy counts: its own files are upper, the image's are hidden."""
    w = Walk(hiding_trace())
    w.goto(len(w.steps) - 1)
    assert w.served_by("c1", "/etc") == "upper"
    assert w.served_by("c1", "/etc/passwd") == "hidden"
    assert w.served_by("c1", "/etc/hostname") == "upper"
    w.goto(2)
    assert w.served_by("c1", "/etc/passwd") == "image", "before the opaque step the image still shows through"


def test_served_by_names_the_layer_a_copy_up_came_from():
    """A copy-up says which image layer holds a path: before it that layer serves the path, after it the upper."""
    parts = [events.create_layer("/u"), events.mount_overlay(["/init-c1", "/l2", "/l1"], "/u", "/w", "/m"),
             events.copy_up("/etc/passwd", 75, 1)]
    other = [events.create_layer("/u2"), events.mount_overlay(["/init-c2", "/l2", "/l1"], "/u2", "/w2", "/m2")]
    steps = [Step(i, "run", "c1", *p) for i, p in enumerate(parts)]
    steps += [Step(len(steps) + i, "run", "c2", *p) for i, p in enumerate(other)]
    w = Walk(steps)
    w.goto(1)
    assert w.served_by("c1", "/etc/passwd") == 1
    w.goto(2)
    assert w.served_by("c1", "/etc/passwd") == "upper"
    w.goto(len(steps) - 1)
    assert w.served_by("c2", "/etc/passwd") == 1, "a container on the same image layers learns it too"
    assert w.served_by("c2", "/etc/group") == "image", "a path no step spoke of: the trace cannot tell"


def test_teardown_steps_undo_mount_address_and_cgroup():
    """umount, network-detach and cgroup-remove leave the state unmounted, without address or cgroup files;
    exec-in changes neither PID 1 nor its command."""
    parts = [
        events.create_layer("/u"),
        events.network_attach("lk1", "br", "172.17.0.2", "02:42:ac:11:00:02"),
        events.mount_overlay(["/init", "/l1"], "/u", "/w", "/m"),
        events.cgroup_write("/cg/labkit/c1/memory.max", "67108864", "limit"),
        events.clone(pid=4242),
        events.execve(["sleep", "9"], 4242),
        events.exec_in(["true"], 4242, 0),
        events.exited(137),
        events.umount("/m"),
        events.network_detach("lk1", "br", "172.17.0.2"),
        events.cgroup_remove(["/cg/labkit/c1"]),
    ]
    w = Walk([Step(i, "run", "c1", *p) for i, p in enumerate(parts)])
    box = w.goto(6)["c1"]
    assert (box.pid, box.argv, box.mounted, box.address) == (4242, ("sleep", "9"), True, "172.17.0.2")
    box = w.goto(7)["c1"]
    assert box.status == "exited" and box.pid == 0 and box.mounted and box.cgroup
    box = w.goto(len(parts) - 1)["c1"]
    assert not box.mounted and box.address == "" and dict(box.cgroup) == {}
    assert box.argv == ("sleep", "9") and box.lowers == ("/init", "/l1"), "what it ran and was made of stays known"
