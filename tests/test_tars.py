"""A tar stream from a container lands inside the destination or nowhere (labkit.tars)."""

from __future__ import annotations

import io
import os
import tarfile

import pytest

from labkit import tars


def _unpack(dest, *members: tuple[str, str, str]) -> None:
    """Build a stream of (kind, name, target-or-data) entries and unpack it entry by entry, as cp does."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for kind, name, value in members:
            info = tarfile.TarInfo(name)
            if kind == "sym":
                info.type, info.linkname = tarfile.SYMTYPE, value
                tar.addfile(info)
            else:
                info.size = len(value)
                tar.addfile(info, io.BytesIO(value.encode()))
    buffer.seek(0)
    with tarfile.open(fileobj=buffer, mode="r|") as tar:
        for member in tar:
            tars.extract(tar, tars.member_in(member, str(dest)), str(dest))


def test_names_stay_inside(tmp_path):
    """A leading / is dropped; ``..`` is refused; a file lands where its name says."""
    _unpack(tmp_path, ("file", "/abs.txt", "a"), ("file", "d/x.txt", "x"))
    assert (tmp_path / "abs.txt").read_text() == "a" and (tmp_path / "d" / "x.txt").read_text() == "x"
    with pytest.raises(tars.Breakout):
        _unpack(tmp_path, ("file", "../escape.txt", "e"))
    assert not (tmp_path.parent / "escape.txt").exists()


def test_a_symlink_made_on_the_way_is_not_a_way_out(tmp_path):
    """A symlink the stream makes to a directory outside, then an entry through it, is refused; an entry at the
    symlink's own place replaces the link instead of writing through it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(tars.Breakout):
        _unpack(dest, ("sym", "link", str(outside)), ("file", "link/passwd", "owned"))
    assert os.listdir(outside) == []
    _unpack(dest, ("sym", "f", str(outside / "target")), ("file", "f", "plain"))
    assert not (outside / "target").exists() and (dest / "f").read_text() == "plain"
