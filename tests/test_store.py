"""labkit.store: records appear whole, and a removed container stays removed."""

from __future__ import annotations

import os

from labkit.model.container import ContainerConfig, ContainerRecord
from labkit.store import Store


def _record(cid: str = "ab" * 32) -> ContainerRecord:
    return ContainerRecord(ContainerConfig(
        id=cid, name="web", created="2026-01-01T00:00:00Z", image="busybox", image_id="sha256:" + "0" * 64,
        entrypoint=(), cmd=("true",), env=(), workdir="/", hostname=cid[:12]))


def test_create_makes_the_directory_whole(tmp_path):
    store = Store(tmp_path)
    rec = _record()
    store.create(rec)
    assert store.container_ids() == [rec.id]
    assert store.load(rec.id).name == "web"
    assert os.listdir(tmp_path / "tmp") == []  # nothing half-made left behind


def test_save_updates_a_record(tmp_path):
    store = Store(tmp_path)
    rec = _record()
    store.create(rec)
    assert store.save(rec.with_state(exit_code=3))
    assert store.load(rec.id).state.exit_code == 3


def test_a_stale_record_cannot_bring_a_removed_container_back(tmp_path):
    """Another process read the record, then this one removed the container: its save writes nothing."""
    store = Store(tmp_path)
    rec = _record()
    store.create(rec)
    stale = store.load(rec.id)
    store.delete(rec.id)
    assert store.save(stale.with_state(exit_code=1)) is False
    assert store.container_ids() == []
    assert os.listdir(tmp_path / "containers") == []
