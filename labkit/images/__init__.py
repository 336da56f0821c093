"""Offline images: layers in overlayfs's own format, named by the digest of their OCI tar.

- :mod:`labkit.images.store`: image configs and tags on disk (atomic, shared between processes), over
  :mod:`labkit.images.layers`, the content-addressed layers; :mod:`labkit.images.refs`: ``NAME[:TAG]``.
- :mod:`labkit.images.ownership`: who owns a layer's files as containers see them (the backend decides).
- :mod:`labkit.images.oci`: a layer directory as a deterministic OCI layer tar (whiteouts as ``.wh.``).
- :mod:`labkit.images.base`: ``busybox:latest`` assembled from the host, no registry needed.
- :mod:`labkit.images.archive`: Docker's ``save``/``load`` archives and ``import``; :mod:`labkit.images.extract`:
  a layer tar from elsewhere, unpacked safely; :mod:`labkit.images.export`: a container's filesystem as one tar.
- :mod:`labkit.images.filters`: which images ``images -a``/``--filter``/``REPO[:TAG]`` lists.
- :mod:`labkit.images.labfile` and :mod:`labkit.images.build`: the Dockerfile subset and its builder.
- :mod:`labkit.images.lessons`: the lessons' images (``frontend-app:v2.1.0``).
"""

from labkit._lazy import lazy

# Loaded on first use: `labkit run` needs the store, not the builder or the tar writer.
_WHERE = {
    "ensure_busybox": "base", "Runner": "build", "build": "build", "Instruction": "labfile", "parse": "labfile",
    "Image": "store", "ImageStore": "store", "Layer": "layers", "parse_ref": "refs",
}


__getattr__ = lazy("labkit.images", _WHERE)

__all__ = [
    "Image",
    "ImageStore",
    "Instruction",
    "Layer",
    "Runner",
    "build",
    "ensure_busybox",
    "parse",
    "parse_ref",
]
