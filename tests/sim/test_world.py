"""The simulated kernel: clock, signals, limits, freezer, persistence, snapshots, images — all without root."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

import labkit
from labkit.errors import IllegalTransition
from labkit.sim.backend import SimBackend
from labkit.sim.saved import Snapshot


def clock(engine) -> float:
    return engine.backend.clock()


def test_time_moves_only_through_waits(sim):
    """With the manual clock, a detached `sleep 1; exit 3` runs until a wait lets a second pass."""
    c = sim.run("busybox", ["sh", "-c", "echo start; sleep 1; exit 3"], detach=True)
    t0 = clock(sim)
    assert c.status == "running" and c.logs() == "start\n"
    assert sim.backend.wait(sim.store.load(c.id), 0.5) is False
    assert c.status == "running"
    assert c.wait() == 3
    assert clock(sim) == pytest.approx(t0 + 1.0)
    assert c.inspect()["State"]["Status"] == "exited"


def test_realtime_clock_catches_up_between_calls(make_sim, fresh_root):
    """With the real-time clock, a second engine a moment later finds the sleep over."""
    import time

    root = fresh_root()
    a = make_sim(root, realtime=True)
    c = a.run("busybox", ["sh", "-c", "sleep 0.2; exit 4"], detach=True)
    time.sleep(0.3)
    b = make_sim(root, realtime=True)
    assert b.inspect(c.id)["State"]["ExitCode"] == 4


def test_stop_ignored_sigterm_takes_the_timeout(sim):
    """PID 1 without a handler ignores SIGTERM: stop waits the full timeout, then SIGKILL gives 137."""
    c = sim.run("busybox", ["sleep", "30"], detach=True)
    t0 = clock(sim)
    c.stop()
    assert c.exit_code == 137
    assert clock(sim) == pytest.approx(t0 + 10)
    kinds = [s.kind for s in sim.trace if s.verb == "stop"]
    assert kinds.count("signal") == 2 and kinds[-4:] == ["exit", "umount", "network-detach", "cgroup-remove"]


def test_trap_makes_sigterm_143(sim):
    """A trap on TERM runs its handler: exit 143 at once, not after the timeout."""
    c = sim.run("busybox", ["sh", "-c", "trap 'exit 143' TERM; while true; do sleep 0.1; done"], detach=True)
    t0 = clock(sim)
    c.stop(timeout=5)
    assert c.exit_code == 143
    assert clock(sim) - t0 < 0.2


def test_sigterm_kills_a_child_without_handler(sim):
    """A process that is not PID 1 dies of SIGTERM (143); wait reports it."""
    c = sim.run("busybox", ["sleep", "600"], detach=True)
    assert c.exec(["sh", "-c", "sleep 100 & kill $!; wait $!; echo $?"]) == (0, "143\n")


def test_oom_kill_at_memory_limit(sim):
    """The string-doubling loop hits --memory: SIGKILL (137) and OOMKilled, reset by the next start."""
    c = sim.run("busybox", ["sh", "-c", "x=a; while true; do x=$x$x; done"], memory="16m")
    st = c.inspect()["State"]
    assert (st["ExitCode"], st["OOMKilled"]) == (137, True)
    stats = sim.backend.cgroup_stats(sim.store.load(c.id))
    assert stats["memory.events"]["oom_kill"] == 1 and stats["memory.peak"] <= 16 * 1024 * 1024


def test_pids_limit_makes_fork_fail(sim):
    """At pids.max fork fails: busybox's message, status 2, and the group stays at the limit."""
    c = sim.run("busybox", ["sleep", "600"], pids_limit=5, detach=True)
    code, out = c.exec(["sh", "-c", "for i in 1 2 3 4 5 6 7 8 9; do sleep 30 & done; wait"])
    assert (code, out) == (2, "sh: can't fork: Resource temporarily unavailable\n")
    assert sim.backend.cgroup_stats(sim.store.load(c.id))["pids.current"] == 4
    assert c.status == "running"


def test_freezer_stops_processes_not_the_clock(sim):
    """While paused the clock moves but the loop does not; after unpause it goes on."""
    c = sim.run("busybox", ["sh", "-c", "i=0; while true; do i=$((i+1)); echo $i > /tmp/n; sleep 1; done"],
                detach=True)
    rec = sim.store.load(c.id)
    sim.backend.wait(rec, 2.5)
    ov = sim.backend.overlay(rec)
    before = ov.read("/tmp/n")
    c.pause()
    t0 = clock(sim)
    sim.backend.wait(rec, 5)
    assert clock(sim) == pytest.approx(t0 + 5)
    assert sim.backend.overlay(rec).read("/tmp/n") == before
    with pytest.raises(IllegalTransition, match="is paused, unpause the container before exec"):
        c.exec(["true"])
    c.unpause()
    sim.backend.wait(rec, 1.5)
    assert int(sim.backend.overlay(rec).read("/tmp/n")) > int(before)


def test_kill_while_frozen_takes_effect_at_thaw(sim):
    """rm -f of a paused container: SIGKILL waits for the thaw (v1 freezer), then the container is gone."""
    c = sim.run("busybox", ["sleep", "600"], detach=True)
    c.pause()
    c.remove(force=True)
    assert c.id not in sim.store.container_ids()


def test_two_engines_on_one_root_see_one_world(make_sim, fresh_root):
    """A second engine on the same root sees the first one's containers, their files and their processes."""
    root = fresh_root()
    a = make_sim(root)
    c = a.run("busybox", ["sh", "-c", "echo hi > /tmp/f; sleep 5; exit 6"], detach=True, name="shared")
    b = make_sim(root)
    assert b.inspect("shared")["State"]["Status"] == "running"
    assert b.container("shared").exec(["cat", "/tmp/f"]) == (0, "hi\n")
    assert b.wait("shared") == 6
    assert a.inspect(c.id)["State"]["ExitCode"] == 6
    assert [d["Path"] for d in a.diff("shared")] == ["/tmp", "/tmp/f"]


def test_cli_processes_share_the_world(make_sim, fresh_root):
    """`labkit --backend sim run -d` in one process, `ps` and `logs` in later ones: one world."""
    root = fresh_root()
    env = {**os.environ, "LABKIT_ROOT": str(root), "LABKIT_SIM_CLOCK": "manual"}
    cli = [sys.executable, "-m", "labkit", "--backend", "sim"]
    try:
        out = subprocess.run([*cli, "run", "-d", "--name", "bg", "busybox", "sh", "-c", "echo up; sleep 100"],
                             capture_output=True, text=True, env=env)
        assert len(out.stdout.strip()) == 64, out.stderr
        ps = subprocess.run([*cli, "ps"], capture_output=True, text=True, env=env).stdout
        assert "bg" in ps and "Up" in ps
        logs = subprocess.run([*cli, "logs", "bg"], capture_output=True, text=True, env=env).stdout
        assert logs == "up\n"
        env2 = {**env}
        env2.pop("LABKIT_SIM_CLOCK")
        subprocess.run([sys.executable, "-m", "labkit", "stop", "-t", "1", "bg"], check=True, capture_output=True,
                       env={**env2, "LABKIT_BACKEND": "sim"})
        assert "Exited (137)" in subprocess.run([*cli, "ps", "-a"], capture_output=True, text=True, env=env).stdout
    finally:
        make_sim(root)


def test_snapshot_and_restore(sim):
    """restore() puts back the files, processes and statuses a snapshot saw."""
    c = sim.run("busybox", ["sleep", "600"], detach=True)
    c.exec(["sh", "-c", "echo one > /tmp/f"])
    snap = sim.backend.snapshot()
    c.exec(["sh", "-c", "echo two > /tmp/f; rm /etc/group"])
    c.stop(timeout=0)
    assert c.status == "exited"
    sim.backend.restore(snap)
    assert c.status == "running"
    assert c.exec(["cat", "/tmp/f"]) == (0, "one\n")
    assert [d["Path"] for d in c.diff()] == ["/tmp", "/tmp/f"]
    desc = snap.describe()["containers"][c.id]
    assert desc["status"] == "running" and desc["upper"]["/tmp/f"] == "file"


def test_state_after_every_step_walks_back(sim):
    """With snapshots kept, the state after any step can be looked at, in any order."""
    sim.backend.keep_snapshots()
    c = sim.run("busybox", ["sh", "-c", "echo a > /tmp/a; rm /etc/group; sleep 600"], detach=True)
    sim.diff(c.id)
    whiteout = next(s for s in sim.trace if s.kind == "whiteout")
    create = next(s for s in sim.trace if s.kind == "create-layer")
    after = sim.backend.state_at(whiteout.seq).describe()["containers"][c.id]
    assert after["upper"]["/etc/group"] == "whiteout"
    before = sim.backend.state_at(create.seq).describe()["containers"][c.id]
    assert before["upper"] == {} and before["processes"] == []
    assert isinstance(sim.backend.state_at(whiteout.seq), Snapshot)


def test_trace_tells_the_same_story_as_the_kernel(sim):
    """run emits create-layer, network, mount-overlay, cgroup writes, clone, … in the linux backend's order."""
    c = sim.run("busybox", ["sh", "-c", "echo x >> /etc/passwd; rm /etc/group; echo n > /new"], memory="64m")
    c.diff()
    kinds = [s.kind for s in sim.trace]
    assert kinds[:6] == ["create-layer", "network", "mount-overlay", "cgroup-write", "cgroup-write", "clone"]
    assert {"exit", "copy-up", "whiteout", "add"} <= set(kinds)


def test_a_rootless_trace_makes_the_user_namespace_first_and_mounts_the_overlay_inside_it(fresh_root):
    """Rootless, the start is traced as the rootless backend takes it: the user namespace, the clone with
    CLONE_NEWUSER, the network helper's address, then the overlay mounted in PID 1's mount namespace, pivot_root
    and the command; the teardown has no umount (the mount went with PID 1's namespace)."""
    from labkit.engine import Engine
    from labkit.store import Store

    root = fresh_root()
    lab = Engine(root=root, backend=SimBackend(Store(root), realtime=False, rootless=True))
    try:
        with lab.tracing() as steps:
            lab.run("busybox", ["true"])
        kinds = [s.kind for s in steps]
        start = kinds.index("userns")
        assert kinds[start:start + 6] == ["userns", "clone", "network", "mount-overlay", "pivot-root", "exec"], kinds
        assert "mount-overlay" not in kinds[:start] and "umount" not in kinds
        assert "CLONE_NEWUSER" in steps[start + 1].mechanism and steps[start + 2].change["ip"] == "10.0.2.100"
    finally:
        lab.reset()


def test_base_image_is_synthetic_and_listed(sim):
    """busybox:latest is built without root or a busybox binary, and `images` lists it."""
    sim.run("busybox", ["true"])
    tags = [t for img in sim.images() for t in img["RepoTags"]]
    assert "busybox:latest" in tags
    img = sim.images.get("busybox")
    assert os.path.islink(os.path.join(img.layers[0].path, "bin", "sh"))


def test_build_runs_run_steps_in_the_simulator(sim, tmp_path):
    """engine.build works on the sim: a RUN's files, whiteouts and opaque dirs become the layer."""
    (tmp_path / "Labfile").write_text("FROM busybox\nRUN mkdir /opt && echo hi > /opt/x && rm /etc/group\n"
                                      "CMD [\"cat\", \"/opt/x\"]\n")
    sim.build(str(tmp_path), "built:1", on_step=lambda _line: None)
    c = sim.run("built:1")
    assert c.logs() == "hi\n"
    assert sim.run("built:1", ["cat", "/etc/group"]).exit_code == 1
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_lesson_server_answers_requests(sim):
    """node server.js in frontend-app answers GET / with server.js's JSON, logs it, and closes on SIGTERM."""
    from labkit.images.lessons import build_lesson_images

    sim.image_store  # noqa: B018
    sim.images.get("busybox")
    build_lesson_images(sim.image_store, sim.backend.build_runner, prefer_host_node=False, on_step=lambda _l: None)
    c = sim.run("frontend-app:v2.1.0", detach=True, ports=["8080:3000"])
    rec = sim.store.load(c.id)
    status, body = sim.backend.http_get(rec, 8080, "/")
    import json

    assert status == 200
    assert json.loads(body) == {"service": "frontend-app", "version": "2.1.0", "env": "production",
                                "hostname": c.id[:12], "pid": 1}
    assert sim.backend.http_get(rec, 3000, "/health") == (200, "ok")
    assert sim.backend.http_get(rec, 3000, "/nope")[0] == 404
    c.stop()
    assert c.exit_code == 0
    assert c.logs().splitlines()[-1] == "SIGTERM received, closing"
    with pytest.raises(ConnectionRefusedError):
        sim.backend.http_get(rec, 3000, "/")


def test_runs_without_root(fresh_root):
    """The simulator works for an unprivileged user: a container runs, writes, is diffed and removed.

    The files the user's image layer holds show owner 0 (root) inside, as the
    rootless backend's user namespace maps the user to root.
    """
    root = fresh_root()
    if os.geteuid() == 0:
        os.chown(root, 65534, 65534)  # a state root is its user's own (labkit.store.make_private)
    code = (
        "import labkit, sys\n"
        f"e = labkit.connect(backend='sim', root={str(root)!r})\n"
        "c = e.run('busybox', ['sh', '-c', 'echo $$; mkdir /d; echo x > /d/f; rm /etc/group; "
        "stat -c \"%u %U %h\" /etc/passwd /bin /d/f'])\n"
        "print(' '.join(c.logs().split()), c.exit_code, [(d['Kind'], d['Path']) for d in c.diff()])\n"
        "c.remove()\n"
    )
    cmd = [sys.executable, "-c", code]
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.fail("setpriv is needed to drop root for this test")
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
    env = {**os.environ, "HOME": str(root), "PYTHONPATH": os.path.dirname(os.path.dirname(labkit.__file__))}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(root))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1 0 root 1 0 root 2 0 root 1 0 [(1, '/d'), (1, '/d/f'), (0, '/etc'), (2, '/etc/group')]"


def test_real_backend_is_not_needed_to_pick_the_sim(fresh_root):
    """backend='sim' never touches the kernel; the reason says it is the simulator."""
    e = labkit.connect(backend="sim", root=fresh_root())
    assert e.backend_name == "sim" and "simulator" in e.backend_reason
    assert isinstance(e.backend, SimBackend)


def test_a_big_image_file_copied_up_is_saved_as_a_reference(sim, tmp_path):
    """Appending to a 3 MB image file copies all 3 MB up (the trace says so, and the file reads as the image's
    bytes plus the line), yet the saved world keeps a reference to the image layer's file, not its bytes: it
    stays small, and commands after the copy-up stay fast."""
    import hashlib
    import time

    big = os.urandom(3 << 20)
    (tmp_path / "big.bin").write_bytes(big)
    (tmp_path / "Labfile").write_text("FROM busybox\nCOPY big.bin /big.bin\n")
    sim.build(str(tmp_path), "big:1", on_step=lambda _l: None)
    c = sim.run("big:1", ["sleep", "300"], detach=True)
    with sim.tracing() as steps:
        assert c.exec(["sh", "-c", "echo tail >> /big.bin"])[0] == 0
    assert [s.change["bytes"] for s in steps if s.kind == "copy-up"] == [3 << 20]
    assert os.path.getsize(sim.backend.world_path) < 64 * 1024
    start = time.perf_counter()
    sim.ps(all=True)
    assert time.perf_counter() - start < 1.0
    code, out = c.exec(["md5sum", "/big.bin"])
    assert code == 0 and out.split()[0] == hashlib.md5(big + b"tail\n").hexdigest()
    c.remove(force=True)
