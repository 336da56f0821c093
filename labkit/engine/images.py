"""Images: the state root's images and layers, built offline (``lab.images``).

``lab.images()`` lists them as ``docker images`` does; ``lab.images.build``,
``lab.images.inspect``, ``lab.images.setup``, ``commit``, ``history``, ``tag``, ``rm``, ``save``,
``load``, ``export`` and ``import_`` do the rest. The layers themselves are
:mod:`labkit.images.store`'s; this room names them as Docker's API does.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, Any

from labkit.engine.collection import Collection, verb
from labkit.errors import Conflict, NoSuchImage
from labkit.images import filters as _filters
from labkit.model.container import ContainerRecord, parse_time
from labkit.model.lifecycle import Status, is_running

if TYPE_CHECKING:
    from labkit.engine.core import Engine
    from labkit.images.store import Image, ImageStore


class ImageCollection(Collection):
    """The state root's images (``lab.images``); calling it lists them (``lab.images()``)."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self._store: ImageStore | None = None

    @property
    def store(self) -> ImageStore:
        """The state root's images and layers (:mod:`labkit.images.store`)."""
        if self._store is None:
            # the image store loads tarfile: it loads when an image verb runs, not with every engine (ps, logs, exec)
            from labkit.images.store import ImageStore

            self._store = ImageStore(str(self.engine.store.images_root), self.engine.backend.ownership)
        return self._store

    def get(self, ref: str) -> Image:
        """An image by reference; the base ``busybox`` image is built on first use, offline."""
        try:
            return self.store.get(ref)
        except NoSuchImage:
            # the image store loads tarfile: it loads when an image verb runs, not with every engine (ps, logs, exec)
            from labkit.images.store import parse_ref

            if parse_ref(ref) == ("busybox", "latest"):
                return self.engine.backend.ensure_base(self.store)
            # the lessons' image recipe loads only for the one reference it builds
            from labkit.images.lessons import FRONTEND_TAG

            if parse_ref(ref) == parse_ref(FRONTEND_TAG):
                self.setup(on_step=lambda _line: None)
                return self.store.get(ref)
            raise

    def of(self, rec: ContainerRecord) -> Image:
        """The image a container was created from (by id: a tag may have moved since, or ``rmi -f`` removed it
        while the container stayed, which keeps its layers: :meth:`ImageStore.by_id`)."""
        return self.store.by_id(rec.config.image_id)

    def release_held(self) -> None:
        """After a container went: forget the images ``rmi -f`` removed while a container still used them,
        once none does, and the layers only they stacked."""
        if self.store.holds():
            self.store.release_held(rec.config.image_id for rec in self.engine._records())

    def setup(self, on_step: Any = print) -> list[dict[str, Any]]:
        """Build the base image and the lesson's images (offline; idempotent).

        ``busybox:latest`` comes from the host's static busybox; ``frontend-app:v2.1.0``
        from the Labfile shipped with labkit, in three layers: base OS, runtime, app code.
        """
        # the image store loads tarfile: it loads when an image verb runs, not with every engine (ps, logs, exec)
        from labkit.images.lessons import build_lesson_images

        self.engine.backend.ensure_base(self.store)
        build_lesson_images(self.store, self.engine.backend.build_runner, on_step=on_step)
        return self.ls()

    def ls(self, all: bool = False, filters: dict[str, list[str]] | None = None,
           reference: str | None = None) -> list[dict[str, Any]]:
        """``GET /images/json``: one item per image, newest first; ``all``, ``filters`` and ``reference``
        choose as ``docker images -a --filter … REPO[:TAG]`` does (:mod:`labkit.images.filters`)."""
        out, when = [], {}
        for img in self.store.list():
            when[img.id] = parse_time(img.created).timestamp()
            out.append({
                "Id": img.id,
                "ParentId": img.parent,
                "RepoTags": list(img.repo_tags),
                "RepoDigests": [],
                "Created": int(when[img.id]),
                "Size": img.size,
                "SharedSize": -1,
                "Labels": img.config.get("Labels") or {},
                "Containers": -1,
            })
        return _filters.select(out, all, filters or {}, self.store.resolve, when.__getitem__, reference)

    __call__ = ls

    def inspect(self, ref: str) -> dict[str, Any]:
        """``docker image inspect``: Docker 28's keys in its order, the layers' directories on this host."""
        img = self.get(ref)
        doc = img.doc
        return {
            "Id": img.id,
            "RepoTags": list(img.repo_tags),
            "RepoDigests": [],
            "Parent": img.parent,
            "Comment": doc.get("comment", ""),
            "Created": img.created,
            "DockerVersion": doc.get("docker_version", ""),
            "Author": doc.get("author", ""),
            "Config": img.config,
            "Architecture": doc.get("architecture", ""),
            **({"Variant": doc["variant"]} if doc.get("variant") else {}),
            "Os": doc.get("os", ""),
            "Size": img.size,
            "GraphDriver": {"Name": "overlay2", "Data": {"LowerDir": ":".join(img.lowerdirs())}},
            "RootFS": {"Type": "layers", "Layers": [layer.digest for layer in img.layers]},
            "Metadata": {"LastTagTime": img.last_tag_time or "0001-01-01T00:00:00Z"},
        }

    def build(self, path: str, tag: str, file: str | None = None, on_step: Any = print) -> str:
        """Build an image from a Labfile (or Dockerfile) in ``path``; return its id."""
        # the image store loads tarfile: it loads when an image verb runs, not with every engine (ps, logs, exec)
        from labkit.images.build import build

        image = build(self.store, path, tag, self.engine.backend.build_runner, file=file, on_step=on_step)
        return image.id

    # -- images made from containers and archives ------------------------------------------------
    @verb("commit")
    def commit(self, ref: str, repository: str | None = None, *, author: str = "", message: str = "",
               changes: Sequence[str] = (), pause: bool = True) -> str:
        """``docker commit``: a new image, the container's image plus its writable layer; return its id.

        The upper dir becomes one more read-only layer (whiteouts and opaque directories as they are);
        an unchanged container adds an empty history step and no layer, as Docker does. The config is
        the container's (its command, environment, working directory, ports, labels) with ``changes``
        (Labfile lines) applied; the new image's parent is the container's image. A running container
        is paused meanwhile (``pause``), so the layer is one moment's.
        """
        # the image store loads tarfile: it loads when an image verb runs, not with every engine (ps, logs, exec)
        from labkit.images.build import apply_changes
        from labkit.images.store import parse_ref

        engine = self.engine
        rec = engine._get(ref)
        if repository is not None:
            name, tag = parse_ref(repository)
            repository = f"{name}:{tag}"
        img = self.of(rec)
        c = rec.config
        config = apply_changes({
            "User": img.config.get("User") or "", "Env": list(c.env), "Cmd": list(c.cmd) or None,
            "Entrypoint": list(c.entrypoint) or None, "WorkingDir": c.workdir,
            "ExposedPorts": {p: {} for p in c.exposed_ports} or None, "Labels": dict(c.labels) or None,
        }, list(changes))
        store = self.store
        work = store.mkdtemp("commit-")
        try:
            upper = os.path.join(work, "upper")
            os.mkdir(upper, 0o755)
            hold = pause and rec.status is Status.RUNNING
            if hold:
                engine.backend.pause(rec)
            try:
                engine.backend.write_upper(rec, img, upper)
            finally:
                if hold:
                    engine.backend.unpause(rec)
            created_by = " ".join(c.cmd)
            layers = list(img.layers)
            made = ""
            if os.listdir(upper):
                before = set(os.listdir(os.path.join(store.root, "layers")))
                layer = store.commit_layer(upper, created_by, message)
                layers.append(layer)
                made = "" if layer.digest.split(":", 1)[1] in before else layer.digest
            step = {"created_by": created_by, "author": author, "comment": message,
                    "empty_layer": len(layers) == len(img.layers)}
            try:
                new = store.add_image(layers, config, repository, [*img.history, step], parent=img.id,
                                      author=author, comment=message)
            except BaseException:
                if made:
                    store.prune_layers([made])
                raise
            return new.id
        finally:
            store.ownership.remove_tree(work)

    def history(self, ref: str) -> list[dict[str, Any]]:
        """``GET /images/{name}/history``: each step newest first (:meth:`ImageStore.history`)."""
        self.get(ref)
        return self.store.history(ref)

    def tag(self, source: str, target: str) -> None:
        """``docker tag SOURCE TARGET``: ``target`` names the image ``source`` names (a tag moves)."""
        # the image store loads tarfile: it loads when an image verb runs, not with every engine (ps, logs, exec)
        from labkit.images.store import parse_ref

        parse_ref(target)
        self.store.tag(self.get(source).id, target)

    def rm(self, ref: str, force: bool = False, prune: bool = True) -> list[dict[str, str]]:
        """``docker rmi``: untag, then delete the image, the layers no other image uses and (``prune``) the
        untagged parents nothing else uses (:meth:`ImageStore.remove`).

        Docker's conflicts hold: a container using the image, images made from it; ``force``
        lifts those of a stopped container (the image goes, its layers stay for the container)
        and of tags in several repositories.
        """
        users, running = self._users()
        return self.store.remove(ref, force=force, in_use=users, running=running, prune=prune)

    def _users(self) -> tuple[dict[str, str], dict[str, str]]:
        """Which container uses each image id (the first one recorded), and which running container does."""
        users: dict[str, str] = {}
        running: dict[str, str] = {}
        for rec in self.engine._records():
            users.setdefault(rec.config.image_id, rec.id)
            if is_running(rec.status):
                running.setdefault(rec.config.image_id, rec.id)
        return users, running

    def prune(self, all: bool = False) -> dict[str, Any]:
        """``docker image prune``: delete the dangling images (untagged, no image made from them); ``all``:
        every image no container uses, tag by tag, as moby's ImagesPrune asks ``rmi`` (without force,
        pruning parents) for each. An image a container uses is passed over, as is an untagged parent.

        Returns:
            ``{"ImagesDeleted": [rmi's items…], "SpaceReclaimed": bytes}``, the bytes those layers held
            whose chain went (:meth:`ImageStore.remove`).
        """
        # the image store loads tarfile: it loads when an image verb runs, not with every engine (ps, logs, exec)
        from labkit.images.store import chain_ids

        store = self.store
        users, running = self._users()
        images = store.list()
        held = {chain: layer.size for img in images
                for chain, layer in zip(chain_ids([x.digest for x in img.layers]), img.layers, strict=True)}
        deleted: list[dict[str, str]] = []
        for img in images:
            parent_of_some = bool(store.children(img.id))
            if img.id in users or (parent_of_some and not img.repo_tags):
                continue
            if not all and (img.repo_tags or parent_of_some):
                continue
            for ref in img.repo_tags or (img.id,):
                try:
                    deleted += store.remove(ref, in_use=users, running=running)
                except (Conflict, NoSuchImage):  # in use after all, or gone with an image pruned before it
                    continue
        reclaimed = sum(held.get(item.get("Deleted", ""), 0) for item in deleted)
        return {"ImagesDeleted": deleted, "SpaceReclaimed": reclaimed}

    def save(self, refs: list[str], out: IO[bytes]) -> None:
        """``docker save``: the images as one archive that ``docker load`` and ``labkit load`` read
        (:func:`labkit.images.archive.save`)."""
        # the image store loads tarfile: it loads when an image verb runs, not with every engine (ps, logs, exec)
        from labkit.images import archive

        for ref in refs:
            self.get(ref)  # busybox and the lesson's image are made on first use, as for run
        archive.save(self.store, refs, out)

    def load(self, stream: IO[bytes]) -> list[str]:
        """``docker load``: every image of an archive ``docker save`` or ``labkit save`` wrote; return the
        lines Docker prints (``Loaded image: busybox:latest``)."""
        # the image store loads tarfile: it loads when an image verb runs, not with every engine (ps, logs, exec)
        from labkit.images import archive

        return list(archive.load(self.store, stream).lines)

    def export(self, ref: str, out: IO[bytes]) -> None:
        """``docker export``: the container's filesystem as one tar: its writable layer over Docker's init layer
        (the empty ``/etc/hosts``, ``/etc/hostname``, ``/etc/resolv.conf`` and ``/.dockerenv`` placeholders,
        :func:`labkit.images.export.write_init_layer`) over its image's."""
        # the image store loads tarfile: it loads when an image verb runs, not with every engine (ps, logs, exec)
        from labkit.images import export

        rec = self.engine._get(ref)
        img = self.of(rec)
        work = self.store.mkdtemp("export-")
        try:
            upper = os.path.join(work, "upper")
            os.mkdir(upper, 0o755)
            self.engine.backend.write_upper(rec, img, upper)
            init = os.path.join(work, "init")
            os.mkdir(init, 0o755)
            export.write_init_layer(init, img.lowerdirs())
            export.write_merged([upper, init, *img.lowerdirs()], out, self.store.ownership.inside)
        finally:
            self.store.ownership.remove_tree(work)

    def import_(self, stream: IO[bytes], repository: str | None = None, *, changes: Sequence[str] = (),
                message: str = "", source: str = "-") -> str:
        """``docker import``: a tar of a filesystem as an image of one layer; return its id."""
        # the image store loads tarfile: it loads when an image verb runs, not with every engine (ps, logs, exec)
        # the image store loads tarfile: it loads when an image verb runs, not with every engine (ps, logs, exec)
        from labkit.images import archive
        from labkit.images.build import apply_changes
        from labkit.images.store import empty_config, parse_ref

        if repository is not None:
            name, tag = parse_ref(repository)
            repository = f"{name}:{tag}"
        config = apply_changes(empty_config(), list(changes))
        return archive.import_tar(self.store, stream, config, repository, message, source).id
