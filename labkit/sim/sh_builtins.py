"""The simulated ``sh``'s builtins, and its variables (what ``export``, ``read`` and ``x=1`` change).

``exit cd export unset trap wait read shift set pwd :`` are the shell's own:
they change the shell process itself, so they never fork. A builtin is
``(world, proc, argv) -> status`` (``None``: the shell waits or has exited).
:mod:`labkit.sim.shell` runs them; echo, printf, test, kill and the other
applets ash runs without a fork are busybox's (:mod:`labkit.sim.busybox`).

A variable's value is memory the shell holds: :func:`assign` charges it to
the container's memory cgroup, so ``x=$x$x`` in a loop meets the OOM killer.
"""

from __future__ import annotations

import os
import signal as _signal
from collections.abc import Callable
from typing import Any

from labkit.sim import cgroups
from labkit.sim.kernel import World
from labkit.sim.overlay import vfs_for
from labkit.sim.process import BASE_MEMORY, Proc, exit_proc, need_memory, write


def recount(p: Proc) -> None:
    p.mem = BASE_MEMORY["sh"] + sum(len(v) for v in p.vars.values())


def assign(world: World, p: Proc, name: str, value: str) -> bool:
    """Set a shell variable, charging its memory: False when the OOM killer took this process."""
    old = len(p.vars.get(name, ""))
    # The new value is built while the old one is still held: both count at this moment.
    if len(value) > old and not need_memory(world, p, len(value)):
        return False
    if p.hpid not in world.procs:
        return False
    p.vars[name] = value
    recount(p)
    ct = world.containers.get(p.cid)
    if ct is not None:
        cgroups.charge(world, ct)
    return True


def _b_exit(world: World, p: Proc, args: list[str]) -> int | None:
    code = p.status
    if len(args) > 1:
        try:
            code = int(args[1]) & 0xFF
        except ValueError:
            write(world, p, 2, f"sh: exit: Illegal number: {args[1]}\n")
            code = 2
    exit_proc(world, p, code)
    return None


def _b_cd(world: World, p: Proc, args: list[str]) -> int:
    target = args[1] if len(args) > 1 else p.vars.get("HOME", "/")
    path = os.path.normpath(target if target.startswith("/") else os.path.join(p.cwd, target))
    if not vfs_for(world, p.cid).is_dir(path):
        write(world, p, 2, f"sh: cd: can't cd to {target}: No such file or directory\n")
        return 2
    p.cwd = path
    p.vars["PWD"] = path
    return 0


def _b_export(world: World, p: Proc, args: list[str]) -> int:
    for a in args[1:]:
        name, eq, value = a.partition("=")
        if eq:
            if not assign(world, p, name, value):
                return 137
        p.exported.add(name)
    return 0


def _b_unset(world: World, p: Proc, args: list[str]) -> int:
    for a in args[1:]:
        p.vars.pop(a, None)
        p.exported.discard(a)
    recount(p)
    return 0


def _b_trap(world: World, p: Proc, args: list[str]) -> int:
    if len(args) < 3:
        for sig, action in sorted(p.traps.items()):
            write(world, p, 1, f"trap -- '{action}' {sig}\n")
        return 0
    action = args[1]
    for sig in args[2:]:
        name = sig.upper().removeprefix("SIG")
        if name.isdigit():
            try:
                name = _signal.Signals(int(name)).name[3:]
            except ValueError:
                continue
        if name == "EXIT" or name == "0":
            continue
        if action == "-":
            p.traps.pop(name, None)
        else:
            p.traps[name] = action
    return 0


def _b_wait(world: World, p: Proc, args: list[str]) -> int | None:
    if len(args) == 1:
        if not p.children:
            return 0
        p.state = "wait"
        p.waiting = ("all",)
        return None
    code = 0
    for a in args[1:]:
        if not a.isdigit():
            continue
        target = next((world.procs[h] for h in p.children if h in world.procs and world.procs[h].pid == int(a)), None)
        if target is None:
            code = p.child_codes.get(int(a), 127)
            continue
        p.state = "wait"
        p.waiting = ("pid", target.hpid)
        return None
    return code


def _b_read(world: World, p: Proc, args: list[str]) -> int:
    names = [a for a in args[1:] if not a.startswith("-")] or ["REPLY"]
    data = p.stdin[p.stdin_pos:]
    if not data:
        return 1
    line, nl, _ = data.partition(b"\n")
    p.stdin_pos += len(line) + len(nl)
    words = line.decode(errors="replace").split(None, len(names) - 1)
    for i, name in enumerate(names):
        assign(world, p, name, words[i] if i < len(words) else "")
    return 0


def _b_shift(world: World, p: Proc, args: list[str]) -> int:
    n = int(args[1]) if len(args) > 1 and args[1].isdigit() else 1
    if n > len(p.positional) - 1:
        return 1
    p.positional = [p.positional[0], *p.positional[1 + n:]]
    return 0


def _b_set(world: World, p: Proc, args: list[str]) -> int:
    if len(args) > 1 and args[1] == "--":
        p.positional = [p.positional[0] if p.positional else "sh", *args[2:]]
    return 0


def _b_pwd(world: World, p: Proc, args: list[str]) -> int:
    write(world, p, 1, p.cwd + "\n")
    return 0


def _b_colon(world: World, p: Proc, args: list[str]) -> int:
    return 0


BUILTINS: dict[str, Callable[[World, Proc, list[str]], Any]] = {
    "exit": _b_exit, "cd": _b_cd, "export": _b_export, "unset": _b_unset, "trap": _b_trap, "wait": _b_wait,
    "read": _b_read, "shift": _b_shift, "set": _b_set, "pwd": _b_pwd, ":": _b_colon,
}
