"""Memory and process counts are drawn against their cgroup limits, and an OOM kill is marked."""

from __future__ import annotations

import pytest

from labkit.viz import palette as P
from labkit.viz import resources
from tests.viz.vizfigs import apart, by_gid, extent, hex_colour


def test_usage_from_plain_data_is_drawn_under_its_limits():
    """Both usage lines, both limit lines (vermillion) and the OOM mark are on the figure."""
    u = resources.usage("hog", [(0.0, 1 << 20, 1), {"t": 0.5, "memory": 20 << 20, "pids": 3}, (1.0, 1 << 20, 1)],
                        memory_limit=24 << 20, pids_limit=10, oom_at=0.6, exit_code=137)
    fig = resources.draw(u)
    for gid in ("usage:memory", "usage:pids", "limit:memory", "limit:pids", "oom"):
        assert by_gid(fig, gid), gid
    assert hex_colour(by_gid(fig, "limit:memory")[0]) == P.CURRENT
    (line,) = by_gid(fig, "usage:memory")
    assert list(line.get_ydata()) == [1.0, 20.0, 1.0]
    text = P.texts(fig)
    assert "limit 24 MiB" in text and "limit 10" in text and " ✝ OOM kill " in text
    assert any("exited 137" in t for t in text)


@pytest.mark.parametrize("oom_index", [299, 150, 20])
def test_limit_label_and_oom_badge_do_not_overlap(oom_index):
    """The "limit 32 MiB" label, the OOM badge and the OOM line keep clear of each other, wherever the kill falls."""
    samples = [(i * 0.02, int((32 << 20) * min(1.0, 0.1 + i / 300)), 1 + i % 3) for i in range(300)]
    u = resources.usage("hog", samples, memory_limit=32 << 20, pids_limit=20, oom_at=samples[oom_index][0],
                        exit_code=137)
    fig = resources.draw(u)
    (label,) = by_gid(fig, "limit-label:memory")
    (badge,) = by_gid(fig, "oom-badge")
    assert label.get_text() == "limit 32 MiB" and badge.get_text().strip() == "✝ OOM kill"
    label_box, badge_box = extent(fig, label), extent(fig, badge)
    assert apart(label_box, badge_box), (label_box, badge_box)
    for gid in ("oom", "oom:pids"):
        (line,) = by_gid(fig, gid)
        x = line.get_window_extent(fig.canvas.get_renderer()).x0
        limit_label = by_gid(fig, "limit-label:" + ("memory" if gid == "oom" else "pids"))[0]
        box = extent(fig, limit_label)
        assert not box.x0 - 3 <= x <= box.x1 + 3, f"the OOM line crosses {limit_label.get_text()!r}"


def test_no_limit_and_no_oom():
    """Without limits the plot says so and draws no limit line or OOM mark."""
    fig = resources.draw(resources.usage("idle", [(0, 100, 1), (1, 100, 1)]))
    assert not by_gid(fig, "limit:memory") and not by_gid(fig, "oom")
    assert P.texts(fig).count("no limit") == 2


@pytest.mark.root
def test_real_oom_is_sampled_and_marked(engine):
    """A real container whose dd needs more than its 24 MiB: the counters rise, the OOM kill is seen and marked."""
    engine.run("busybox", ["sh", "-c", "sleep 0.3; dd if=/dev/zero of=/dev/null bs=48M count=1; sleep 0.3"],
               detach=True, name="viz-oom", memory="24m", memory_swap="24m", pids_limit=10)
    u = resources.sample(engine, "viz-oom", seconds=10, interval=0.02)
    assert u.memory_limit == 24 << 20 and u.pids_limit == 10
    assert len(u.samples) > 3 and max(s.pids or 0 for s in u.samples) >= 1
    assert u.oom_at is not None
    assert engine.inspect("viz-oom")["State"]["OOMKilled"]
    fig = resources.draw(u)
    assert by_gid(fig, "oom")


# -- the meter: the real one over a stand-in group, and the simulator's -------------------------------

class FakeGroup:
    """Counters that follow a script, one value per reading; ``None`` for both once the group is gone."""

    def __init__(self, memory, pids, kills):
        self.memory, self.pids, self.kills = list(memory), list(pids), list(kills)

    def memory_usage(self):
        return self.memory.pop(0) if self.memory else None

    def pids_current(self):
        return self.pids.pop(0) if self.pids else None

    def oom_kills(self):
        return self.kills.pop(0) if self.kills else 0

    # What the meter reads beside the lesson's three counters (stats' columns): unknown to this stand-in.
    def memory_limit(self):
        return None

    def cpu_usage_ns(self):
        return None

    def inactive_file(self):
        return None

    def block_io(self):
        return None


class ScriptedEngine:
    """inspect and meter for one container, ``running`` for as many inspects as given, on a real backend."""

    class backend:  # noqa: N801 — what the pictures ask of an engine's backend
        simulated = False

    def __init__(self, meter, running, oom_killed=False):
        self.the_meter, self.running, self.oom_killed = meter, running, oom_killed

    def inspect(self, ref):
        running = self.running > 0
        self.running -= 1
        return {"Id": "c" * 64, "Name": "/hog", "HostConfig": {"Memory": 32 << 20, "PidsLimit": 10},
                "State": {"Running": running, "OOMKilled": self.oom_killed and not running,
                          "ExitCode": 0 if running else 137}}

    def meter(self, ref):
        return self.the_meter


def test_real_meter_readings_become_samples_and_a_new_oom_kill_is_marked():
    """The real backend's meter reads the group against its clock: each reading is a sample at its time, the
    reading whose oom_kill count rose marks the OOM, and a group that is gone ends the sampling."""
    from labkit.linux import views

    now = [100.0]
    group = FakeGroup(memory=[1 << 20, 8 << 20, 30 << 20], pids=[1, 2, 2], kills=[0, 0, 1])
    meter = views.Meter(group, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    u = resources.sample(ScriptedEngine(meter, running=10), "hog", seconds=5, interval=0.5)
    assert [(s.t, s.memory, s.pids) for s in u.samples] == [(0.0, 1 << 20, 1), (0.5, 8 << 20, 2), (1.0, 30 << 20, 2)]
    assert u.oom_at == 1.0 and u.memory_limit == 32 << 20 and u.pids_limit == 10


def test_sampling_a_container_that_is_not_running_reads_nothing():
    """A container that is not running has no meter: no samples, and the picture says so."""
    u = resources.sample(ScriptedEngine(None, running=0), "hog")
    assert u.samples == () and u.exit_code == 137
    assert "no readings: the container was not running" in P.texts(resources.draw(u))


def test_sim_oom_is_sampled_against_simulated_time_and_marked(sim_lab):
    """On the simulator, the string-doubling loop under 32 MiB: readings every 50 simulated ms make a rising
    memory curve under the limit, the OOM kill is marked in vermillion, and the container exited 137."""
    sim_lab.run("busybox", ["sh", "-c", "x=a; while true; do x=$x$x; sleep 0.1; done"], detach=True,
                name="sim-hog", memory="32m")
    u = resources.sample(sim_lab, "sim-hog", seconds=20)
    assert len(u.samples) > 10 and u.memory_limit == 32 << 20
    ts = [s.t for s in u.samples]
    assert ts == sorted(ts) and ts[0] == 0.0 and ts[-1] < 20
    memory = [s.memory for s in u.samples]
    assert memory[-1] > 8 * memory[0] and max(memory) <= 32 << 20
    assert u.oom_at is not None and ts[0] < u.oom_at <= ts[-1] and u.exit_code == 137
    assert sim_lab.inspect("sim-hog")["State"]["OOMKilled"]
    fig = resources.draw(u)
    (line,) = by_gid(fig, "usage:memory")
    assert len(line.get_ydata()) == len(u.samples)
    (mark,) = by_gid(fig, "oom")
    assert hex_colour(mark) == P.CURRENT and list(mark.get_xdata()) == [u.oom_at, u.oom_at]
    text = P.texts(fig)
    assert " ✝ OOM kill " in text and "limit 32 MiB" in text and any("exited 137" in t for t in text)
    assert "no readings: the container was not running" not in text


def test_sim_pids_climb_to_their_limit(sim_lab):
    """On the simulator, a shell that starts a sleep every 50 ms under --pids-limit 20: the task count climbs in
    steps and never passes the limit line; the shell then cannot fork."""
    sim_lab.run("busybox", ["sh", "-c", "for i in $(seq 100); do sleep 5 & sleep 0.05; done; wait"],
                detach=True, name="sim-bomb", pids_limit=20)
    u = resources.sample(sim_lab, "sim-bomb", seconds=3)
    pids = [s.pids or 0 for s in u.samples]
    assert len(u.samples) > 10 and u.pids_limit == 20
    assert pids[0] < 5 and max(pids) == 20 and pids == sorted(pids)
    assert "can't fork" in sim_lab.container("sim-bomb").logs()
    fig = resources.draw(u)
    assert by_gid(fig, "usage:pids") and by_gid(fig, "limit:pids") and "limit 20" in P.texts(fig)


#: 02's fork bomb: busybox watch starts `sleep 5 &` in a fresh shell every tenth of a second and, unlike ash's own
#: loop, tries again when fork(2) is refused.
BOMB = "busybox watch -n 0.1 -t 'sleep 5 &' > /dev/null"


def held_at_limit(u, limit=20):
    """Seconds between the first and the last reading within one task of the limit."""
    at = [s.t for s in u.samples if (s.pids or 0) >= limit - 1]
    return at[-1] - at[0] if at else 0.0


def test_real_fork_bomb_keeps_trying_and_is_held_at_its_limit(engine):
    """Under --pids-limit 20 the bomb's task count rises to the limit, never passes it, and stays there for
    seconds while the bomb keeps running (a refused fork does not end it)."""
    engine.run("busybox", ["sh", "-c", BOMB], detach=True, name="viz-bomb", pids_limit=20, init=True)
    try:
        u = resources.sample(engine, "viz-bomb", seconds=5, interval=0.05)
        pids = [s.pids or 0 for s in u.samples]
        assert max(pids) <= 20 and max(pids) >= 19, pids
        assert held_at_limit(u) >= 2.0, pids
        assert engine.inspect("viz-bomb")["State"]["Running"]
        assert "can't fork" in engine.container("viz-bomb").logs()
    finally:
        engine.rm("viz-bomb", force=True)


def test_sim_fork_bomb_keeps_trying_and_is_held_at_its_limit(sim_lab):
    """The simulator's busybox watch tries again after a refused fork as the real one does: the count is held at
    the limit for seconds, the limit line drawn above it."""
    sim_lab.run("busybox", ["sh", "-c", BOMB], detach=True, name="sim-watch-bomb", pids_limit=20, init=True)
    u = resources.sample(sim_lab, "sim-watch-bomb", seconds=5)
    pids = [s.pids or 0 for s in u.samples]
    assert max(pids) <= 20 and max(pids) >= 19 and held_at_limit(u) >= 2.0, pids
    assert sim_lab.inspect("sim-watch-bomb")["State"]["Running"]
    fig = resources.draw(u)
    assert by_gid(fig, "limit:pids") and "limit 20" in P.texts(fig)


def test_time_is_drawn_in_plain_seconds_from_zero():
    """A run of a few microseconds is drawn on a 0–1 s axis without an offset, not in microseconds."""
    u = resources.usage("quick", [(0.0, 1 << 20, 1), (2e-6, 1 << 20, 2)], pids_limit=20)
    fig = resources.draw(u)
    fig.canvas.draw()
    axis = fig.axes[1]
    assert axis.get_xlim() == (0.0, 1.0)
    assert axis.xaxis.get_offset_text().get_text() == ""
    assert by_gid(fig, "limit:pids")
