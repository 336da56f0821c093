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
