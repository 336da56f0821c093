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


def test_a_discarded_tree_is_gone_at_once_and_deleted_soon(tmp_path):
    """rm does not wait for the deletion: the tree leaves its place by rename, a thread deletes it."""
    from labkit import store as store_module

    store = Store(tmp_path)
    tree = tmp_path / "overlay" / "layer"
    (tree / "diff" / "etc").mkdir(parents=True)
    (tree / "diff" / "etc" / "passwd").write_text("root\n")
    assert store.discard(tree)
    assert not tree.exists()
    store_module.drain()
    assert os.listdir(tmp_path / "tmp") == []
    assert store.discard(tree) is False  # nothing there any more


def test_trash_a_killed_process_left_is_taken_by_the_next_store(tmp_path):
    from labkit import store as store_module

    Store(tmp_path)
    left = tmp_path / "tmp" / "trash-0123456789abcdef"
    (left / "diff").mkdir(parents=True)
    Store(tmp_path)
    store_module.drain()
    assert not left.exists()


def test_a_record_is_written_as_asdict_would_and_read_back_whole():
    """The state file's dict is dataclasses.asdict's (so records written before still read the same)."""
    import dataclasses
    import json

    from labkit.model.container import MountSpec, PortSpec

    rec = _record()
    rec = ContainerRecord(dataclasses.replace(
        rec.config, labels={"a": "b"}, ports=(PortSpec(3000, host_port="8080"),),
        mounts=(MountSpec("volume", "data", "/data", True),), env=("A=1",)), rec.state)
    asdict = {"config": dataclasses.asdict(rec.config), "state": dataclasses.asdict(rec.state)}
    assert json.dumps(rec.to_json()) == json.dumps(asdict)
    assert ContainerRecord.from_json(json.loads(json.dumps(rec.to_json()))) == rec


def test_the_lock_is_reentrant_in_a_thread_and_excludes_other_processes(tmp_path):
    """locked() inside locked() goes on (flock(2) on a second open file would wait forever); another process still waits."""
    import subprocess
    import sys
    import time

    store = Store(tmp_path)
    probe = "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR); fcntl.flock(fd, fcntl.LOCK_EX); print(time.time())"
    with store.locked():
        with store.locked():
            other = subprocess.Popen([sys.executable, "-c", probe, str(tmp_path / "lock")], stdout=subprocess.PIPE,
                                     text=True)
            time.sleep(0.3)
        assert other.poll() is None, "another process got the lock while this one held it"
        released = time.time()
    assert float(other.communicate(timeout=10)[0]) >= released


def test_an_intent_is_abandoned_only_once_its_process_is_gone(tmp_path):
    """While its process lives an intent is nobody's to take; killed (kill -9), its verb is handed to the next reader,
    once; a block that ends well leaves none, one that ends in an error leaves it."""
    import signal
    import subprocess
    import sys

    store = Store(tmp_path)
    store.container_dir("c1").mkdir(parents=True)
    holder = ("import sys, time; from labkit.store import Store; s = Store(sys.argv[1]);\n"
              "with s.intent('c1', 'start'):\n    print('held', flush=True); time.sleep(60)")
    p = subprocess.Popen([sys.executable, "-c", holder, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline() == "held\n"
    with store.abandoned("c1") as verb:
        assert verb is None, "taken from a process that still runs"
    p.send_signal(signal.SIGKILL)
    p.wait()
    with store.abandoned("c1") as verb:
        assert verb == "start"
    with store.abandoned("c1") as verb:
        assert verb is None, "handed out twice"
    with store.intent("c1", "rm"):
        pass
    assert not (store.container_dir("c1") / "intent").exists()
    try:
        with store.intent("c1", "rm"):
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    with store.abandoned("c1") as verb:
        assert verb == "rm"
    assert not store.stray_intents() and not list((tmp_path / "tmp").glob("intent-*"))
