"""The simulator models no terminals: ``-t`` is refused there in one sentence, before anything is made."""

from __future__ import annotations

import pytest

from labkit.errors import HostUnsupported


def test_a_terminal_is_refused_before_anything_is_made(sim):
    """create(tty=True) raises HostUnsupported naming the simulator; no container is left; exec(tty=True) and
    attach of a running container refuse the same way."""
    with pytest.raises(HostUnsupported, match="the simulator gives containers no terminal"):
        sim.create("busybox", ["sh"], name="tty-sim", tty=True, open_stdin=True)
    assert sim.ps(all=True) == []
    sim.run("busybox", ["sleep", "100"], name="tty-sim-bg", detach=True)
    with pytest.raises(HostUnsupported):
        sim.exec("tty-sim-bg", ["sh"], tty=True)
    with pytest.raises(HostUnsupported):
        sim.backend.attach(sim.store.load(sim.ps()[0]["Id"]), None, 1, b"\x10\x11")


def test_the_name_of_a_refused_terminal_container_stays_free(sim):
    """The refused create claims nothing: the same name is free for a container without -t."""
    with pytest.raises(HostUnsupported):
        sim.create("busybox", ["sh"], name="tty-again", tty=True)
    assert sim.create("busybox", ["true"], name="tty-again").name == "tty-again"
