"""Images deeper than a page of mount options: built and run as deep as overlayfs stacks, refused beyond."""

from __future__ import annotations

import os

import pytest

from labkit.errors import LabfileError
from labkit.linux import overlay
from labkit.model.overlay import MAX_STACK
from tests.util import KERNEL_TAKES_LOWERDIR_PLUS, root_overlay_lowers

pytestmark = pytest.mark.root


def _labfile(tmp_path, copies: int, tail: str = "") -> str:
    ctx = tmp_path / "deep-ctx"
    ctx.mkdir()
    (ctx / "note").write_text("hi\n")
    steps = "".join(f"COPY note /n{i}\n" for i in range(copies))
    (ctx / "Labfile").write_text(f"FROM busybox\n{steps}{tail}")
    return str(ctx)


def test_options_split_one_lower_layer_per_part():
    """fsconfig(2) gets each lower layer as its own "lowerdir+", top first, and the other options as they are."""
    layers = overlay.Layers(("/i", "/l2", "/l1"), "/u", "/w", "/m")
    assert overlay.option_parts(overlay.mount_options(layers)) == [
        ("lowerdir+", "/i"), ("lowerdir+", "/l2"), ("lowerdir+", "/l1"), ("upperdir", "/u"), ("workdir", "/w"),
        ("index", "off"), ("redirect_dir", "off"), ("metacopy", "off")]
    assert ("userxattr", None) in overlay.option_parts(overlay.mount_options(layers, userxattr=True))


def test_an_image_as_deep_as_overlayfs_stacks_builds_and_runs(engine, tmp_path):
    """499 image layers and the container's init layer: a RUN step and a container mount all 500 lower layers, far
    past the page mount(2) reads, and the bottom and top layers' files both show through; one by one where the
    kernel takes "lowerdir+" (Linux >= 6.8), and named by descriptors as on an older kernel, where all 500 fit
    the page too."""
    engine.build(_labfile(tmp_path, MAX_STACK - 3, "RUN cat /n0 /n496 > /both\n"), "deep:max", on_step=lambda _: None)
    before = engine.backend.lowerdir_plus
    try:
        image = engine.image_store.get("deep:max")
        assert len(image.layers) == MAX_STACK - 1
        assert len(":".join(image.lowerdirs())) > os.sysconf("SC_PAGE_SIZE"), "this image cannot use mount(2)"
        for lowerdir_plus in (None, False):
            engine.backend.lowerdir_plus = lowerdir_plus
            c = engine.run("deep:max", ["sh", "-c", "cat /both; ls /bin/sh; cat /proc/self/mountinfo"])
            try:
                out = c.logs()
                assert (c.exit_code, out.splitlines()[:3]) == (0, ["hi", "hi", "/bin/sh"]), out[:400]
                how, lowers = root_overlay_lowers(out)
                assert len(lowers) == MAX_STACK
                assert how == ("lowerdir+" if lowerdir_plus is None and KERNEL_TAKES_LOWERDIR_PLUS else "lowerdir")
            finally:
                c.remove()
    finally:
        engine.backend.lowerdir_plus = before
        engine.image_store.remove("deep:max")


def test_a_labfile_deeper_than_overlayfs_stacks_is_refused_before_a_layer_is_made(engine, tmp_path):
    """One layer more than overlayfs can stack under a container is refused right after FROM, naming the limit."""
    layers = set(os.listdir(engine.image_store.root + "/layers"))
    with pytest.raises(LabfileError, match=r"an image of 500 layers; overlayfs stacks at most 500 .*OVL_MAX_STACK"):
        engine.build(_labfile(tmp_path, MAX_STACK - 1), "deep:over", on_step=lambda _: None)
    assert set(os.listdir(engine.image_store.root + "/layers")) == layers
    assert not engine.image_store.exists("deep:over")
