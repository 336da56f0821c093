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
