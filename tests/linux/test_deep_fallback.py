"""Images deeper than a page of mount options where the kernel takes no "lowerdir+" (before Linux 6.8).

mount(2) reads one page of options: about 40 of labkit's layer paths. Linux 6.8 takes lower layers
one by one ("lowerdir+"); Debian 12's 6.1 and Ubuntu 22.04's 5.15 refuse that with EINVAL, and there
each lower layer is named by a descriptor of it instead (:func:`labkit.linux.overlay.mount_by_descriptors`,
pid1.c's ``mount_by_descriptors``). Here the backend's :attr:`~labkit.linux.base.LinuxBase.lowerdir_plus`
is set False, as such a kernel leaves it, so that path runs on any kernel; images of 41, 60 and 100
layers (each past the page) are built and run through it by the engine (the overlay mounted in Python)
and by PID 1 (the C start path, which rootless containers take), and a file of the bottom layer, one of
the top layer and a whiteout in the middle show as they should.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile

import pytest

from labkit.linux import overlay, process, supervisor
from tests.util import KERNEL_TAKES_LOWERDIR_PLUS, root_overlay_lowers

pytestmark = pytest.mark.root

#: Image depths: the first past a page of options with the tests' state root, one between, and a deep one.
DEPTHS = (41, 60, 100)
#: What a container prints of the image (see :func:`_labfile`), then its mountinfo.
PROBE = "cat /bottom /top; test -e /gone || echo gone; cat /proc/self/mountinfo"
SEEN = ["bottom", "bottom", "mid", "gone"]


def _labfile(ctx: str, depth: int) -> None:
    """A Labfile of ``depth`` layers: busybox's, ``/bottom`` and ``/gone`` right above it, a RUN in the middle that
    deletes ``/gone`` (a whiteout) and writes ``/mid``, and a RUN on top that copies both into ``/top``; each RUN
    runs over the layers below it, the top one over more than a page of them."""
    fill = depth - 5
    steps = ["COPY bottom /bottom", "COPY gone /gone",
             *(f"COPY note /n{i}" for i in range(fill // 2)), "RUN rm /gone && echo mid > /mid",
             *(f"COPY note /n{i}" for i in range(fill // 2, fill)), "RUN cat /bottom /mid > /top"]
    with open(os.path.join(ctx, "Labfile"), "w") as f:
        f.write("FROM busybox\n" + "\n".join(steps) + "\n")


@pytest.fixture
def by_descriptors(shared_engine):
    """The engine's backend as a kernel without "lowerdir+" leaves it; as it was afterwards."""
    before = shared_engine.backend.lowerdir_plus
    shared_engine.backend.lowerdir_plus = False
    yield shared_engine
    shared_engine.backend.lowerdir_plus = before


@pytest.fixture(scope="module")
def deep_images(shared_engine):
    """``deep:41``, ``deep:60`` and ``deep:100``, built with every deep RUN step mounted by descriptors."""
    engine = shared_engine
    before = engine.backend.lowerdir_plus
    engine.backend.lowerdir_plus = False
    ctx = tempfile.mkdtemp(prefix="labkit-deep-ctx-")
    for name in ("bottom", "gone", "note"):
        with open(os.path.join(ctx, name), "w") as f:
            f.write(f"{name}\n")
    tags = []
    try:
        for depth in DEPTHS:
            _labfile(ctx, depth)
            engine.build(ctx, f"deep:{depth}", on_step=lambda _: None)
            tags.append(f"deep:{depth}")
        engine.backend.lowerdir_plus = before
        yield {depth: engine.image_store.get(f"deep:{depth}") for depth in DEPTHS}
    finally:
        engine.backend.lowerdir_plus = before
        for tag in tags:
            engine.image_store.remove(tag)
        shutil.rmtree(ctx)


def _by_descriptors(mountinfo: str, depth: int) -> None:
    """The container's root overlay got ``depth`` image layers and the init layer as descriptor numbers."""
    how, lowers = root_overlay_lowers(mountinfo)
    assert how == "lowerdir" and len(lowers) == depth + 1
    assert all(name.isdigit() for name in lowers), lowers[:3]


def test_short_options_name_each_lower_layer_by_its_descriptor():
    """The lower layers become descriptor numbers in order, top first; every other option stays as it was."""
    layers = overlay.Layers(("/i", "/l2", "/l1"), "/u", "/w", "/m")
    assert overlay.short_options(overlay.mount_options(layers), [7, 8, 12]) == \
        "lowerdir=7:8:12,upperdir=/u,workdir=/w,index=off,redirect_dir=off,metacopy=off"


@pytest.mark.parametrize("depth", DEPTHS)
def test_the_engine_runs_a_deep_image_by_descriptors(deep_images, by_descriptors, depth):
    """A container of 41, 60 or 100 layers, its overlay mounted by the engine with the lower layers named by
    descriptors: the bottom layer's file, the top layer's, and the middle layer's whiteout all show."""
    image = deep_images[depth]
    assert len(image.layers) == depth
    assert len(":".join(image.lowerdirs())) >= overlay.MOUNT_DATA_MAX, "this image fits mount(2)'s page as it is"
    c = by_descriptors.run(f"deep:{depth}", ["sh", "-c", PROBE])
    try:
        out = c.logs()
        assert (c.exit_code, out.splitlines()[:4]) == (0, SEEN), out[:400]
        _by_descriptors(out, depth)
    finally:
        c.remove()
    assert by_descriptors.backend.lowerdir_plus is False


def test_docker_cp_reads_a_stopped_deep_container_by_descriptors(deep_images, by_descriptors):
    """``docker cp`` out of a container that is not running mounts its deep overlay by descriptors for itself."""
    c = by_descriptors.create("deep:100", ["true"])
    try:
        with tempfile.TemporaryFile() as tar:
            by_descriptors.copy_from(c.id, "/top", tar.fileno())
            tar.seek(0)
            data = tar.read()
        assert b"bottom\nmid\n" in data
    finally:
        c.remove()


def _pid1_mounts(engine, image, tmp_path, lowerdir_plus: bool) -> str:
    """Have PID 1 mount ``image``'s overlay itself (the C start path, as rootless containers do) and run
    :data:`PROBE`: what it printed."""
    base = tmp_path / "pid1"
    init = base / "init"
    base.mkdir()
    layers = overlay.layers_for(base / "layer", init, image.lowerdirs())
    overlay.prepare(layers, init)
    state = base / "state"
    state.mkdir()
    spec = process.LaunchSpec(layers.merged, ["sh", "-c", PROBE], ["PATH=/bin"], state_dir=str(state),
                              log_path=str(state / "json.log"), overlay=overlay.mount_options(layers),
                              lowerdir_plus=lowerdir_plus)
    started = process.start(spec, supervisor.command(engine.backend.shim_dir))
    assert process.wait(started, timeout=30)
    record = process.read_exit(str(state))
    with open(state / "json.log") as f:
        out = "".join(json.loads(line)["log"] for line in f)
    assert record is not None and record["ExitCode"] == 0, out[:400]
    assert not os.path.ismount(layers.merged), "the overlay is PID 1's mount namespace's alone"
    return out


@pytest.mark.parametrize("depth", DEPTHS)
def test_pid_1_mounts_a_deep_image_by_descriptors(deep_images, shared_engine, tmp_path, depth):
    """PID 1, told that the kernel takes no "lowerdir+", mounts 41, 60 or 100 layers by descriptors in its own
    mount namespace: the bottom layer's file, the top layer's, and the middle layer's whiteout all show."""
    out = _pid1_mounts(shared_engine, deep_images[depth], tmp_path, lowerdir_plus=False)
    assert out.splitlines()[:4] == SEEN
    _by_descriptors(out, depth)


def test_the_engine_asks_the_kernel_once_how_it_stacks_a_deep_image(deep_images, shared_engine):
    """Not knowing yet, the engine tries "lowerdir+" and keeps what the kernel answered: on Linux >= 6.8 the layers
    go one by one, on an older kernel the EINVAL sends them by descriptors; the next container asks no more."""
    backend = shared_engine.backend
    before = backend.lowerdir_plus
    backend.lowerdir_plus = None
    try:
        for _ in range(2):
            c = shared_engine.run("deep:41", ["sh", "-c", PROBE])
            try:
                out = c.logs()
                assert (c.exit_code, out.splitlines()[:4]) == (0, SEEN), out[:400]
                how, lowers = root_overlay_lowers(out)
                assert len(lowers) == 42
                assert how == ("lowerdir+" if KERNEL_TAKES_LOWERDIR_PLUS else "lowerdir")
            finally:
                c.remove()
            assert backend.lowerdir_plus is KERNEL_TAKES_LOWERDIR_PLUS
    finally:
        backend.lowerdir_plus = before


def test_pid_1_tries_lowerdir_plus_first_and_falls_back_on_an_older_kernel(deep_images, shared_engine, tmp_path):
    """PID 1 not told otherwise stacks one by one where the kernel takes "lowerdir+", and by descriptors where the
    kernel refuses it (EINVAL): the same files show either way."""
    out = _pid1_mounts(shared_engine, deep_images[60], tmp_path, lowerdir_plus=True)
    assert out.splitlines()[:4] == SEEN
    how, lowers = root_overlay_lowers(out)
    assert (how, len(lowers)) == ("lowerdir+" if KERNEL_TAKES_LOWERDIR_PLUS else "lowerdir", 61)
