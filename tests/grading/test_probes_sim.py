"""Labs graded on the simulator read its model of the writable layer, never the host disk, and cannot be faked there."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from labkit.grading import load_bank, probes
from labkit.grading.results import CORRECT, NOT_ATTEMPTED


@pytest.fixture
def sim():
    """A simulator engine on a fresh state root of its own (removed afterwards)."""
    import labkit

    root = Path(tempfile.mkdtemp(prefix="labkit-test-sim-grading-"))
    try:
        yield labkit.connect(backend="sim", root=root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_writable_layer_probes_read_the_model(sim):
    """A file written inside a simulated container is in its writable layer; a deleted image file is a whiteout."""
    c = sim.run("busybox", ["sleep", "300"], name="writer", detach=True)
    assert probes.simulated(c.inspect())
    c.exec(["sh", "-c", "mkdir -p /data && echo tok123 > /data/hello && rm /etc/group"])
    assert probes.file_in_upperdir(sim, "writer", "/data/hello", contains="tok123").passed
    assert not probes.file_in_upperdir(sim, "writer", "/data/hello", contains="other").passed
    assert not probes.file_in_upperdir(sim, "writer", "/data").passed  # a directory, not a file
    assert probes.whiteout_exists(sim, "writer", "/etc/group").passed
    assert not probes.whiteout_exists(sim, "writer", "/etc/passwd").passed
    assert probes.file_absent(sim, "writer", "/etc/group").passed
    assert not probes.file_absent(sim, "writer", "/etc/passwd").passed  # still served by the image
    assert probes.observe(sim, "in_upperdir", {"container": "writer", "path": "/data/hello"}) is True
    assert probes.observe(sim, "in_upperdir", {"container": "writer", "path": "/etc/passwd"}) is False
    sim.rm("writer", force=True)


def test_copied_up_needs_a_changed_copy_of_an_image_file(sim):
    """copied_up passes for an image file changed inside the container, not for a new file, an untouched
    image file or a deleted one, nor when the copy lacks the text asked for."""
    c = sim.run("busybox", ["sleep", "300"], name="copier", detach=True)
    assert not probes.copied_up(sim, "copier", "/etc/passwd").passed  # still served by the image
    c.exec(["sh", "-c", "echo tok123 >> /etc/passwd && mkdir -p /data && echo tok123 > /data/hello && rm /etc/group"])
    assert probes.copied_up(sim, "copier", "/etc/passwd", contains="tok123").passed
    assert "root:" in probes.copied_up(sim, "copier", "/etc/passwd").output  # the image's lines came along
    assert not probes.copied_up(sim, "copier", "/etc/passwd", contains="other").passed
    assert not probes.copied_up(sim, "copier", "/data/hello").passed  # a new file: nothing to copy up
    assert not probes.copied_up(sim, "copier", "/etc/group").passed  # a whiteout
    with pytest.raises(probes.Missing):
        probes.copied_up(sim, "nobody-here", "/etc/passwd")
    sim.rm("copier", force=True)


def test_copied_up_refuses_a_file_removed_and_made_again(sim):
    """An image file removed and made again holds the token in the writable layer but is a whiteout and a new
    file, not a copy-up: copied_up fails it, and passes a file that was copied up before it was rewritten."""
    c = sim.run("busybox", ["sleep", "300"], name="remaker", detach=True)
    c.exec(["sh", "-c", "rm /etc/passwd && echo tok123 > /etc/passwd"])
    made = probes.copied_up(sim, "remaker", "/etc/passwd", contains="tok123")
    assert not made.passed and "removed and made again" in made.message
    c.exec(["sh", "-c", "echo x >> /etc/group && echo tok123 > /etc/group"])
    assert probes.copied_up(sim, "remaker", "/etc/group", contains="tok123").passed
    sim.rm("remaker", force=True)


def test_layers_lab_needs_the_copy_up_on_the_simulator(sim):
    """The layers lab is not attempted before the task, misses its copy-up check for a new file and a delete
    alone, and earns full marks once the image's /etc/passwd is changed too."""
    q = load_bank("layers", learner="ada")["lay.lab"]
    token = q.params["token"]
    name = f"layer-{token}"
    assert q.check(engine=sim).verdict == NOT_ATTEMPTED
    sim.run("busybox", ["sleep", "600"], name=name, detach=True)
    sim.exec_output(name, ["sh", "-c", f"mkdir -p /data && echo {token} > /data/hello && rm /etc/group"])
    r = q.check(engine=sim)
    assert r.verdict != CORRECT and [c.passed for c in r.checks] == [True, False, True, True], str(r)
    sim.exec_output(name, ["sh", "-c", f"echo {token} >> /etc/passwd"])
    r = q.check(engine=sim)
    assert r.verdict == CORRECT and r.points == r.max_points, str(r)
    sim.rm(name, force=True)


def test_a_file_dropped_into_the_upper_dir_on_disk_does_not_count(sim):
    """On the simulator the directory UpperDir names is not the layer: writing there by hand earns nothing."""
    c = sim.run("busybox", ["sleep", "300"], name="fake", detach=True)
    upper = c.inspect()["GraphDriver"]["Data"]["UpperDir"]
    os.makedirs(os.path.join(upper, "data"), exist_ok=True)
    with open(os.path.join(upper, "data", "hello"), "w") as f:
        f.write("tok123")
    assert not probes.file_in_upperdir(sim, "fake", "/data/hello").passed
    sim.rm("fake", force=True)


def test_namespaces_and_host_pid_come_from_the_simulated_process_table(sim):
    """own_namespaces and host_sees_pid use the simulator's processes, not the real /proc."""
    sim.run("busybox", ["sleep", "300"], name="nsbox", detach=True)
    assert probes.own_namespaces(sim, "nsbox").passed
    assert probes.observe(sim, "host_sees_pid", {"container": "nsbox"}) is True
    sim.stop("nsbox", timeout=1)
    assert not probes.own_namespaces(sim, "nsbox").passed
    assert probes.observe(sim, "host_sees_pid", {"container": "nsbox"}) is False
    sim.rm("nsbox", force=True)


def test_states_lab_passes_on_the_simulator(sim):
    """The states lab is not attempted before the task and earns full marks after it, on the simulator."""
    q = load_bank("states", learner="ada")["st.lab"]
    token = q.params["token"]
    assert q.check(engine=sim).verdict == NOT_ATTEMPTED
    name = f"walk-{token}"
    sim.run("busybox", ["sleep", "600"], name=name, detach=True)
    sim.exec_output(name, ["sh", "-c", f"echo {token} > /walk"])
    sim.stop(name, timeout=1)
    sim.start(name)
    sim.pause(name)
    r = q.check(engine=sim)
    assert r.verdict == CORRECT and r.points == r.max_points, str(r)
    sim.rm(name, force=True)


class FakeServices:
    """An engine whose only state is a service list (service_replicas reads nothing else)."""

    def __init__(self, services):
        self.services = services

    def service_ls(self):
        return self.services


def test_service_replicas_counts_running_replicas():
    """service_replicas passes only when as many replicas run as asked; a missing service is not attempted."""
    engine = FakeServices([{"Name": "web", "Replicas": 5, "Running": 5}, {"Name": "api", "Replicas": 5, "Running": 3}])
    assert probes.service_replicas(engine, "web", 5).passed
    assert not probes.service_replicas(engine, "web", 3).passed
    assert not probes.service_replicas(engine, "api", 5).passed
    with pytest.raises(probes.Missing):
        probes.run_probe(engine, "service_replicas", {"name": "db", "running": 1})
    assert probes.observe(engine, "replicas_running", {"service": "api"}) == 3
