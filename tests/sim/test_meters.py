"""``top`` and ``stats`` on the simulator read what its processes did: CPU time from the scheduler's work,
memory from what they hold, the tasks of the group; and the restart policy runs on its clock."""

from __future__ import annotations

import pytest


def test_a_busy_loop_reads_one_cpu_and_a_sleeper_none(sim):
    """Over a second of simulated time a busy loop used one CPU's worth (stats' CPU time, top's C and TIME),
    however often the world was looked at meanwhile; a sleeping container used none."""
    sim.run("busybox", ["sh", "-c", "while true; do :; done"], name="busy", detach=True)
    sim.run("busybox", ["sh", "-c", "sleep 1000"], name="idle", detach=True)
    meter = sim.meter("busy")
    before, idle_before = sim.stats("busy"), sim.stats("idle")
    for _ in range(5):  # looks that move the clock by nothing give no CPU time
        sim.stats("busy")
        sim.top("busy")
    meter.pause(2.0)
    after, idle_after = sim.stats("busy"), sim.stats("idle")
    rate = (after["CpuNs"] - before["CpuNs"]) / ((after["Read"] - before["Read"]) * 1e9)
    assert rate == pytest.approx(1.0, abs=0.02), (before, after)
    assert idle_after["CpuNs"] - idle_before["CpuNs"] < 0.01 * 1e9
    [row] = sim.top("busy")["Processes"]
    assert row[3] in ("99", "100") and row[6] == "00:00:02", row
    assert sim.top("idle")["Processes"][0][6] == "00:00:00"


def test_stats_memory_and_pids_are_the_groups(sim):
    """MEM USAGE is what the group's processes hold (growing with a shell variable), against the container's
    limit as inspect has it; PIDS counts its tasks."""
    sim.run("busybox", ["sh", "-c", "sleep 1000 & sleep 1000 & x=0123456789abcdef; i=0; "
                        "while [ $i -lt 14 ]; do x=$x$x; i=$((i+1)); done; wait"],
            name="holder", detach=True, memory="64m")
    sim.meter("holder").pause(1.0)
    reading = sim.stats("holder")
    assert reading["Pids"] == 3
    assert reading["MemoryLimit"] == sim.inspect("holder")["HostConfig"]["Memory"] == 64 * 2**20
    assert 16 * 2**14 <= reading["Memory"] < 64 * 2**20, reading
    assert {row[2] for row in sim.top("holder")["Processes"][1:]} == {str(sim.inspect("holder")["State"]["Pid"])}


def test_restart_delays_double_on_the_simulated_clock(sim):
    """With the manual clock, ``on-failure:3`` restarts after 0.1, 0.2 and 0.4 simulated seconds: between two
    runs the container is ``restarting`` with the last run's code, and each run starts one delay after the
    last one ended."""
    from labkit.model.container import parse_time

    sim.run("busybox", ["sleep", "1000"], name="clock", detach=True)  # its meter moves the world's clock
    sim.run("busybox", ["sh", "-c", "exit 4"], name="failing", detach=True, restart="on-failure:3")
    first = sim.inspect("failing")
    assert (first["State"]["Status"], first["State"]["Restarting"], first["RestartCount"]) == ("restarting", True, 0)
    assert [c["Status"] for c in sim.ps() if c["Id"] == first["Id"]][0].startswith("Restarting (4)")
    seen = []
    for step in (0.15, 0.2, 0.4):  # to 0.15, 0.35 and 0.75 s after the first run: past each restart
        sim.meter("clock").pause(step)
        info = sim.inspect("failing")
        seen.append((info["State"]["Status"], info["RestartCount"],
                     round((parse_time(info["State"]["StartedAt"]) - parse_time(first["State"]["StartedAt"]))
                           .total_seconds(), 3)))
    assert seen == [("restarting", 1, 0.1), ("restarting", 2, 0.3), ("exited", 3, 0.7)], seen
    assert sim.inspect("failing")["State"]["ExitCode"] == 4
