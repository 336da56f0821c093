"""The image store: image configs and tags on disk, over the layer store.

Layout under ``root`` (``/var/lib/labkit/images`` by default; always a parameter)::

    layers/, tmp/             the layers (:mod:`labkit.images.layers`, the :class:`LayerStore` this builds on)
    images/<hex>.json         the image config, Docker's JSON; <hex> is its sha256
    held/<hex>.json           a removed image's config that a stopped container still stacks
                              (``rmi -f``): no listing or name finds it; it goes with the container
    repositories.json         {"busybox:latest": "sha256:…", …}

``<hex>`` of an image is the sha256 of its config JSON, as in Docker, so the
image id says exactly what the image is; a layer's is the sha256 of its OCI tar.
A name (``busybox``, ``nginx:1.25``) is read by :mod:`labkit.images.refs`.

Every write is atomic: files are written to a temporary name and renamed, so
another process reading the store sees either nothing or the finished thing.
Read-modify-write of the tags file is serialised with ``flock(2)`` on
``<root>/lock``.
"""

from __future__ import annotations

import builtins
import calendar
import contextlib
import fcntl
import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from labkit.errors import AmbiguousReference, Conflict, InvalidArgument, NoSuchImage
from labkit.images.layers import Layer, LayerStore, chain_ids
from labkit.images.ownership import Ownership
from labkit.images.refs import normalize_ref, parse_ref

DEFAULT_ROOT = "/var/lib/labkit/images"

#: An image id or a prefix of one, without ``sha256:``.
_HEX_RE = re.compile(r"^[0-9a-f]{1,64}$")


def rfc3339_nano(t: float | None = None) -> str:
    """A UTC time as Go's ``time.RFC3339Nano`` prints it (trailing zeros of the fraction dropped)."""
    ns = time.time_ns() if t is None else int(round(t * 1e9))
    secs, frac = divmod(ns, 1_000_000_000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    return f"{base}.{frac:09d}".rstrip("0").rstrip(".") + "Z"


def canonical_json(obj: object) -> bytes:
    """The bytes an image id is computed from: sorted keys, no spaces."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()



@dataclass(frozen=True)
class Image:
    """An image: a stack of layers plus the config a container starts from.

    Attributes:
        id: ``sha256:<hex>`` of the image config JSON.
        repo_tags: ``("busybox:latest", …)``; empty for an untagged image.
        created: When it was made, RFC3339Nano UTC.
        layers: Bottom layer first.
        config: Docker's image ``Config``: ``Env``, ``Cmd``, ``Entrypoint``,
            ``WorkingDir``, ``ExposedPorts``, ``Labels``, ``User``.
        size: Bytes of all its layers (what is not a directory in each, as Docker counts them).
        history: The image's history entries, oldest first (Docker's JSON keys).
        parent: The id of the local image this one was made from (``commit``), or ``""``.
        doc: The whole image config document (``architecture``, ``os``, ``author``, ``comment``, …).
        last_tag_time: When ``tag`` (or a tagged build, commit or import) last named it, RFC3339Nano, or ``""``.
    """

    id: str
    repo_tags: tuple[str, ...]
    created: str
    layers: tuple[Layer, ...]
    config: dict
    size: int
    history: tuple[dict, ...] = field(default=(), compare=False)
    parent: str = field(default="", compare=False)
    doc: dict = field(default_factory=dict, compare=False, repr=False)
    last_tag_time: str = field(default="", compare=False)

    @property
    def short_id(self) -> str:
        """The 12 hex characters ``docker images`` shows."""
        return self.id.split(":", 1)[1][:12]

    def lowerdirs(self) -> list[str]:
        """The layer directories top first, as overlayfs's ``lowerdir=`` wants them (leftmost is top)."""
        return [layer.path for layer in reversed(self.layers)]


def _copied(value: Any) -> Any:
    """A copy of a parsed JSON document (dicts, lists and immutable scalars), as a fresh parse would give it:
    what copy.deepcopy does for one, a few times faster (no memo, no dispatch on every value's type)."""
    if isinstance(value, dict):
        return {key: _copied(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copied(item) for item in value]
    return value


def empty_config() -> dict:
    """An image config with every key labkit uses, unset."""
    return {
        "User": "",
        "Env": [],
        "Cmd": None,
        "Entrypoint": None,
        "WorkingDir": "",
        "ExposedPorts": None,
        "Labels": None,
    }


class ImageStore(LayerStore):
    """Images and layers under one directory, safe to share between processes: image configs and tags
    over the layers of :class:`~labkit.images.layers.LayerStore`, whose arguments it takes."""

    def __init__(self, root: str, ownership: Ownership) -> None:
        super().__init__(root, ownership)
        os.makedirs(os.path.join(self.root, "images"), mode=0o700, exist_ok=True)
        # image id -> (its config file's identity, the parsed config, its layers): see _load
        self._parsed: dict[str, tuple[tuple[int, int, int], dict[str, Any], tuple[Layer, ...]]] = {}

    # -- paths and small atomic helpers -------------------------------------------------

    def _image_file(self, image_id: str) -> str:
        return os.path.join(self.root, "images", image_id.split(":", 1)[-1] + ".json")

    def _held_file(self, image_id: str) -> str:
        return os.path.join(self.root, "held", image_id.split(":", 1)[-1] + ".json")

    def _config_file(self, image_id: str) -> str:
        """Where an image's config is: ``images/``, or ``held/`` once removed while a container uses it."""
        path = self._image_file(image_id)
        if not os.path.exists(path) and os.path.exists(self._held_file(image_id)):
            return self._held_file(image_id)
        return path

    def _meta_file(self, image_id: str) -> str:
        # Docker keeps an image's parent and last tag time beside the config, not in it (imagedb/metadata):
        # they are facts about this host's store, not part of what the image id names.
        return os.path.join(self.root, "images", image_id.split(":", 1)[-1] + ".meta")

    def _meta(self, image_id: str) -> dict[str, str]:
        try:
            with open(self._meta_file(image_id), "rb") as f:
                return json.load(f)
        except (FileNotFoundError, ValueError):
            return {}

    def _set_meta(self, image_id: str, **values: str) -> None:
        meta = {**self._meta(image_id), **values}
        self._write_atomic(self._meta_file(image_id), json.dumps(meta, sort_keys=True).encode())

    def _write_atomic(self, path: str, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(prefix=".labkit-", dir=os.path.dirname(path))
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            # mkstemp made it 0600 and it stays so: an image config holds the image's environment (ENV).
            os.rename(tmp, path)  # rename(2) replaces atomically within one filesystem
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(os.path.join(self.root, "lock"), "a+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def _tags(self) -> dict[str, str]:
        try:
            with open(os.path.join(self.root, "repositories.json"), "rb") as f:
                return json.load(f)
        except FileNotFoundError:
            return {}

    def _save_tags(self, tags: Mapping[str, str]) -> None:
        self._write_atomic(
            os.path.join(self.root, "repositories.json"), json.dumps(dict(sorted(tags.items())), indent=1).encode()
        )

    # -- layers ---------------------------------------------------------------------------

    def prune_layers(self, digests: Iterable[str] | None = None) -> list[str]:
        """Remove layers no image uses (only those in ``digests`` when given); return their digests."""
        with self._locked():
            used = {d for img in self._load_all() for d in (layer.digest for layer in img.layers)}
            used |= {d for i in self._held_ids() for d in (layer.digest for layer in self._load(i).layers)}
            candidates = self._stored() if digests is None else set(digests)
            return [digest for digest in sorted(candidates - used) if self._discard(digest)]

    # -- images ---------------------------------------------------------------------------

    def add_image(
        self,
        layers: Sequence[Layer],
        config: Mapping,
        tag: str | None = None,
        history: Sequence[Mapping] | None = None,
        created: str | None = None,
        parent: str = "",
        author: str = "",
        comment: str = "",
    ) -> Image:
        """Write an image config for ``layers`` and, if given, point ``tag`` at it.

        Args:
            layers: Committed layers, bottom first.
            config: Docker's image ``Config`` (missing keys are filled in unset).
            tag: ``name[:tag]`` to set, or ``None`` for an untagged image.
            history: Docker's history entries, oldest first; each has
                ``created_by`` and optional ``comment`` and ``empty_layer``.
                Non-empty entries must match ``layers`` one to one. Default:
                one entry per layer from the layers' own fields.
            created: RFC3339Nano time; default now.
            parent: The id of the local image this one was made from (``commit``); recorded beside the
                config, as Docker's image store does, so it does not change the id.
            author: The config's ``author`` (``commit -a``).
            comment: The config's ``comment`` (``commit -m``, ``import -m``).

        Returns:
            The stored image. The same inputs give the same id.
        """
        if tag is not None:
            name, t = parse_ref(tag)
            tag = f"{name}:{t}"
        created = created or rfc3339_nano()
        if history is None:
            history = [{"created_by": layer.created_by, "comment": layer.comment} for layer in layers]
        hist = []
        for entry in history:
            e = {"created": entry.get("created", created), "created_by": entry.get("created_by", "")}
            if entry.get("author"):
                e["author"] = entry["author"]
            if entry.get("comment"):
                e["comment"] = entry["comment"]
            if entry.get("empty_layer"):
                e["empty_layer"] = True
            hist.append(e)
        if sum(1 for e in hist if not e.get("empty_layer")) != len(layers):
            raise InvalidArgument("image history does not match its layers: one non-empty entry per layer is needed")
        for layer in layers:
            if not os.path.isdir(self._layer_dir(layer.digest)):
                raise NoSuchImage(f"layer {layer.digest}")
        cfg = empty_config()
        cfg.update(config)
        doc = {
            "architecture": _arch(),
            "config": cfg,
            "created": created,
            "history": hist,
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [layer.digest for layer in layers]},
        }
        if author:
            doc["author"] = author
        if comment:
            doc["comment"] = comment
        return self.add_config(doc, tag, parent)

    def add_config(self, doc: Mapping[str, Any], tag: str | None = None, parent: str = "") -> Image:
        """Store the image config document ``doc`` as it is (its id is its sha256) and, if given, tag it.

        ``doc["rootfs"]["diff_ids"]`` must name committed layers, bottom first, and its history must
        have one entry without ``empty_layer`` per layer (``load`` keeps a saved image's config whole).

        Raises:
            InvalidArgument: The history does not match the layers.
            NoSuchImage: A layer is not in the store.
        """
        if tag is not None:
            name, t = parse_ref(tag)
            tag = f"{name}:{t}"
        diff_ids = list(doc.get("rootfs", {}).get("diff_ids") or [])
        hist = doc.get("history") or []
        if hist and sum(1 for e in hist if not e.get("empty_layer")) != len(diff_ids):
            raise InvalidArgument("image history does not match its layers: one non-empty entry per layer is needed")
        for digest in diff_ids:
            if not os.path.isdir(self._layer_dir(digest)):
                raise NoSuchImage(f"layer {digest}")
        data = canonical_json(doc)
        image_id = "sha256:" + hashlib.sha256(data).hexdigest()
        path = self._image_file(image_id)
        if not os.path.exists(path):
            self._write_atomic(path, data)
        if parent and self._meta(image_id).get("parent") != parent:
            self._set_meta(image_id, parent=parent)
        if tag is not None:
            with self._locked():
                tags = self._tags()
                tags[tag] = image_id
                self._save_tags(tags)
            self._set_meta(image_id, last_tag_time=rfc3339_nano())
        return self._load(image_id)

    def _load(self, image_id: str, tags: Mapping[str, str] | None = None) -> Image:
        # An image's config and layers never change under its id (content-addressed): what was parsed
        # once is kept while the file is the same one (a start reads its image three times). Tags do
        # change, and are read each time.
        path = self._config_file(image_id)
        st = os.stat(path)
        seen = (st.st_ino, st.st_mtime_ns, st.st_size)
        parsed = self._parsed.get(image_id)
        if parsed is None or parsed[0] != seen:
            with open(path, "rb") as f:
                doc = json.load(f)
            hist = tuple(doc.get("history", ()))
            layer_hist = [h for h in hist if not h.get("empty_layer")]
            diff_ids = doc["rootfs"]["diff_ids"]
            if len(layer_hist) != len(diff_ids):
                layer_hist = [{}] * len(diff_ids)
            layers = tuple(
                self.layer(d, h.get("created_by", ""), h.get("comment", ""))
                for d, h in zip(diff_ids, layer_hist, strict=True)
            )
            parsed = self._parsed[image_id] = (seen, doc, layers)
        _, doc, layers = parsed
        tags = self._tags() if tags is None else tags
        meta = self._meta(image_id)
        return Image(
            id=image_id,
            repo_tags=tuple(sorted(t for t, i in tags.items() if i == image_id)),
            created=doc.get("created") or "1970-01-01T00:00:00Z",
            layers=layers,
            config=_copied(doc.get("config") or empty_config()),  # the caller's own, as a fresh parse gave it
            size=sum(layer.size for layer in layers),
            history=tuple(doc.get("history", ())),
            parent=meta.get("parent", ""),
            doc=_copied(doc),
            last_tag_time=meta.get("last_tag_time", ""),
        )

    def parse_all(self) -> None:
        """Parse every image's config now (kept, as :meth:`get` keeps what it parsed), ahead of the command
        that will ask for one (:mod:`labkit.daemon.server` does this while it waits for the next)."""
        for image_id in self._ids():
            with contextlib.suppress(OSError, ValueError, KeyError, NoSuchImage):
                self._load(image_id)

    def _ids(self) -> list[str]:
        return sorted(
            "sha256:" + n[:-5]
            for n in os.listdir(os.path.join(self.root, "images"))
            if n.endswith(".json") and not n.startswith(".")
        )

    def _held_ids(self) -> list[str]:
        try:
            names = os.listdir(os.path.join(self.root, "held"))  # made by the first rmi -f that holds one
        except FileNotFoundError:
            return []
        return sorted("sha256:" + n[:-5] for n in names if n.endswith(".json") and not n.startswith("."))

    def _load_all(self) -> list[Image]:
        tags = self._tags()
        return [self._load(i, tags) for i in self._ids()]

    def by_id(self, image_id: str) -> Image:
        """The image a container was made from, by its full id: also one ``rmi -f`` removed while a stopped
        container still stacks its layers (Docker keeps those layers under the container's own).

        Raises:
            NoSuchImage: No such image, listed or held.
        """
        try:
            return self._load(image_id)
        except FileNotFoundError:
            raise NoSuchImage(image_id) from None

    def holds(self) -> bool:
        """Whether any removed image is held for a container (:meth:`by_id`)."""
        return bool(self._held_ids())

    def release_held(self, in_use: Iterable[str]) -> None:
        """Forget each held image no container in ``in_use`` (image ids) stacks any more, and the layers
        only it used, as Docker releases them when the container goes (silently: ``rm`` prints its name only)."""
        keep = set(in_use)
        gone = [i for i in self._held_ids() if i not in keep]
        if not gone:
            return
        digests: set[str] = set()
        with self._locked():
            for image_id in gone:
                with contextlib.suppress(FileNotFoundError):
                    digests.update(self._load(image_id).doc["rootfs"]["diff_ids"])
                    os.unlink(self._held_file(image_id))
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._meta_file(image_id))
                self._parsed.pop(image_id, None)
        self.prune_layers(digests)

    def resolve(self, ref: str) -> str:
        """The image id ``ref`` names: ``name[:tag]``, ``sha256:<hex>``, or a unique id prefix.

        Raises:
            NoSuchImage: Nothing matches (the message normalises ``nginx`` to ``nginx:latest``).
            AmbiguousReference: An id prefix matches several images.
        """
        ids = self._ids()
        if ref.startswith("sha256:"):
            return self._by_prefix(ref[7:], ids, ref)
        try:
            name, tag = parse_ref(ref)
        except InvalidArgument:
            name = ""
        if name:
            found = self._tags().get(f"{name}:{tag}")
            if found and found in ids:
                return found
        if _HEX_RE.match(ref):
            return self._by_prefix(ref, ids, normalize_ref(ref))
        raise NoSuchImage(normalize_ref(ref))

    @staticmethod
    def _by_prefix(prefix: str, ids: Sequence[str], shown: str) -> str:
        if not _HEX_RE.match(prefix):
            raise NoSuchImage(shown)
        found = [i for i in ids if i[7:].startswith(prefix)]
        if len(found) > 1:
            raise AmbiguousReference(prefix)
        if not found:
            raise NoSuchImage(shown)
        return found[0]

    def get(self, ref: str) -> Image:
        """The image ``ref`` names (see :meth:`resolve`)."""
        return self._load(self.resolve(ref))

    def config_bytes(self, image_id: str) -> bytes:
        """The image config exactly as stored: the bytes its id is the sha256 of."""
        with open(self._config_file(self.resolve(image_id)), "rb") as f:
            return f.read()

    def image_ids_tagged(self, tag: str) -> builtins.list[str]:
        """The image the tag ``name:tag`` names, as a list of zero or one id."""
        found = self._tags().get(tag)
        return [found] if found else []

    def exists(self, ref: str) -> bool:
        """Whether ``ref`` names an image."""
        try:
            self.resolve(ref)
        except (NoSuchImage, AmbiguousReference):
            return False
        return True

    def list(self) -> list[Image]:
        """Every image, newest first (as ``docker images`` orders them)."""
        return sorted(self._load_all(), key=lambda i: (i.created, i.id), reverse=True)

    def tag(self, image_id: str, ref: str) -> Image:
        """Point ``ref`` (``name[:tag]``) at the image ``image_id`` names; an old holder of the tag loses it."""
        target = self.resolve(image_id)
        name, t = parse_ref(ref)
        with self._locked():
            tags = self._tags()
            tags[f"{name}:{t}"] = target
            self._save_tags(tags)
        self._set_meta(target, last_tag_time=rfc3339_nano())
        return self._load(target)

    def children(self, image_id: str) -> builtins.list[str]:
        """The ids of the images whose parent is ``image_id`` (made from it by ``commit``)."""
        return [i for i in self._ids() if self._meta(i).get("parent") == image_id]

    def remove(
        self,
        ref: str,
        force: bool = False,
        in_use: Iterable[str] | Mapping[str, str] = (),
        running: Mapping[str, str] | None = None,
        prune: bool = True,
    ) -> builtins.list[dict[str, str]]:
        """Untag or delete an image, as ``docker rmi`` does (moby's daemon/images/image_delete.go, the
        graph-driver store).

        Naming one of several tags only removes that tag. Removing the last tag, or naming the image by
        id, deletes the image; an id whose tags are all of one repository takes them along. A deleted
        image's layers that no other image stacks go with it, each named by its chain id as Docker's
        layer store names it, top first; then (``prune``) its parent, if ``commit`` made it from an
        untagged image nothing else uses, and so on down.

        Args:
            ref: A tag, id or id prefix.
            force: Remove all tags of an image named by id even if they are of several
                repositories; delete an image a stopped container uses (its layers stay, held for the
                container: :meth:`by_id`, :meth:`release_held`); untag one a running container uses.
            in_use: Ids of images containers use, or a mapping from such an
                image id to one container id (used in the message).
            running: Image id → a running container that uses it: a conflict even ``force``
                does not lift when the image is named by id.
            prune: Delete untagged parents left unused (``rmi --no-prune`` keeps them).

        Returns:
            Docker's answer: ``[{"Untagged": "busybox:latest"}, {"Deleted": "sha256:…"}]``.

        Raises:
            Conflict: In Docker's words: a container uses the image, an image was made from it
                (``image has dependent child images``), or an id names an image with tags of
                several repositories.
        """
        image_id = self.resolve(ref)
        users = dict(in_use) if isinstance(in_use, Mapping) else {i: "" for i in in_use}
        live = dict(running or {})
        users.update({i: c for i, c in live.items() if i not in users or not users[i]})
        short = image_id[7:19]
        children = self.children(image_id)
        img = self._load(image_id)
        result: builtins.list[dict[str, str]] = []
        with self._locked():
            tags = self._tags()
            mine = sorted(t for t, i in tags.items() if i == image_id)
            tag_ref = normalize_ref(ref) if not ref.startswith("sha256:") and normalize_ref(ref) in mine else ""
            if tag_ref:
                if len(mine) > 1:
                    del tags[tag_ref]
                    self._save_tags(tags)
                    return [{"Untagged": tag_ref}]
                if image_id in users and not force:
                    who = users[image_id]
                    using = f"container {who[:12]} is using its referenced image {short}" if who else \
                        f"a container is using its referenced image {short}"
                    raise Conflict(f'conflict: unable to remove repository reference "{ref}" (must force) - {using}',
                                   "Remove the container first ('labkit rm'), or use --force to untag the image only")
                del tags[tag_ref]
                self._save_tags(tags)
                result.append({"Untagged": tag_ref})
                if image_id in live or children:
                    return result  # a running container's, or a parent: untagged, kept (Docker's quiet conflict)
            else:
                if children:
                    raise Conflict(f"conflict: unable to delete {short} (cannot be forced) - image has dependent "
                                   "child images", "Remove the images made from it first ('labkit images -a')")
                if image_id in live:
                    raise Conflict(f"conflict: unable to delete {short} (cannot be forced) - image is being used by "
                                   f"running container {live[image_id][:12]}", "Stop and remove the container first")
                if image_id in users and not force:
                    who = users[image_id]
                    using = f"image is being used by stopped container {who[:12]}" if who else \
                        "image is being used by a stopped container"
                    raise Conflict(f"conflict: unable to delete {short} (must be forced) - {using}",
                                   "Remove the container first ('labkit rm'), or use --force to delete the image "
                                   "while the container keeps its layers")
                if len({t.rpartition(":")[0] for t in mine}) > 1 and not force:
                    raise Conflict(f"conflict: unable to delete {short} (must be forced) - image is referenced in "
                                   "multiple repositories", "Remove the tags one by one, or use --force")
                for t in mine:
                    del tags[t]
                    result.append({"Untagged": t})
                self._save_tags(tags)
            result += self._delete_locked(image_id, held=image_id in users)
        if prune:
            result += self._prune_parents(img.parent, users)
        self.prune_layers(img.doc["rootfs"]["diff_ids"])  # a commit's parents stack a prefix of these
        return result

    def _delete_locked(self, image_id: str, held: bool = False) -> builtins.list[dict[str, str]]:
        """Delete one image's config (under the lock; ``held``: keep it aside for a stopped container) and return
        Docker's lines: the image, then each layer chain no image stacks any more, top first. The layers
        themselves go by their content digest when nothing stacks them (:meth:`prune_layers`)."""
        img = self._load(image_id)
        if held:
            os.makedirs(os.path.dirname(self._held_file(image_id)), mode=0o700, exist_ok=True)
            os.rename(self._image_file(image_id), self._held_file(image_id))
        else:
            os.unlink(self._image_file(image_id))
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._meta_file(image_id))
            self._parsed.pop(image_id, None)
        lines = [{"Deleted": image_id}]
        if held:
            return lines
        still = {c for i in self._ids() + self._held_ids() for c in chain_ids(self._load(i).doc["rootfs"]["diff_ids"])}
        lines += [{"Deleted": c} for c in reversed(chain_ids(img.doc["rootfs"]["diff_ids"])) if c not in still]
        return lines

    def _prune_parents(self, parent: str, users: Mapping[str, str]) -> builtins.list[dict[str, str]]:
        """After an image went: its ``parent`` too, if untagged, childless and unused, and so on down (Docker's
        rmi without ``--no-prune``); the first parent that must stay ends it, silently."""
        lines: builtins.list[dict[str, str]] = []
        seen: set[str] = set()
        while parent and parent not in seen and parent in self._ids():
            seen.add(parent)
            with self._locked():
                if parent in self._tags().values() or parent in users or self.children(parent):
                    break
                up = self._meta(parent).get("parent", "")
                lines += self._delete_locked(parent)
            parent = up
        return lines

    def history(self, ref: str) -> builtins.list[dict]:
        """``docker history``: one entry per history step, newest first.

        Each entry has Docker's API keys ``Id``, ``Created`` (unix seconds),
        ``CreatedBy``, ``Tags``, ``Size`` and ``Comment``. As Docker does, the
        newest step of the image and of each local image it was made from
        (``commit``'s parent chain) carries that image's id and tags; the rest
        are ``<missing>``, as for any step of an image built elsewhere.
        """
        img = self.get(ref)
        out = []
        layers = iter(img.layers)
        for entry in img.history:
            size = 0 if entry.get("empty_layer") else next(layers).size
            out.append(
                {
                    "Id": "<missing>",
                    "Created": _unix(entry.get("created", img.created)),
                    "CreatedBy": entry.get("created_by", ""),
                    "Tags": None,
                    "Size": size,
                    "Comment": entry.get("comment", ""),
                }
            )
        # Mark each image of the parent chain at its own newest step (oldest entries come first here).
        chain: Image | None = img
        seen: set[str] = set()
        while chain is not None and chain.id not in seen and 0 < len(chain.history) <= len(out):
            seen.add(chain.id)
            out[len(chain.history) - 1]["Id"] = chain.id
            out[len(chain.history) - 1]["Tags"] = list(chain.repo_tags) or None
            try:
                chain = self._load(chain.parent) if chain.parent else None
            except FileNotFoundError:
                chain = None
        out.reverse()
        return out


def _unix(stamp: str) -> int:
    return calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S"))


def _arch() -> str:
    machine = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(machine, machine)
