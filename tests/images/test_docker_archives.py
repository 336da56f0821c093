"""Archives cross between labkit and a real Docker engine both ways: an image labkit saved loads and runs in
Docker under the same id, and one Docker committed and saved loads into labkit and runs, whiteouts and all.

The engine is Debian's docker.io, started on a private socket, data root and exec root with no bridge and
no iptables; busybox gets into it by ``docker import`` of labkit's own busybox layer. Skipped only where
docker.io is not installed (CI installs it).
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

pytestmark = pytest.mark.root

DOCKERD = shutil.which("dockerd")
DOCKER = shutil.which("docker")


@pytest.fixture(scope="module")
def docker():
    """``docker ARGS...`` against a dockerd of this module's own: (rc, stdout bytes, stderr text)."""
    if not DOCKERD or not DOCKER:
        pytest.skip("docker.io is not installed (apt-get install docker.io)")
    base = tempfile.mkdtemp(prefix="lk-images-dockerd-")
    sock = os.path.join(base, "d.sock")
    log = open(os.path.join(base, "log"), "wb")
    proc = subprocess.Popen(
        [DOCKERD, "-H", f"unix://{sock}", "--data-root", os.path.join(base, "root"), "--exec-root",
         os.path.join(base, "exec"), "--pidfile", os.path.join(base, "pid"), "--bridge", "none",
         "--iptables=false", "--ip-masq=false"], stdout=log, stderr=subprocess.STDOUT)
    env = {**os.environ, "DOCKER_HOST": f"unix://{sock}"}

    def run(*args: str, stdin: bytes | None = None) -> tuple[int, bytes, str]:
        p = subprocess.run([DOCKER, *args], input=stdin, capture_output=True, env=env, timeout=180)
        return p.returncode, p.stdout, p.stderr.decode()

    deadline = time.monotonic() + 60
    while run("version")[0] != 0:
        if proc.poll() is not None or time.monotonic() > deadline:
            log.close()
            with open(os.path.join(base, "log")) as f:
                pytest.fail(f"dockerd did not start: {f.read()[-2000:]}")
        time.sleep(0.5)
    try:
        yield run
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
        log.close()
        subprocess.run(["umount", "-R", "-l", base], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def test_an_image_labkit_saved_loads_and_runs_in_docker(engine, docker):
    """labkit commit (a new file, a deleted one) then save; docker load takes it with the same image id,
    and a container of it sees the file and not the deleted one."""
    c = engine.run("busybox", ["sh", "-c", "echo from-labkit > /greeting; rm /etc/group"], name="to-docker")
    image_id = engine.commit(c.id, "lk-made:1", message="made in labkit")
    engine.rm(c.id)
    out = io.BytesIO()
    engine.save(["lk-made:1"], out)
    rc, said, err = docker("load", stdin=out.getvalue())
    assert rc == 0 and said.decode() == "Loaded image: lk-made:1\n", err
    assert docker("inspect", "-f", "{{.Id}}", "lk-made:1")[1].decode().strip() == image_id
    rc, said, err = docker("run", "--rm", "lk-made:1", "sh", "-c", "cat /greeting; ls /etc")
    assert rc == 0, err
    assert said.decode().startswith("from-labkit\n") and "group" not in said.decode().split()
    assert "made in labkit" in docker("history", "lk-made:1")[1].decode()
    engine.rmi("lk-made:1")


def test_an_image_docker_saved_loads_and_runs_in_labkit(engine, docker):
    """Docker imports labkit's busybox, commits a container that added, deleted and replaced files (a
    whiteout, an opaque directory, a hard link), and saves it; labkit loads the archive and runs it."""
    busybox = engine.images.get("busybox")
    tar = subprocess.run(["tar", "-C", busybox.layers[0].path, "-c", "."], capture_output=True, check=True).stdout
    assert docker("import", "-", "dk-busybox", stdin=tar)[0] == 0
    rc, _, err = docker("run", "--name", "dk-maker", "dk-busybox", "sh", "-c",
                        "echo from-docker > /d; ln /d /d2; rm /etc/group; rm -rf /usr; mkdir -p /usr/new; "
                        "echo n > /usr/new/f")
    assert rc == 0, err
    assert docker("commit", "-m", "made in docker", "-c", 'CMD ["cat", "/d"]', "dk-maker", "dk-made:2")[0] == 0
    docker("rm", "dk-maker")
    rc, archive, err = docker("save", "dk-made:2")
    assert rc == 0, err
    lines = engine.load(io.BytesIO(archive))
    assert lines == ["Loaded image: dk-made:2"]
    try:
        c = engine.run("dk-made:2", name="from-docker")
        assert c.logs() == "from-docker\n"
        engine.rm(c.id)
        c = engine.run("dk-made:2", ["sh", "-c", "ls /etc; echo --; ls /usr; echo --; stat -c %i /d /d2"],
                       name="from-docker-2")
        etc, usr, inodes = c.logs().split("--\n")
        assert "group" not in etc.split() and "passwd" in etc.split()
        assert usr.split() == ["new"]
        first, second = inodes.split()
        assert first == second
        history = engine.image_history("dk-made:2")
        assert history[0]["Comment"] == "made in docker"
        engine.rm(c.id)
    finally:
        engine.rmi("dk-made:2", force=True)
