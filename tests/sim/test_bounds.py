"""A simulator that survives a learner: bounded memory and disk, a world file that is always loadable or reset."""

from __future__ import annotations

import gzip
import os
import pickle
import subprocess
import sys

from labkit.sim import cgroups, overlay
from labkit.sim.backend import SimBackend
from labkit.sim.saved import MAX_WORLD


def _cli(root) -> tuple[list[str], dict[str, str]]:
    env = {**os.environ, "LABKIT_ROOT": str(root), "LABKIT_SIM_CLOCK": "manual"}
    return [sys.executable, "-m", "labkit", "--backend", "sim"], env


def test_unbounded_hog_is_oom_killed_and_ps_still_answers(make_sim, fresh_root):
    """A hog without --memory dies by the global OOM killer at the host's memory; `ps -a` then answers at once.

    The world it leaves is small (the hog's memory went with it), so every
    later command loads it: the hog is listed as exited 137 and inspect says
    OOMKilled.
    """
    root = fresh_root()
    cli, env = _cli(root)
    try:
        run = subprocess.run([*cli, "run", "--name", "hog", "busybox", "sh", "-c", "x=a; while true; do x=$x$x; done"],
                             capture_output=True, text=True, env=env, timeout=120)
        assert run.returncode == 137, run.stderr
        ps = subprocess.run([*cli, "ps", "-a"], capture_output=True, text=True, env=env, timeout=60)
        assert ps.returncode == 0 and ps.stderr == "", ps.stderr
        assert "hog" in ps.stdout and "Exited (137)" in ps.stdout
        state = subprocess.run([*cli, "inspect", "-f", "{{.State.OOMKilled}} {{.State.ExitCode}}", "hog"],
                               capture_output=True, text=True, env=env, timeout=60).stdout
        assert state.split() == ["true", "137"]
        world = root / "sim" / "world.pickle"
        assert world.stat().st_size < 1024 * 1024, "the world file stays small once the hog is gone"
    finally:
        make_sim(root)


def test_global_oom_killer_picks_the_largest_process_of_the_host(sim):
    """Two containers without limits: the one that passes the host's memory is killed, counted in its own group."""
    quiet = sim.run("busybox", ["sh", "-c", "sleep 1000"], detach=True)
    hog = sim.run("busybox", ["sh", "-c", "x=a; while true; do x=$x$x; done"])
    st = hog.inspect()["State"]
    assert (st["ExitCode"], st["OOMKilled"]) == (137, True)
    assert quiet.inspect()["State"]["Status"] == "running"
    stats = sim.backend.cgroup_stats(sim.store.load(hog.id))
    assert stats["memory.events"]["oom_kill"] == 1
    assert cgroups.HOST_MEMORY // 2 <= stats["memory.peak"] <= cgroups.HOST_MEMORY


def test_meminfo_without_a_limit_shows_the_host_memory(sim):
    """/proc/meminfo in a container without --memory shows the modelled host's RAM (where the OOM killer strikes)."""
    c = sim.run("busybox", ["sh", "-c", "sleep 100"], detach=True)
    code, out = c.exec(["head", "-n", "1", "/proc/meminfo"])
    assert code == 0 and out.split() == ["MemTotal:", str(cgroups.HOST_MEMORY // 1024), "kB"]


def test_a_full_disk_fails_writes_with_enospc(sim, monkeypatch):
    """Writes past the modelled disk fail with ENOSPC, as busybox says it, and the file keeps what fit."""
    monkeypatch.setattr(overlay, "DISK", 1024 * 1024)
    line = 2 ** 18 + 1  # 256 KiB of "a" and a newline: three fit in 1 MiB, the fourth does not
    c = sim.run("busybox", ["sh", "-c", "x=a; for i in $(seq 18); do x=$x$x; done; "
                            "for i in 1 2 3 4 5; do echo $x >> /tmp/f || echo failed $i; done; wc -c /tmp/f"])
    logs = [text for _, text, _ in sim.backend.logs(sim.store.load(c.id))]
    assert "sh: write error: No space left on device\n" in logs
    assert "failed 4\n" in logs and "failed 3\n" not in logs
    assert any(text.split()[0] == str(3 * line) for text in logs if text.endswith("/tmp/f\n"))


def test_a_full_disk_refuses_new_files_and_copy_ups(sim, monkeypatch):
    """With the disk full, touch of a new file is refused too (ENOSPC), and rm frees the space again."""
    monkeypatch.setattr(overlay, "DISK", 64 * 1024)
    c = sim.run("busybox", ["sh", "-c", "sleep 1000"], detach=True)
    assert c.exec(["sh", "-c", "x=$(seq 10000); echo $x > /big"])[0] == 0
    code, out = c.exec(["sh", "-c", "echo more $(seq 10000) >> /big"])
    assert code == 1 and "No space left on device" in out
    assert c.exec(["sh", "-c", "rm /big && echo small > /s && cat /s"]) == (0, "small\n")


def test_corrupted_world_is_reset_with_one_sentence(make_sim, fresh_root):
    """A world file that is not a world: the next command says what, why and what was lost, then works."""
    root = fresh_root()
    cli, env = _cli(root)
    try:
        subprocess.run([*cli, "run", "-d", "--name", "bg", "busybox", "sleep", "100"], check=True,
                       capture_output=True, env=env, timeout=60)
        (root / "sim" / "world.pickle").write_bytes(b"\x1f\x8b not a world at all")
        ps = subprocess.run([*cli, "ps", "-a"], capture_output=True, text=True, env=env, timeout=60)
        assert ps.returncode == 0 and "bg" in ps.stdout
        assert "Traceback" not in ps.stderr
        (sentence,) = ps.stderr.strip().splitlines()
        assert sentence.startswith("WARNING: the simulated world in ") and "cannot be read" in sentence
        assert "lost" in sentence
        again = subprocess.run([*cli, "ps", "-a"], capture_output=True, text=True, env=env, timeout=60)
        assert again.returncode == 0 and again.stderr == ""
    finally:
        make_sim(root)


def test_oversized_world_file_is_reset_without_being_read(fresh_root):
    """A world file larger than a bounded world can be (say a 1 GB pickle from an older simulator) is set aside."""
    from labkit.store import Store

    root = fresh_root()
    backend = SimBackend(Store(root), realtime=False)
    path = backend.world_path
    with open(path, "wb") as f:
        f.truncate(MAX_WORLD + 1)  # sparse: no disk is used
    assert backend.clock() == 0.0
    assert backend.reset_reason is not None and "more than a bounded world can be" in backend.reset_reason
    assert not path.exists() or path.stat().st_size < 1024


def test_world_that_unpacks_too_large_is_reset(fresh_root):
    """A small file that unpacks past the bound (a gzip bomb) is refused while being read, not after."""
    from labkit.store import Store

    root = fresh_root()
    backend = SimBackend(Store(root), realtime=False)
    with gzip.open(backend.world_path, "wb", compresslevel=1) as f:
        pickle.dump({"version": 2, "world": b"a" * (MAX_WORLD + 1)}, f, protocol=pickle.HIGHEST_PROTOCOL)
    assert backend.world_path.stat().st_size < 4 * 1024 * 1024
    backend.clock()
    assert backend.reset_reason is not None and "unpacks to more" in backend.reset_reason


def test_endless_pipe_writer_is_oom_killed(sim):
    """An endless writer into a pipe (whose stages the simulator runs in turn) ends at the host's memory, not the world's end."""
    c = sim.run("busybox", ["sh", "-c", "x=a; for i in $(seq 20); do x=$x$x; done; while true; do echo $x; done | wc -c"])
    st = c.inspect()["State"]
    assert st["OOMKilled"] is True
    assert sum(len(b) for b in sim.backend._load().buffers.values()) == 0


def test_world_from_the_older_unpacked_format_is_reset(fresh_root, capsys):
    """A world.pickle the simulator wrote before it packed its worlds is named as such, and set aside."""
    from labkit.sim.kernel import World
    from labkit.store import Store

    root = fresh_root()
    backend = SimBackend(Store(root), realtime=False)
    backend.world_path.write_bytes(pickle.dumps({"version": 1, "world": World()}, protocol=pickle.HIGHEST_PROTOCOL))
    backend.clock()
    assert backend.reset_reason == "it was written by an older version of the simulator"
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "reset because it was written by an older version" in err
