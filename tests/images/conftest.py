"""Fixtures for the image tests: a temporary store, and a real container to RUN build steps in.

``build_runner`` is a real container for the builder's purposes: new pid,
mount, uts, ipc and net namespaces (``unshare(1)``), a real overlay mount of
the image's layers under the step's upper directory, ``/proc`` and a small
``/dev`` mounted inside, then ``chroot(2)`` and ``execve(2)``. The overlay
lives in the private mount namespace, so it disappears with the container's
last process and nothing is left mounted on the host.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from labkit.images.store import ImageStore

# Runs as PID 1 of the new pid namespace: mount, fork the command, reap it.
_INNER = r"""
import json, os, subprocess, sys
spec = json.loads(sys.argv[1])
merged = spec["merged"]
opts = "lowerdir=%s,upperdir=%s,workdir=%s,index=off,redirect_dir=off,metacopy=off" % (
    ":".join(spec["lower"]), spec["upper"], spec["work"])
subprocess.run(["mount", "-t", "overlay", "labkit-build", "-o", opts, merged], check=True)
if os.path.isdir(merged + "/proc"):
    subprocess.run(["mount", "-t", "proc", "proc", merged + "/proc"], check=True)
if os.path.isdir(merged + "/dev"):
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=755,size=64k", "labkit-dev", merged + "/dev"], check=True)
    for name, minor in (("null", 3), ("zero", 5), ("random", 8), ("urandom", 9)):
        os.mknod(merged + "/dev/" + name, 0o20666, os.makedev(1, minor))
        os.chmod(merged + "/dev/" + name, 0o666)
subprocess.run(["ip", "link", "set", "lo", "up"], check=False)
sys.stdout.flush()
pid = os.fork()
if pid == 0:
    try:
        os.chroot(merged)
        os.chdir(spec["workdir"])
        env = dict(e.split("=", 1) for e in spec["env"] if "=" in e)
        env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        os.execvpe(spec["argv"][0], spec["argv"], env)
    except OSError as e:
        print("exec %s: %s" % (spec["argv"][0], e.strerror), flush=True)
        os._exit(127)
_, status = os.waitpid(pid, 0)
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""


def unshare_runner(lowerdirs, upper_dir, argv, env, workdir, timeout=300):
    """Run ``argv`` in a real container over ``overlay(lowerdirs, upper_dir)``; return ``(exit code, output)``."""
    side = tempfile.mkdtemp(prefix="labkit-run-", dir=os.path.dirname(os.path.abspath(upper_dir)))
    try:
        work = os.path.join(side, "work")
        merged = os.path.join(side, "merged")
        os.mkdir(work)
        os.mkdir(merged)
        spec = {
            "lower": list(lowerdirs),
            "upper": upper_dir,
            "work": work,
            "merged": merged,
            "argv": list(argv),
            "env": list(env),
            "workdir": workdir,
        }
        proc = subprocess.run(
            [
                "unshare",
                "--fork",
                "--pid",
                "--mount",
                "--uts",
                "--ipc",
                "--net",
                "--propagation",
                "private",
                sys.executable,
                "-c",
                _INNER,
                json.dumps(spec),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
        return proc.returncode, proc.stdout.decode(errors="replace")
    finally:
        shutil.rmtree(side, ignore_errors=True)


@pytest.fixture
def build_runner():
    """A runner (see labkit.images.build.Runner) that starts a real container per RUN step."""
    if os.geteuid() != 0:
        pytest.fail("build_runner needs root: it mounts overlayfs in new namespaces")
    return unshare_runner


@pytest.fixture(autouse=True)
def _remove_tmp_path(tmp_path):
    """Every image test's temporary directory is removed when the test ends, not sessions later."""
    yield
    shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.fixture
def store(tmp_path):
    """An empty image store in a temporary directory (removed with it)."""
    root = tmp_path / "labkit-images"
    yield ImageStore(str(root))
    shutil.rmtree(root, ignore_errors=True)
