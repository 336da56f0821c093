"""What a container's supervisor runs after PID 1 ends, when ``--restart`` asks for it.

There is no daemon to restart containers: the supervisor (``shim.c``) execs
``python -m labkit.restarter ROOT ID`` once it has recorded the exit and
cleaned up, and this applies the policy through the engine
(:meth:`labkit.engine.Engine.apply_restart_policy`).
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m labkit.restarter STATE_ROOT CONTAINER_ID", file=sys.stderr)
        return 2
    from labkit.engine import Engine
    from labkit.errors import LabkitError
    from labkit.linux import namespaces, syscalls

    # This process was the supervisor, whose new children went into the container's PID
    # namespace; that namespace died with its PID 1, and fork(2) there fails (ENOMEM).
    # Point "pid_for_children" back at our own namespace: setns(2) on /proc/self/ns/pid.
    fd = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    try:
        syscalls.setns(fd, namespaces.CLONE_NEWPID)
    finally:
        os.close(fd)

    try:
        Engine(root=argv[0], backend="linux").apply_restart_policy(argv[1])
    except LabkitError as err:
        _note(argv, err.one_line())
        return 1
    except Exception:  # no terminal here: leave the reason beside the container's log
        import traceback

        _note(argv, traceback.format_exc())
        return 1
    return 0


def _note(argv: list[str], text: str) -> None:
    try:
        with open(os.path.join(argv[0], "containers", argv[1], "restart.log"), "a") as f:
            f.write(f"labkit-restarter: {text}\n")
    except OSError:
        pass


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
