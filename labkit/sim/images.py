"""The simulator's part in making images: ``busybox:latest`` without a binary, and a Labfile's ``RUN`` step.

* :func:`synthetic_busybox`: the real backend's base image holds a static
  busybox binary (:mod:`labkit.images.base`); the simulator runs busybox's
  programs itself (:mod:`labkit.sim.busybox`), so its base needs only the
  names, each linked to ``/bin/busybox``.
* :func:`run_step`: a ``RUN`` line runs in a simulated container of its own
  (a world of its own too), and what it changed is written to the build's
  upper directory in overlayfs's on-disk format, as a real build's would be.
"""

from __future__ import annotations

import os
import secrets
import shutil
from typing import Any

from labkit.errors import BuildFailed, StartFailed
from labkit.images import base
from labkit.images.store import rfc3339_nano
from labkit.sim import programs
from labkit.sim.busybox import APPLET_NAMES
from labkit.sim.kernel import HORIZON, SimContainer, World, advance
from labkit.sim.overlay import read_layer_fresh, write_upper
from labkit.sim.process import exit_proc


def synthetic_busybox(image_store: Any, tag: str = "busybox:latest") -> Any:
    """``busybox:latest`` made without root and without a busybox binary, through the ImageStore API.

    The layer looks like the real base (the same /etc files and directories,
    ``/bin/<applet>`` symlinks to ``/bin/busybox``), but ``/bin/busybox`` is a
    short text file: the simulator runs busybox's programs itself. Every time
    stamp is one fixed instant, so the layer (and the image id) is the same on
    every machine. An image already tagged ``busybox:latest`` (a real one) is
    reused as it is.
    """
    if image_store.exists(tag):
        return image_store.get(tag)
    epoch = 1704067200
    work = image_store.mkdtemp("sim-busybox-")
    try:
        root = os.path.join(work, "rootfs")
        os.mkdir(root)
        base._skeleton(root)
        with open(os.path.join(root, "bin", "busybox"), "w") as f:
            f.write("#!labkit-sim\n# A simulated busybox: labkit's simulator runs these programs itself.\n")
        os.chmod(os.path.join(root, "bin", "busybox"), 0o755)
        for applet in APPLET_NAMES:
            os.symlink("busybox", os.path.join(root, "bin", applet))
        base._fix_times(root, epoch)
        layer = image_store.commit_layer(root, comment="base OS")
        created = rfc3339_nano(epoch)
        history = [
            {"created": created, "created_by": f"/bin/sh -c #(nop) ADD file:{layer.digest[7:]} in / ",
             "comment": "base OS"},
            {"created": created, "created_by": '/bin/sh -c #(nop)  CMD ["sh"]', "empty_layer": True},
        ]
        return image_store.add_image([layer], {"Env": [base.PATH_ENV], "Cmd": ["sh"]}, tag, history, created=created)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_step(lowers: list[str], upper: str, argv: list[str], env: list[str], workdir: str) -> tuple[int, str]:
    """Run one ``RUN`` step over the layers ``lowers`` and write what it changed into the directory ``upper``.

    Returns:
        The step's exit status and its output (stdout and stderr together).

    Raises:
        BuildFailed: The command cannot be found or run.
    """
    w = World()
    ct = SimContainer("build-" + secrets.token_hex(6), list(lowers), hostname="buildkit", init=False)
    ct.upper = dict(read_layer_fresh(upper).entries)
    w.containers[ct.id] = ct
    bid = w.new_buffer()
    envd = programs.env_dict(env)
    try:
        prog = programs.lookup(w, ct, list(argv), envd, workdir or "/")
    except StartFailed as err:
        raise BuildFailed(str(err), "Check the RUN line's command") from err
    p = programs.start(w, ct, prog, list(argv), env=envd, cwd=workdir or "/",
                       fds={1: ("buf", bid), 2: ("buf", bid)})
    advance(w, w.now + HORIZON, lambda: p.hpid not in w.procs, step=programs.step)
    if p.hpid in w.procs:
        exit_proc(w, p, 137)
    write_upper(ct.upper, upper, int(w.epoch + w.now))
    return (p.exit_code or 0), bytes(w.buffers.get(bid, b"")).decode(errors="replace")
