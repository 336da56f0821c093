"""What a container's supervisor runs after PID 1 ends, when ``--restart`` asks for it.

There is no daemon to restart containers: the supervisor (``shim.c``) execs
``python -m labkit.restarter ROOT ID [BACKEND]`` once it has recorded the exit
and cleaned up (or ``docker update --restart`` starts it with ``--after SUPERVISOR_PID``
for a container whose supervisor was started without a policy), and this applies the policy through the engine
(:meth:`labkit.engine.Engine.apply_restart_policy`). ``BACKEND`` is the
backend that started the container, ``linux`` (root, the default) or
``rootless``; rootless, the supervisor runs as the user in the host's user
namespace (see ``shim.c``'s fork_in_userns), so this process
starts the next container exactly as the user's own engine would.
"""

from __future__ import annotations

import os
import sys
import time
import traceback

from labkit.engine import Engine
from labkit.errors import LabkitError
from labkit.linux import namespaces, syscalls

BACKENDS = ("linux", "rootless")


def main(argv: list[str]) -> int:
    after = 0
    if len(argv) >= 2 and argv[-2] == "--after" and argv[-1].isdigit():
        after, argv = int(argv[-1]), argv[:-2]
    if len(argv) not in (2, 3) or (len(argv) == 3 and argv[2] not in BACKENDS):
        print("usage: python -m labkit.restarter STATE_ROOT CONTAINER_ID [linux|rootless] [--after SUPERVISOR_PID]",
              file=sys.stderr)
        return 2
    backend = argv[2] if len(argv) == 3 else "linux"
    try:
        if after:
            wait_for_supervisor(after, argv[1])
        reset_pid_for_children()
        Engine(root=argv[0], backend=backend).apply_restart_policy(argv[1])
    except LabkitError as err:
        _note(argv, err.one_line())
        return 1
    except Exception:  # no terminal here: leave the reason beside the container's log
        _note(argv, traceback.format_exc())
        return 1
    return 0


def wait_for_supervisor(pid: int, cid: str, proc: str = "/proc") -> None:
    """``--after PID``: return once the supervisor ``pid`` of container ``cid`` has ended.

    ``docker update --restart`` gave a policy to a container whose supervisor was started
    without one, so it will exec no restarter; this process, started by the update, waits
    for it instead, as long as the container runs (the supervisor's own lifetime is the
    deadline), then applies the policy as the restarter would.
    """
    while True:
        try:
            with open(f"{proc}/{pid}/cmdline", "rb") as f:
                if cid.encode() not in f.read():
                    return  # gone, and the PID given to another process
        except OSError:
            return
        time.sleep(0.2)


def reset_pid_for_children(proc: str = "/proc/self") -> bool:
    """Make this process's future children land in its own PID namespace again; True if it had to.

    As root the supervisor unshared CLONE_NEWPID to fork the container's PID 1,
    so its new children would go into that PID namespace — which died with
    PID 1, and fork(2) there fails (ENOMEM). setns(2) on its own
    ``ns/pid`` points ``pid_for_children`` back (pid_namespaces(7)). Rootless,
    the supervisor never unshared (a process of its user namespace did, see
    :mod:`labkit.linux.process`), the two links already agree, and setns(2)
    would be refused anyway: it needs CAP_SYS_ADMIN, which the user lacks.
    """
    try:
        if os.readlink(f"{proc}/ns/pid") == os.readlink(f"{proc}/ns/pid_for_children"):
            return False
    except OSError:
        pass  # no pid_for_children link (before Linux 4.12): set it, as root always could
    fd = os.open(f"{proc}/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    try:
        syscalls.setns(fd, namespaces.CLONE_NEWPID)
    finally:
        os.close(fd)
    return True


def _note(argv: list[str], text: str) -> None:
    try:
        with open(os.path.join(argv[0], "containers", argv[1], "restart.log"), "a") as f:
            f.write(f"labkit-restarter: {text}\n")
    except OSError:
        pass


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
