"""Images: the state root's images and layers, built offline (``lab.images``).

``lab.images()`` lists them as ``docker images`` does; ``lab.images.build``,
``lab.images.inspect`` and ``lab.images.setup`` do the rest. The layers themselves are
:mod:`labkit.images.store`'s; this room names them as Docker's API does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from labkit.engine.collection import Collection
from labkit.errors import NoSuchImage
from labkit.model.container import ContainerRecord, parse_time

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
            from labkit.images.store import ImageStore

            self._store = ImageStore(str(self.engine.store.images_root), self.engine.backend.ownership)
        return self._store

    def get(self, ref: str) -> Image:
        """An image by reference; the base ``busybox`` image is built on first use, offline."""
        try:
            return self.store.get(ref)
        except NoSuchImage:
            from labkit.images.store import parse_ref

            if parse_ref(ref) == ("busybox", "latest"):
                return self.engine.backend.ensure_base(self.store)
            from labkit.images.lessons import FRONTEND_TAG

            if parse_ref(ref) == parse_ref(FRONTEND_TAG):
                self.setup(on_step=lambda _line: None)
                return self.store.get(ref)
            raise

    def of(self, rec: ContainerRecord) -> Image:
        """The image a container was created from (by id: a tag may have moved since)."""
        return self.store.get(rec.config.image_id)

    def setup(self, on_step: Any = print) -> list[dict[str, Any]]:
        """Build the base image and the lesson's images (offline; idempotent).

        ``busybox:latest`` comes from the host's static busybox; ``frontend-app:v2.1.0``
        from the Labfile shipped with labkit, in three layers: base OS, runtime, app code.
        """
        from labkit.images.lessons import build_lesson_images

        self.engine.backend.ensure_base(self.store)
        build_lesson_images(self.store, self.engine.backend.build_runner, on_step=on_step)
        return self.ls()

    def ls(self) -> list[dict[str, Any]]:
        """``GET /images/json``: one item per image."""
        out = []
        for img in self.store.list():
            out.append({
                "Id": img.id,
                "ParentId": "",
                "RepoTags": list(img.repo_tags),
                "RepoDigests": [],
                "Created": int(parse_time(img.created).timestamp()),
                "Size": img.size,
                "SharedSize": -1,
                "Labels": img.config.get("Labels") or {},
                "Containers": -1,
            })
        return out

    __call__ = ls

    def inspect(self, ref: str) -> dict[str, Any]:
        """``docker image inspect``: the image as Docker's JSON, its layers' directories on this host."""
        img = self.get(ref)
        return {
            "Id": img.id,
            "RepoTags": list(img.repo_tags),
            "Created": img.created,
            "Config": img.config,
            "Size": img.size,
            "RootFS": {"Type": "layers", "Layers": [layer.digest for layer in img.layers]},
            "GraphDriver": {"Name": "overlay2", "Data": {"LowerDir": ":".join(img.lowerdirs())}},
        }

    def build(self, path: str, tag: str, file: str | None = None, on_step: Any = print) -> str:
        """Build an image from a Labfile (or Dockerfile) in ``path``; return its id."""
        from labkit.images.build import build

        image = build(self.store, path, tag, self.engine.backend.build_runner, file=file, on_step=on_step)
        return image.id
