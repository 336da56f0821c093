"""The user's systemd: a cgroup v2 scope of labkit's own, delegated to the user, for rootless limits.

On a host that boots systemd with cgroup v2 (Debian 12, Ubuntu 22.04, Fedora), a
user's login shell sits in ``session-N.scope``, a group that belongs to root: the
user may not make groups there, nor move processes out of it. The user's own
systemd (``user@UID.service``, delegated to the user by the system's systemd) may
make a *scope* for any process of that user and *delegate* it: the scope's
directory and its ``cgroup.procs``, ``cgroup.subtree_control`` and
``cgroup.threads`` then belong to the user (systemd.resource-control(5),
``Delegate=``). This is what ``systemd-run --user --scope -p Delegate=yes`` and
rootless Podman do; labkit asks the same thing of the user manager over D-Bus
(``busctl --user``, systemd's own client, so labkit needs no D-Bus library):

* ``StartTransientUnit("labkit.scope", …, PIDs=[pid], Delegate=true)`` makes the
  scope with the engine's process in it. Moving a process out of
  ``session-N.scope`` needs write access to the common ancestor's
  ``cgroup.procs`` (cgroup-v2.rst, "Delegation Containment"), which neither the
  user nor its manager has: the user manager asks the system's systemd to do it
  (``AttachProcesses``, which moves a process when caller, process and unit share
  one uid).
* ``AttachProcessesToUnit("labkit.scope", "/engine", [pid])`` puts a later engine
  process into the scope that is already there: one scope per user holds every
  container of that user, whichever process made them.

In the scope, labkit's engine processes live in the leaf ``engine``: cgroup v2
lets a group give controllers to its children only while it holds no process
itself (cgroup-v2.rst, "No Internal Process Constraint"), so the scope's own
directory stays empty and holds ``engine`` and labkit's ``labkit/<id>`` groups.
systemd stops the scope, and removes its directories, once no process is left
in it.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import time

from labkit import helpers

__all__ = ["LEAF", "SCOPE", "join_scope", "scope_path", "user_bus"]

#: The scope every rootless container of a user lives in, under that user's systemd.
SCOPE = "labkit.scope"
#: The leaf in the scope that holds labkit's own processes (the engine that starts containers).
LEAF = "engine"

_MANAGER = ("org.freedesktop.systemd1", "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager")


def user_bus(uid: int | None = None) -> str | None:
    """The socket of this user's D-Bus session bus (``/run/user/UID/bus``, where systemd's user manager
    answers), or None where the user has no systemd session."""
    uid = os.getuid() if uid is None else uid
    runtime = os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{uid}"
    path = os.path.join(runtime, "bus")
    try:
        return path if stat.S_ISSOCK(os.stat(path).st_mode) else None
    except OSError:
        return None


def own_cgroup(pid: int | str = "self", proc: str = "/proc") -> str | None:
    """The process's cgroup v2 path (the ``0::`` line of /proc/PID/cgroup), or None."""
    try:
        with open(f"{proc}/{pid}/cgroup") as f:
            return next((ln.split(":", 2)[2] for ln in f.read().splitlines() if ln.startswith("0::")), None)
    except OSError:
        return None


def _call(bus: str, method: str, signature: str, *args: str, timeout: float = 15) -> subprocess.CompletedProcess:
    busctl = shutil.which("busctl", path=helpers.SAFE_PATH)
    if busctl is None:
        raise FileNotFoundError("busctl")
    env = {**helpers.environ(), "DBUS_SESSION_BUS_ADDRESS": f"unix:path={bus}",
           "XDG_RUNTIME_DIR": os.path.dirname(bus)}
    return subprocess.run([busctl, "--user", "call", *_MANAGER, method, signature, *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def scope_path(unified: str, pid: int | str = "self") -> str | None:
    """The directory of labkit's scope if process ``pid`` is in it (in its leaf), else None."""
    own = own_cgroup(pid)
    if own is None:
        return None
    parts = own.rstrip("/").split("/")
    if SCOPE not in parts:
        return None
    return os.path.normpath(unified + "/".join(parts[: parts.index(SCOPE) + 1]))


def join_scope(unified: str, timeout: float = 10.0) -> str | None:
    """Put this process into the leaf of labkit's delegated scope, made if need be; its directory, or None.

    None where there is no user manager to ask (no session bus, no ``busctl``) or it refused.
    """
    pid = os.getpid()
    scope = scope_path(unified)
    if scope is not None:
        return scope
    bus = user_bus()
    if bus is None:
        return None
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            scope = _find_scope(unified, bus)
            if scope is not None:
                os.makedirs(os.path.join(scope, LEAF), exist_ok=True)
                if _call(bus, "AttachProcessesToUnit", "ssau", SCOPE, "/" + LEAF, "1", str(pid)).returncode == 0:
                    return _wait_in_scope(unified, deadline)
            else:
                made = _call(bus, "StartTransientUnit", "ssa(sv)a(sa(sv))", SCOPE, "fail", "3",
                             "PIDs", "au", "1", str(pid), "Delegate", "b", "true",
                             "Description", "s", "labkit: rootless containers and their engine", "0")
                if made.returncode == 0:
                    scope = _wait_in_scope(unified, deadline)
                    if scope is not None:
                        leaf = os.path.join(scope, LEAF)
                        os.makedirs(leaf, exist_ok=True)
                        with open(os.path.join(leaf, "cgroup.procs"), "w") as f:
                            f.write(str(pid))
                    return scope
                # Another engine made the scope first ("already exists"): attach to it on the next round.
            time.sleep(0.05)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return None


def _find_scope(unified: str, bus: str) -> str | None:
    """The directory of this user's labkit scope if it is running now, as its manager reports it."""
    busctl = shutil.which("busctl", path=helpers.SAFE_PATH)
    if busctl is None:
        return None
    env = {**helpers.environ(), "DBUS_SESSION_BUS_ADDRESS": f"unix:path={bus}",
           "XDG_RUNTIME_DIR": os.path.dirname(bus)}
    unit = "/org/freedesktop/systemd1/unit/" + SCOPE.replace(".", "_2e")  # sd_bus_path_encode
    got = subprocess.run([busctl, "--user", "get-property", _MANAGER[0], unit, "org.freedesktop.systemd1.Scope",
                          "ControlGroup"], env=env, capture_output=True, text=True, timeout=15)
    # 's "/user.slice/user-1000.slice/user@1000.service/app.slice/labkit.scope"'; "" for a stopped unit
    value = got.stdout.strip().partition(" ")[2].strip('"') if got.returncode == 0 else ""
    path = os.path.normpath(unified + value) if value.startswith("/") else None
    return path if path and os.path.isdir(path) else None


def _wait_in_scope(unified: str, deadline: float) -> str | None:
    """Wait until systemd has moved this process into the scope (its job runs after the call returns)."""
    while time.monotonic() < deadline:
        scope = scope_path(unified)
        if scope is not None:
            return scope
        time.sleep(0.02)
    return None
