"""labkit.daemon and bin/labkit: a command run by the resident engine is the same command, only sooner."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from labkit.daemon import client, server
from tests.util import wait_for

REPO = Path(__file__).resolve().parent.parent
CLIENT = [sys.executable, "-S", "-E", str(REPO / "bin" / "labkit")]  # the script's own Python part


def _client_module():
    loader = importlib.machinery.SourceFileLoader("labkit_client", str(REPO / "bin" / "labkit"))
    spec = importlib.util.spec_from_loader("labkit_client", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def _env(sockets: Path, root: Path | None = None, **extra: str) -> dict[str, str]:
    """The environment of a command: this socket directory, and a state root of the session's (never /var/lib).

    ``_LABKIT_SOCKET_DIR`` is how bin/labkit's shell lines hand the socket directory to its Python part, which
    these tests run directly (:data:`CLIENT`).
    """
    from tests.conftest import state_root

    return {**os.environ, "LABKIT_SOCKET_DIR": str(sockets), "_LABKIT_SOCKET_DIR": str(sockets),
            "LABKIT_ROOT": str(root or state_root()), **extra}


def _run(args: list[str], env: dict[str, str], cwd: Path | None = None) -> tuple[int, str, str]:
    p = subprocess.run([*CLIENT, *args], env=env, capture_output=True, text=True, timeout=120, cwd=cwd)
    return p.returncode, p.stdout, p.stderr


def _serving(sockets: Path, env: dict[str, str]) -> int:
    """Make sure a server listens on ``sockets``; return its pid."""
    if client.running(str(sockets)) is None:
        _run(["version"], env)
    assert wait_for(lambda: (sockets / client.SOCKET).exists() and client.running(str(sockets)), timeout=30)
    return client.running(str(sockets))


def _children(pid: int, spare: bool = False) -> list[int]:
    """The server's workers (with ``spare``: its spare worker, waiting for the next command)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    name, _, rest = f.read().partition(" (")[2].rpartition(")")
                if int(rest.split()[1]) == pid and (name == server.SPARE_NAME) == spare:
                    out.append(int(entry))
            except OSError:
                pass
    return out


def _shell_socket_dir(env: dict[str, str], uid: int) -> str:
    """The socket directory bin/labkit's shell lines hand its Python part, run as ``uid`` with ``env``.

    A copy of bin/labkit sits beside a ``python3`` that prints ``$_LABKIT_SOCKET_DIR`` instead of running
    anything; no client is found in a directory that does not exist, so the shell lines end by exec'ing it.
    """
    where = Path(tempfile.mkdtemp(prefix="labkit-test-rule-"))  # in /tmp: another user may enter it
    try:
        os.chmod(where, 0o755)
        shutil.copy(REPO / "bin" / "labkit", where / "labkit")
        (where / "python3").write_text('#!/bin/sh\nprintf %s "$_LABKIT_SOCKET_DIR"\n')
        os.chmod(where / "python3", 0o755)
        as_user = [] if uid == os.getuid() else ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"]
        p = subprocess.run([*as_user, "sh", str(where / "labkit"), "version"], env={"PATH": "/usr/bin:/bin", **env},
                           capture_output=True, text=True, timeout=30)
    finally:
        shutil.rmtree(where)
    assert p.returncode == 0, p.stderr
    return p.stdout


@pytest.mark.parametrize("env", [
    {"LABKIT_SOCKET_DIR": "/nonexistent/x", "XDG_RUNTIME_DIR": "/nonexistent/run/user/0"},
    {},
    {"XDG_RUNTIME_DIR": "/nonexistent/run/user/1"},
    {"LABKIT_SOCKET_DIR": "", "XDG_RUNTIME_DIR": "/nonexistent/run/user/2"},
], ids=["LABKIT_SOCKET_DIR", "neither", "XDG_RUNTIME_DIR", "empty-LABKIT_SOCKET_DIR"])
@pytest.mark.parametrize("uid", [os.getuid(), 65534] if os.getuid() == 0 else [os.getuid()], ids=lambda u: f"uid{u}")
def test_the_command_and_the_library_agree_where_the_socket_is(env, uid):
    """bin/labkit's shell lines (the only rule the command and its C client follow) and
    labkit.daemon.client.socket_dir name the same directory, for root and for another user."""
    assert _shell_socket_dir(env, uid) == client.socket_dir(env, uid)


def test_the_socket_rule_reads_as_documented():
    """labkit.daemon.client.socket_dir: the override, then $XDG_RUNTIME_DIR, then /run/labkit or /tmp/labkit-UID."""
    assert client.socket_dir({"LABKIT_SOCKET_DIR": "/x", "XDG_RUNTIME_DIR": "/run/user/0"}, 1000) == "/x"
    assert client.socket_dir({}, 0) == "/run/labkit"
    assert client.socket_dir({"XDG_RUNTIME_DIR": "/run/user/1000"}, 1000) == "/run/user/1000/labkit"
    assert client.socket_dir({}, 1000) == "/tmp/labkit-1000"


def test_a_directory_others_may_enter_is_never_used(tmp_path):
    """Someone else's (or a world-readable) directory could hold a fake server: run in-process instead."""
    shared = tmp_path / "labkit-test-shared"
    shared.mkdir(mode=0o755)
    os.chmod(shared, 0o755)
    code, out, _ = _run(["version"], _env(shared))
    assert code == 0 and "labkit" in out.lower()
    time.sleep(1)
    assert not (shared / client.SOCKET).exists() and client.running(str(shared)) is None


def test_no_server_means_no_server(sockets):
    code, out, _ = _run(["version"], _env(sockets, LABKIT_NO_SERVER="1"))
    assert code == 0 and out
    time.sleep(1)
    assert client.running(str(sockets)) is None


def test_the_python_part_run_alone_runs_in_process(sockets):
    """Started without the socket directory bin/labkit's shell lines give it, the Python part knows no engine:
    it runs the command itself and starts none."""
    env = _env(sockets)
    del env["_LABKIT_SOCKET_DIR"]
    code, out, _ = _run(["version"], env)
    assert code == 0 and out
    time.sleep(1)
    assert client.running(str(sockets)) is None and not (sockets / client.SOCKET).exists()


def test_a_folder_named_labkit_in_the_working_directory_is_not_imported(sockets, tmp_path):
    """Run from a directory that holds a folder named labkit (a clone in ~/labkit, run from ~), the command and
    the server it starts import the labkit installed, never that folder (``python -m`` would put it first)."""
    shadow = tmp_path / "labkit"
    shadow.mkdir()
    (shadow / "__init__.py").write_text('raise SystemExit("the folder in the working directory was imported")\n')
    (shadow / "__main__.py").write_text('raise SystemExit("the folder in the working directory was run")\n')
    for extra in ({"LABKIT_NO_SERVER": "1"}, {}):
        code, out, err = _run(["version"], _env(sockets, **extra), cwd=tmp_path)
        assert (code, err) == (0, "") and "Version" in out, (extra, err)
    pid = _serving(sockets, _env(sockets))  # the server the second command started, from the same directory
    code, out, err = _run(["version"], _env(sockets), cwd=tmp_path)
    assert (code, err) == (0, "") and "Version" in out and client.running(str(sockets)) == pid


def test_server_status_and_stop(sockets):
    env = _env(sockets)
    status = subprocess.run([sys.executable, "-m", "labkit", "server", "status"], env=env, capture_output=True,
                            text=True)
    assert status.stdout.startswith("not running")
    pid = _serving(sockets, env)
    status = subprocess.run([*CLIENT, "server", "status"], env=env, capture_output=True, text=True)
    assert status.stdout.startswith(f"running (pid {pid})")
    stop = subprocess.run([*CLIENT, "server", "stop"], env=env, capture_output=True, text=True)
    assert stop.stdout.strip() == f"stopped the engine server (pid {pid})"
    assert client.running(str(sockets)) is None and not (sockets / client.SOCKET).exists()


def test_a_changed_labkit_file_retires_the_server(sockets):
    """After labkit's code changes, no command runs on the old code: the server steps down."""
    env = _env(sockets)
    old = _serving(sockets, env)
    target = REPO / "labkit" / "errors.py"
    st = target.stat()
    os.utime(target, (st.st_atime, time.time() + 5))
    try:
        code, out, _ = _run(["version"], env)
        assert code == 0 and out
        assert wait_for(lambda: client.running(str(sockets)) != old, timeout=30)
    finally:
        os.utime(target, (st.st_atime, st.st_mtime))


@pytest.mark.root
def test_commands_through_the_server_match_in_process(sockets, session_root, tmp_path):
    """Output, errors and exit codes are the same whichever process runs the command."""
    served, alone = _env(sockets, session_root), _env(sockets, session_root, LABKIT_NO_SERVER="1")
    _serving(sockets, served)
    context = tmp_path / "labkit-test-ctx"
    context.mkdir()
    (context / "Labfile").write_text('FROM busybox\nCMD ["echo", "built here"]\n')
    for args in (
        ["run", "--rm", "--network", "none", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3"],
        ["run", "--rm", "--network", "none", "-e", "GREETING", "busybox", "sh", "-c", "echo $GREETING"],
        ["inspect", "no-such-container"],
        ["run", "--no-such-flag", "busybox"],
        ["images", "busybox", "--format", "{{.Repository}}:{{.Tag}}"],
    ):
        one = _run(args, {**served, "GREETING": "hello"}, cwd=context)
        two = _run(args, {**alone, "GREETING": "hello"}, cwd=context)
        assert one == two, args
    # The caller's working directory is the build context.
    assert _run(["build", "-t", "server-test:1", "."], served, cwd=context)[0] == 0
    assert _run(["run", "--rm", "--network", "none", "server-test:1"], alone) == (0, "built here\n", "")


@pytest.mark.root
@pytest.mark.root
def test_a_service_created_through_the_server_waits_until_it_converges(sockets, session_root):
    """``service create`` run by the server's worker waits for its replicas as it does in-process: the controller,
    a moment after the worker forked it and before its exec, is not taken for one that stopped."""
    env = _env(sockets, session_root)
    _serving(sockets, env)
    try:
        for n in range(3):
            code, out, err = _run(["service", "create", "--name", f"viaserver{n}", "--replicas", "2", "busybox",
                                   "sleep", "600"], env)
            assert (code, err) == (0, "") and out.splitlines()[-1] == "verify: Service converged", (out, err)
    finally:
        _run(["service", "rm", "viaserver0", "viaserver1", "viaserver2"], env)


def test_the_server_runs_the_command_in_a_worker(sockets, session_root):
    """The second command is a child of the server (a fork per command), not a new interpreter."""
    env = _env(sockets, session_root)
    pid = _serving(sockets, env)
    p = subprocess.Popen([*CLIENT, "run", "--rm", "--network", "none", "busybox", "sh", "-c", "echo go; sleep 2"],
                         env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: _children(pid), timeout=10), "a worker runs the command"
        out, _ = p.communicate(timeout=30)
    finally:
        p.kill()
    assert (p.returncode, out) == (0, "go\n")
    assert wait_for(lambda: not _children(pid), timeout=10), "the worker is gone with the command"


def test_a_spare_worker_waits_for_the_next_command_and_another_follows(sockets, session_root):
    """The server keeps one worker forked ahead (off the command's path); the next command runs in it, and a
    new spare takes its place. When the server stops, so does its spare."""
    env = _env(sockets, session_root)
    pid = _serving(sockets, env)
    assert wait_for(lambda: len(_children(pid, spare=True)) == 1, timeout=10)
    spare = _children(pid, spare=True)[0]
    p = subprocess.Popen([*CLIENT, "run", "--rm", "--network", "none", "busybox", "sh", "-c", "echo go; sleep 2"],
                         env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: _children(pid) == [spare], timeout=10), "the spare runs the command"
        with open(f"/proc/{spare}/comm") as f:
            assert f.read().strip() == server.WORKER_NAME
        assert wait_for(lambda: len(_children(pid, spare=True)) == 1 and _children(pid, spare=True) != [spare],
                        timeout=10), "a new spare waits for the command after"
        out, _ = p.communicate(timeout=30)
    finally:
        p.kill()
    assert (p.returncode, out) == (0, "go\n")
    last = _children(pid, spare=True)
    client.stop(str(sockets))
    assert wait_for(lambda: not any(os.path.exists(f"/proc/{c}") and _state(c) != "Z" for c in last), timeout=10)


def test_a_spare_given_half_a_request_runs_nothing():
    """A request cut short on its way to the spare (the server gave up on it) is dropped with its descriptors."""
    import socket

    ours, theirs = socket.socketpair()
    fds = [os.open(os.devnull, os.O_RDONLY) for _ in range(4)]
    socket.send_fds(ours, [b"%010d" % 100], fds)
    ours.sendall(b"1\0/\0022")
    ours.close()
    assert server._take_over(theirs) is None
    theirs.close()
    for fd in fds:
        os.close(fd)
    whole = b"\0".join([b"1", b"/", b"022", b"1", b"ps"])
    ours, theirs = socket.socketpair()
    caller, _peer = socket.socketpair()
    std = [os.open(os.devnull, os.O_RDONLY) for _ in range(3)]
    socket.send_fds(ours, [b"%010d" % len(whole)], [caller.fileno(), *std])
    ours.sendall(whole)
    fields, got, conn = server._take_over(theirs)
    assert fields == ["1", "/", "022", "1", "ps"] and len(got) == 3 and conn.type == socket.SOCK_STREAM
    for fd in (*std, *got):
        os.close(fd)
    for sock in (conn, caller, _peer, ours, theirs):
        sock.close()


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0]
    except OSError:
        return "X"


@pytest.mark.root
def test_ctrl_c_on_the_command_interrupts_its_worker(sockets, engine):
    """Ctrl-C ends the labkit command; the server then interrupts its worker, which lets go."""
    env = _env(sockets, engine.store.root)
    pid = _serving(sockets, env)
    p = subprocess.Popen([*CLIENT, "run", "--network", "none", "--name", "server-ctrl-c", "busybox", "sleep", "60"],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: any(c["Names"] == ["/server-ctrl-c"] for c in engine.ps()), timeout=20), (
            p.poll(), p.stderr.read() if p.poll() is not None else "")
        p.send_signal(signal.SIGINT)
        p.wait(timeout=10)
        assert wait_for(lambda: not _children(pid), timeout=15), "no worker left behind"
    finally:
        p.kill()


@pytest.mark.root
def test_a_quick_command_ends_while_a_long_one_runs(sockets, engine):
    """Commands run side by side; one that follows logs forever never holds up another's answer."""
    env = _env(sockets, engine.store.root)
    pid = _serving(sockets, env)
    long = subprocess.Popen([*CLIENT, "run", "--rm", "--network", "none", "busybox", "sleep", "30"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: _children(pid), timeout=10)
        code, out, _ = _run(["version"], env)
        assert code == 0 and out
        assert long.poll() is None, "the long command is still running: the quick one did not wait for it"
    finally:
        long.send_signal(signal.SIGINT)
        long.wait(timeout=30)


@pytest.mark.root
def test_the_compiled_client_answers_as_the_python_one(sockets, session_root, tmp_path):
    """The server builds client.c beside its socket; through it every answer is the same."""
    served = _env(sockets, session_root)
    _serving(sockets, served)
    compiled = sockets / client.CLIENT
    assert wait_for(compiled.exists, timeout=30), "the server built the C client"
    fast = [str(compiled), sys.executable, str(REPO / "bin" / "labkit")]
    for args in (
        ["run", "--rm", "--network", "none", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3"],
        ["inspect", "no-such-container"],
        ["run", "--no-such-flag", "busybox"],
        ["server", "status"],  # run by the Python part, never by the server it asks about
    ):
        p = subprocess.run([*fast, *args], env=served, capture_output=True, text=True, timeout=120)
        assert (p.returncode, p.stdout, p.stderr) == _run(args, served), args
    # Nothing listening: the C client hands over to the Python part, which runs the command itself.
    client.stop(str(sockets))
    p = subprocess.run([*fast, "run", "--rm", "--network", "none", "busybox", "echo", "alone"],
                       env={**served, "LABKIT_NO_SERVER": "1"}, capture_output=True, text=True, timeout=120)
    assert (p.returncode, p.stdout) == (0, "alone\n")
    # The Python part learns the socket directory from the client (the directory it runs from) and starts
    # the engine there again.
    p = subprocess.run([*fast, "version"], env=served, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert wait_for(lambda: client.running(str(sockets)), timeout=30), "the engine started again in its directory"


@pytest.mark.root
def test_the_labkit_script_finds_the_compiled_client(sockets, session_root):
    """bin/labkit as the shell runs it: the C client when the server built one, else its own Python part."""
    served = _env(sockets, session_root)
    served["PATH"] = f"{Path(sys.executable).parent}:{served.get('PATH', '')}"
    _serving(sockets, served)
    assert wait_for((sockets / client.CLIENT).exists, timeout=30)
    p = subprocess.run(["sh", str(REPO / "bin" / "labkit"), "run", "--rm", "--network", "none", "busybox",
                        "echo", "via sh"], env=served, capture_output=True, text=True, timeout=120)
    assert (p.returncode, p.stdout, p.stderr) == (0, "via sh\n", "")


@pytest.mark.root
def test_the_server_takes_down_bridges_its_workers_left_idle(sockets, engine):
    """A worker exits before its idle-bridge timer; the server sweeps for it once things are quiet."""
    env = _env(sockets, engine.store.root, LABKIT_BRIDGE_IDLE="1")
    _serving(sockets, env)
    assert _run(["run", "--rm", "busybox", "true"], env)[0] == 0
    name = engine.networks.get("bridge")["Options"]["com.docker.network.bridge.name"]
    assert wait_for(lambda: not os.path.exists(f"/sys/class/net/{name}"), timeout=20), "the idle bridge went"


def test_doctor_says_whether_the_engine_runs(sockets, monkeypatch):
    from labkit import doctor

    monkeypatch.setenv("LABKIT_SOCKET_DIR", str(sockets))
    monkeypatch.delenv("LABKIT_NO_SERVER", raising=False)

    def line():
        return next(c for c in doctor.checks() if c["check"] == "labkit command")["detail"]

    assert line() == "resident engine not running"
    pid = _serving(sockets, _env(sockets))
    assert line() == f"resident engine running (pid {pid})"
    monkeypatch.setenv("LABKIT_NO_SERVER", "1")
    assert line() == "every command on its own (LABKIT_NO_SERVER is set)"


def test_a_command_that_ends_before_the_client_is_done_sending_runs_once(tmp_path, monkeypatch):
    """When the whole request went in one sendmsg and the command ended and hung up at once, the Python client
    takes its exit code: it sends nothing more (a send after the hang-up fails with EPIPE) and runs nothing again."""
    import _socket
    import socket
    import threading

    directory = tmp_path / "sockets"
    directory.mkdir(mode=0o700)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(directory / client.SOCKET))
    listener.listen()
    hung_up = threading.Event()

    def quick_server() -> None:
        conn, _ = listener.accept()
        request = server._receive(conn)
        assert request is not None
        for fd in request[1]:
            os.close(fd)
        conn.sendall(b"started\nexit 5\n")
        conn.close()
        hung_up.set()

    class Client(_socket.socket):
        def sendmsg(self, *args):  # the worker ends before the client goes on
            sent = super().sendmsg(*args)
            hung_up.wait(10)
            return sent

    monkeypatch.setattr(_socket, "socket", Client)
    worker = threading.Thread(target=quick_server)
    worker.start()
    try:
        assert _client_module().through_server(["version"], str(directory)) == 5
    finally:
        worker.join(10)
        listener.close()


def test_a_worker_that_reported_its_exit_is_not_interrupted_when_its_caller_hangs_up():
    """A caller hangs up once it has the exit code, and the server then interrupts its worker (as for Ctrl-C);
    a command that has ended finishes what is left (deleting a removed container's files) and exits with
    the command's code, not 1 from an interrupted clean-up."""
    import socket

    from labkit import cli, store

    caller, conn = socket.socketpair()
    fds = [os.open(os.devnull, os.O_RDWR) for _ in range(3)]
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            caller.close()
            store.drain = lambda: time.sleep(2)  # what is left after the answer, long enough to be interrupted
            code = server._work(["1", "/", "022", "1", "version"], fds, cli.build_parser(), conn)
        finally:
            os._exit(code)
    conn.close()
    for fd in fds:
        os.close(fd)
    answer = b""
    caller.settimeout(30)
    while b"exit " not in answer or not answer.endswith(b"\n"):
        chunk = caller.recv(256)
        assert chunk, answer
        answer += chunk
    caller.close()
    os.kill(pid, signal.SIGINT)  # what Server.hung_up does when the caller goes
    deadline = time.monotonic() + 10
    while not (done := os.waitpid(pid, os.WNOHANG))[0]:
        assert time.monotonic() < deadline, "the worker did not end"
        time.sleep(0.05)
    assert answer.split()[-2:] == [b"exit", b"0"]
    assert os.waitstatus_to_exitcode(done[1]) == 0


def test_the_server_sees_a_source_change_and_nothing_else(tmp_path, monkeypatch):
    """A changed, added or removed .py/.c/.h file or directory retires the server; bytecode written into
    __pycache__ and other files (an editor's swap file) do not, with inotify(7) and without it."""
    for inotify in (True, False):
        top = tmp_path / f"pkg-{inotify}"
        (top / "sub" / "__pycache__").mkdir(parents=True)
        (top / "sub" / "mod.py").write_text("x = 1\n")
        if not inotify:
            monkeypatch.setattr(server._Changes, "_watch", classmethod(lambda cls, top: (_ for _ in ()).throw(OSError())))
        changes = server._Changes(str(top))
        assert (changes.fd >= 0) == inotify
        (top / "sub" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"\0")
        (top / "sub" / ".mod.py.swp").write_bytes(b"\0")
        assert not changes()
        st = (top / "sub" / "mod.py").stat()
        os.utime(top / "sub" / "mod.py", (st.st_atime, st.st_mtime + 5))
        assert changes() and changes(), "once stale, always stale"
        changes.close()
        monkeypatch.undo()
