"""busybox's programs on the simulator print what the real busybox prints, byte for byte.

Each script runs with ``exec`` in a fresh container on each backend (``sim``
always; ``linux`` as root) and its exit code and output are compared with the
real kernel's. The scripts avoid what differs between any two runs (inode
numbers, devices, times): they ask ``stat -c`` for the rest.
"""

from __future__ import annotations

import os

import pytest

import labkit

from .conftest import _STATE_ROOT, remove_all

SCRIPTS = {
    # Messages: ash's errmsg() for redirections, mv's stat of its destination.
    "redirect errors": "echo x > /tmp/d; cat < /nope; cat < /tmp/d/x; echo > /nope/x; echo > /tmp/d/g",
    "mv destination errors": "echo x > /tmp/d; mv /tmp/a /tmp/d/f; mkdir /tmp/e; mv /tmp/a /tmp/b /tmp/d;"
                             " mv /tmp/a /tmp/zz/",
    # stat: busybox's layout (less the device, inode and time lines), -c, -t's stable fields, errors, usage.
    "stat layout": "for f in /etc/passwd /tmp /bin/sh /dev/null; do stat $f | head -n 2; stat $f | head -n 4 |"
                   " tail -n 1; done; touch /e; stat /e | head -n 2; stat -L /bin/sh | head -n 1",
    "stat -c": "stat -c '%n|%s|%h|%u|%g|%U|%G|%a|%A|%f|%F|%b|%B|%o|%N|%t|%T|%%|%w' /etc/passwd /tmp /bin/ls /etc / "
               "/dev/null; stat -t /etc/passwd | cut -d' ' -f1-6,9-11",
    "stat errors": "stat /nope; echo rc=$?; stat -x /; echo rc=$?; stat; echo rc=$?",
    # What the kernel shows: root owns the image's files, hard links count 2, directories are 4096 bytes and
    # count their subdirectories, or 1 when overlayfs merges them.
    "owners, links, sizes": "mkdir -p /a/b/c /a/d; stat -c '%h %s %U %n' /a /a/b /a/b/c / /etc /tmp /bin;"
                            " echo x > /a/f; ln /a/f /a/g; ln /etc/passwd /a/p;"
                            " stat -c '%h %n' /a/f /a/g /a/p /etc/passwd; ls -l /a | cut -c1-43;"
                            " ls -la /a | head -n 2 | cut -c1-43; ls -ld /a /bin /etc/group | cut -c1-43",
    "md5sum": "echo hello > /tmp/h; md5sum /tmp/h /etc/group /nope; echo rc=$?; printf abc | md5sum;"
              " md5sum /tmp/h > /sums; md5sum -c /sums; echo x >> /tmp/h; md5sum -c /sums; echo rc=$?;"
              " md5sum -c /dev/null; echo rc=$?",
    "cut": "echo a:b:c | cut -d: -f2; cut -d: -f1,3 /etc/passwd; cut -c1-3 /etc/group; cut -d: -f1 /nope;"
           " echo rc=$?; printf 'a b c\\nd e\\n' | cut -d' ' -f2-; printf 'abcdef\\n' | cut -b2,4-;"
           " printf 'a:b\\nnodelim\\n' | cut -d: -f2; printf 'a:b\\nnodelim\\n' | cut -s -d: -f2;"
           " printf 'abc\\n' | cut -c-2; printf 'a\\tb\\n' | cut -f2; echo a:b:c | cut -d: -O+ -f1,3;"
           " cut; echo rc=$?; cut -x; echo rc=$?; cut -f; echo rc=$?",
    "truncate": "echo hello > /tmp/h; truncate -s 3 /tmp/h; cat /tmp/h; echo; truncate -s 10 /tmp/h; wc -c /tmp/h;"
                " truncate -s 3 /tmp/new; wc -c /tmp/new; truncate -c -s 3 /nof; ls /nof; truncate -s 3 /nod/x;"
                " truncate -s 2K /k; truncate -s +5 /k; wc -c /k; truncate -s 1 /etc/group; cat /etc/group; echo;"
                " truncate; echo rc=$?",
}


@pytest.fixture(scope="module")
def engines():
    made = {"sim": labkit.connect(backend="sim", root=_STATE_ROOT[0]())}
    if os.geteuid() == 0:
        made["linux"] = labkit.connect(backend="linux", root=_STATE_ROOT[0]())
    yield made
    for engine in made.values():
        remove_all(engine)


def observe(engine, script: str) -> tuple[int, str]:
    c = engine.run("busybox", ["sleep", "600"], detach=True)
    try:
        return c.exec(["sh", "-c", script + " 2>&1"])
    finally:
        c.remove(force=True)


@pytest.mark.root
@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_busybox_prints_what_the_kernel_shows(engines, name):
    """The simulator's busybox answers each script exactly as the real one in a real container."""
    assert observe(engines["sim"], SCRIPTS[name]) == observe(engines["linux"], SCRIPTS[name])
