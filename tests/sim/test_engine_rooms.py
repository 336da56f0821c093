"""The Engine's rooms: one collection per resource, the flat verbs their aliases, ``create`` one options value."""

from __future__ import annotations

import dataclasses

import pytest

from labkit.engine.containers import ContainerCollection
from labkit.model.container import CreateOptions


def _config(lab, cid):
    """A container's configuration without who it is (id, name, time, hostname from the id)."""
    config = lab.store.load(cid).config
    return dataclasses.replace(config, id="", name="", created="", hostname="")


def test_the_options_value_and_the_keywords_make_the_same_container(sim):
    """lab.containers.create(CreateOptions(...)) records what lab.create(image, command, **keywords) records."""
    keywords = dict(env={"A": "1"}, workdir="/tmp", ports=["8080:80"], volumes=["/data"], memory="64m",
                    restart="on-failure:2", labels={"k": "v"}, stop_signal="SIGINT", init=True)
    by_keywords = sim.create("busybox", "echo hi", **keywords)
    by_value = sim.containers.create(CreateOptions("busybox", "echo hi", **keywords))
    a, b = _config(sim, by_keywords.id), _config(sim, by_value.id)
    assert dataclasses.replace(a, mounts=()) == dataclasses.replace(b, mounts=())
    assert [m.destination for m in a.mounts] == [m.destination for m in b.mounts] == ["/data"]
    assert a.cmd == ("/bin/sh", "-c", "echo hi") and a.memory == 64 << 20 and a.restart_max == 2


def test_an_unknown_option_is_refused_before_anything_is_made(sim):
    """A keyword create does not know is a TypeError, and no container is left."""
    with pytest.raises(TypeError, match="colour"):
        sim.create("busybox", ["true"], colour="red")
    assert sim.ps(all=True) == []


def test_a_bad_option_is_refused_in_dockers_words_by_either_form(sim):
    """The options value is checked as the keywords are: Docker's sentence, nothing made."""
    from labkit.errors import InvalidArgument

    for make in (lambda: sim.create("busybox", ["true"], restart="always", auto_remove=True),
                 lambda: sim.containers.create(CreateOptions("busybox", ["true"], restart="always",
                                                             auto_remove=True))):
        with pytest.raises(InvalidArgument, match="cannot specify both --restart and --rm"):
            make()
    assert sim.ps(all=True) == []


def test_each_resource_has_one_naming_order(sim):
    """lab.volumes.create / lab.networks.create and their flat aliases see the same things."""
    sim.volumes.create("data")
    assert [v["Name"] for v in sim.volume_ls()] == [v["Name"] for v in sim.volumes.ls()] == ["data"]
    assert sim.volume_inspect("data") == sim.volumes.inspect("data")
    sim.volume_rm("data")
    assert sim.volumes.ls() == []
    sim.networks.create("backend")
    assert sim.network_inspect("backend")["Name"] == sim.networks.inspect("backend")["Name"] == "backend"
    assert sim.networks.rm("backend") == "backend"
    assert [n["Name"] for n in sim.network_ls()] == ["bridge", "host", "none"]
    busybox = sim.images.get("busybox")  # built on first use
    assert sim.images() == sim.images.ls() and [i["Id"] for i in sim.images()] == [busybox.id]
    assert sim.image_inspect("busybox") == sim.images.inspect("busybox")
    assert sim.version() == sim.system.version()


def test_the_container_verbs_are_the_collections(sim):
    """Every public verb of lab.containers, in whichever room of the engine it is written (containers,
    lifecycle, upkeep), is reachable flat on the engine too (lab.run, lab.stop, lab.ps)."""
    flat = {"ls": "ps", "get": "container", "prune": "container_prune"}
    verbs = [n for room in ContainerCollection.__mro__ if room.__module__.startswith("labkit.engine.")
             for n in vars(room) if not n.startswith("_")]
    missing = [n for n in verbs if not callable(getattr(sim, flat.get(n, n), None))]
    assert verbs and not missing, missing
