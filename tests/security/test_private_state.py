"""Another user of the machine can reach nothing of labkit's state: no writable layer, no record, no log.

As root the state root is 0710 root:root (Docker's ``/var/lib/docker`` is), and
each container's, layer's, volume's and image's directory 0700, each record,
log and image config 0600; a user's own (rootless) root is 0700. The attacks
run for real: a container writes a set-user-ID-root program into its writable
layer and ``nobody`` tries to run it from the host's path; ``nobody`` tries to
read a record holding ``-e SECRET=…`` and to list the containers. Each also
shows its probe works: the same program, where ``nobody`` can reach it, runs
as euid 0.
"""

from __future__ import annotations

import errno
import json
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import textwrap
from pathlib import Path

import pytest

import labkit
from labkit.store import write_json
from tests.conftest import state_root
from tests.learner import run_as

pytestmark = pytest.mark.root

REPO = Path(__file__).resolve().parents[2]
NOBODY = pwd.getpwnam("nobody")
SECRET = "hunter2-do-not-share"

EUID_C = r"""
#include <stdio.h>
#include <unistd.h>
int main(void) { printf("euid=%d\n", (int)geteuid()); return 0; }
"""


def _as(uid: int, gid: int, *argv: str) -> subprocess.CompletedProcess[str]:
    """``argv`` run as ``uid``:``gid`` with no supplementary groups.

    setpriv(1) changes the ids, then a shell execs ``argv``: setpriv's own execve(2) still holds root's
    effective capabilities while it looks the program's path up (they go only with the exec), so a
    program it names directly is found through directories its user may not search.
    """
    return subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--",
                           "/bin/sh", "-c", 'exec "$@"', "sh", *argv], capture_output=True, text=True, timeout=30)


def _as_nobody(*argv: str) -> subprocess.CompletedProcess[str]:
    return _as(NOBODY.pw_uid, NOBODY.pw_gid, *argv)


def _errno_as(uid: int, gid: int, call: str, path: str) -> int:
    """The errno of ``os.<call>(path)`` done as ``uid``:``gid`` (0 if it succeeded), by Debian's python3."""
    code = f"import os, sys\ntry:\n    os.{call}({path!r})\n    print(0)\nexcept OSError as e:\n    print(e.errno)\n"
    p = _as(uid, gid, "/usr/bin/python3", "-I", "-c", code)
    assert p.returncode == 0, p.stderr
    return int(p.stdout)


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture(scope="module")
def open_root():
    """An engine on a state root that starts as an earlier labkit made one: 0755, open to everyone."""
    root = state_root()
    os.chmod(root, 0o755)  # /tmp, its parent, lets anyone through: only the root's own mode stands in the way
    lab = labkit.connect(backend="linux", root=root)
    yield lab
    for c in lab.ps(all=True):
        lab.rm(c["Id"], force=True)
    lab.network_prune()


@pytest.fixture(scope="module")
def euid_probe(tmp_path_factory):
    """A static program that prints its effective uid, in a directory anyone may read."""
    where = tmp_path_factory.mktemp("probe")
    (where / "euid.c").write_text(EUID_C)
    subprocess.run(["gcc", "-static", "-O2", "-o", str(where / "euid"), str(where / "euid.c")], check=True)
    return where


def test_a_setuid_root_program_in_a_writable_layer_does_not_run_for_another_user(open_root, euid_probe):
    """A container copies a program and busybox into its writable layer and makes them set-user-ID root (chmod
    4755); ``nobody`` cannot run either from the upper dir's host path (EACCES on the way there), so nothing runs
    as euid 0 — while the same file, copied where ``nobody`` can reach it, does run as euid 0."""
    c = open_root.run("busybox", ["sh", "-c", "cp /probe/euid /suid && cp /bin/busybox /bbsuid && "
                                  "chmod 4755 /suid /bbsuid && ls -ln /suid"],
                      volumes=[f"{euid_probe}:/probe:ro"], network="none")
    assert c.exit_code == 0, c.logs()
    upper = Path(c.inspect()["GraphDriver"]["Data"]["UpperDir"])
    suid = upper / "suid"
    st = os.stat(suid)
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o4755), "the container made a set-user-ID-root program"

    for program in (suid, upper / "bbsuid"):
        p = _as_nobody(str(program), *(["id", "-u"] if program.name == "bbsuid" else []))
        assert p.returncode != 0 and "Permission denied" in p.stderr, (p.stdout, p.stderr)
        assert "euid=0" not in p.stdout and p.stdout.strip() != "0"
        assert _errno_as(NOBODY.pw_uid, NOBODY.pw_gid, "stat", str(program)) == errno.EACCES

    # The probe works: where nobody can reach it, the same set-user-ID-root file runs as root.
    reachable = Path(tempfile.mkdtemp(prefix="labkit-suid-probe-"))
    try:
        os.chmod(reachable, 0o755)
        shutil.copy2(suid, reachable / "suid")
        os.chmod(reachable / "suid", 0o4755)
        assert _as_nobody(str(reachable / "suid")).stdout == "euid=0\n"
    finally:
        shutil.rmtree(reachable)
    open_root.rm(c.id)


def test_another_user_can_neither_read_a_record_nor_list_the_containers(open_root):
    """``nobody`` cannot list ``containers/`` nor read a container's ``config.json`` holding ``-e SECRET=…``;
    nor can a member of the root group, who may pass the state root (0710) but no directory below it."""
    c = open_root.create("busybox", ["true"], env=[f"SECRET={SECRET}"])
    root = open_root.store.root
    config = root / "containers" / c.id / "config.json"
    assert SECRET in config.read_text(), "the record holds the secret"
    for uid, gid in ((NOBODY.pw_uid, NOBODY.pw_gid), (NOBODY.pw_uid, 0)):
        assert _errno_as(uid, gid, "listdir", str(root / "containers")) == errno.EACCES
        p = _as(uid, gid, "cat", str(config))
        assert p.returncode != 0 and "Permission denied" in p.stderr and SECRET not in p.stdout
    assert _errno_as(NOBODY.pw_uid, 0, "listdir", str(root)) == errno.EACCES, "0710: the root group passes, lists nothing"
    open_root.rm(c.id)


def test_the_state_root_and_what_is_in_it_are_private(open_root):
    """The root is 0710 root:root; every container's, layer's, volume's and image's directory 0700; every record,
    log and image config 0600 — the temporary files they are written through too."""
    open_root.volume_create("private-vol")
    c = open_root.run("busybox", ["sh", "-c", "echo $SECRET"], env=[f"SECRET={SECRET}"], volumes=["private-vol:/v"],
                      detach=True, network="none")
    c.wait()
    root = open_root.store.root
    st = os.stat(root)
    assert (st.st_uid, st.st_gid, _mode(root)) == (0, 0, 0o710)
    cdir = root / "containers" / c.id
    layer = root / "overlay" / c.id
    for d in (root / "containers", root / "overlay", root / "volumes", root / "images", root / "tmp",
              root / "networks", cdir, layer, layer / "work", root / "overlay" / f"{c.id}-init",
              root / "volumes" / "private-vol", root / "images" / "layers", root / "images" / "images",
              *(root / "images" / "layers").iterdir()):
        assert _mode(d) == 0o700, d
    assert _mode(layer / "diff") == 0o755, "the upper dir gives the container's / its mode"
    assert _mode(root / "volumes" / "private-vol" / "_data") == 0o755, "the volume's root, as the container sees it"
    files = [cdir / "config.json", cdir / "json.log", root / "names.json", root / "volumes" / "private-vol" / "meta.json",
             *(root / "images" / "images").glob("*.json"), root / "images" / "repositories.json"]
    for f in files:
        assert _mode(f) == 0o600, f
    assert SECRET in (cdir / "json.log").read_text()
    open_root.rm(c.id)
    open_root.volume_rm("private-vol")


def test_a_record_is_never_written_through_a_file_others_may_read(tmp_path):
    """write_json's temporary file is made anew with mode 0600: one a killed process left (0644, of the same pid)
    is not reused, so a reader holding it open sees nothing of the new record."""
    target = tmp_path / "config.json"
    stale = tmp_path / f".config.json.{os.getpid()}.tmp"
    stale.write_text("old")
    os.chmod(stale, 0o644)
    held = open(stale)  # noqa: SIM115  (a descriptor someone opened while the file was readable)
    try:
        write_json(target, {"Env": [f"SECRET={SECRET}"]})
        assert held.read() == "old"
    finally:
        held.close()
    assert _mode(target) == 0o600 and json.loads(target.read_text()) == {"Env": [f"SECRET={SECRET}"]}
    assert not stale.exists()


def test_an_earlier_root_is_tightened_when_opened():
    """A root an earlier labkit left open (0755 directories, 0644 records, another group) is made private when an
    engine opens it: the root 0710 root:root, its containers', layers', volumes' and images' directories 0700,
    their records and logs 0600."""
    root = state_root()
    lab = labkit.connect(backend="linux", root=root)
    c = lab.create("busybox", ["true"], env=[f"SECRET={SECRET}"])
    lab.volume_create("old-vol")
    for d in (*[root / sub for sub in ("containers", "overlay", "volumes", "images", "tmp", "networks")],
              root / "containers" / c.id, root / "overlay" / c.id, root / "overlay" / c.id / "work",
              root / "overlay" / f"{c.id}-init", root / "volumes" / "old-vol", root / "images" / "layers",
              root / "images" / "images", *(root / "images" / "layers").iterdir()):
        os.chmod(d, 0o755)  # what an earlier labkit made: the layers' contents are the image's own and stay
    for f in (*(root / "containers" / c.id).iterdir(), root / "volumes" / "old-vol" / "meta.json",
              *(root / "images" / "images").glob("*.json"), root / "names.json"):
        os.chmod(f, 0o644)
    os.chown(root, 0, NOBODY.pw_gid)
    os.chmod(root, 0o755)
    assert _as_nobody("cat", str(root / "containers" / c.id / "config.json")).returncode == 0, "open, as it was"

    labkit.connect(backend="linux", root=root)
    st = os.stat(root)
    assert (st.st_uid, st.st_gid, _mode(root)) == (0, 0, 0o710)
    for d in (root / "containers", root / "containers" / c.id, root / "overlay" / c.id, root / "volumes" / "old-vol",
              *(root / "images" / "layers").iterdir()):
        assert _mode(d) == 0o700, d
    for f in (root / "containers" / c.id / "config.json", root / "volumes" / "old-vol" / "meta.json",
              *(root / "images" / "images").glob("*.json")):
        assert _mode(f) == 0o600, f
    p = _as(NOBODY.pw_uid, 0, "cat", str(root / "containers" / c.id / "config.json"))
    assert p.returncode != 0 and SECRET not in p.stdout
    lab.rm(c.id)
    lab.volume_rm("old-vol")


def test_a_root_another_user_owns_is_refused_not_taken_over():
    """A state root that belongs to another user (LABKIT_ROOT naming it, in an environment ``su`` kept) is refused
    in one sentence before anything in it is used or changed: its owner, its mode and a "supervisor" planted in it
    stay as they were, and nothing runs."""
    planted = Path(tempfile.mkdtemp(prefix="labkit-test-planted-"))
    try:
        (planted / "bin").mkdir()
        marker = planted / "ran"
        shim = planted / "bin" / "labkit-shim-0000000000000000"
        shim.write_text(f"#!/bin/sh\ntouch {marker}\n")
        shim.chmod(0o755)
        for path in (planted, planted / "bin", shim):
            os.chown(path, NOBODY.pw_uid, NOBODY.pw_gid)
        with pytest.raises(labkit.InvalidArgument, match=f"uid {NOBODY.pw_uid}") as err:
            labkit.connect(backend="linux", root=planted)
        assert "--root" in err.value.hint
        st = os.stat(planted)
        assert (st.st_uid, _mode(planted)) == (NOBODY.pw_uid, 0o700) and not marker.exists()
        assert sorted(os.listdir(planted)) == ["bin"], "nothing was made in it"
        p = subprocess.run(["sh", str(REPO / "bin" / "labkit"), "ps"], capture_output=True, text=True, timeout=120,
                           env={**os.environ, "LABKIT_ROOT": str(planted), "LABKIT_NO_SERVER": "1"})
        assert p.returncode == 1 and p.stderr.count("\n") == 1 and "is not this user's" in p.stderr, p.stderr
    finally:
        shutil.rmtree(planted)


def test_a_rootless_root_is_its_users_alone(learner):
    """Rootless, the state root is 0700 (tightened when an earlier labkit left it 0755), records are 0600, and the
    user's containers still run: the user namespace's root reads the layers. ``nobody`` reaches nothing of it."""
    code = textwrap.dedent(f"""
        import json, os, stat
        root = os.path.expanduser("~/.local/share/labkit")
        os.makedirs(root, mode=0o755, exist_ok=True)
        os.chmod(root, 0o755)  # as an earlier labkit left it
        import labkit
        lab = labkit.connect()
        c = lab.run("busybox", ["sh", "-c", "cat /etc/passwd >/dev/null && echo ran"], env=["SECRET={SECRET}"],
                    network="none")
        cdir = lab.store.container_dir(c.id)
        modes = {{p: oct(stat.S_IMODE(os.stat(p).st_mode)) for p in (root, str(cdir), str(cdir / "config.json"))}}
        out = c.logs()
        lab.rm(c.id)
        print(json.dumps({{"backend": lab.backend_name, "out": out, "modes": modes, "id": c.id}}))
        """)
    got = run_as(learner, code, timeout=300)
    assert got["backend"] == "rootless" and got["out"] == "ran\n"
    root = os.path.join(learner.pw_dir, ".local", "share", "labkit")
    config = os.path.join(root, "containers", got["id"], "config.json")
    assert got["modes"] == {root: "0o700", os.path.dirname(config): "0o700", config: "0o600"}
    home = _mode(Path(learner.pw_dir))
    os.chmod(learner.pw_dir, 0o755)  # a home others may enter, as many are: the root itself must hold
    try:
        assert _errno_as(NOBODY.pw_uid, NOBODY.pw_gid, "listdir", root) == errno.EACCES
        assert _errno_as(NOBODY.pw_uid, NOBODY.pw_gid, "stat", os.path.join(root, "containers")) == errno.EACCES
    finally:
        os.chmod(learner.pw_dir, home)
