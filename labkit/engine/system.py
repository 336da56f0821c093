"""The system: ``docker version``, ``docker info``, ``labkit doctor`` and ``labkit system reset`` (``lab.system``)."""

from __future__ import annotations

import contextlib
import os
import platform
import stat
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from labkit import __version__
from labkit.doctor import checks
from labkit.engine.collection import Collection
from labkit.images.store import chain_ids
from labkit.model.container import command_string, parse_time, state_json
from labkit.model.humanize import status_string
from labkit.model.lifecycle import Status, is_running
from labkit.networks import PREDEFINED
from labkit.store import TOP_LEVEL
from labkit.store import drain as drain_discarded


class System(Collection):
    """What the engine says of itself and of its host (``lab.system``)."""

    def version(self) -> dict[str, Any]:
        """``GET /version``."""
        return {
            "Version": __version__,
            "ApiVersion": "1.51",
            "MinAPIVersion": "1.24",
            "Os": platform.system().lower(),
            "Arch": {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine()),
            "KernelVersion": platform.release(),
            "GoVersion": "python" + platform.python_version(),
            "GitCommit": "",
            "Components": [{"Name": "Engine", "Version": __version__, "Details": {"Backend": self.engine.backend_name}}],
        }

    def info(self) -> dict[str, Any]:
        """``GET /info``: counts, the storage driver, cgroups, the host."""
        recs = self.engine._records()
        mem = 0
        try:
            with open("/proc/meminfo") as f:
                mem = int(f.readline().split()[1]) * 1024
        except OSError:
            pass
        return {
            "Containers": len(recs),
            "ContainersRunning": sum(r.status is Status.RUNNING for r in recs),
            "ContainersPaused": sum(r.status is Status.PAUSED for r in recs),
            "ContainersStopped": sum(not is_running(r.status) for r in recs),
            "Images": len(self.engine.images.store.list()),
            "Driver": "overlay2",
            "CgroupDriver": "cgroupfs",
            "CgroupVersion": self.engine.backend.cgroup_version(),
            "KernelVersion": platform.release(),
            "OperatingSystem": platform.platform(),
            "NCPU": os.cpu_count(),
            "MemTotal": mem,
            "ServerVersion": self.version()["Version"],
            "DockerRootDir": str(self.engine.store.root),
            "Backend": self.engine.backend_name,
            "SecurityOptions": self.engine.backend.security_options(),
        }

    def doctor(self) -> list[dict[str, Any]]:
        """``labkit doctor``: what this host lets labkit do, each check in plain words."""
        # The saved subnets are checked against the host's routes where networks are bridges on this host;
        # a real backend's compiled supervisor is looked for in its state root.
        backend = self.engine.backend
        return checks(self.engine.networks.ls() if backend.host_bridges else None,
                      None if backend.simulated else str(self.engine.store.root / "bin"), rootless=backend.rootless)

    def events(self, since: float | None = None, until: float | None = None) -> Iterator[dict[str, Any]]:
        """``docker events``: what happened, from the engine's journal (:mod:`labkit.journal`), in the Engine
        API's shape.

        Args:
            since: Unix time to start from; None: only what happens from now on.
            until: Unix time to stop at; None: go on until the caller stops reading (every look at the
                journal is a fifth of a second apart, and a container that ended meanwhile is noticed first,
                so its ``die`` is there).
        """
        return self.engine.journal.follow(None if since is None else int(since * 1e9),
                                          None if until is None else int(until * 1e9),
                                          between=self.engine._records)

    def df(self) -> dict[str, Any]:
        """``GET /system/df`` (``docker system df``): images, containers and volumes, how many, how many in use,
        their bytes and what a prune would give back, with each item as ``-v`` lists it.

        An image's ``SharedSize`` is the bytes of its layers another image stacks too; ``LayersSize`` counts
        every layer once. A container's ``SizeRw`` is its writable layer's bytes; a volume's ``Links`` how
        many containers mount it.
        """
        engine = self.engine
        recs = engine._records()
        images = engine.image_store.list()
        stacks: dict[str, int] = {}
        sizes: dict[str, int] = {}
        for img in images:
            for chain, layer in zip(chain_ids([x.digest for x in img.layers]), img.layers, strict=True):
                stacks[chain] = stacks.get(chain, 0) + 1
                sizes[chain] = layer.size
        users: dict[str, int] = {}
        for r in recs:
            users[r.config.image_id] = users.get(r.config.image_id, 0) + 1
        image_items: list[dict[str, Any]] = []
        for img in images:
            chains = chain_ids([x.digest for x in img.layers])
            image_items.append({
                "Id": img.id, "RepoTags": list(img.repo_tags), "Created": int(parse_time(img.created).timestamp()),
                "Size": img.size, "SharedSize": sum(sizes[c] for c in set(chains) if stacks[c] > 1),
                "Containers": users.get(img.id, 0),
            })
        now = datetime.now(timezone.utc)
        containers = [{"Id": r.id, "Name": r.name, "Names": ["/" + r.name], "Image": r.config.image,
                       "Command": command_string(r.config.argv),
                       "Created": int(parse_time(r.config.created).timestamp()),
                       "State": r.status.value, "Status": status_string(state_json(r.state), now),
                       "Mounts": [{"Type": m.type, "Name": m.source} for m in r.config.mounts if m.type == "volume"],
                       "Running": is_running(r.status),
                       "Size": disk_bytes(engine.store.layer_dir(r.id) / "diff")} for r in recs]
        volumes = engine.volumes.ls()
        links: dict[str, int] = {}
        for r in recs:
            for m in r.config.mounts:
                if m.type == "volume":
                    links[m.source] = links.get(m.source, 0) + 1
        vsize = {v["Name"]: disk_bytes(Path(v["Mountpoint"])) for v in volumes}
        layers_size = sum(sizes.values())
        return {
            "LayersSize": layers_size,
            "Images": {"Total": len(images), "Active": sum(1 for i in image_items if i["Containers"]),
                       "Size": layers_size,
                       "Reclaimable": layers_size - sum(i["Size"] - i["SharedSize"] for i in image_items
                                                        if i["Containers"]),
                       "Items": image_items},
            "Containers": {"Total": len(recs), "Active": sum(c["Running"] for c in containers),
                           "Size": sum(c["Size"] for c in containers),
                           "Reclaimable": sum(c["Size"] for c in containers if not c["Running"]),
                           "Items": containers},
            "Volumes": {"Total": len(volumes), "Active": sum(1 for n in vsize if links.get(n)),
                        "Size": sum(vsize.values()),
                        "Reclaimable": sum(s for n, s in vsize.items() if not links.get(n)),
                        "Items": [{"Name": n, "Links": links.get(n, 0), "Size": s} for n, s in vsize.items()]},
            "BuildCache": {"Total": 0, "Active": 0, "Size": 0, "Reclaimable": 0},
        }

    def reset(self) -> dict[str, int]:
        """``labkit system reset``: remove everything labkit keeps for this user here — every service, container
        (running ones killed), volume, network and image — then the state root itself.

        What a rootless container wrote as one of the user's subordinate ids belongs on the host to an id the
        user is not, and ``rm -rf`` fails on it; the backend's ownership removes such trees inside a user
        namespace with the containers' id map (as ``podman system reset`` does), so no ``sudo`` is needed.
        Only what labkit makes at the top of the root goes (:data:`labkit.store.TOP_LEVEL`); the root itself
        goes when nothing else is in it.

        Returns:
            How many services, containers, volumes, networks and images went.
        """
        engine = self.engine
        gone = {"services": 0, "containers": 0, "volumes": 0, "networks": 0,
                "images": len(engine.image_store.list())}
        for svc in engine.services.ls():
            engine.services.rm(svc["Name"])
            gone["services"] += 1
        for rec in engine._records():
            engine.rm(rec.id, force=True)
            gone["containers"] += 1
        for vol in engine.volumes.ls():
            engine.volumes.rm(vol["Name"], force=True)
            gone["volumes"] += 1
        for net in engine.networks.ls():
            if net["Name"] not in PREDEFINED:
                engine.networks.rm(net["Name"])
                gone["networks"] += 1
        engine.networks.prune()
        drain_discarded()  # the trees rm and volume rm handed the background deleter, before the root goes
        root = engine.store.root
        for name in TOP_LEVEL:
            path = root / name
            if path.is_dir() and not path.is_symlink():
                engine.backend.ownership.remove_tree(str(path))
            else:
                path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            root.rmdir()  # refused if something not labkit's is there: it stays, with the root
        return gone


def disk_bytes(path: Path) -> int:
    """Bytes of the regular files under ``path`` (0 where nothing is on disk, as for the simulator's layers)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                st = os.lstat(os.path.join(root, name))
                total += st.st_size if stat.S_ISREG(st.st_mode) else 0
    return total
