"""The simulated ``sh`` (a busybox-ash subset) and busybox's programs, deterministic and resumable.

A script is parsed once and compiled into a flat list of operations
(:mod:`labkit.sim.sh_syntax`). A shell process is then just data: its code,
a program counter, its variables — so it can stop in the middle of a
``sleep`` or a ``wait``, be saved to disk with the world, and go on in the
next CLI call, or be copied for a snapshot. This module expands words
(parameters, ``$(...)``, ``$((...))`` with :mod:`labkit.sim.sh_arith`,
field splitting, ``*``/``?`` globs) and runs the operations.

What runs: builtins ``echo printf test [ true false : exit cd pwd
export unset trap wait kill read shift set sleep``; and the programs in
:data:`APPLETS`. Messages are busybox's, word for word where the lessons
show them (``sh: nosuch: not found``, ``sh: can't fork: Resource temporarily
unavailable``).

As in busybox's ash with ``FEATURE_SH_NOFORK``, some applets (``sleep``,
``cat``, ``rm``, ...) run inside the shell without a fork; the others fork a
child process, which then counts against ``pids.max``. A ``$(...)`` runs to
its end at once (a ``sleep`` inside it takes no simulated time).
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import functools
import os
import re
import signal as _signal
import stat as _stat_mod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from labkit.errors import StartFailed
from labkit.sim import cgroups
from labkit.sim.kernel import World
from labkit.sim.overlay import vfs_for
from labkit.sim.process import (
    BASE_MEMORY,
    Proc,
    exit_proc,
    kill,
    need_memory,
    spawn,
    write,
)
from labkit.sim.sh_arith import ArithError, arith
from labkit.sim.sh_syntax import ShellSyntaxError, compile_node, compile_script, tokenize_word

FORK_FAILED = "sh: can't fork: Resource temporarily unavailable\n"


@dataclass(frozen=True)
class Exec:
    """What the shell asks of the programs around it: :data:`labkit.sim.programs.EXEC` is the one.

    The shell runs its builtins and busybox's NOFORK applets itself; for
    anything else it is handed these, as mvdan/sh's interpreter is handed its
    exec handler, so it needs no module above it.

    Attributes:
        lookup: execvp(3)'s search: ``(world, ct, argv, env, cwd)`` to the program found
            (:class:`~labkit.errors.StartFailed`, 127 or 126, when there is none).
        start: fork(2) + execve(2) of a found program: ``(world, ct, program, argv, *, env, cwd, fds, stdin,
            parent)`` to the new process (BlockingIOError: EAGAIN, the pids limit).
        step: Runs a process for a slice (the scheduler's step): how a ``$(...)`` runs its children to their end.
    """

    lookup: Callable[..., Any]
    start: Callable[..., Proc]
    step: Callable[[World, Proc, int], int]


# =========================================================================== expansion

def _var(p: Proc, name: str) -> str | None:
    if name == "$":
        return str(p.shell_pid)
    if name == "?":
        return str(p.status)
    if name == "!":
        return str(p.last_bg) if p.last_bg else ""
    if name == "#":
        return str(max(len(p.positional) - 1, 0))
    if name in ("@", "*"):
        return " ".join(p.positional[1:])
    if name == "-":
        return ""
    if name.isdigit():
        i = int(name)
        return p.positional[i] if i < len(p.positional) else None
    return p.vars.get(name)


def _split(text: str) -> list[str]:
    return text.split()


def expand_word(world: World, p: Proc, ex: Exec, segs: list, split: bool = True, glob: bool = True) -> list[str]:
    """Expand one word into fields: parameters, command substitution, arithmetic, splitting, globs."""
    fields: list[str] = []
    cur: list[str] = []
    have = False  # whether the current field exists even if empty (quotes)
    pattern = False
    for seg in segs:
        kind, val, quoted = seg
        if kind == "lit":
            cur.append(val)
            have = True
            if not quoted and any(ch in val for ch in "*?["):
                pattern = True
            continue
        if kind == "var" and val == "@" and quoted:
            args = p.positional[1:]
            if args:
                cur.append(args[0])
                for a in args[1:]:
                    fields.append("".join(cur))
                    cur = [a]
                have = True
            continue
        text = _expand_seg(world, p, ex, kind, val)
        if quoted or not split:
            cur.append(text)
            have = True
            continue
        parts = text.split()
        if not parts:
            continue
        if text[:1].isspace() and (cur or have):
            fields.append("".join(cur))
            cur = []
        cur.append(parts[0])
        have = True
        for part in parts[1:]:
            fields.append("".join(cur))
            cur = [part]
        if text[-1:].isspace():
            fields.append("".join(cur))
            cur = []
            have = False
    if cur or have:
        fields.append("".join(cur))
    if glob and pattern and split:
        out = []
        for f in fields:
            matches = _glob(world, p, f) if any(ch in f for ch in "*?[") else []
            out.extend(matches or [f])
        return out
    return fields


def _expand_seg(world: World, p: Proc, ex: Exec, kind: str, val: Any) -> str:
    if kind == "var":
        return _var(p, val) or ""
    if kind == "len":
        return str(len(_var(p, val) or ""))
    if kind == "param":
        name, op, word = val
        cur = _var(p, name)
        unset = cur is None or (op.startswith(":") and cur == "")
        alt = "".join(expand_word(world, p, ex, tokenize_word(word), split=False, glob=False)) if word else ""
        if op in (":-", "-"):
            return alt if unset else cur or ""
        if op in (":=", "="):
            if unset:
                p.vars[name] = alt
                return alt
            return cur or ""
        if op in (":+", "+"):
            return "" if unset else alt
        return cur or ""
    if kind == "cmd":
        out, status = run_sync(world, p, ex, val)
        p.status = status
        return out.rstrip("\n")
    if kind == "arith":
        expr = "".join(expand_word(world, p, ex, tokenize_word(val), split=False, glob=False))
        try:
            return str(arith(expr, p.vars))
        except ArithError as e:
            # An expansion error ends a non-interactive shell with status 2 (POSIX 2.8.1).
            write(world, p, 2, f"sh: {e}\n")
            exit_proc(world, p, 2)
            return ""
    return ""


def _glob(world: World, p: Proc, pattern: str) -> list[str]:
    vfs = vfs_for(world, p.cid)
    absolute = pattern.startswith("/")
    parts = [x for x in pattern.split("/") if x]
    found = ["/" if absolute else ""]
    for part in parts:
        nxt = []
        for base in found:
            real = base if absolute else os.path.join(p.cwd, base)
            if any(ch in part for ch in "*?["):
                try:
                    names = vfs.readdir(real or "/")
                except OSError:
                    continue
                for name in sorted(names):
                    if name.startswith(".") and not part.startswith("."):
                        continue
                    if fnmatch.fnmatchcase(name, part):
                        nxt.append(os.path.join(base, name) if base else name)
            else:
                cand = os.path.join(base, part) if base else part
                if vfs.exists(cand if absolute else os.path.join(p.cwd, cand)):
                    nxt.append(cand)
        found = nxt
    return sorted(found)


# =========================================================================== running a shell

def new_shell(world: World, ct: Any, argv: list[str], script: str | None, *, parent: Proc | None = None,
              env: dict[str, str] | None = None, cwd: str = "/", fds: dict[int, tuple] | None = None,
              stdin: bytes = b"") -> Proc:
    """A ``sh`` process: ``sh -c SCRIPT [NAME ARGS...]``, ``sh FILE ARGS...``, or ``sh`` reading stdin."""
    p = spawn(world, ct, argv, "sh", parent=parent, env=env, cwd=cwd, fds=fds, stdin=stdin)
    p.vars = dict(p.env)
    p.exported = set(p.env)
    args = argv[1:]
    src = script
    if src is not None:
        p.positional = [argv[0], *args]
    elif args and args[0] == "-c":
        src = args[1] if len(args) > 1 else ""
        p.dash_c = True
        p.positional = args[2:] if len(args) > 2 else [argv[0]]
    elif args:
        path = args[0] if args[0].startswith("/") else os.path.join(cwd, args[0])
        try:
            src = vfs_for(world, ct.id).read(path).decode(errors="replace")
        except OSError as e:
            # The shell runs (and fails) in its own first step, so its parent sees a normal exit.
            p.frames = [[[("fail", f"sh: can't open '{args[0]}': {os.strerror(e.errno or errno.ENOENT)}\n", 2)],
                         0, {}, None]]
            return p
        p.positional = list(args)
    else:
        src = stdin.decode(errors="replace")
        p.positional = [argv[0]]
    try:
        p.frames = [[compile_script(src), 0, {}, None]]
    except ShellSyntaxError as e:
        p.frames = [[[("fail", f"sh: syntax error: {e}\n", 2)], 0, {}, None]]
    _recount(p)
    return p


def _recount(p: Proc) -> None:
    p.mem = BASE_MEMORY["sh"] + sum(len(v) for v in p.vars.values())


def run_shell(world: World, p: Proc, ex: Exec, budget: int) -> int:
    """Execute up to ``budget`` operations of a shell process; return how many ran."""
    used = 0
    while used < budget and p.state == "run" and p.hpid in world.procs and p.kind == "sh":
        if p.pending:
            sig = p.pending.pop(0)
            action = p.traps.get(_signal.Signals(sig).name[3:])
            if action:
                try:
                    p.frames.append([compile_script(action), 0, {}, p.status])
                except ShellSyntaxError:
                    pass
            continue
        if not p.frames:
            exit_proc(world, p, p.status)
            break
        frame = p.frames[-1]
        code, pc = frame[0], frame[1]
        if pc >= len(code):
            p.frames.pop()
            if frame[3] is not None:
                p.status = frame[3]  # a trap handler leaves $? as it found it
            continue
        used += 1
        _execute(world, p, ex, frame, code[pc])
    return max(used, 1) if p.hpid not in world.procs or p.state != "run" else used


def _execute(world: World, p: Proc, ex: Exec, frame: list, op: tuple) -> None:
    kind = op[0]
    slots = frame[2]
    if kind == "run":
        frame[1] += 1
        _run_simple(world, p, ex, op[1])
    elif kind == "jmp":
        frame[1] = op[1]
    elif kind == "jz":
        frame[1] = op[1] if p.status == 0 else frame[1] + 1
    elif kind == "jnz":
        frame[1] = op[1] if p.status != 0 else frame[1] + 1
    elif kind == "status":
        p.status = op[1]
        frame[1] += 1
    elif kind == "loop_start":
        slots[("status", op[1])] = 0
        frame[1] += 1
    elif kind == "loop_body":
        slots[("status", op[1])] = p.status
        frame[1] += 1
    elif kind == "loop_cond":
        stop = (p.status == 0) if op[3] else (p.status != 0)
        if stop:
            p.status = slots.get(("status", op[1]), 0)
            frame[1] = op[2]
        else:
            frame[1] += 1
    elif kind == "for_init":
        if op[2] is None:
            words = list(p.positional[1:])
        else:
            words = [f for w in op[2] for f in expand_word(world, p, ex, w)]
        slots[op[1]] = [words, 0]
        slots[("status", op[1])] = 0
        frame[1] += 1
    elif kind == "for_next":
        words, idx = slots[op[1]]
        if idx < len(words):
            _assign(world, p, op[2], words[idx])
            slots[op[1]] = [words, idx + 1]
            frame[1] += 1
        else:
            p.status = slots.get(("status", op[1]), 0) if idx else 0
            frame[1] = op[3]
    elif kind == "case":
        subject = "".join(expand_word(world, p, ex, op[1], split=False, glob=False))
        frame[1] = op[3]
        for pats, target in op[2]:
            if any(fnmatch.fnmatchcase(subject, "".join(expand_word(world, p, ex, pt, split=False, glob=False)))
                   for pt in pats):
                frame[1] = target
                break
    elif kind == "redir_push":
        frame[1] += 1
        saved = _apply_redirs(world, p, ex, op[1])
        if saved is None:
            p.status = 1
            frame[1] = _matching_pop(frame[0], frame[1])
            return
        p.redirs.append(saved)
    elif kind == "redir_pop":
        frame[1] += 1
        if p.redirs:
            _restore(p, p.redirs.pop())
    elif kind == "bg":
        frame[1] += 1
        _background(world, p, ex, op[1])
    elif kind == "sub":
        frame[1] += 1
        saved = _apply_redirs(world, p, ex, op[2])
        if saved is None:
            p.status = 1
            return
        try:
            child = _subshell(world, p, compile_node(op[1]))
        finally:
            _restore(p, saved)
        if child is not None:
            _wait_for(p, child)
    elif kind == "pipe":
        _pipeline(world, p, ex, frame, op)
    elif kind == "fail":
        write(world, p, 2, op[1])
        exit_proc(world, p, op[2])


def _matching_pop(code: list, pc: int) -> int:
    depth = 1
    while pc < len(code):
        if code[pc] and code[pc][0] == "redir_push":
            depth += 1
        elif code[pc] and code[pc][0] == "redir_pop":
            depth -= 1
            if depth == 0:
                return pc + 1
        pc += 1
    return pc


def _assign(world: World, p: Proc, name: str, value: str) -> bool:
    """Set a shell variable, charging its memory: False when the OOM killer took this process."""
    old = len(p.vars.get(name, ""))
    # The new value is built while the old one is still held: both count at this moment.
    if len(value) > old and not need_memory(world, p, len(value)):
        return False
    if p.hpid not in world.procs:
        return False
    p.vars[name] = value
    _recount(p)
    ct = world.containers.get(p.cid)
    if ct is not None:
        cgroups.charge(world, ct)
    return True


def _wait_for(p: Proc, child: Proc) -> None:
    if child.state == "exited":
        p.status = child.exit_code or 0
        return
    p.state = "wait"
    p.waiting = ("fg", child.hpid)


def _env_of(p: Proc, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in p.vars.items() if k in p.exported}
    env.update(extra or {})
    return env


def _fork_failed(world: World, p: Proc) -> None:
    if p.fork_retries:
        # busybox watch: system(3) returns -1 without a word, and the next interval tries again.
        p.status = 1
        return
    # ash reports the failed fork(2) and, not being interactive, exits with status 2.
    write(world, p, 2, FORK_FAILED)
    exit_proc(world, p, 2)


def _subshell(world: World, p: Proc, code: list, fds: dict | None = None, stdin: bytes | None = None) -> Proc | None:
    ct = world.containers[p.cid]
    try:
        child = spawn(world, ct, list(p.argv), "sh", parent=p, env=_env_of(p), cwd=p.cwd,
                      fds=dict(fds if fds is not None else p.fds), stdin=p.stdin if stdin is None else stdin)
    except BlockingIOError:
        _fork_failed(world, p)
        return None
    child.vars = dict(p.vars)
    child.exported = set(p.exported)
    child.traps = {}
    child.shell_pid = p.shell_pid
    child.positional = list(p.positional)
    child.status = p.status
    child.frames = [[code, 0, {}, None]]
    _recount(child)
    return child


def _external(world: World, p: Proc, ex: Exec, fields: list[str], assigns: dict[str, str], fds: dict,
              stdin: bytes) -> Proc | None | int:
    """fork + exec a program; returns the child, None (fork failed, shell gone) or a status (not found)."""
    ct = world.containers[p.cid]
    env = _env_of(p, assigns)
    try:
        prog = ex.lookup(world, ct, fields, env, p.cwd)
    except StartFailed as e:
        write(world, p, 2, f"sh: {fields[0]}: {'not found' if e.exit_code == 127 else 'Permission denied'}\n")
        return e.exit_code
    try:
        child = ex.start(world, ct, prog, fields, env=env, cwd=p.cwd, fds=fds, stdin=stdin, parent=p)
    except BlockingIOError:
        _fork_failed(world, p)
        return None
    return child


def _last_command(p: Proc) -> bool:
    """Is this simple command the last thing ``sh -c`` will do? (The op that runs it has moved pc past the end.)"""
    if not p.dash_c or p.traps or len(p.frames) != 1:
        return False
    code, pc = p.frames[0][0], p.frames[0][1]
    return pc >= len(code)


def _exec_in_place(world: World, p: Proc, ex: Exec, fields: list[str], assigns: dict[str, str]) -> bool:
    """ash's last command of ``sh -c``: execve(2) without fork(2), so the program takes the shell's PID
    (``sh -c 'sleep 300'`` is ``sleep 300`` as PID 1; ash's evalcommand does this when no trap is set).
    Applets only; other programs are forked as before."""
    ct = world.containers[p.cid]
    env = _env_of(p, assigns)
    try:
        prog = ex.lookup(world, ct, fields, env, p.cwd)
    except StartFailed:
        return False  # the shell reports "not found" itself
    if prog.kind != "applet":
        return False
    p.argv, p.kind, p.env, p.frames = list(fields), "applet", env, []
    p.vars, p.exported, p.mem = {"__applet": prog.name}, set(), BASE_MEMORY["applet"]
    cgroups.charge(world, ct)
    return True


def _background(world: World, p: Proc, ex: Exec, node: tuple) -> None:
    fds = dict(p.fds)
    if node[0] == "simple" and node[2]:
        fields = [f for w in node[2] for f in expand_word(world, p, ex, w)]
        if fields and fields[0] not in BUILTINS and fields[0] not in NOFORK:
            assigns = {n: "".join(expand_word(world, p, ex, w, split=False)) for n, w in node[1]}
            saved = _apply_redirs(world, p, ex, node[3])
            if saved is None:
                return
            try:
                child = _external(world, p, ex, fields, assigns, dict(p.fds), b"")
            finally:
                _restore(p, saved)
            if isinstance(child, Proc):
                p.last_bg = child.pid
            p.status = 0
            return
    child = _subshell(world, p, compile_node(node), fds=fds, stdin=b"")
    if child is not None:
        p.last_bg = child.pid
        p.status = 0


def _pipeline(world: World, p: Proc, ex: Exec, frame: list, op: tuple) -> None:
    """Run the stages one after the other, each reading what the one before wrote (a simple pipe)."""
    slots = frame[2]
    key = ("pipe", frame[1])
    stages, negate = op[1], op[2]
    state = slots.get(key)
    if state is None:
        state = [0, None, p.stdin]
    else:
        idx, bid, _ = state
        data = bytes(world.buffers.pop(bid, b"")) if bid is not None else b""
        state = [idx + 1, None, data]
    idx = state[0]
    if idx >= len(stages):
        slots.pop(key, None)
        if negate:
            p.status = int(p.status == 0)
        frame[1] += 1
        return
    last = idx == len(stages) - 1
    fds = dict(p.fds)
    bid = None
    if not last:
        bid = world.new_buffer()
        fds[1] = ("buf", bid)
    state[1] = bid
    slots[key] = state
    node = stages[idx]
    child: Any
    if node[0] == "simple" and node[2]:
        fields = [f for w in node[2] for f in expand_word(world, p, ex, w)]
        if fields and fields[0] not in BUILTINS and fields[0] not in NOFORK:
            saved_fds = p.fds
            p.fds = fds
            saved = _apply_redirs(world, p, ex, node[3])
            if saved is None:
                p.fds = saved_fds
                p.status = 1
                return
            assigns = {n: "".join(expand_word(world, p, ex, w, split=False)) for n, w in node[1]}
            child_fds = dict(p.fds)
            p.fds = saved_fds
            child = _external(world, p, ex, fields, assigns, child_fds, state[2])
            if isinstance(child, int):
                p.status = child
                return
            if child is None:
                return
            _wait_for(p, child)
            return
    child = _subshell(world, p, compile_node(node), fds=fds, stdin=state[2])
    if child is not None:
        _wait_for(p, child)


# -- redirections ------------------------------------------------------------------------------------

def _apply_redirs(world: World, p: Proc, ex: Exec, redirs: list) -> dict | None:
    """Open the redirections' files; returns the saved fds (to restore), or None after an error."""
    saved = {"fds": dict(p.fds), "stdin": p.stdin, "pos": p.stdin_pos}
    vfs = vfs_for(world, p.cid)
    for fd, op, word in redirs:
        target = "".join(expand_word(world, p, ex, word, glob=False))
        if op in (">&", "<&"):
            if target == "-":
                p.fds[fd] = ("null",)
            elif target.isdigit():
                p.fds[fd] = p.fds.get(int(target), ("null",))
            continue
        path = target if target.startswith("/") else os.path.normpath(os.path.join(p.cwd, target))
        try:
            if op == "<":
                p.stdin = vfs.read(path)
                p.stdin_pos = 0
                continue
            if path == "/dev/null":
                p.fds[fd] = ("null",)
                continue
            if vfs.is_dir(path):
                raise OSError(errno.EISDIR, "Is a directory")
            if op == ">":
                vfs.truncate_open(path)
            else:
                vfs.append_open(path)
            p.fds[fd] = ("file", path)
        except OSError as e:
            if op == "<" and e.errno in (errno.ENOENT, errno.ENOTDIR):
                write(world, p, 2, f"sh: can't open {target}: no such file\n")  # ash's errmsg(e, "no such file")
            elif op == "<":
                write(world, p, 2, f"sh: can't open {target}: {os.strerror(e.errno or errno.ENOENT)}\n")
            elif e.errno in (errno.ENOENT, errno.ENOTDIR):
                write(world, p, 2, f"sh: can't create {target}: nonexistent directory\n")
            else:
                write(world, p, 2, f"sh: can't create {target}: {os.strerror(e.errno or errno.EIO)}\n")
            _restore(p, saved)
            return None
    return saved


def _restore(p: Proc, saved: dict) -> None:
    p.fds = saved["fds"]
    p.stdin = saved["stdin"]
    p.stdin_pos = saved["pos"]


# -- one simple command ------------------------------------------------------------------------------

def _run_simple(world: World, p: Proc, ex: Exec, node: tuple) -> None:
    _, assigns, words, redirs = node
    fields = [f for w in words for f in expand_word(world, p, ex, w)]
    values = [(name, "".join(expand_word(world, p, ex, w, split=False, glob=False))) for name, w in assigns]
    if p.hpid not in world.procs:
        return
    if not fields:
        # An assignment alone has the status of its last $(...), else 0.
        status = p.status if any(seg[0] == "cmd" for _, w in assigns for seg in w) else 0
        for name, value in values:
            if not _assign(world, p, name, value):
                return
        saved = _apply_redirs(world, p, ex, redirs)
        if saved is None:
            p.status = 1
            return
        _restore(p, saved)
        p.status = status
        return
    name = fields[0]
    saved = _apply_redirs(world, p, ex, redirs)
    if saved is None:
        p.status = 1
        return
    try:
        if (name not in BUILTINS and name not in ASH_BUILTINS and _last_command(p)
                and _exec_in_place(world, p, ex, fields, dict(values))):
            saved = {}  # the program keeps the redirections, as a process exec'd with them does
            return
        if name in BUILTINS or name in NOFORK:
            extra = dict(values)
            for k, v in extra.items():
                p.vars[k] = v
            handler = BUILTINS.get(name)
            if handler is not None:
                result = handler(world, p, fields)
            else:
                # A NOFORK applet runs under its own name; ash's own builtins (echo, printf...) under the shell's.
                ctx = Ctx(world, p, "sh" if name in ASH_BUILTINS else name)
                result = APPLETS[name](ctx, fields)
                if ctx.write_failed and not isinstance(result, Sleep):
                    result = 1
            if isinstance(result, Sleep):
                p.status = 0
                if result.seconds > 0:
                    p.state = "sleep"
                    p.wake = world.now + result.seconds
            elif result is not None and p.hpid in world.procs:
                p.status = result
            return
        child = _external(world, p, ex, fields, dict(values), dict(p.fds), p.stdin[p.stdin_pos:])
    finally:
        if p.hpid in world.procs and saved:
            _restore(p, saved)
    if isinstance(child, int):
        p.status = child
    elif child is not None:
        _wait_for(p, child)


def run_sync(world: World, p: Proc, ex: Exec, src: str) -> tuple[str, int]:
    """``$(...)``: run a subshell to its end right now and return what it wrote to stdout."""
    try:
        code = compile_script(src)
    except ShellSyntaxError as e:
        write(world, p, 2, f"sh: syntax error: {e}\n")
        return "", 2
    bid = world.new_buffer()
    fds = dict(p.fds)
    fds[1] = ("buf", bid)
    child = _subshell(world, p, code, fds=fds, stdin=b"")
    if child is None:
        world.buffers.pop(bid, None)
        return "", 2
    ops = 0
    while child.hpid in world.procs and ops < 200_000:
        mine = _descendants(world, child.hpid)
        progressed = False
        for q in mine:
            if q.state == "sleep":
                q.state = "run"
                if q.on_wake == "exit":
                    q.on_wake = None
                    exit_proc(world, q, 0)
                    progressed = True
                    continue
            if q.state == "run" and q.hpid in world.procs:
                ops += ex.step(world, q, 1000)
                progressed = True
        if not progressed:
            break
    code_ = child.exit_code if child.exit_code is not None else 0
    if child.hpid in world.procs:
        exit_proc(world, child, 128 + _signal.SIGKILL)
    if child.hpid in p.children:
        p.children.remove(child.hpid)
    out = bytes(world.buffers.pop(bid, b""))
    return out.decode(errors="replace"), code_


def _descendants(world: World, hpid: int) -> list[Proc]:
    out = []
    for q in world.procs.values():
        cur: Proc | None = q
        while cur is not None:
            if cur.hpid == hpid:
                out.append(q)
                break
            cur = world.procs.get(cur.parent_hpid)
    return sorted(out, key=lambda q: q.hpid)


# =========================================================================== builtins

@dataclass(frozen=True)
class Sleep:
    """What ``sleep`` returns: the caller sleeps this many simulated seconds."""

    seconds: float


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
            if not _assign(world, p, name, value):
                return 137
        p.exported.add(name)
    return 0


def _b_unset(world: World, p: Proc, args: list[str]) -> int:
    for a in args[1:]:
        p.vars.pop(a, None)
        p.exported.discard(a)
    _recount(p)
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
        _assign(world, p, name, words[i] if i < len(words) else "")
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


# =========================================================================== busybox's programs

class Ctx:
    """What an applet sees: its process, its output streams, its filesystem."""

    def __init__(self, world: World, proc: Proc, name: str | None = None) -> None:
        self.world = world
        self.proc = proc
        self.name = name or (os.path.basename(proc.argv[0]) if proc.argv else "sh")  # busybox's applet_name
        self.vfs = vfs_for(world, proc.cid)
        self.write_failed = False

    def out(self, text: str | bytes) -> None:
        """Write to stdout; a failure (ENOSPC) is told once, as busybox's ``bb_msg_write_error``, and fails the applet."""
        e = write(self.world, self.proc, 1, text)
        if e is not None and not self.write_failed:
            self.write_failed = True
            self.err(f"{self.name}: write error: {os.strerror(e.errno or errno.EIO)}\n")

    def err(self, text: str) -> None:
        write(self.world, self.proc, 2, text)

    def stdin(self) -> bytes:
        data = self.proc.stdin[self.proc.stdin_pos:]
        self.proc.stdin_pos = len(self.proc.stdin)
        return data

    def path(self, p: str) -> str:
        return os.path.normpath(p if p.startswith("/") else os.path.join(self.proc.cwd, p))

    def read_inputs(self, name: str, files: list[str]) -> tuple[list[tuple[str, bytes]], int]:
        if not files:
            return [("-", self.stdin())], 0
        out: list[tuple[str, bytes]] = []
        status = 0
        for f in files:
            if f == "-":
                out.append((f, self.stdin()))
                continue
            try:
                out.append((f, self.vfs.read(self.path(f))))
            except OSError as e:
                self.err(f"{name}: {f}: {os.strerror(e.errno or errno.ENOENT)}\n")
                status = 1
        return out, status


def _flags(args: list[str], known: str) -> tuple[set[str], list[str]]:
    flags: set[str] = set()
    rest = []
    for i, a in enumerate(args):
        if a == "--":
            rest += args[i + 1:]
            break
        if a.startswith("-") and len(a) > 1 and all(ch in known for ch in a[1:]):
            flags.update(a[1:])
        else:
            rest.append(a)
    return flags, rest


def _echo(c: Ctx, args: list[str]) -> int:
    words = args[1:]
    newline, escapes = True, False
    while words and re.fullmatch(r"-[neE]+", words[0]):
        newline = newline and "n" not in words[0]
        escapes = "e" in words[0]
        words = words[1:]
    text = " ".join(words)
    if escapes:
        text, stop = _escapes(text)
        if stop:
            newline = False
    c.out(text + ("\n" if newline else ""))
    return 0


def _escapes(text: str) -> tuple[str, bool]:
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "c":
                return "".join(out), True
            if nxt == "0":
                m = re.match(r"0([0-7]{0,3})", text[i + 1:])
                out.append(chr(int(m.group(1) or "0", 8)))  # type: ignore[union-attr]
                i += 1 + len(m.group(0))  # type: ignore[union-attr]
                continue
            out.append({"n": "\n", "t": "\t", "\\": "\\", "r": "\r", "a": "\a", "b": "\b"}.get(nxt, "\\" + nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out), False


def _printf(c: Ctx, args: list[str]) -> int:
    if len(args) < 2:
        c.err("printf: usage: printf FORMAT [ARGUMENT...]\n")
        return 1
    fmt, vals = args[1], args[2:]
    out: list[str] = []
    first = True
    while first or vals:
        first = False
        consumed = False
        i = 0
        while i < len(fmt):
            ch = fmt[i]
            if ch == "\\":
                text, _ = _escapes(fmt[i:i + 2])
                out.append(text)
                i += 2
                continue
            if ch == "%":
                m = re.match(r"%([-+ 0#]*)(\d*)(?:\.(\d+))?([sdibxXoc%])", fmt[i:])
                if not m:
                    out.append(ch)
                    i += 1
                    continue
                conv = m.group(4)
                if conv == "%":
                    out.append("%")
                else:
                    val = vals.pop(0) if vals else ""
                    consumed = True
                    spec = "%" + m.group(1) + m.group(2) + (("." + m.group(3)) if m.group(3) else "")
                    if conv in "di":
                        try:
                            num = int(val or "0")
                        except ValueError:
                            c.err(f"printf: invalid number '{val}'\n")
                            num = 0
                        out.append((spec + "d") % num)
                    elif conv in "xXo":
                        out.append((spec + conv) % int(val or "0"))
                    elif conv == "b":
                        out.append(_escapes(val)[0])
                    elif conv == "c":
                        out.append(val[:1])
                    else:
                        out.append((spec + "s") % val)
                i += len(m.group(0))
                continue
            out.append(ch)
            i += 1
        if not consumed:
            break
    c.out("".join(out))
    return 0


def _test(c: Ctx, args: list[str]) -> int:
    words = args[1:]
    if args[0] == "[":
        if not words or words[-1] != "]":
            c.err("[: missing ]\n")
            return 2
        words = words[:-1]
    try:
        return 0 if _test_expr(c, words) else 1
    except ValueError as e:
        c.err(f"{args[0]}: {e}\n")
        return 2


def _test_expr(c: Ctx, w: list[str]) -> bool:
    if "-o" in w:
        i = w.index("-o")
        return _test_expr(c, w[:i]) or _test_expr(c, w[i + 1:])
    if "-a" in w[1:]:
        i = w.index("-a", 1)
        return _test_expr(c, w[:i]) and _test_expr(c, w[i + 1:])
    if not w:
        return False
    if w[0] == "!":
        return not _test_expr(c, w[1:])
    if len(w) == 1:
        return w[0] != ""
    if len(w) == 2:
        op, arg = w
        if op == "-z":
            return arg == ""
        if op == "-n":
            return arg != ""
        path = c.path(arg)
        try:
            st = c.vfs.stat(path, follow=True)
        except OSError:
            return False
        if op == "-e":
            return True
        if op == "-f":
            return st.kind == "file"
        if op == "-d":
            return st.kind == "dir"
        if op == "-s":
            return st.size > 0
        if op in ("-r", "-w"):
            return True
        if op == "-x":
            return bool(st.mode & 0o111)
        if op == "-L" or op == "-h":
            return c.vfs.stat(path).kind == "symlink"
        raise ValueError(f"{op}: unknown operand")
    if len(w) == 3:
        a, op, b = w
        if op in ("=", "=="):
            return a == b
        if op == "!=":
            return a != b
        nums = {"-eq": int.__eq__, "-ne": int.__ne__, "-lt": int.__lt__, "-le": int.__le__, "-gt": int.__gt__,
                "-ge": int.__ge__}
        if op in nums:
            try:
                return bool(nums[op](int(a), int(b)))
            except ValueError:
                raise ValueError(f"{a if not a.lstrip('-').isdigit() else b}: bad number") from None
    raise ValueError("syntax error")


def _true(c: Ctx, args: list[str]) -> int:
    return 0


def _false(c: Ctx, args: list[str]) -> int:
    return 1


def _sleep(c: Ctx, args: list[str]) -> Any:
    total = 0.0
    for a in args[1:]:
        m = re.fullmatch(r"(\d*\.?\d+)([smhd]?)", a)
        if not m:
            c.err(f"sleep: invalid number '{a}'\n")
            return 1
        total += float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
    if len(args) < 2:
        c.err(BANNER + "Usage: sleep [N]...\n")
        return 1
    return Sleep(total)


def _cat(c: Ctx, args: list[str]) -> int:
    status = 0
    files = args[1:] or ["-"]
    for f in files:
        if f == "-":
            c.out(c.stdin())
            continue
        try:
            c.out(c.vfs.read(c.path(f)))
        except OSError as e:
            if e.errno == errno.EISDIR:
                c.err("cat: read error: Is a directory\n")
            else:
                c.err(f"cat: can't open '{f}': {os.strerror(e.errno or errno.ENOENT)}\n")
            status = 1
    return status


def _mode_string(st: Any) -> str:
    """bb_mode_string(): ``drwxrwxrwt``, with setuid/setgid (s/S) and the sticky bit (t/T)."""
    t = {"dir": "d", "symlink": "l", "dev": "c"}.get(st.kind, "-")
    bits = [ch if st.mode & (1 << (8 - i)) else "-" for i, ch in enumerate("rwxrwxrwx")]
    for i, flag, ch in ((2, 0o4000, "s"), (5, 0o2000, "s"), (8, 0o1000, "t")):
        if st.mode & flag:
            bits[i] = ch if bits[i] == "x" else ch.upper()
    return t + "".join(bits)


def _names(c: Ctx, table: str) -> dict[int, str]:
    """getpwuid()/getgrgid() in the container: id -> name from its /etc/passwd or /etc/group."""
    try:
        text = c.vfs.read(table).decode(errors="replace")
    except OSError:
        return {}
    out: dict[int, str] = {}
    for ln in text.splitlines():
        parts = ln.split(":")
        if len(parts) > 2 and parts[2].isdigit():
            out.setdefault(int(parts[2]), parts[0])
    return out


def _ls_time(c: Ctx, mtime: int) -> str:
    """ls -l's time: "Jun 22 12:34" within half a year, else "Jun 22  2017" (busybox's ls.c)."""
    from datetime import datetime, timezone

    when = datetime.fromtimestamp(mtime, timezone.utc)
    age = c.world.epoch + c.world.now - mtime
    return when.strftime("%b %e %H:%M") if -15 * 60 < age < 3600 * 24 * 365 / 2 else when.strftime("%b %e  %Y")


def _ls(c: Ctx, args: list[str]) -> int:
    flags, paths = _flags(args[1:], "alAdF1h")
    paths = paths or ["."]
    status = 0
    files: list[str] = []
    dirs: list[str] = []
    for p in paths:
        try:
            st = c.vfs.stat(c.path(p), follow=True)
        except OSError as e:
            c.err(f"ls: {p}: {os.strerror(e.errno or errno.ENOENT)}\n")
            status = 1
            continue
        (dirs if st.kind == "dir" and "d" not in flags else files).append(p)

    users, groups = (_names(c, "/etc/passwd"), _names(c, "/etc/group")) if "l" in flags else ({}, {})

    def line(name: str, path: str) -> str:
        if "l" not in flags:
            return name
        try:
            st = c.vfs.stat(path)
        except OSError:
            return name
        user, group = users.get(st.uid, str(st.uid)), groups.get(st.gid, str(st.gid))
        size = f"{st.rdev[0]:>4}, {st.rdev[1]:>4}" if st.kind == "dev" else f"{st.size:>9}"
        extra = f" -> {c.vfs.readlink(path)}" if st.kind == "symlink" else ""
        return f"{_mode_string(st)} {st.nlink:>4} {user:<8.8} {group:<8.8} {size} {_ls_time(c, st.mtime)} {name}{extra}"

    def total(d: str, names: list[str]) -> int:
        """ls -l's "total": the listed entries' blocks in KiB."""
        blocks = 0
        for n in names:
            with contextlib.suppress(OSError):
                blocks += c.vfs.stat(os.path.join(c.path(d), n)).blocks
        return blocks // 2

    for f in sorted(files):
        c.out(line(f, c.path(f)) + "\n")
    for i, d in enumerate(sorted(dirs)):
        if len(paths) > 1:
            c.out(("\n" if i or files else "") + f"{d}:\n")
        names = sorted(c.vfs.readdir(c.path(d)))
        if "a" in flags:
            names = [".", "..", *names]
        elif "A" not in flags:
            names = [n for n in names if not n.startswith(".")]
        if "l" in flags:
            c.out(f"total {total(d, names)}\n")
        for n in names:
            c.out(line(n, os.path.join(c.path(d), n)) + "\n")
    return status


def _touch(c: Ctx, args: list[str]) -> int:
    _, files = _flags(args[1:], "cam")
    status = 0
    for f in files:
        try:
            c.vfs.touch(c.path(f))
        except OSError as e:
            c.err(f"touch: {f}: {os.strerror(e.errno or errno.ENOENT)}\n")
            status = 1
    return status


def _remove_tree(vfs: Any, path: str) -> None:
    st = vfs.stat(path)
    if st.kind == "dir":
        for name in vfs.readdir(path):
            _remove_tree(vfs, os.path.join(path, name))
        vfs.rmdir(path)
    else:
        vfs.unlink(path)


def _rm(c: Ctx, args: list[str]) -> int:
    flags, files = _flags(args[1:], "rRfiv")
    status = 0
    for f in files:
        path = c.path(f)
        try:
            st = c.vfs.stat(path)
        except OSError as e:  # as busybox's remove_file: lstat failing for another reason than ENOENT
            if e.errno == errno.ENOENT and "f" in flags:
                continue
            verb = "remove" if e.errno == errno.ENOENT else "stat"
            c.err(f"rm: can't {verb} '{f}': {os.strerror(e.errno or errno.ENOENT)}\n")
            status = 1
            continue
        try:
            if st.kind == "dir":
                if not flags & {"r", "R"}:
                    c.err(f"rm: '{f}' is a directory\n")
                    status = 1
                    continue
                _remove_tree(c.vfs, path)
            else:
                c.vfs.unlink(path)
        except OSError as e:
            if "f" in flags and e.errno == errno.ENOENT:
                continue
            c.err(f"rm: can't remove '{f}': {os.strerror(e.errno or errno.ENOENT)}\n")
            status = 1
    return status


def _mkdir(c: Ctx, args: list[str]) -> int:
    flags, dirs = _flags(args[1:], "p")
    status = 0
    for d in dirs:
        try:
            if "p" in flags:
                c.vfs.makedirs(c.path(d))
            else:
                c.vfs.mkdir(c.path(d))
        except OSError as e:
            c.err(f"mkdir: can't create directory '{d}': {os.strerror(e.errno or errno.ENOENT)}\n")
            status = 1
    return status


def _rmdir(c: Ctx, args: list[str]) -> int:
    status = 0
    for d in args[1:]:
        try:
            c.vfs.rmdir(c.path(d))
        except OSError as e:
            c.err(f"rmdir: '{d}': {os.strerror(e.errno or errno.ENOENT)}\n")
            status = 1
    return status


def _copy_tree(vfs: Any, src: str, dst: str) -> None:
    st = vfs.stat(src)
    if st.kind == "dir":
        vfs.mkdir(dst)
        for name in vfs.readdir(src):
            _copy_tree(vfs, os.path.join(src, name), os.path.join(dst, name))
        vfs.chmod(dst, st.mode)
    elif st.kind == "symlink":
        vfs.symlink(vfs.readlink(src), dst)
    else:
        vfs.write(dst, vfs.read(src))
        if st.mode != 0o644:
            vfs.chmod(dst, st.mode)


def _target(c: Ctx, src: str, dest: str, many: bool) -> str:
    d = c.path(dest)
    if many or c.vfs.is_dir(d):
        return os.path.join(d, os.path.basename(src.rstrip("/")))
    return d


def _mv(c: Ctx, args: list[str]) -> int:
    _, names = _flags(args[1:], "fin")
    if len(names) < 2:
        c.err("mv: missing destination\n" if names else "mv: missing file operand\n")
        return 1
    *sources, dest = names
    status = 0
    for s in sources:
        src = c.path(s)
        to = _target(c, s, dest, len(sources) > 1)
        shown = dest if to == c.path(dest) else os.path.join(dest, os.path.basename(s.rstrip("/")))
        try:
            # mv.c's cp_mv_stat(): the destination is stat'ed first; an error other than ENOENT stops this source.
            c.vfs.stat(to, follow=True)
        except OSError as e:
            if e.errno != errno.ENOENT:
                # FEATURE_VERBOSE_CP_MESSAGE words ENOTDIR itself.
                why = "Path has non-directory component" if e.errno == errno.ENOTDIR else os.strerror(e.errno or 0)
                c.err(f"mv: can't stat '{shown}': {why}\n")
                status = 1
                continue
        try:
            c.vfs.stat(src)
            try:
                c.vfs.rename(src, to)
            except OSError as e:
                if e.errno != errno.EXDEV:
                    raise
                # rename(2) says EXDEV (a directory from a lower layer, or another mount): mv copies, then deletes.
                if c.vfs.exists(to):
                    _remove_tree(c.vfs, to)
                _copy_tree(c.vfs, src, to)
                _remove_tree(c.vfs, src)
        except OSError as e:
            c.err(f"mv: can't rename '{s}': {os.strerror(e.errno or errno.ENOENT)}\n")
            status = 1
    return status


def _cp(c: Ctx, args: list[str]) -> int:
    flags, names = _flags(args[1:], "rRapfdP")
    if len(names) < 2:
        c.err("cp: missing file operand\n")
        return 1
    *sources, dest = names
    status = 0
    for s in sources:
        src = c.path(s)
        try:
            st = c.vfs.stat(src, follow=True)
        except OSError as e:
            c.err(f"cp: can't stat '{s}': {os.strerror(e.errno or errno.ENOENT)}\n")
            status = 1
            continue
        to = _target(c, s, dest, len(sources) > 1)
        try:
            if st.kind == "dir":
                if not flags & {"r", "R", "a"}:
                    c.err(f"cp: omitting directory '{s}'\n")
                    status = 1
                    continue
                _copy_tree(c.vfs, src, to)
            else:
                existed = c.vfs.exists(to)
                c.vfs.write(to, c.vfs.read(src))
                if flags & {"p", "a"}:
                    c.vfs.chmod(to, st.mode)
                elif not existed:
                    # open(2) with O_CREAT and the source's mode, less the umask (022); a file that
                    # was there keeps its own mode.
                    c.vfs.chmod(to, st.mode & ~0o022)
        except OSError as e:
            c.err(f"cp: can't create '{to}': {os.strerror(e.errno or errno.ENOENT)}\n")
            status = 1
    return status


def _chmod(c: Ctx, args: list[str]) -> int:
    """``chmod [-R] MODE FILE...``: ``-R`` changes each directory, then what is in it; symlinks met on the
    way are left alone (a symlink's own mode means nothing), as busybox does."""
    flags, rest = _flags(args[1:], "R")
    if len(rest) < 2:
        c.err("chmod: missing operand\n")
        return 1
    spec, *files = rest
    status = 0

    def change(path: str, shown: str, top: bool) -> None:
        st = c.vfs.stat(path, follow=top)
        if st.kind == "symlink":
            return
        c.vfs.chmod(path, _parse_mode(spec, st.mode))
        if "R" in flags and st.kind == "dir":
            for name in c.vfs.readdir(path):
                change(os.path.join(path, name), _child(shown, name), False)

    for f in files:
        try:
            change(c.path(f), f, True)
        except OSError as e:
            c.err(f"chmod: {f}: {os.strerror(e.errno or errno.ENOENT)}\n")
            status = 1
        except ValueError:
            c.err(f"chmod: invalid mode '{spec}'\n")
            return 1
    return status


def _child(path: str, name: str) -> str:
    """``path/name`` as busybox's concat_path_file writes it (no doubled slash after ``d/`` or ``/``)."""
    return path + name if path.endswith("/") else f"{path}/{name}"


#: find's -type letters, by the simulated filesystem's kinds.
_FIND_TYPES = {"file": "f", "dir": "d", "symlink": "l", "dev": "c"}


def _find(c: Ctx, args: list[str]) -> int:
    """``find [PATH]... [-type f|d|l|c] [-name GLOB] [-maxdepth N] [-print]``: a preorder walk of each
    PATH (default ``.``), in readdir order, printing what matches every test. Symlinks are not followed."""
    paths: list[str] = []
    rest = args[1:]
    while rest and not rest[0].startswith("-"):
        paths.append(rest.pop(0))
    kind = name = None
    maxdepth = -1
    while rest:
        opt = rest.pop(0)
        if opt == "-print":
            continue
        if opt not in ("-type", "-name", "-maxdepth"):
            c.err(f"find: unrecognized: {opt}\n")
            return 1
        if not rest:
            c.err(f"find: {opt} requires an argument\n")
            return 1
        value = rest.pop(0)
        if opt == "-type":
            if value not in "fdlcbps" or len(value) != 1:
                c.err(f"find: invalid argument '{value}' to '-type'\n")
                return 1
            kind = value
        elif opt == "-name":
            name = value
        elif not value.isdigit():
            c.err(f"find: invalid number '{value}'\n")
            return 1
        else:
            maxdepth = int(value)
    status = 0

    def walk(path: str, shown: str, depth: int) -> None:
        st = c.vfs.stat(path)
        base = os.path.basename(shown.rstrip("/")) or "/"
        if (kind is None or _FIND_TYPES.get(st.kind) == kind) and (name is None or fnmatch.fnmatchcase(base, name)):
            c.out(shown + "\n")
        if st.kind == "dir" and (maxdepth < 0 or depth < maxdepth):
            for entry in c.vfs.readdir(path):
                walk(os.path.join(path, entry), _child(shown, entry), depth + 1)

    for top in paths or ["."]:
        try:
            walk(c.path(top), top, 0)
        except OSError as e:
            c.err(f"find: {top}: {os.strerror(e.errno or errno.ENOENT)}\n")
            status = 1
    return status


def _parse_mode(spec: str, cur: int) -> int:
    if re.fullmatch(r"[0-7]{1,4}", spec):
        return int(spec, 8)
    mode = cur
    for part in spec.split(","):
        m = re.fullmatch(r"([ugoa]*)([-+=])([rwxst]*)", part)
        if not m:
            raise ValueError(spec)
        who = m.group(1) or "a"
        bits = 0
        for ch in m.group(3):
            for w in ("u", "g", "o"):
                if w in who or "a" in who:
                    shift = {"u": 6, "g": 3, "o": 0}[w]
                    bits |= {"r": 4, "w": 2, "x": 1}.get(ch, 0) << shift
        if m.group(2) == "+":
            mode |= bits
        elif m.group(2) == "-":
            mode &= ~bits
        else:
            mode = bits
    return mode


def _hostname(c: Ctx, args: list[str]) -> int:
    ct = c.world.containers[c.proc.cid]
    c.out(ct.hostname + "\n")
    return 0


def _id(c: Ctx, args: list[str]) -> int:
    if "-u" in args:
        c.out("0\n")
    elif "-g" in args:
        c.out("0\n")
    elif "-un" in args or args[1:] == ["-u", "-n"]:
        c.out("root\n")
    else:
        c.out("uid=0(root) gid=0(root)\n")
    return 0


def _whoami(c: Ctx, args: list[str]) -> int:
    c.out("root\n")
    return 0


def _ps(c: Ctx, args: list[str]) -> int:
    procs = c.world.procs_of(c.proc.cid)
    cols = ["pid", "user", "args"]
    if "-o" in args and args.index("-o") + 1 < len(args):
        cols = args[args.index("-o") + 1].split(",")
    widths = {"pid": 5, "ppid": 5, "user": 8, "rss": 5, "stat": 4}
    names = {"comm": "COMMAND", "args": "COMMAND"}
    rows = [" ".join(names.get(col, col.upper()).ljust(widths.get(col, 0)) for col in cols)]
    for q in procs:
        vals = []
        for col in cols:
            if col == "pid":
                vals.append(f"{q.pid:>5}")
            elif col == "ppid":
                vals.append(f"{q.ppid:>5}")
            elif col == "user":
                vals.append(f"{'root':<8}")
            elif col == "comm":
                vals.append(os.path.basename(q.argv[0]) if q.argv else "")
            elif col == "rss":
                vals.append(f"{q.mem // 1024}")
            elif col == "stat":
                vals.append({"run": "R", "exited": "Z"}.get(q.state, "S"))
            else:
                vals.append(" ".join(q.argv))
        rows.append(" ".join(vals))
    c.out("\n".join(rows) + "\n")
    return 0


def _seq(c: Ctx, args: list[str]) -> int:
    try:
        nums = [float(a) if "." in a else int(a) for a in args[1:]]
    except ValueError:
        c.err(f"seq: invalid number '{args[1:]}'\n")
        return 1
    if not 1 <= len(nums) <= 3:
        c.err("seq: usage: seq [FIRST [INC]] LAST\n")
        return 1
    first, inc, last = (1, 1, nums[0]) if len(nums) == 1 else (nums[0], 1, nums[1]) if len(nums) == 2 else nums
    out = []
    x = first
    while (inc > 0 and x <= last) or (inc < 0 and x >= last):
        out.append(f"{x}\n")
        x += inc
        if len(out) > 1_000_000:
            break
    c.out("".join(out))
    return 0


def _wc(c: Ctx, args: list[str]) -> int:
    flags, files = _flags(args[1:], "lwcm")
    inputs, status = c.read_inputs("wc", files)
    for name, data in inputs:
        counts = {"l": data.count(b"\n"), "w": len(data.split()), "c": len(data)}
        chosen = [k for k in "lwc" if k in flags or (k == "c" and "m" in flags)] or ["l", "w", "c"]
        nums = [counts[k] for k in chosen]
        if len(nums) == 1:
            text = str(nums[0])
        else:
            text = " ".join(f"{n:>9}" for n in nums)
        c.out(text + (f" {name}" if name != "-" else "") + "\n")
    return status


def _grep(c: Ctx, args: list[str]) -> int:
    flags, rest = _flags(args[1:], "cvinqlEFsw")
    if not rest:
        c.err("grep: usage: grep [-cvinq] PATTERN [FILE]...\n")
        return 2
    pattern, files = rest[0], rest[1:]
    regex = re.escape(pattern) if "F" in flags else pattern.replace(r"\|", "|").replace(r"\(", "(").replace(r"\)", ")")
    if "w" in flags:
        regex = rf"\b(?:{regex})\b"
    try:
        rx = re.compile(regex, re.I if "i" in flags else 0)
    except re.error:
        rx = re.compile(re.escape(pattern), re.I if "i" in flags else 0)
    inputs, status = c.read_inputs("grep", files)
    found = False
    for name, data in inputs:
        lines = data.decode(errors="replace").splitlines()
        hits = [(i, ln) for i, ln in enumerate(lines, 1) if bool(rx.search(ln)) != ("v" in flags)]
        found = found or bool(hits)
        if "q" in flags:
            continue
        prefix = f"{name}:" if len(inputs) > 1 else ""
        if "c" in flags:
            c.out(f"{prefix}{len(hits)}\n")
        elif "l" in flags:
            if hits:
                c.out(name + "\n")
        else:
            for i, ln in hits:
                c.out(prefix + (f"{i}:" if "n" in flags else "") + ln + "\n")
    if status and not found:
        return 2
    return 0 if found else 1


def _head_tail(c: Ctx, args: list[str], tail: bool) -> int:
    name = "tail" if tail else "head"
    n = 10
    count: int | None = None  # head -c N: bytes, not lines
    files = []
    it = iter(args[1:])
    for a in it:
        if not tail and (a == "-c" or a.startswith("-c")):
            a = next(it, "") if a == "-c" else a[2:]
            if not a.isdigit():
                c.err(f"head: invalid number '{a}'\n")
                return 1
            count = int(a)
        elif a == "-n":
            a = next(it, "10")
            n = int(a.lstrip("+-") or 10)
        elif a.startswith("-n"):
            n = int(a[2:].lstrip("+-") or 10)
        elif re.fullmatch(r"-\d+", a):
            n = int(a[1:])
        else:
            files.append(a)
    inputs, status = c.read_inputs(name, files)
    for idx, (fname, data) in enumerate(inputs):
        lines = data.splitlines(keepends=True)
        if len(inputs) > 1:
            c.out(("\n" if idx else "") + f"==> {fname} <==\n")
        if count is not None:
            c.out(data[:count])
            continue
        c.out(b"".join(lines[-n:] if tail and n else [] if tail else lines[:n]))
    return status


def _tr(c: Ctx, args: list[str]) -> int:
    flags, sets = _flags(args[1:], "ds")

    def expand(s: str) -> str:
        s = _escapes(s)[0]
        return re.sub(r"(.)-(.)", lambda m: "".join(chr(x) for x in range(ord(m.group(1)), ord(m.group(2)) + 1)), s)

    data = c.stdin().decode(errors="replace")
    if "d" in flags and sets:
        drop = set(expand(sets[0]))
        c.out("".join(ch for ch in data if ch not in drop))
        return 0
    if len(sets) < 2:
        c.err("tr: missing operand\n")
        return 1
    a, b = expand(sets[0]), expand(sets[1])
    b = b + b[-1:] * max(len(a) - len(b), 0)
    c.out(data.translate(str.maketrans(a, b[:len(a)])))
    return 0


def _env_applet(c: Ctx, args: list[str]) -> int:
    c.out("".join(f"{k}={v}\n" for k, v in c.proc.env.items()))
    return 0


def _uname(c: Ctx, args: list[str]) -> int:
    release = os.uname().release if hasattr(os, "uname") else "6.0.0"
    if "-a" in args:
        ct = c.world.containers[c.proc.cid]
        c.out(f"Linux {ct.hostname} {release} #1 SMP labkit-sim x86_64 GNU/Linux\n")
    elif "-r" in args:
        c.out(release + "\n")
    else:
        c.out("Linux\n")
    return 0


def _date(c: Ctx, args: list[str]) -> int:
    c.out(c.world.wall().strftime("%a %b %e %H:%M:%S UTC %Y") + "\n")
    return 0


def _kill(c: Ctx, args: list[str]) -> int:
    sig = int(_signal.SIGTERM)
    targets = []
    it = iter(args[1:])
    for a in it:
        if a == "-s":
            a = "-" + next(it, "TERM")
        if a.startswith("-") and len(a) > 1:
            name = a[1:].upper()
            sig = int(name) if name.isdigit() else int(getattr(_signal, "SIG" + name.removeprefix("SIG")))
        else:
            targets.append(a)
    status = 0
    mine = {q.pid: q for q in c.world.procs_of(c.proc.cid)}
    for t in targets:
        if not t.lstrip("-").isdigit() or int(t) not in mine:
            c.err(f"sh: can't kill pid {t}: No such process\n")
            status = 1
            continue
        kill(c.world, mine[int(t)], sig)
    return status


def _ln(c: Ctx, args: list[str]) -> int:
    flags, names = _flags(args[1:], "sf")
    if len(names) != 2:
        c.err("ln: usage: ln -s TARGET LINK\n")
        return 1
    target, link = names
    try:
        if "s" in flags:
            c.vfs.symlink(target, _target(c, target, link, False))
        else:
            # A hard link goes through the model's link(): the source is copied up first.
            c.vfs._change("link", c.path(target), _target(c, target, link, False))
    except OSError as e:
        c.err(f"ln: {link}: {os.strerror(e.errno or errno.ENOENT)}\n")
        return 1
    return 0


def _basename(c: Ctx, args: list[str]) -> int:
    name = os.path.basename(args[1].rstrip("/")) if len(args) > 1 else ""
    if len(args) > 2 and name.endswith(args[2]):
        name = name[: -len(args[2])]
    c.out(name + "\n")
    return 0


def _dirname(c: Ctx, args: list[str]) -> int:
    c.out((os.path.dirname(args[1].rstrip("/")) or ".") + "\n" if len(args) > 1 else ".\n")
    return 0


def _sort(c: Ctx, args: list[str]) -> int:
    flags, files = _flags(args[1:], "rnu")
    inputs, status = c.read_inputs("sort", files)
    lines = [ln for _, d in inputs for ln in d.decode(errors="replace").splitlines()]
    key = (lambda s: (int(re.match(r"\s*-?\d*", s).group().strip() or 0), s)) if "n" in flags else None  # type: ignore[union-attr]
    lines = sorted(set(lines) if "u" in flags else lines, key=key, reverse="r" in flags)  # type: ignore[arg-type]
    c.out("".join(ln + "\n" for ln in lines))
    return status


def _sh_applet(c: Ctx, args: list[str]) -> int:
    return 0


#: The first line of busybox's usage texts (the Debian busybox the real image is made from).
BANNER = "BusyBox v1.35.0 (Debian 1:1.35.0-4+deb12u1+b1) multi-call binary.\n\n"

_USAGE = {
    "truncate": "Usage: truncate [-c] -s SIZE FILE...\n\nTruncate FILEs to SIZE\n\n\t-c\tDo not create files\n"
                "\t-s SIZE\n",
    "cut": "Usage: cut [OPTIONS] [FILE]...\n\nPrint selected fields from FILEs to stdout\n\n"
           "\t-b LIST\tOutput only bytes from LIST\n\t-c LIST\tOutput only characters from LIST\n"
           "\t-d SEP\tField delimiter for input (default -f TAB, -F run of whitespace)\n"
           "\t-O SEP\tField delimiter for output (default = -d for -f, one space for -F)\n"
           "\t-D\tDon't sort/collate sections or match -fF lines without delimiter\n"
           "\t-f LIST\tPrint only these fields (-d is single char)\n\t-F LIST\tPrint only these fields (-d is regex)\n"
           "\t-s\tOutput only lines containing delimiter\n\t-n\tIgnored\n",
    "md5sum": "Usage: md5sum [-c[sw]] [FILE]...\n\nPrint or check MD5 checksums\n\n"
              "\t-c\tCheck sums against list in FILEs\n\t-s\tDon't output anything, status code shows success\n"
              "\t-w\tWarn about improperly formatted checksum lines\n",
    "stat": "Usage: stat [-ltf] [-c FMT] FILE...\n\nDisplay file (default) or filesystem status\n\n"
            "\t-c FMT\tUse the specified format\n\t-f\tDisplay filesystem status\n\t-L\tFollow links\n"
            "\t-t\tTerse display\n\nFMT sequences for files:\n"
            " %a\tAccess rights in octal\n %A\tAccess rights in human readable form\n"
            " %b\tNumber of blocks allocated (see %B)\n %B\tSize in bytes of each block reported by %b\n"
            " %d\tDevice number in decimal\n %D\tDevice number in hex\n %f\tRaw mode in hex\n %F\tFile type\n"
            " %g\tGroup ID\n %G\tGroup name\n %h\tNumber of hard links\n %i\tInode number\n %n\tFile name\n"
            " %N\tFile name, with -> TARGET if symlink\n %o\tI/O block size\n %s\tTotal size in bytes\n"
            " %t\tMajor device type in hex\n %T\tMinor device type in hex\n %u\tUser ID\n %U\tUser name\n"
            " %x\tTime of last access\n %X\tTime of last access as seconds since Epoch\n"
            " %y\tTime of last modification\n %Y\tTime of last modification as seconds since Epoch\n"
            " %z\tTime of last change\n %Z\tTime of last change as seconds since Epoch\n\n"
            "FMT sequences for file systems:\n"
            " %a\tFree blocks available to non-superuser\n %b\tTotal data blocks\n %c\tTotal file nodes\n"
            " %d\tFree file nodes\n %f\tFree blocks\n %i\tFile System ID in hex\n %l\tMaximum length of filenames\n"
            " %n\tFile name\n %s\tBlock size (for faster transfer)\n %S\tFundamental block size (for block counts)\n"
            " %t\tType in hex\n %T\tType in human readable form\n",
}


def _usage(c: Ctx, applet: str) -> int:
    """bb_show_usage(): the applet's usage on stderr, exit status 1."""
    c.err(BANNER + _USAGE[applet])
    return 1


def _getopt(c: Ctx, args: list[str], spec: str) -> tuple[dict[str, str | bool], list[str]] | None:
    """getopt32() as busybox calls it: ``spec`` is getopt(3)'s (``"cs:"``); options may follow operands.

    Returns:
        ``(options, operands)``, or ``None`` once the error and the usage are printed.
    """
    applet = os.path.basename(args[0])
    opts: dict[str, str | bool] = {}
    rest: list[str] = []
    i = 1
    while i < len(args):
        a = args[i]
        if a == "--":
            rest += args[i + 1:]
            break
        if not a.startswith("-") or a == "-":
            rest.append(a)
            i += 1
            continue
        j = 1
        while j < len(a):
            ch = a[j]
            k = spec.find(ch)
            if k < 0 or ch == ":":
                c.err(f"{applet}: invalid option -- '{ch}'\n")
                _usage(c, applet)
                return None
            if k + 1 < len(spec) and spec[k + 1] == ":":
                if j + 1 < len(a):
                    opts[ch] = a[j + 1:]
                elif i + 1 < len(args):
                    i += 1
                    opts[ch] = args[i]
                else:
                    c.err(f"{applet}: option requires an argument -- '{ch}'\n")
                    _usage(c, applet)
                    return None
                break
            opts[ch] = True
            j += 1
        i += 1
    return opts, rest


_SIZE_SUFFIXES = {"": 1, "b": 512, "k": 1024, "K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}


def _truncate(c: Ctx, args: list[str]) -> int:
    """truncate(1): ftruncate(2) each FILE to SIZE (created empty first unless -c); a copy-up for an image file."""
    parsed = _getopt(c, args, "cs:")
    if parsed is None:
        return 1
    opts, files = parsed
    if "s" not in opts or not files:
        return _usage(c, "truncate")
    text = str(opts["s"])
    m = re.fullmatch(r"(\d+)([bkKMG]?)", text)
    if not m:
        c.err(f"truncate: invalid number '{text}'\n")
        return 1
    size = int(m.group(1)) * _SIZE_SUFFIXES[m.group(2)]
    status = 0
    for f in files:
        path = c.path(f)
        try:
            if not c.vfs.exists(path):
                if opts.get("c"):
                    continue
                c.vfs.write(path, b"", append=True)  # open(O_WRONLY | O_CREAT)
            c.vfs.truncate(path, size)
        except OSError as e:
            c.err(f"truncate: {f}: open: {os.strerror(e.errno or errno.ENOENT)}\n")
            status = 1
    return status


def _md5sum(c: Ctx, args: list[str]) -> int:
    """md5sum(1): ``HASH  NAME`` per file (``-`` for stdin); ``-c`` checks a list of them."""
    import hashlib

    parsed = _getopt(c, args, "csw")
    if parsed is None:
        return 1
    opts, files = parsed
    files = files or ["-"]
    status = 0
    if not opts.get("c"):
        for f in files:
            try:
                data = c.stdin() if f == "-" else c.vfs.read(c.path(f))
            except OSError as e:
                c.err(f"md5sum: can't open '{f}': {os.strerror(e.errno or errno.ENOENT)}\n")
                status = 1
                continue
            c.out(f"{hashlib.md5(data).hexdigest()}  {f}\n")
        return status
    for f in files:
        try:
            listing = c.stdin() if f == "-" else c.vfs.read(c.path(f))
        except OSError as e:
            c.err(f"md5sum: can't open '{f}': {os.strerror(e.errno or errno.ENOENT)}\n")
            status = 1
            continue
        checked = failed = 0
        for ln in listing.decode(errors="replace").splitlines():
            want, sep, name = ln.partition("  ")
            if not sep or len(want) != 32:
                continue
            checked += 1
            try:
                ok = hashlib.md5(c.vfs.read(c.path(name))).hexdigest() == want.lower()
            except OSError as e:
                c.err(f"md5sum: can't open '{name}': {os.strerror(e.errno or errno.ENOENT)}\n")
                ok = False
            failed += not ok
            if not opts.get("s"):
                c.out(f"{name}: {'OK' if ok else 'FAILED'}\n")
        if not checked:
            c.err(f"md5sum: {f}: no checksum lines found\n")
            status = 1
        elif failed:
            c.err(f"md5sum: WARNING: {failed} of {checked} computed checksums did NOT match\n")
            status = 1
    return status


def _cut_list(text: str) -> list[tuple[int, int]] | None:
    """cut's LIST: ``N``, ``N-``, ``-M``, ``N-M``, comma separated (1-based, ends inclusive)."""
    ranges = []
    for part in text.split(","):
        m = re.fullmatch(r"(\d*)(-?)(\d*)", part)
        if not m or not (m.group(1) or m.group(3)) or (not m.group(2) and not m.group(1)):
            return None
        lo = int(m.group(1)) if m.group(1) else 1
        hi = int(m.group(3)) if m.group(3) else (lo if not m.group(2) else 1 << 30)
        if lo < 1 or hi < lo:
            return None
        ranges.append((lo, hi))
    return ranges


def _cut(c: Ctx, args: list[str]) -> int:
    """cut(1): -b/-c byte or character positions, -f fields split at -d (TAB), -s, -O, -D."""
    parsed = _getopt(c, args, "b:c:d:f:sO:Dn")
    if parsed is None:
        return 1
    opts, files = parsed
    modes = [k for k in "bcf" if k in opts]
    if not modes:
        c.err("cut: expected a list of bytes, characters, or fields\n")
        return 1
    if len(modes) > 1:
        c.err("cut: only one type of list may be specified\n")
        return 1
    mode = modes[0]
    ranges = _cut_list(str(opts[mode]))
    if ranges is None:
        c.err(f"cut: invalid range '{opts[mode]}'\n" if "-" in str(opts[mode]) else
              f"cut: invalid number '{opts[mode]}'\n")
        return 1
    delim = str(opts.get("d", "\t"))
    if mode == "f" and len(delim) != 1:
        c.err("cut: the delimiter must be a single character\n")
        return 1
    out_delim = str(opts["O"]) if "O" in opts else delim
    if not opts.get("D"):
        ranges = sorted(ranges)

    def picked(n: int) -> list[int]:
        if opts.get("D"):
            return [i for lo, hi in ranges for i in range(lo, min(hi, n) + 1)]
        return [i for i in range(1, n + 1) if any(lo <= i <= hi for lo, hi in ranges)]

    inputs, status = c.read_inputs("cut", files)
    for _, data in inputs:
        text = data.decode(errors="replace")
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        for ln in lines:
            if mode in "bc":
                c.out("".join(ln[i - 1] for i in picked(len(ln))) + "\n")
                continue
            if delim not in ln:
                if not opts.get("s"):
                    c.out(ln + "\n")
                continue
            fields = ln.split(delim)
            c.out(out_delim.join(fields[i - 1] for i in picked(len(fields))) + "\n")
    return status


_FILE_TYPES = {"dir": "directory", "symlink": "symbolic link", "dev": "character special file"}
_TYPE_BITS = {"file": _stat_mod.S_IFREG, "dir": _stat_mod.S_IFDIR, "symlink": _stat_mod.S_IFLNK,
              "dev": _stat_mod.S_IFCHR}
#: ``st_dev`` of the container's root as the simulator numbers it (overlayfs has an anonymous device).
_OVERLAY_DEV = 0x2F


def _stat_sequence(values: dict[str, str], m: re.Match[str]) -> str:
    """One ``%X`` of stat's format: its value; an unknown letter prints itself, a lone ``%`` stays."""
    return values.get(m.group(1), m.group(1)) if m.group(1) else "%"


def _stat_applet(c: Ctx, args: list[str]) -> int:
    """stat(1): each FILE's lstat(2) (stat(2) with -L), in busybox's layout, ``-t`` terse, or ``-c FMT``."""
    from datetime import datetime, timezone

    parsed = _getopt(c, args, "c:fLt")
    if parsed is None:
        return 1
    opts, files = parsed
    if not files:
        return _usage(c, "stat")
    if opts.get("f"):
        c.err("stat: -f (file system status) is not simulated\n")
        return 1
    users, groups = _names(c, "/etc/passwd"), _names(c, "/etc/group")
    status = 0
    for f in files:
        path = c.path(f)
        try:
            st = c.vfs.stat(path, follow=bool(opts.get("L")))
        except OSError as e:
            c.err(f"stat: can't stat '{f}': {os.strerror(e.errno or errno.ENOENT)}\n")
            status = 1
            continue
        kind = "regular empty file" if st.kind == "file" and st.size == 0 else \
            _FILE_TYPES.get(st.kind, "regular file")
        raw = _TYPE_BITS[st.kind] | st.mode
        dev = 5 if st.kind == "dev" else _OVERLAY_DEV
        when = datetime.fromtimestamp(st.mtime, timezone.utc).strftime("%Y-%m-%d %H:%M:%S.000000000 +0000")
        target = c.vfs.readlink(path) if st.kind == "symlink" else None

        values = {
            "a": f"{st.mode:o}", "A": _mode_string(st), "b": str(st.blocks), "B": "512", "d": str(dev),
            "D": f"{dev:x}", "f": f"{raw:x}", "F": kind, "g": str(st.gid), "G": groups.get(st.gid, "UNKNOWN"),
            "h": str(st.nlink), "i": str(st.ino), "n": f,
            "N": f"'{f}' -> '{target}'" if target is not None else f,
            "o": "4096", "s": str(st.size), "t": f"{st.rdev[0]:x}", "T": f"{st.rdev[1]:x}", "u": str(st.uid),
            "U": users.get(st.uid, "UNKNOWN"), "x": when, "X": str(st.mtime), "y": when, "Y": str(st.mtime),
            "z": when, "Z": str(st.mtime), "%": "%",
        }

        if "c" in opts:
            # An unknown sequence prints its letter, as busybox's print_it() does.
            c.out(re.sub(r"%(.?)", functools.partial(_stat_sequence, values), str(opts["c"])) + "\n")
        elif opts.get("t"):
            c.out(" ".join(values[ch] for ch in "nsbfugDihtTXYZo") + "\n")
        else:
            name = f"'{f}' -> '{target}'" if target is not None else f
            devtype = f" Device type: {st.rdev[0]:x},{st.rdev[1]:x}" if st.kind == "dev" else ""
            c.out(f"  File: {name}\n"
                  f"  Size: {st.size:<10}\tBlocks: {st.blocks:<10} IO Block: {4096:<6} {kind}\n"
                  f"Device: {dev:x}h/{dev}d\tInode: {st.ino:<10}  Links: {st.nlink:<5}{devtype}\n"
                  f"Access: ({st.mode:04o}/{_mode_string(st)})  Uid: ({st.uid:>5}/{users.get(st.uid, 'UNKNOWN'):>8})"
                  f"   Gid: ({st.gid:>5}/{groups.get(st.gid, 'UNKNOWN'):>8})\n"
                  f"Access: {when}\nModify: {when}\nChange: {when}\n")
    return status


#: busybox's programs the simulator runs, by applet name.
APPLETS: dict[str, Callable[[Ctx, list[str]], Any]] = {
    "echo": _echo, "printf": _printf, "test": _test, "[": _test, "true": _true, "false": _false,
    "sleep": _sleep, "cat": _cat, "ls": _ls, "touch": _touch, "rm": _rm, "mkdir": _mkdir, "rmdir": _rmdir,
    "mv": _mv, "cp": _cp, "chmod": _chmod, "hostname": _hostname, "id": _id, "whoami": _whoami, "ps": _ps,
    "seq": _seq, "wc": _wc, "grep": _grep, "head": lambda c, a: _head_tail(c, a, False),
    "tail": lambda c, a: _head_tail(c, a, True), "tr": _tr, "env": _env_applet, "uname": _uname, "date": _date,
    "kill": _kill, "ln": _ln, "basename": _basename, "find": _find, "dirname": _dirname, "sort": _sort, "pwd": lambda c, a: _b_pwd(c.world, c.proc, a),
    "truncate": _truncate, "md5sum": _md5sum, "cut": _cut, "stat": _stat_applet,
}

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
    import shlex

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
