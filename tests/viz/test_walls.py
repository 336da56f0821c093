"""The cubicle walls: the host's view and the container's view of one process, side by side."""

from __future__ import annotations

import builtins
import os

import pytest

from labkit.model import views
from labkit.viz import palette as P
from labkit.viz import walls
from tests.viz.vizfigs import by_gid

NET_HOST = """Inter-|   Receive
 face |bytes    packets
    lo: 0 0
  eth0: 0 0
"""
NET_IN = """Inter-|   Receive
 face |bytes    packets
    lo: 0 0
"""


def sample_view():
    host = {"status": "Name:\tsleep\nPid:\t722\nNSpid:\t722\t1\n", "hostname": "vm\n", "net_dev": NET_HOST,
            "mounts": "a\nb\nc\n", "cgroup": "4:memory:/labkit/abc\n0::/labkit/abc\n",
            "memory_limit": "33554432\n", "pids_limit": "20\n"}
    inside = {"status": "Pid:\t1\nNSpid:\t1\n", "hostname": "abc123", "net_dev": NET_IN, "mounts": "a\n",
              "cgroup": "4:memory:/\n0::/\n", "meminfo": "MemTotal:  1024 kB\n", "cgroup_files": 0}
    return walls.view("web", views.ProcessView(views.side_from_texts(host, innermost=False),
                                              views.side_from_texts(inside, innermost=True)))


def test_parsers_read_proc_files():
    """NSpid, /proc/net/dev, mounts, /proc/<pid>/cgroup and limit files are read as the kernel writes them."""
    assert walls.parse_nspid("NSpid:\t722\t1\n") == (722, 1)
    assert walls.parse_net_dev(NET_HOST) == ("lo", "eth0")
    assert walls.count_mounts("x\n\ny\n") == 2
    assert walls.parse_cgroup("8:pids:/labkit/x\n4:memory:/labkit/y\n0::/z\n") == "/labkit/y"
    assert walls.parse_limit("max\n") is None and walls.parse_limit("9223372036854771712") is None
    assert walls.parse_limit("33554432\n") == 33554432


def test_view_puts_host_pid_against_pid_1():
    """The host sees PID 722 with limits; inside it is PID 1 with its own hostname, only lo, and cgroup /."""
    v = sample_view()
    assert (v.host.pid, v.inside.pid) == (722, 1)
    assert v.inside.interfaces == ("lo",) and v.host.interfaces == ("lo", "eth0")
    assert (v.host.cgroup, v.inside.cgroup) == ("/labkit/abc", "/")
    assert v.host.memory == "limit 32MiB" and v.host.pids == "pids.max 20"


def test_figure_shows_both_sides_and_the_wall():
    """Both panels, the wall, every row's namespace, and both sides' values are on the figure."""
    fig = walls.draw(sample_view())
    text = P.texts(fig)
    assert by_gid(fig, "side:host") and by_gid(fig, "side:container") and by_gid(fig, "wall")
    for s in ("722", "1", "vm", "abc123", "lo, eth0", "lo", "pid namespace", "UTS namespace", "limit 32MiB"):
        assert s in text


def test_sim_walls_put_the_host_pid_against_pid_1(sim):
    """On the simulator: the host sees State.Pid, the limits and the cgroup /labkit/<id>; inside, PID 1, its own
    hostname, only lo, cgroup / and limits it cannot see — and the figure says so."""
    c = sim.run("busybox", ["sleep", "300"], detach=True, name="walls-sim", memory="32m", pids_limit=20,
                network="none")
    info = sim.inspect("walls-sim")
    v = walls.gather(sim, "walls-sim")
    assert v.host.pid == info["State"]["Pid"] and v.inside.pid == 1
    assert v.inside.hostname == c.id[:12] and v.host.hostname == os.uname().nodename
    assert v.inside.interfaces == ("lo",) and v.inside.cgroup == "/" and v.host.cgroup == f"/labkit/{c.id}"
    assert v.host.memory == "limit 32MiB" and v.host.pids == "pids.max 20"
    assert v.inside.pids == "limit not visible, but enforced"
    assert v.host.mounts > v.inside.mounts > 0
    text = P.texts(walls.draw(v))
    for s in (str(info["State"]["Pid"]), "1", c.id[:12], "limit 32MiB", "pids.max 20", "/"):
        assert s in text


def test_sim_container_show_walls_is_the_walls_picture_of_that_container(sim):
    """Container.show_walls() draws walls.picture for that container: its host PID against PID 1, its hostname."""
    c = sim.run("busybox", ["sleep", "300"], detach=True, name="walls-show", network="none")
    text = P.texts(c.show_walls())
    assert text == P.texts(walls.picture(sim, "walls-show"))
    for s in (str(c.pid), "1", c.id[:12]):
        assert s in text


def test_sim_walls_of_a_bridged_container_show_eth0_inside_and_the_veth_outside(sim):
    """A simulated container on the bridge has lo and eth0 inside; the host has lo, labkit's bridge and its veth."""
    sim.run("busybox", ["sleep", "300"], detach=True, name="walls-br", network="bridge")
    bridge = sim.inspect("walls-br")["NetworkSettings"]["Bridge"]
    v = walls.gather(sim, "walls-br")
    assert v.inside.interfaces == ("lo", "eth0")
    assert "lo" in v.host.interfaces and bridge in v.host.interfaces
    assert any(name.startswith("veth") for name in v.host.interfaces)


def test_sim_walls_never_read_the_hosts_proc(sim, monkeypatch):
    """A simulated PID is never looked up in the host's /proc (a real process may hold the same number)."""
    sim.run("busybox", ["sleep", "300"], detach=True, name="walls-noproc", network="none")
    real_open = builtins.open

    def guarded(path, *args, **kw):
        if str(path).startswith("/proc/"):
            raise AssertionError(f"the host's {path} was read for a simulated container")
        return real_open(path, *args, **kw)

    monkeypatch.setattr(builtins, "open", guarded)
    assert walls.gather(sim, "walls-noproc").inside.pid == 1


def test_sim_walls_refuse_a_stopped_container(sim):
    """A simulated container that is not running is refused in one sentence, as on the real backend."""
    from labkit.errors import InvalidArgument

    sim.create("busybox", ["true"], name="walls-off")
    with pytest.raises(InvalidArgument, match="not running"):
        walls.gather(sim, "walls-off")


@pytest.mark.root
def test_real_container_walls(engine):
    """A real container: the host PID is its State.Pid, inside it is PID 1 with its short id as hostname and only lo."""
    c = engine.run("busybox", ["sleep", "30"], detach=True, name="viz-walls", memory="32m", pids_limit=20,
                   network="none")
    v = walls.gather(engine, "viz-walls")
    assert v.host.pid == c.pid and v.inside.pid == 1
    assert v.inside.hostname == c.id[:12] and v.host.hostname == os.uname().nodename
    assert v.inside.interfaces == ("lo",)
    assert v.inside.cgroup == "/" and c.id in v.host.cgroup
    assert v.host.memory == "limit 32MiB" and v.host.pids == "pids.max 20"
    assert 0 < v.inside.mounts
    assert walls.draw(v)


@pytest.mark.root
def test_stopped_container_has_no_walls(engine):
    """A container that is not running is refused in one sentence."""
    engine.create("busybox", ["true"], name="viz-walls-off")
    from labkit.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match="not running"):
        walls.gather(engine, "viz-walls-off")
