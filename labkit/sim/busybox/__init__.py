"""busybox's programs, simulated: the applets a container's ``/bin/busybox`` answers to, and how one runs.

The synthetic busybox image (:func:`labkit.sim.images.synthetic_busybox`)
links every name in :data:`APPLET_NAMES` to ``/bin/busybox``;
:mod:`labkit.sim.programs` knows an applet by the name it was called with,
and :func:`run_applet` runs it as a process of its own. The shell runs the
:data:`NOFORK` ones inside itself, as busybox's ash does. Messages are
busybox's, word for word where the lessons show them.

The applets live by subject (busybox's own source keeps them in directories
too: coreutils/, findutils/, procps/): :mod:`~labkit.sim.busybox.files`,
:mod:`~labkit.sim.busybox.text`, :mod:`~labkit.sim.busybox.system`; what
they share is :mod:`~labkit.sim.busybox.libbb` (as busybox's ``libbb/``).
"""

from __future__ import annotations

import os
import shlex

from labkit.sim.busybox import files, system, text
from labkit.sim.busybox.libbb import Applet, Ctx, Sleep
from labkit.sim.kernel import World
from labkit.sim.process import Proc, exit_proc, write

#: busybox's programs the simulator runs, by applet name.
APPLETS: dict[str, Applet] = {**text.APPLETS, **files.APPLETS, **system.APPLETS}


#: Applets busybox's ash runs inside the shell, without fork(2) (FEATURE_SH_NOFORK and its builtins).
NOFORK = {"echo", "printf", "test", "[", "true", "false", "sleep", "cat", "touch", "rm", "mkdir", "rmdir", "mv",
          "cp", "chmod", "hostname", "seq", "kill", "ln", "basename", "dirname"}


#: Applets ash has as builtins of its own: run in the shell even as the last command of ``sh -c``
#: (the other NOFORK applets are exec'd there, as any program is).
ASH_BUILTINS = {"echo", "printf", "test", "[", "true", "false", "kill", "pwd"}


#: Every name the synthetic busybox image links to /bin/busybox.
APPLET_NAMES = sorted({*APPLETS, "sh", "ash", "watch"})


def watch_script(args: list[str]) -> str:
    """busybox ``watch [-n SEC] [-t] PROG ARGS...`` as the shell loop it amounts to: every SEC seconds (2 by
    default) ``sh -c "PROG ARGS..."`` through system(3), for ever. The header line (``-t`` leaves it out) is
    not drawn. The process runs with :attr:`labkit.sim.process.Proc.fork_retries`: a refused fork is tried
    again at the next interval."""
    interval, rest = "2", list(args)
    while rest and rest[0].startswith("-") and rest[0] != "-":
        opt = rest.pop(0)
        if opt == "-n" and rest:
            interval = rest.pop(0)
        elif opt.startswith("-n"):
            interval = opt[2:]
    return f"while :; do sh -c {shlex.quote(' '.join(rest))}; sleep {shlex.quote(interval)}; done"


def run_applet(world: World, p: Proc) -> int:
    """One step of an applet process: run it; it exits, or sleeps and exits when woken."""
    name = p.vars.get("__applet") or os.path.basename(p.argv[0])
    if p.on_wake == "exit" and p.state == "run":
        # Woken (labkit.sim.kernel.wake_sleepers): the ``sleep`` program's nanosleep(2) returned; it exits 0.
        p.on_wake = None
        exit_proc(world, p, 0)
        return 1
    if p.on_wake or p.state != "run":
        return 0
    if name == "__unknown__" or name not in APPLETS:
        write(world, p, 2, f"{p.argv[0]}: cannot be simulated (not a busybox program)\n")
        exit_proc(world, p, 126)
        return 1
    fn = APPLETS[name]
    ctx = Ctx(world, p)
    result = fn(ctx, list(p.argv) if name not in ("test", "[") or p.argv[0] in ("[", "test")
                else [name, *p.argv[1:]])
    if ctx.write_failed and not isinstance(result, Sleep):
        result = 1  # xwrite() failing ends the applet with status 1
    if p.hpid not in world.procs:
        return 1
    if isinstance(result, Sleep):
        p.state = "sleep"
        p.wake = world.now + result.seconds
        p.on_wake = "exit"
        return 1
    exit_proc(world, p, result or 0)
    return 1
