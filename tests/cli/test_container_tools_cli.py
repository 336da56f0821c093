"""``container``/``image``/``system`` groups, the offline refusals, ``port``, ``top``, ``stats``, ``rename``
and ``update`` print Docker's shapes and exit with Docker's codes (on the simulator, through ``labkit.cli.main``)."""

from __future__ import annotations

import io
import re

import pytest

from labkit import cli
from labkit.engine import Engine
from labkit.sim.backend import SimBackend
from labkit.store import Store


def cleanup(engine: Engine) -> None:
    for cid in engine.store.container_ids():
        try:
            engine.rm(cid, force=True)
        except Exception:
            pass


@pytest.fixture(scope="module")
def sim(request):
    """A simulator engine on a state root of tests/conftest.py's (swept and leak-checked at the session's end)."""
    state_root = next(plugin.state_root for plugin in request.config.pluginmanager.get_plugins()
                      if hasattr(plugin, "state_root") and hasattr(plugin, "leaks"))
    root = state_root()
    engine = Engine(root=root, backend=SimBackend(Store(root), realtime=True))
    yield engine
    cleanup(engine)


@pytest.fixture
def lk(sim):
    """``labkit ARGS...`` in-process on the simulator: (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        code = cli.main(list(args), engine_factory=lambda **_: sim, stdout=out, stderr=err)
        return code, out.getvalue(), err.getvalue()

    yield run
    cleanup(sim)


def test_container_ls_is_ps(lk):
    """``container ls -a`` (the lesson's quiz answer), ``container list`` and ``container ps`` print what ``ps -a`` does."""
    assert lk("run", "-d", "--name", "grp", "busybox", "sleep", "30")[0] == 0
    assert lk("create", "--name", "grp2", "busybox", "true")[0] == 0
    want = lk("ps", "-a", "--format", "{{.Names}} {{.State}}")
    assert want[0] == 0 and "grp running" in want[1] and "grp2 created" in want[1]
    for words in (("container", "ls", "-a"), ("container", "list", "-a"), ("container", "ps", "-a")):
        assert lk(*words, "--format", "{{.Names}} {{.State}}") == want
    code, out, _ = lk("container", "ls")
    assert code == 0 and "grp2" not in out and out.splitlines()[0].split()[:2] == ["CONTAINER", "ID"]


def test_group_commands_share_the_flat_ones_errors(lk):
    """A group's command fails as the flat one does: ``container run`` with a bad image exits 125, ``container
    rm`` of nothing exits 1 with Docker's line, ``image inspect`` looks only among images;
    ``container`` alone shows its help on stderr and exits 0, as ``docker container`` does."""
    code, _, err = lk("container", "run", "--rm", "no-such-image:1", "true")
    assert code == 125 and "No such image" in err
    assert lk("container", "rm", "nosuch")[:2] == (1, "")
    assert lk("container", "inspect", "-f", "{{.Name}}", "nosuch")[0] == 1
    code, out, err = lk("image", "inspect", "-f", "{{.Id}}", "busybox")
    assert code == 0 and out.startswith("sha256:")
    code, _, err = lk("image", "inspect", "nosuch")
    assert code == 1 and "No such image" in err
    code, out, _ = lk("image", "ls")
    assert code == 0 and out.split()[:2] == ["REPOSITORY", "TAG"] and "busybox" in out
    code, out, _ = lk("system", "info")
    assert code == 0 and "Containers:" in out
    code, out, err = lk("container")
    assert code == 0 and out == "" and "ls" in err and "prune" in err, "a group alone shows its help on stderr"


def test_container_prune_and_system_df(lk):
    """``container prune -f`` removes stopped containers and prints Docker's lines; ``system df`` has its table."""
    lk("create", "--name", "gone", "busybox", "true")
    lk("run", "-d", "--name", "stays", "busybox", "sleep", "30")
    code, out, _ = lk("system", "df")
    assert code == 0 and out.splitlines()[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["Images", "Containers", "Local", "Build"]
    code, out, _ = lk("container", "prune", "-f")
    assert code == 0 and out.startswith("Deleted Containers:\n") and out.endswith("\nTotal reclaimed space: 0B\n")
    assert lk("ps", "-a", "--format", "{{.Names}}")[1] == "stays\n"


@pytest.mark.parametrize("words", [("pull", "nginx"), ("pull", "-q", "alpine:3"), ("push", "me/web:1"),
                                   ("login", "-u", "ana"), ("logout",), ("search", "redis"),
                                   ("image", "pull", "nginx")])
def test_registry_commands_refuse_in_one_sentence(lk, words):
    """pull, push, login, logout and search say labkit works offline and how to get an image; exit 1."""
    code, out, err = lk(*words)
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "labkit works offline" in err
    assert all(verb in err for verb in ("build", "load", "import")) or "save" in err


def test_port_top_stats_shapes(lk):
    """``port`` lists bindings as ``3000/tcp -> IP:PORT``; ``top`` has ps -ef's titles in 20-wide columns; ``stats
    --no-stream`` has Docker's eight columns."""
    lk("run", "-d", "--name", "mon", "-p", "3000:3000", "busybox", "sleep", "30")
    code, out, _ = lk("port", "mon")
    assert code == 0 and re.fullmatch(r"3000/tcp -> [0-9.]+:3000\n", out), out
    assert re.fullmatch(r"[0-9.]+:3000\n", lk("port", "mon", "3000/tcp")[1])
    assert lk("port", "mon", "80") == (1, "", "Error: No public port '80' published for mon\n")
    code, out, _ = lk("top", "mon")
    header, row = out.splitlines()
    assert header.startswith("UID" + " " * 17 + "PID" + " " * 17) and row.endswith("sleep 30")
    code, out, _ = lk("stats", "--no-stream", "mon")
    header, row = out.splitlines()
    assert re.split(r"\s{2,}", header) == ["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O",
                                           "BLOCK I/O", "PIDS"]
    assert re.fullmatch(r"[0-9a-f]{12}\s+mon\s+0\.00%\s+\S+ / 256MiB\s+\d+\.\d\d%\s+0B / 0B\s+0B / 0B\s+1", row), row
    assert lk("stats", "--no-stream", "mon", "nosuch")[:2] == (1, "")
    lk("kill", "mon")
    code, _, err = lk("top", "mon")
    assert code == 1 and "is not running" in err


def test_rename_and_update(lk):
    """``rename`` prints nothing and answers a clash with Docker's two lines; ``update`` echoes the name and
    refuses to run without a flag."""
    lk("run", "-d", "--name", "old", "busybox", "sleep", "30")
    lk("create", "--name", "other", "busybox", "true")
    assert lk("rename", "old", "new") == (0, "", "")
    code, _, err = lk("rename", "new", "other")
    assert code == 1 and err.splitlines()[1] == "Error: failed to rename container named new"
    assert "Error when allocating new name: Conflict." in err.splitlines()[0]
    assert lk("rename", "new")[0] == 1
    assert lk("update", "--memory", "32m", "--pids-limit", "20", "new") == (0, "new\n", "")
    assert lk("inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}}", "new")[1] == "33554432 20\n"
    assert lk("update", "new") == (1, "", "you must provide one or more flags when using this command\n")
    assert lk("update", "--memory", "1k", "new")[0] == 1


def test_volume_prune(lk, sim):
    """``volume prune -f`` removes unused anonymous volumes and says how many bytes went; ``-a`` unused named ones
    too; a volume a container uses stays."""
    lk("volume", "create", "keep-named")
    lk("run", "--name", "anon", "-v", "/data", "busybox", "sh", "-c", "echo hello > /data/x")
    anon = next(m["Name"] for m in sim.inspect("anon")["Mounts"])
    lk("create", "--name", "user", "-v", "used:/data", "busybox", "true")
    lk("rm", "anon")
    code, out, _ = lk("volume", "prune", "-f")
    assert (code, out) == (0, f"Deleted Volumes:\n{anon}\n\nTotal reclaimed space: 6B\n")
    code, out, _ = lk("volume", "prune", "-a", "-f")
    assert (code, out) == (0, "Deleted Volumes:\nkeep-named\n\nTotal reclaimed space: 0B\n")
    assert lk("volume", "ls", "-q")[1] == "used\n"


def test_cp_follows_dockers_rules_for_where_things_land(lk, tmp_path):
    """``cp`` into a directory keeps the name, onto a new name renames, ``DIR/.`` copies what it holds; out of
    the container the same; Docker's refusals exit 1 with its lines."""
    (tmp_path / "f.txt").write_text("hello\n")
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "sub" / "a").write_text("a\n")
    lk("run", "-d", "--name", "cpy", "busybox", "sleep", "60")
    f, d = str(tmp_path / "f.txt"), str(tmp_path / "d")
    assert lk("cp", f, "cpy:/tmp") == (0, "", "")
    assert lk("cp", f, "cpy:/tmp/renamed.txt") == (0, "", "")
    assert lk("cp", d, "cpy:/opt") == (0, "", "")  # /opt did not exist: d becomes /opt
    assert lk("cp", d + "/.", "cpy:/home") == (0, "", "")
    assert lk("exec", "cpy", "find", "/tmp", "/opt", "/home")[1].split() == [
        "/tmp", "/tmp/f.txt", "/tmp/renamed.txt", "/opt", "/opt/sub", "/opt/sub/a", "/home", "/home/sub",
        "/home/sub/a"]
    out = tmp_path / "out"
    out.mkdir()
    assert lk("cp", "cpy:/opt", str(out)) == (0, "", "")
    assert lk("cp", "cpy:/tmp/f.txt", str(out / "g.txt")) == (0, "", "")
    assert (out / "opt" / "sub" / "a").read_text() == "a\n" and (out / "g.txt").read_text() == "hello\n"
    assert lk("cp", f, "cpy:/nope/x") == (
        1, "", "Error response from daemon: Could not find the file /nope in container cpy. "
               "List what is there: labkit exec cpy ls -la /\n")
    assert lk("cp", f, "cpy:/nope/") == (1, "", "no such directory\n")
    assert lk("cp", d, "cpy:/tmp/f.txt") == (1, "", "cannot copy directory\n")
    assert lk("cp", str(tmp_path / "missing"), "cpy:/tmp") == (
        1, "", f"lstat {tmp_path / 'missing'}: no such file or directory\n")
    assert lk("cp", f, str(out)) == (1, "", "must specify at least one container source\n")
    assert lk("cp", "cpy:/etc/passwd", "cpy:/tmp") == (1, "", "copying between containers is not supported\n")
    assert lk("cp", f, "nosuch:/tmp")[:2] == (1, "")


def test_events_lines_filters_and_times(lk):
    """``events --since 1m --until 0s`` prints Docker's lines; ``-f`` narrows them; a bad time is refused."""
    lk("run", "--name", "evc", "busybox", "sh", "-c", "exit 3")
    code, out, _ = lk("events", "--since", "1m", "--until", "0s", "-f", "container=evc")
    lines = out.splitlines()
    assert code == 0 and [line.split()[2] for line in lines] == ["create", "start", "die"], out
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}(Z|[+-]\d\d:\d\d) container die [0-9a-f]{64} "
                        r"\(exitCode=3, image=busybox, name=evc\)", lines[2]), lines[2]
    code, out, _ = lk("events", "--since", "1m", "--until", "0s", "-f", "event=die", "-f", "container=evc",
                      "--format", "{{.Type}} {{.Action}} {{.Actor.Attributes.exitCode}}")
    assert (code, out) == (0, "container die 3\n")
    code, _, err = lk("events", "--since", "yesterday-ish", "--until", "0s")
    assert code == 1 and "failed to parse value as time or duration" in err


def test_stats_streams_a_table_after_each_clear_screen(lk, sim):
    """Without ``--no-stream``, ``stats`` clears the screen and prints a fresh table again and again until it is
    stopped (here by the test's deadline)."""
    import os
    import subprocess
    import sys

    lk("run", "-d", "--name", "streamed", "busybox", "sleep", "60")
    env = {**os.environ, "LABKIT_ROOT": str(sim.store.root), "LABKIT_BACKEND": "sim", "LABKIT_NO_SERVER": "1"}
    with pytest.raises(subprocess.TimeoutExpired) as stopped:
        subprocess.run([sys.executable, "-m", "labkit", "stats", "streamed"], capture_output=True, env=env,
                       timeout=10)
    tables = (stopped.value.stdout or b"").decode().split("\x1b[2J\x1b[H")[1:]
    assert len(tables) >= 2, tables
    assert all(t.startswith("CONTAINER ID") and "streamed" in t for t in tables[:-1]), tables
