"""run's security, filesystem and stdin flags for a user without root (a user namespace of the user's own).

The learner's map is the single-id one (``0 UID 1``) unless a test grants an
``/etc/subuid`` range: then ``-u 1000`` is a mapped user and runs as it; with
the single-id map it is refused in one sentence.
"""

from __future__ import annotations

import shutil

import pytest

from tests.rootless.test_rootless import PRELUDE, as_learner, subuid  # noqa: F401  (subuid: a fixture)

pytestmark = pytest.mark.root


def test_caps_read_only_tmpfs_and_stdin_rootless(learner):
    """Rootless: --cap-add NET_ADMIN adds that bit alone, --read-only refuses / with EROFS but not a --tmpfs,
    --add-host and --dns write their lines, and run -i hands PID 1 what is piped in."""
    got = as_learner(learner, PRELUDE + """
    def out(argv, **kw):
        c = lab.run("busybox", argv, **kw)
        text = c.logs()
        lab.rm(c.id)
        return text

    caps = out(["grep", "CapEff", "/proc/self/status"], cap_add=["NET_ADMIN"], network="none")
    ro = out(["sh", "-c", "touch /x; touch /t/y && echo t-ok"], read_only=True, tmpfs=["/t"], network="none")
    etc = out(["cat", "/etc/hosts", "/etc/resolv.conf"], add_host=["db:10.0.0.5"], dns=["9.9.9.9"], network="none")
    r, w = os.pipe()
    os.write(w, b"a\\nb\\nc\\n")
    os.close(w)
    c = lab.create("busybox", ["wc", "-l"], open_stdin=True, network="none")
    lab.start(c.id, stdin=r)
    os.close(r)
    lab.wait(c.id, timeout=30)
    lines = c.logs()
    lab.rm(c.id)
    print(json.dumps({"caps": caps, "ro": ro, "etc": etc, "lines": lines}))
    """)
    assert int(got["caps"].split()[1], 16) == 0xA80425FB | 1 << 12
    assert "Read-only file system" in got["ro"] and "t-ok" in got["ro"]
    assert "10.0.0.5\tdb" in got["etc"] and "nameserver 9.9.9.9" in got["etc"]
    assert got["lines"].strip() == "3"


def test_an_unmapped_user_is_refused_and_a_mapped_one_runs(learner, subuid):  # noqa: F811
    """With a subuid range, -u 1000 runs as uid 1000 with no effective capability; the user namespace's own
    root reads what 1000 cannot."""
    if not shutil.which("newuidmap"):
        pytest.fail("newuidmap is missing: apt-get install uidmap")
    got = as_learner(learner, PRELUDE + """
    c = lab.run("busybox", ["sh", "-c", "echo s > /s; chmod 600 /s; exec sleep 300"], name="ranged-user",
                detach=True, network="none")
    time.sleep(0.5)
    denied = c.exec(["sh", "-c", "id; cat /s; grep CapEff /proc/self/status"], user="1000")
    allowed = c.exec(["cat", "/s"])
    lab.rm("ranged-user", force=True)
    print(json.dumps({"denied": denied, "allowed": allowed}))
    """)
    code, text = got["denied"]
    assert "uid=1000 gid=0(root)" in text and "Permission denied" in text
    assert "CapEff:\t0000000000000000" in text
    assert got["allowed"] == [0, "s\n"]


def test_a_user_outside_the_single_id_map_is_refused_in_one_sentence(learner):
    """With the single-id map only root exists inside: -u 1000 fails the start, saying the user is not mapped."""
    got = as_learner(learner, PRELUDE + """
    try:
        lab.run("busybox", ["true"], user="1000", name="unmapped-user", network="none")
        error = None
    except labkit.StartFailed as err:
        error = err.message
    lab.rm("unmapped-user")
    print(json.dumps({"error": error}))
    """)
    assert got["error"] and "setgid 0" not in got["error"]
    assert "is the user mapped in this container's user namespace?" in got["error"]
