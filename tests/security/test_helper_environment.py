"""The caller's environment never reaches the processes labkit starts for itself, and a planted client never runs.

Each attack of the shared-machine issue is run for real, as root: a shared
object in ``LD_PRELOAD`` that writes down every process it is loaded into, a
shadow ``labkit`` package on ``PYTHONPATH`` that writes down every import of
it, and a "client" in a socket directory that is not the caller's own (or
that others may write), which would leave a marker if it ran. Each test also
shows that the probe works: the same object or package, run where it may
run, leaves its mark.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from labkit import helpers
from labkit.daemon import client
from tests.learner import run_as
from tests.util import scaled, wait_for

pytestmark = pytest.mark.root

REPO = Path(__file__).resolve().parents[2]
LAUNCHER = REPO / "bin" / "labkit"
NOBODY = pwd.getpwnam("nobody")

#: Loaded into a process, it appends "PID EXE CMDLINE" to the file it was compiled with.
PRELOAD_C = r"""
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

__attribute__((constructor)) static void mark(void)
{
    char exe[512] = "", cmd[1024] = "";
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = 0;
    int fd = open("/proc/self/cmdline", O_RDONLY);
    ssize_t got = fd >= 0 ? read(fd, cmd, sizeof cmd - 1) : 0;
    if (fd >= 0)
        close(fd);
    for (ssize_t i = 0; i < got; i++)
        if (!cmd[i])
            cmd[i] = ' ';
    cmd[got > 0 ? got : 0] = 0;
    int out = open(MARKER, O_WRONLY | O_APPEND | O_CREAT, 0600);
    if (out >= 0) {
        dprintf(out, "%d\t%s\t%s\n", (int)getpid(), exe, cmd);
        close(out);
    }
}
"""


@pytest.fixture
def preload(tmp_path):
    """A shared object for LD_PRELOAD and the file where it notes each process that loaded it."""
    marker = tmp_path / "loaded-into"
    source = tmp_path / "mark.c"
    source.write_text(PRELOAD_C)
    lib = tmp_path / "libmark.so"
    subprocess.run(["gcc", "-shared", "-fPIC", f'-DMARKER="{marker}"', "-o", str(lib), str(source)], check=True)
    return lib, marker


def _loaded_into(marker: Path) -> list[tuple[str, str]]:
    """(executable, command line) of every process the marking object was loaded into."""
    if not marker.exists():
        return []
    return [tuple(line.split("\t")[1:3]) for line in marker.read_text().splitlines()]  # type: ignore[misc]


def _helpers_among(loaded: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The processes labkit started for itself among ``loaded``: the shim, the restarter, a controller, a server."""
    words = ("labkit-shim", "labkit.restarter", "labkit.service", client.SERVER_MODULE, "slirp4netns", "pasta")
    return [(exe, cmd) for exe, cmd in loaded if any(w in exe or w in cmd for w in words)]


def _labkit(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The ``labkit`` command as a shell runs it (bin/labkit, the venv's Python first on PATH)."""
    return subprocess.run(["sh", str(LAUNCHER), *args], env=env, capture_output=True, text=True, timeout=120)


def _command_env(root: Path, sockets: Path | None, **extra: str) -> dict[str, str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
           "LABKIT_ROOT": str(root), **extra}
    if sockets is None:
        env["LABKIT_NO_SERVER"] = "1"
    else:
        env["LABKIT_SOCKET_DIR"] = str(sockets)
        env.pop("LABKIT_NO_SERVER", None)
    return env


def _restarted_once(env: dict[str, str], name: str) -> dict:
    """Run a container that fails, with --restart on-failure:1, and wait until the restarter has run it again
    and it has failed for good; return its inspect."""
    p = _labkit(env, "run", "-d", "--name", name, "--restart", "on-failure:1", "-p", "127.0.0.1::80",
                "busybox", "sh", "-c", "sleep 0.3; exit 3")
    assert p.returncode == 0, p.stderr

    def done() -> dict | None:
        info = json.loads(_labkit(env, "inspect", name).stdout)[0]
        return info if info["RestartCount"] == 1 and info["State"]["Status"] == "exited" else None

    assert wait_for(done, timeout=scaled(30)), "the restarter ran the container once more"
    return done()  # type: ignore[return-value]


@pytest.mark.parametrize("through_server", [False, True], ids=["in-process", "resident-engine"])
def test_ld_preload_of_the_caller_reaches_no_helper(engine, preload, sockets, through_server):
    """A container started with LD_PRELOAD in the caller's environment (in-process, and through the resident
    engine): the object is loaded into the caller's own processes only — never into the shim, the restarter,
    a service's controller or the resident engine — and the container's environment does not hold it."""
    lib, marker = preload
    root = engine.store.root
    env = _command_env(root, sockets if through_server else None)
    if through_server:  # a server of this test's own, started before the caller with LD_PRELOAD comes
        assert _labkit(env, "version").returncode == 0
        assert wait_for(lambda: (sockets / client.SOCKET).exists(), timeout=scaled(30))
    env = {**env, "LD_PRELOAD": str(lib), "PYTHONPATH": f"{REPO}:/nonexistent"}
    try:
        info = _restarted_once(env, "preloaded")
        assert _labkit(env, "service", "create", "--name", "preloadsvc", "--replicas", "1",
                       "busybox", "sleep", "600").returncode == 0
        assert wait_for(lambda: "1/1" in _labkit(env, "service", "ls").stdout, timeout=scaled(30))
        run = _labkit(env, "run", "--rm", "--network", "none", "busybox", "env")
    finally:
        _labkit(env, "service", "rm", "preloadsvc")
        _labkit(env, "rm", "-f", "preloaded")
    assert run.returncode == 0, run.stderr
    assert "LD_PRELOAD" not in run.stdout and "PYTHONPATH" not in run.stdout, run.stdout
    assert info["State"]["ExitCode"] == 3
    loaded = _loaded_into(marker)
    assert loaded, "the marking object is loaded where the caller's environment goes: the probe works"
    assert _helpers_among(loaded) == []


def test_the_marking_object_would_be_seen_in_a_helper(preload):
    """The probe can fail: a helper started with the caller's environment (as before) loads it, and the test's
    filter names it."""
    lib, marker = preload
    shim = helpers.environ()  # what labkit gives a helper
    subprocess.run(["/bin/true"], env={**shim, "LD_PRELOAD": str(lib)}, check=True)
    subprocess.run([sys.executable, "-c", "pass", "labkit.restarter"], env={**shim, "LD_PRELOAD": str(lib)},
                   check=True)
    subprocess.run(["/bin/true"], env=shim, check=True)
    loaded = _loaded_into(marker)
    assert len(loaded) == 2 and len(_helpers_among(loaded)) == 1


SHADOW = """
import os
with open({marker!r}, "a") as f:
    f.write(f"{{__name__}} {{os.getpid()}} {{open('/proc/self/cmdline').read()!r}}\\n")
"""


@pytest.fixture
def shadow(tmp_path):
    """A directory for PYTHONPATH that notes each process importing from it, and its marker file.

    It holds a ``labkit`` package (which wins over an installed labkit, not over an editable one, whose
    finder comes first) and a ``sitecustomize`` module, which any interpreter with the directory on its
    path imports as it starts (the docs of Python's ``site`` module).
    """
    marker = tmp_path / "imported"
    directory = tmp_path / "shadow"
    (directory / "labkit").mkdir(parents=True)
    code = textwrap.dedent(SHADOW.format(marker=str(marker)))
    (directory / "labkit" / "__init__.py").write_text(code + 'raise SystemExit("a shadow labkit ran")\n')
    (directory / "sitecustomize.py").write_text(code)
    return directory, marker


@pytest.mark.parametrize("through_server", [False, True], ids=["in-process", "resident-engine"])
def test_a_shadow_labkit_on_pythonpath_is_not_imported_by_the_restarter(engine, shadow, sockets, monkeypatch,
                                                                        through_server):
    """With a shadow ``labkit`` first on the caller's PYTHONPATH (an engine in this process, and a command through
    the resident engine), the restarter imports the engine's own labkit: it restarts the container, and the shadow
    is never imported."""
    directory, marker = shadow
    if through_server:
        env = _command_env(engine.store.root, sockets)
        assert _labkit(env, "version").returncode == 0  # the engine starts as the caller's labkit, without it
        assert wait_for(lambda: (sockets / client.SOCKET).exists(), timeout=scaled(30))
        info = _restarted_once({**env, "PYTHONPATH": str(directory)}, "shadowed")
        _labkit(env, "rm", "-f", "shadowed")
    else:
        monkeypatch.setenv("PYTHONPATH", str(directory))
        monkeypatch.setenv("PYTHONHOME", str(directory))
        c = engine.run("busybox", ["sh", "-c", "sleep 0.3; exit 3"], name="shadowed", detach=True,
                       restart="on-failure:1")
        assert wait_for(lambda: (i := c.inspect())["RestartCount"] == 1 and i["State"]["Status"] == "exited",
                        timeout=scaled(30))
        info = c.inspect()
        engine.rm(c.id, force=True)
    assert info["RestartCount"] == 1 and info["State"]["ExitCode"] == 3
    assert not marker.exists(), marker.read_text()
    monkeypatch.delenv("PYTHONHOME", raising=False)
    probe = subprocess.run([sys.executable, "-m", "labkit.restarter"], env={**os.environ, "PYTHONPATH": str(directory)},
                           capture_output=True, text=True)
    assert "sitecustomize" in marker.read_text(), f"the probe works with the caller's PYTHONPATH: {probe.stderr}"


def _plant(directory: Path, marker: Path, owner: int = 0, mode: int = 0o755, dir_owner: int = 0,
           dir_mode: int = 0o700) -> None:
    """A socket directory holding a "client" that would create ``marker`` if it ran."""
    directory.mkdir(parents=True, exist_ok=True)
    client = directory / "client"
    client.write_text(f"#!/bin/sh\ntouch {marker}\nexit 42\n")
    os.chown(client, owner, owner)
    os.chmod(client, mode)
    os.chown(directory, dir_owner, dir_owner)
    os.chmod(directory, dir_mode)


@pytest.mark.parametrize("owner, mode, dir_owner, dir_mode", [
    (NOBODY.pw_uid, 0o755, 0, 0o700),   # a client another user put there
    (0, 0o777, 0, 0o700),               # the caller's, but anyone may rewrite it
    (0, 0o775, 0, 0o700),               # the caller's, but its group may rewrite it
    (0, 0o755, NOBODY.pw_uid, 0o700),   # in a directory another user owns
    (0, 0o755, 0, 0o777),               # in a directory anyone may write
    (0, 0o755, 0, 0o750),               # in a directory others may enter
], ids=["other-owner", "world-writable", "group-writable", "other-dir", "open-dir", "enterable-dir"])
def test_a_planted_client_is_not_run(tmp_path, engine, owner, mode, dir_owner, dir_mode):
    """bin/labkit run as root with XDG_RUNTIME_DIR pointing where someone else could have planted a "client" does
    not exec it: it runs the command itself, and the command works."""
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    runtime.chmod(0o755)
    marker = tmp_path / "client-ran"
    _plant(runtime / "labkit", marker, owner, mode, dir_owner, dir_mode)
    env = _command_env(engine.store.root, None, XDG_RUNTIME_DIR=str(runtime))
    env.pop("LABKIT_SOCKET_DIR", None)
    p = _labkit(env, "version")
    assert p.returncode == 0 and "Version" in p.stdout, p.stderr
    assert not marker.exists(), "the planted client ran"


def test_the_callers_own_client_runs(tmp_path, engine):
    """The probe works: a client of the caller's own, in a directory only the caller may enter, is exec'd."""
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    marker = tmp_path / "client-ran"
    _plant(runtime / "labkit", marker)
    env = _command_env(engine.store.root, None, XDG_RUNTIME_DIR=str(runtime))
    env.pop("LABKIT_SOCKET_DIR", None)
    assert _labkit(env, "version").returncode == 42 and marker.exists()


def test_a_users_labkit_runs_no_client_someone_else_planted(learner):
    """Run by an unprivileged user whose socket directory holds a "client" that root (someone else, to that user)
    put there, bin/labkit runs the command itself; the user's own client in the same place is exec'd."""
    where = Path(tempfile.mkdtemp(prefix="labkit-sec-"))
    try:
        os.chmod(where, 0o755)
        runtime = where / "runtime"
        runtime.mkdir()
        os.chown(runtime, learner.pw_uid, learner.pw_gid)
        marker = where / "out" / "client-ran"
        marker.parent.mkdir()
        os.chmod(marker.parent, 0o777)
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": learner.pw_dir, "PYTHONPATH": str(REPO),
               "LANG": "C.UTF-8", "LABKIT_NO_SERVER": "1", "XDG_RUNTIME_DIR": str(runtime)}
        argv = ["setpriv", f"--reuid={learner.pw_uid}", f"--regid={learner.pw_gid}", "--init-groups", "--",
                "sh", str(LAUNCHER), "--backend", "sim", "version"]
        codes = []
        for owner in (0, learner.pw_uid):
            _plant(runtime / "labkit", marker, owner, 0o755, learner.pw_uid, 0o700)
            p = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=learner.pw_dir, timeout=120)
            codes.append((p.returncode, marker.exists()))
        assert codes == [(0, False), (42, True)], codes
    finally:
        shutil.rmtree(where)


def test_rootless_helpers_start_without_the_callers_environment(learner):
    """Rootless, a container with a published port (slirp4netns or pasta) and --restart on-failure:1, started by a
    process whose environment holds LD_PRELOAD and a PYTHONPATH with a ``sitecustomize``: the user's shim,
    network helper and restarter neither load the object nor import the module, and the restart happens."""
    if helpers.which("slirp4netns") is None and helpers.which("pasta") is None:
        pytest.fail("rootless ports need slirp4netns or pasta (apt-get install slirp4netns)")
    where = Path(tempfile.mkdtemp(prefix="labkit-sec-"))
    try:
        os.chmod(where, 0o755)
        marker = where / "out" / "marks"
        marker.parent.mkdir()
        os.chown(marker.parent, learner.pw_uid, learner.pw_gid)
        (where / "mark.c").write_text(PRELOAD_C)
        subprocess.run(["gcc", "-shared", "-fPIC", f'-DMARKER="{marker}"', "-o", str(where / "libmark.so"),
                        str(where / "mark.c")], check=True)
        (where / "shadow").mkdir()
        (where / "shadow" / "sitecustomize.py").write_text(textwrap.dedent(SHADOW.format(marker=str(marker))))
        code = textwrap.dedent(f"""
            import json, os, time
            import labkit
            lab = labkit.connect()
            os.environ["LD_PRELOAD"] = "{where / 'libmark.so'}"
            os.environ["PYTHONPATH"] = "{where / 'shadow'}:" + os.environ["PYTHONPATH"]
            c = lab.run("busybox", ["sh", "-c", "sleep 0.3; exit 3"], detach=True, restart="on-failure:1",
                        ports=["127.0.0.1::80"])
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                info = c.inspect()
                if info["RestartCount"] == 1 and info["State"]["Status"] == "exited":
                    break
                time.sleep(0.1)
            driver = json.load(open(lab.store.container_dir(c.id) / "network.json"))["Driver"]
            lab.rm(c.id, force=True)
            print(json.dumps({{"backend": lab.backend_name, "restarts": info["RestartCount"], "driver": driver}}))
            """)
        got = run_as(learner, code, timeout=300)
        assert got["backend"] == "rootless" and got["restarts"] == 1, got
        assert got["driver"] in ("slirp4netns", "pasta")
        assert not marker.exists(), marker.read_text()
    finally:
        shutil.rmtree(where)
