"""The simulated ``sh`` (a busybox-ash subset), deterministic and resumable: expansion and running.

A script is parsed once and compiled into a flat list of operations
(:mod:`labkit.sim.sh_syntax`). A shell process is then just data: its code,
a program counter, its variables — so it can stop in the middle of a
``sleep`` or a ``wait``, be saved to disk with the world, and go on in the
next CLI call, or be copied for a snapshot. This module expands words
(parameters, ``$(...)``, ``$((...))`` with :mod:`labkit.sim.sh_arith`,
field splitting, ``*``/``?`` globs) and runs the operations: redirections,
pipelines, background jobs, subshells, waits and traps.

A simple command runs as one of: a builtin (:mod:`labkit.sim.sh_builtins`);
one of busybox's applets that ash runs without a fork
(``FEATURE_SH_NOFORK``: ``echo``, ``sleep``, ``cat``, ``rm``, ...,
:data:`labkit.sim.busybox.NOFORK`); or a program found on ``$PATH`` and
forked, which then counts against ``pids.max`` (:class:`Exec`). Messages
are busybox's, word for word where the lessons show them (``sh: nosuch: not
found``, ``sh: can't fork: Resource temporarily unavailable``). A ``$(...)``
runs to its end at once (a ``sleep`` inside it takes no simulated time).
"""

from __future__ import annotations

import errno
import fnmatch
import os
import signal as _signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from labkit.errors import StartFailed
from labkit.sim import cgroups
from labkit.sim.busybox import APPLETS, ASH_BUILTINS, NOFORK
from labkit.sim.busybox.libbb import Ctx, Sleep
from labkit.sim.kernel import World, charge_cpu
from labkit.sim.overlay import vfs_for
from labkit.sim.process import BASE_MEMORY, Proc, exit_proc, spawn, write
from labkit.sim.sh_arith import ArithError, arith
from labkit.sim.sh_builtins import BUILTINS, assign, recount
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
    recount(p)
    return p


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
            assign(world, p, op[2], words[idx])
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
    recount(child)
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
    vfs = vfs_for(world, p.cid, p)
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
            if not assign(world, p, name, value):
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
                used = ex.step(world, q, 1000)
                charge_cpu(world, q, used)  # a $(...) runs here, not through the scheduler: its CPU time is counted here
                ops += used
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
