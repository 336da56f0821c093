"""The writable-layer probes read overlay directories on disk as the real backend lays them out (an upper dir
and lower dirs, top first), without following symbolic links; no container is needed to show it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from labkit.errors import NoSuchContainer
from labkit.grading import probes


class LayersOnDisk:
    """An engine stand-in whose only container, ``box``, has the given upper and lower dirs (top first)."""

    def __init__(self, upper: Path, lowers: list[Path]) -> None:
        self.data = {"UpperDir": str(upper), "LowerDir": ":".join(str(p) for p in lowers)}

    def inspect(self, name: str) -> dict[str, Any]:
        if name != "box":
            raise NoSuchContainer(name)
        return {"Id": "0" * 64, "Name": "/box", "GraphDriver": {"Name": "overlay", "Data": self.data}}


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def layers(tmp_path):
    """An image layer with /etc/passwd and /etc/group, and an empty writable layer above it."""
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    write(lower / "etc" / "passwd", "root:x:0:0:root:/root:/bin/sh\n")
    write(lower / "etc" / "group", "root:x:0:\n")
    upper.mkdir()
    return upper, LayersOnDisk(upper, [lower])


def test_copied_up_reads_the_upper_dir_against_the_lower_dirs(layers):
    """An image file changed in the upper dir is a copy-up; untouched, new, a symlink or missing it is not."""
    upper, engine = layers
    assert not probes.copied_up(engine, "box", "/etc/passwd").passed
    assert "still served unchanged" in probes.copied_up(engine, "box", "/etc/passwd").message
    write(upper / "etc" / "passwd", "root:x:0:0:root:/root:/bin/sh\ntok123\n")
    write(upper / "data" / "hello", "tok123\n")
    os.symlink("/etc/hostname", upper / "etc" / "group")
    assert probes.copied_up(engine, "box", "/etc/passwd", contains="tok123").passed
    assert not probes.copied_up(engine, "box", "/etc/passwd", contains="other").passed
    new = probes.copied_up(engine, "box", "/data/hello", contains="tok123")
    assert not new.passed and "new file" in new.message
    assert not probes.copied_up(engine, "box", "/etc/group").passed  # a symbolic link is never followed
    assert not probes.copied_up(engine, "box", "/etc/shadow").passed
    with pytest.raises(probes.Missing):
        probes.copied_up(engine, "other", "/etc/passwd")


def test_copied_up_refuses_a_file_removed_and_made_again(layers):
    """An image file removed and made again is a whiteout and a new file, not a copy-up: the kernel leaves the
    origin overlayfs records on a copy-up (here /etc's, copied up as the parent) off the new file, and the probe
    fails it, whatever it holds; with the origin on the file too it passes."""
    upper, engine = layers
    write(upper / "etc" / "passwd", "tok123\n")
    os.setxattr(upper / "etc", "user.overlay.origin", b"")  # /etc was copied up: this upper dir keeps origins
    made = probes.copied_up(engine, "box", "/etc/passwd", contains="tok123")
    assert not made.passed and "removed and made again" in made.message
    os.setxattr(upper / "etc" / "passwd", "user.overlay.origin", b"")
    assert probes.copied_up(engine, "box", "/etc/passwd", contains="tok123").passed
