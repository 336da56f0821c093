"""``labkit cp`` on the real backend, as a learner types it: a tar through stdin and stdout, and a copy into
a stopped container that the trace shows as a copy-up."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile

import pytest

pytestmark = pytest.mark.root


@pytest.fixture
def lk(engine):
    """Run `labkit ARGS...` in a new process on the test engine's state root; return (rc, stdout bytes, stderr)."""
    env = {**os.environ, "LABKIT_ROOT": str(engine.store.root), "LABKIT_NO_SERVER": "1"}

    def run(*args: str, stdin: bytes = b"") -> tuple[int, bytes, str]:
        p = subprocess.run([sys.executable, "-m", "labkit", *args], input=stdin, capture_output=True, env=env,
                           timeout=120)
        assert b"Traceback" not in p.stderr, p.stderr
        return p.returncode, p.stdout, p.stderr.decode()

    return run


def test_cp_with_tar_streams_and_a_stopped_container(lk, tmp_path):
    """``cp - C:/DIR`` unpacks stdin's tar, ``cp C:PATH -`` writes one to stdout; into a stopped container a file
    of the image is copied up (``trace cp`` shows it) and the next start reads it."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"hi\n"))
    assert lk("run", "-d", "--name", "cpr", "busybox", "sleep", "60")[0] == 0
    assert lk("cp", "-", "cpr:/tmp", stdin=buffer.getvalue()) == (0, b"", "")
    code, out, _ = lk("cp", "cpr:/tmp/hello.txt", "-")
    with tarfile.open(fileobj=io.BytesIO(out)) as tar:
        assert [m.name for m in tar] == ["hello.txt"] and tar.extractfile("hello.txt").read() == b"hi\n"
    assert lk("cp", "-", "cpr:/tmp/hello.txt", stdin=buffer.getvalue())[2] == \
        'destination "cpr:/tmp/hello.txt" must be a directory\n'
    assert lk("stop", "-t", "0", "cpr")[0] == 0
    (tmp_path / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nana:x:1000:1000::/home/ana:/bin/sh\n")
    code, out, err = lk("trace", "cp", str(tmp_path / "passwd"), "cpr:/etc/passwd")
    assert code == 0, err
    assert b"copy-up" in out and b"/etc/passwd" in out
    assert b"C /etc/passwd" in lk("diff", "cpr")[1]
    assert lk("start", "cpr")[0] == 0
    assert lk("exec", "cpr", "grep", "-c", "ana", "/etc/passwd")[1] == b"1\n"
