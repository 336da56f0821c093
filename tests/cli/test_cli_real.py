"""The labkit command line on the real backend, as a learner types it in a terminal."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.root


@pytest.fixture
def lk(engine):
    """Run `labkit ARGS...` in a new process on the test engine's state root; return (rc, stdout, stderr)."""
    env = {**os.environ, "LABKIT_ROOT": str(engine.store.root)}

    def run(*args: str) -> tuple[int, str, str]:
        p = subprocess.run([sys.executable, "-m", "labkit", *args], capture_output=True, text=True, env=env,
                           timeout=120)
        assert "Traceback" not in p.stderr, p.stderr
        return p.returncode, p.stdout, p.stderr

    return run


def test_lesson_walkthrough(lk, engine):
    """The lesson's commands work end to end with Docker's output shapes."""
    rc, out, err = lk("run", "-d", "--name", "frontend-app", "-p", "3000:3000", "-e", "NODE_ENV=production",
                      "frontend-app:v2.1.0")
    assert rc == 0, err
    cid = out.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", cid)
    rc, out, _ = lk("ps")
    header, row = out.splitlines()[:2]
    assert header.split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    assert row.startswith(cid[:12]) and '"node server.js"' in row and row.endswith("frontend-app")
    rc, out, _ = lk("inspect", "frontend-app")
    info = json.loads(out)
    assert isinstance(info, list) and info[0]["Name"] == "/frontend-app"
    assert out.startswith("[\n    {"), "a 4-space-indented JSON array, as docker prints it"
    assert "NODE_ENV=production" in info[0]["Config"]["Env"] and info[0]["Config"]["Cmd"] == ["node", "server.js"]
    assert info[0]["HostConfig"]["PortBindings"] == {"3000/tcp": [{"HostIp": "", "HostPort": "3000"}]}
    pid = info[0]["State"]["Pid"]
    assert os.readlink(f"/proc/{pid}/ns/pid") != os.readlink("/proc/self/ns/pid")
    rc, out, _ = lk("exec", "frontend-app", "wget", "-qO-", "http://127.0.0.1:3000/")
    assert rc == 0 and json.loads(out)["env"] == "production"
    rc, out, _ = lk("exec", "frontend-app", "sh", "-c", "echo hi > /app/note; echo hi")
    assert (rc, out) == (0, "hi\n")
    rc, out, _ = lk("diff", "frontend-app")
    assert "C /app\nA /app/note" in out
    rc, out, _ = lk("logs", "frontend-app")
    assert "listening on port 3000" in out
    for verb, status in (("pause", "paused"), ("unpause", "running"), ("restart", "running"), ("stop", "exited"),
                         ("start", "running"), ("kill", "exited")):
        rc, out, err = lk(verb, "frontend-app")
        assert (rc, out) == (0, "frontend-app\n"), err
        assert engine.inspect("frontend-app")["State"]["Status"] == status, verb
    rc, out, _ = lk("ps")
    assert "frontend-app" not in out
    rc, out, _ = lk("ps", "-a")
    assert re.search(r"Exited \(137\) .* ago", out)
    rc, out, _ = lk("rm", "frontend-app")
    assert (rc, out) == (0, "frontend-app\n")


def test_build_and_images(lk, tmp_path):
    """build reads a Labfile, makes one layer per COPY/RUN, and images lists the tag."""
    (tmp_path / "hello.txt").write_text("hello\n")
    (tmp_path / "Labfile").write_text("FROM busybox\nCOPY hello.txt /srv/\nRUN rm /etc/group && echo built > /built\n"
                                      "ENV GREETING=hi\nCMD [\"cat\", \"/srv/hello.txt\"]\n")
    rc, out, err = lk("build", "-t", "hello:1.0", str(tmp_path))
    try:
        assert rc == 0, err
        assert "Step 3/5 : RUN rm /etc/group && echo built > /built" in out
        rc, out, _ = lk("images")
        assert re.search(r"^hello\s+1\.0\s+[0-9a-f]{12}\s", out, re.M)
        rc, out, _ = lk("run", "--rm", "hello:1.0")
        assert (rc, out) == (0, "hello\n")
        rc, out, _ = lk("run", "--rm", "hello:1.0", "sh", "-c", "cat /built; ls /etc/group")
        assert rc == 1 and out == "built\n", "the RUN step's whiteout hides /etc/group in the new image"
    finally:
        lk("rmi", "hello:1.0")  # the session's engine keeps only the images every test may count on


@pytest.mark.parametrize("args, rc, words", [
    (("run", "nosuch:1.0"), 125, "No such image: nosuch:1.0"),
    (("run", "--name=_bad", "busybox"), 125, "Invalid container name (_bad)"),
    (("start", "ghost"), 1, "No such container: ghost"),
    (("run", "--memory", "1m", "busybox", "true"), 125, "Minimum memory limit allowed is 6MB"),
    (("run", "-p", "99999:1", "busybox", "true"), 125, "invalid port specification"),
    (("run", "busybox", "nope-cmd"), 127, "executable file not found"),
])
def test_bad_input_is_one_clear_line(lk, args, rc, words):
    """Bad input gets Docker's words, a hint, a non-zero exit and no traceback."""
    got, out, err = lk(*args)
    assert got == rc, err
    assert words in err
    assert len([ln for ln in err.splitlines() if ln.strip()]) <= 3, "Docker's shape: notice, error, help pointer"


def test_name_in_use_and_illegal_moves(lk):
    """A taken name and an illegal transition are refused with Docker's messages."""
    assert lk("create", "--name", "dup", "busybox", "sleep", "9")[0] == 0
    rc, _, err = lk("create", "--name", "dup", "busybox", "true")
    assert rc == 1 and err.startswith("Error response from daemon: Conflict. The container name \"/dup\" is already in use")
    rc, _, err = lk("run", "--name", "dup", "busybox", "true")
    assert rc == 125 and 'The container name "/dup" is already in use' in err
    rc, _, err = lk("unpause", "dup")
    assert rc == 1 and "is not paused" in err
    rc, _, err = lk("exec", "dup", "true")
    assert rc == 1 and "is not running" in err
    assert lk("rm", "dup")[0] == 0


def test_not_root_is_told_plainly(engine, tmp_path):
    """Without root, the linux backend refuses in one sentence that says why and what to try."""
    os.chmod(tmp_path, 0o777)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LABKIT_ROOT": str(tmp_path / "state"),
           "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))}
    p = subprocess.run(["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", sys.executable, "-m",
                        "labkit", "--backend", "linux", "ps"], capture_output=True, text=True, env=env)
    if "Permission denied" in p.stderr and "python" in p.stderr:
        pytest.skip("this interpreter is not readable by nobody")
    assert p.returncode != 0
    assert "Traceback" not in p.stderr
    assert "needs root" in p.stderr and "sudo" in p.stderr


def _without_compilers(argv: list[str]) -> list[str]:
    """``argv`` run in a mount namespace of its own where every C compiler is ``/dev/null`` (not executable):
    a host without one, as labkit (which looks for them in its own PATH, as root) sees it. Nothing of the host
    changes, and the namespace goes with the process."""
    from labkit import helpers

    found = {os.path.realpath(path) for d in helpers.SAFE_PATH.split(":") for c in helpers.COMPILERS
             if os.path.exists(path := os.path.join(d, c))}
    hide = "".join(f"mount --bind /dev/null '{path}' && " for path in sorted(found))
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", hide + 'exec "$@"', "sh", *argv]


def test_without_a_compiler_run_create_and_start_refuse_plainly():
    """A host with no C compiler (and no shim built before) cannot start a container, as there is no second
    starter in Python: run and create refuse before making anything (exit 125 and 1), start refuses (exit 1), each
    in one sentence that names the compiler and what to try; doctor says so; auto picks the simulator."""
    from tests.conftest import state_root

    root = state_root()
    env = {**os.environ, "LABKIT_ROOT": str(root), "LABKIT_NO_SERVER": "1"}

    def lk(*args: str, compilers: bool = False) -> tuple[int, str, str]:
        argv = [sys.executable, "-m", "labkit", *args]
        p = subprocess.run(argv if compilers else _without_compilers(argv), capture_output=True, text=True,
                           env=env, timeout=120)
        assert "Traceback" not in p.stderr, p.stderr
        return p.returncode, p.stdout, p.stderr

    assert lk("--backend", "linux", "create", "--name", "made-with-cc", "busybox", "true", compilers=True)[0] == 0
    for shim in (root / "bin").glob("labkit-shim-*"):
        shim.unlink()  # as if labkit changed since: the shim must be built again, and cannot be
    try:
        rc, out, _ = lk("doctor")
        assert "backend: sim (the simulator, because real containers cannot start here: " in out, out
        assert "Real containers cannot start here" in out
        rc, out, err = lk("--backend", "linux", "start", "made-with-cc")
        assert (rc, out) == (1, ""), err
        assert err.splitlines()[1:] == ["Error: failed to start containers: made-with-cc"], err  # as Docker's
        assert "no C compiler" in err.splitlines()[0] and "apt-get install gcc" in err
        for verb, code in ((["run", "--rm"], 125), (["create"], 1)):  # create: a daemon's refusal, as Docker's
            rc, out, err = lk("--backend", "linux", *verb, "busybox", "true")
            assert (rc, out) == (code, ""), err
            assert err.startswith("labkit: labkit starts real containers") and "no C compiler" in err, err
        rc, out, _ = lk("--backend", "linux", "ps", "-a", "--format", "{{.Names}} {{.Status}}")
        assert (rc, out) == (0, "made-with-cc Created\n"), "nothing else was made, nothing started"
        assert len(os.listdir(root / "containers")) == 1 and not list((root / "bin").glob("labkit-shim-*"))
    finally:
        assert lk("--backend", "linux", "rm", "-f", "made-with-cc", compilers=True)[0] == 0


def test_without_a_compiler_a_shim_built_before_still_starts_containers_and_doctor_says_so():
    """With no C compiler but the shim of this labkit built before, containers start (auto picks the real backend)
    and doctor says that prebuilt shim is used, not that real containers cannot start."""
    from tests.conftest import state_root

    root = state_root()
    env = {**os.environ, "LABKIT_ROOT": str(root), "LABKIT_NO_SERVER": "1"}

    def lk(*args: str, compilers: bool = False) -> tuple[int, str, str]:
        argv = [sys.executable, "-m", "labkit", *args]
        p = subprocess.run(argv if compilers else _without_compilers(argv), capture_output=True, text=True,
                           env=env, timeout=120)
        assert "Traceback" not in p.stderr, p.stderr
        return p.returncode, p.stdout, p.stderr

    assert lk("--backend", "linux", "run", "--rm", "--network", "none", "busybox", "true", compilers=True)[0] == 0
    shim = next((root / "bin").glob("labkit-shim-*"))
    rc, out, _ = lk("doctor")
    assert rc == 0 and out.startswith("backend: linux"), out
    assert "Real containers cannot start here" not in out, out
    assert f"not found; labkit-shim built before: {shim}" in out, out
    rc, out, err = lk("run", "--rm", "--network", "none", "busybox", "echo", "started")
    assert (rc, out) == (0, "started\n"), err


def test_trace_prints_the_kernels_steps(lk):
    """`labkit trace run …` prints the command's output, then each step: namespaces, overlay, copy-up, whiteout, exit."""
    rc, out, err = lk("trace", "run", "--rm", "--memory", "32m", "busybox", "sh", "-c",
                      "echo x >> /etc/passwd; rm /etc/group; echo done")
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0] == "done"
    kinds = [ln.split()[1] for ln in lines[1:]]
    for kind in ("create-layer", "network", "mount-overlay", "cgroup-write", "clone", "pivot-root", "exec",
                 "copy-up", "whiteout", "exit", "remove-layer"):
        assert kind in kinds, kind
    assert kinds.index("copy-up") < kinds.index("exit") < kinds.index("remove-layer")
    assert "Copy /etc/passwd" in out and "Hide /etc/group" in out and "CLONE_NEWPID" in out



@pytest.mark.parametrize("through", ["in-process", "resident engine"])
def test_attach_to_a_di_container_types_into_its_shell(engine, served, through):
    """attach to a container started with -i and no terminal (run -di busybox sh): what is typed reaches the
    shell and its answers come back; at the end of the input the shell's stdin stays open, nothing more is
    relayed and attach waits for the container (Docker's StdinOnce false), ending with its exit code; Ctrl-C lets go of the container, sending
    it SIGINT first (--sig-proxy, Docker's default), or not (--sig-proxy=false: it keeps running)."""
    import signal
    import time
    from pathlib import Path

    env = dict(served)
    argv = ["sh", str(Path(__file__).resolve().parents[2] / "bin" / "labkit")]
    if through == "in-process":
        env["LABKIT_NO_SERVER"] = "1"

    def lk(*args: str, **kw) -> subprocess.CompletedProcess:
        kw.setdefault("timeout", 60)
        return subprocess.run([*argv, *args], capture_output=True, text=True, env=env, **kw)

    name = f"held-{through[:2]}"
    assert lk("run", "-di", "--name", name, "busybox", "sh").returncode == 0
    try:
        attach = subprocess.Popen([*argv, "attach", name], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env=env)
        try:
            attach.stdin.write("echo hello from $HOSTNAME\n")
            attach.stdin.flush()
            assert attach.stdout.readline() == f"hello from {engine.inspect(name)['Id'][:12]}\n"
            attach.stdin.write("echo gone unseen; exit 4\n")  # at the input's end Docker relays no more
            out, err = attach.communicate(timeout=30)
        finally:
            attach.kill()
        assert (attach.returncode, out, err) == (4, "", "")
        lk("rm", name)
        assert lk("run", "-di", "--name", name, "busybox", "sh").returncode == 0
        with pytest.raises(subprocess.TimeoutExpired):
            lk("attach", name, input="echo one\n", timeout=4)  # input ended; the shell did not
        assert engine.inspect(name)["State"]["Running"], "the end of the input leaves the shell's stdin open"
        for proxy, ends in ((["--sig-proxy=false"], False), ([], True)):
            lk("rm", "-f", name)
            assert lk("run", "-di", "--name", name, "busybox", "sh").returncode == 0
            attach = subprocess.Popen([*argv, "attach", *proxy, name], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True, env=env)
            try:
                # A shell runs a trap between commands, not while it waits for its input: keep it busy.
                attach.stdin.write("trap 'echo interrupted; exit 7' INT; echo armed; while :; do sleep 0.1; done\n")
                attach.stdin.flush()
                assert attach.stdout.readline() == "armed\n"
                attach.send_signal(signal.SIGINT)
                attach.communicate(timeout=30)
            finally:
                attach.kill()
            assert attach.returncode in (130, -signal.SIGINT), "Ctrl-C lets go of the container"
            deadline = time.monotonic() + 10
            while ends and engine.inspect(name)["State"]["Running"] and time.monotonic() < deadline:
                time.sleep(0.1)
            state = engine.inspect(name)["State"]
            assert state["Running"] is not ends, "SIGINT reached the container only through the proxy"
        assert state["ExitCode"] == 7 and lk("logs", name).stdout.endswith("interrupted\n")
    finally:
        lk("rm", "-f", name)
