"""Volumes: named directories that outlive containers, and what ``-v`` means (``lab.volumes``).

``lab.volumes.create``, ``ls``, ``inspect`` and ``rm`` are ``docker volume``'s; a
container's ``-v NAME:/path`` makes its volume on first use, and ``rm -v`` removes the
anonymous ones (``-v /path``) with the container.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from labkit.engine.collection import Collection, verb
from labkit.engine.options import VOLUME_RE, anonymous
from labkit.engine.system import disk_bytes
from labkit.errors import InvalidArgument, NoSuchVolume, VolumeInUse
from labkit.model import events
from labkit.model.container import MountSpec, now_rfc3339
from labkit.store import PRIVATE_DIR, read_json, write_json


class VolumeCollection(Collection):
    """The state root's volumes (``lab.volumes``)."""

    @verb("volume-create")
    def create(self, name: str | None = None) -> dict[str, Any]:
        """``docker volume create``: a named directory that outlives containers."""
        name = name or secrets.token_hex(32)
        if not VOLUME_RE.match(name):
            raise InvalidArgument(
                f'create {name}: "{name}" includes invalid characters for a local volume name, '
                "only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed",
                "Pick a name made of letters, digits, '_', '.' and '-'",
            )
        with self.engine.store.locked():
            return self.make(name)

    def make(self, name: str) -> dict[str, Any]:
        """The volume ``name``, made now if it is not there yet (the caller holds the store's lock)."""
        vdir = self.engine.store.volume_dir(name)
        meta = read_json(vdir / "meta.json")
        if meta:
            return meta
        vdir.mkdir(mode=PRIVATE_DIR, exist_ok=True)  # its meta.json and the way to its data: the owner's alone
        (vdir / "_data").mkdir(exist_ok=True)  # what the container sees at the mount point: 0755, as Docker's
        meta = {
            "CreatedAt": now_rfc3339(),
            "Driver": "local",
            "Labels": None,
            "Mountpoint": str(vdir / "_data"),
            "Name": name,
            "Options": None,
            "Scope": "local",
        }
        write_json(vdir / "meta.json", meta)
        self.engine._record(events.volume_create(name, meta["Mountpoint"]))
        self.engine.journal.add("volume", "create", name, {"driver": "local"})
        return meta

    def ls(self) -> list[dict[str, Any]]:
        """``docker volume ls``: every volume's record, by name."""
        base = self.engine.store.root / "volumes"
        metas = [read_json(base / n / "meta.json") for n in sorted(os.listdir(base))]
        return [m for m in metas if m]

    def inspect(self, name: str) -> dict[str, Any]:
        """``docker volume inspect``."""
        meta = read_json(self.engine.store.volume_dir(name) / "meta.json")
        if not meta:
            raise NoSuchVolume(name)
        return meta

    @verb("volume-rm")
    def rm(self, name: str, force: bool = False) -> None:
        """``docker volume rm``: refused while a container (even a stopped one) uses it."""
        self.inspect(name)
        users = [r.id for r in self.engine._records()
                 if any(m.type == "volume" and m.source == name for m in r.config.mounts)]
        if users:
            raise VolumeInUse(f"remove {name}: volume is in use - [{', '.join(users)}]",
                              "Remove the containers that use it first")
        self.delete(name)

    def delete(self, name: str) -> None:
        """Remove the volume's directory, whoever uses it (``rm`` asks first)."""
        vdir = self.engine.store.volume_dir(name)
        if self.engine.store.discard(vdir):
            self.engine._record(events.volume_remove(name, str(vdir / "_data")))
            self.engine.journal.add("volume", "destroy", name, {"driver": "local"})

    def prune(self, all: bool = False) -> dict[str, Any]:
        """``docker volume prune``: remove the anonymous volumes no container uses (``all``: every unused one).

        Returns:
            Docker's answer: ``VolumesDeleted`` (their names) and ``SpaceReclaimed`` (the bytes their files held).
        """
        used = {m.source for r in self.engine._records() for m in r.config.mounts if m.type == "volume"}
        removed, reclaimed = [], 0
        for meta in self.ls():
            name = meta["Name"]
            if name not in used and (all or anonymous(name)):
                reclaimed += disk_bytes(Path(meta["Mountpoint"]))
                self.delete(name)
                removed.append(name)
        return {"VolumesDeleted": removed, "SpaceReclaimed": reclaimed}

    def mount_spec(self, text: str) -> MountSpec:
        """One ``-v`` value: ``NAME:/path``, ``/host/path:/path`` or ``/path`` (an anonymous volume), ``:ro``."""
        parts = text.split(":")
        ro = False
        if len(parts) == 3 and parts[2] in ("ro", "rw"):
            ro = parts[2] == "ro"
            parts = parts[:2]
        bad = InvalidArgument(f"invalid volume specification: '{text}'",
                              "Write NAME:/path or /host/path:/path, optionally with :ro")
        if len(parts) == 1:
            dest = parts[0]
            if not dest.startswith("/"):
                raise bad
            return MountSpec("volume", secrets.token_hex(32), dest, ro)
        if len(parts) != 2:
            raise bad
        src, dest = parts
        if not dest.startswith("/") or dest == "/":
            raise bad
        if src.startswith("/"):
            return MountSpec("bind", os.path.realpath(src), dest, ro)
        if not VOLUME_RE.match(src):
            raise bad
        return MountSpec("volume", src, dest, ro)

    def mount_json(self, m: MountSpec) -> dict[str, Any]:
        """A mount as ``docker inspect``'s ``Mounts`` shows it."""
        if m.type == "volume":
            return {"Type": "volume", "Name": m.source, "Source": self.host_path(m),
                    "Destination": m.destination, "Driver": "local", "Mode": "ro" if m.readonly else "z",
                    "RW": not m.readonly, "Propagation": ""}
        if m.type == "tmpfs":  # made in memory at each start: no source on the host
            return {"Type": "tmpfs", "Source": "", "Destination": m.destination, "Mode": "", "RW": not m.readonly,
                    "Propagation": ""}
        return {"Type": "bind", "Source": m.source, "Destination": m.destination, "Mode": "ro" if m.readonly else "",
                "RW": not m.readonly, "Propagation": "rprivate"}

    def host_path(self, m: MountSpec) -> str:
        """Where a mount's data lives on the host."""
        return str(self.engine.store.volume_dir(m.source) / "_data") if m.type == "volume" else m.source
