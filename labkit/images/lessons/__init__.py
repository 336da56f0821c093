"""The lessons' images, built offline from files shipped here.

``frontend-app:v2.1.0`` has the three layers the lesson draws:

- **base OS**: ``busybox:latest``, made from the host (:mod:`labkit.images.base`);
- **runtime**: ``node`` at ``/usr/local/bin/node``. Where the host has Node.js,
  the host's binary with the shared libraries and dynamic loader ``ldd``
  names, each at the path the loader will look for. Elsewhere a stand-in: a
  busybox shell script that, given ``server.js``, serves the same answers
  with busybox ``httpd`` and a CGI script;
- **app code**: ``/app/server.js`` and ``/app/package.json``.

The build context is assembled in a temporary directory with every time
stamp set to one fixed instant, so the same host gives the same layers.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable

from labkit.images.base import copy_with_libraries, ensure_busybox, shared_libraries
from labkit.images.build import Runner, build
from labkit.images.store import Image, ImageStore

HERE = os.path.dirname(os.path.abspath(__file__))
FRONTEND = os.path.join(HERE, "frontend-app")
FRONTEND_TAG = "frontend-app:v2.1.0"
INPUTS_LABEL = "org.labkit.lesson.inputs"
EPOCH = 1704067200  # 2024-01-01T00:00:00Z: every file in the lesson's context gets this mtime


def host_node() -> str | None:
    """The host's ``node`` binary (resolved), if there is one whose libraries ``ldd`` can all find."""
    found = shutil.which("node")
    if not found:
        return None
    real = os.path.realpath(found)
    try:
        shared_libraries(real)
    except Exception:  # no ldd, a missing library: the stand-in will do
        return None
    return real


def prepare_frontend_context(dest: str, prefer_host_node: bool = True) -> str:
    """Write the build context of ``frontend-app:v2.1.0`` into the empty directory ``dest``.

    Args:
        dest: An empty directory.
        prefer_host_node: Use the host's Node.js when it has one; ``False``
            forces the busybox stand-in.

    Returns:
        ``"node"`` or ``"stand-in"``: which runtime the context holds.
    """
    shutil.copy(os.path.join(FRONTEND, "Labfile"), os.path.join(dest, "Labfile"))
    shutil.copytree(os.path.join(FRONTEND, "app"), os.path.join(dest, "app"))
    runtime = os.path.join(dest, "runtime")
    os.mkdir(runtime)
    node = host_node() if prefer_host_node else None
    if node:
        copy_with_libraries(node, runtime, "/usr/local/bin/node")
        kind = "node"
    else:
        fallback = os.path.join(FRONTEND, "fallback")
        os.makedirs(os.path.join(runtime, "usr/local/bin"))
        shutil.copy(os.path.join(fallback, "node"), os.path.join(runtime, "usr/local/bin/node"))
        shutil.copytree(os.path.join(fallback, "www"), os.path.join(runtime, "usr/local/lib/node-standin/www"))
        kind = "stand-in"
    _normalize(dest)
    return kind


def _normalize(root: str) -> None:
    """Same owner, sensible modes and one mtime everywhere: the layers then depend on content alone."""
    for cur, dirs, files in os.walk(root, topdown=False):
        for name in files:
            path = os.path.join(cur, name)
            if os.path.islink(path):
                continue
            # Package installs may drop exec bits: programs are known by where they live.
            in_bin = f"{os.sep}bin{os.sep}" in path or f"{os.sep}cgi-bin{os.sep}" in path
            executable = os.stat(path).st_mode & 0o111 or in_bin or ".so" in name
            os.chmod(path, 0o755 if executable else 0o644)
            os.utime(path, (EPOCH, EPOCH))
        for name in dirs:
            os.chmod(os.path.join(cur, name), 0o755)
            os.utime(os.path.join(cur, name), (EPOCH, EPOCH))


def _inputs_digest(context: str, base_id: str) -> str:
    """A hash of everything the build reads: the base image and every file of the context."""
    h = hashlib.sha256(base_id.encode())
    for cur, dirs, files in os.walk(context):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(cur, name)
            st = os.lstat(path)
            h.update(f"{os.path.relpath(path, context)}\0{st.st_mode}\0{st.st_size}\0".encode())
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
    return "sha256:" + h.hexdigest()


def build_lesson_images(
    store: ImageStore,
    runner: Runner,
    prefer_host_node: bool = True,
    on_step: Callable[[str], object] = print,
) -> list[Image]:
    """Build the lessons' images into ``store`` (today: ``frontend-app:v2.1.0``).

    Idempotent: when the tag exists and was built from the same inputs (same
    base image, same files) it is returned as it is.

    Args:
        store: The image store.
        runner: Runs RUN steps in a container (the lesson's Labfile has none,
            but a build always gets one).
        prefer_host_node: ``False`` forces the busybox stand-in for ``node``.
        on_step: Receives the build's progress lines.

    Returns:
        The images, ``[frontend-app:v2.1.0]``.
    """
    base = ensure_busybox(store)
    context = tempfile.mkdtemp(prefix="labkit-lesson-", dir=store.tmp_root)
    try:
        prepare_frontend_context(context, prefer_host_node)
        inputs = _inputs_digest(context, base.id)
        if store.exists(FRONTEND_TAG):
            current = store.get(FRONTEND_TAG)
            if (current.config.get("Labels") or {}).get(INPUTS_LABEL) == inputs:
                return [current]
        image = build(store, context, FRONTEND_TAG, runner, on_step=on_step, labels={INPUTS_LABEL: inputs})
        return [image]
    finally:
        shutil.rmtree(context, ignore_errors=True)
