"""busybox's applets for processes and the system: true, false, sleep, hostname, id, whoami, ps, env, uname,
date, kill, pwd.

What they report is the simulated world's: the container's hostname (its
UTS namespace), its processes under their namespaced PIDs, the simulated
clock. Inside, the user is root (uid 0) unless ``-u`` named another.
"""

from __future__ import annotations

import os
import re
import signal as _signal
from typing import Any

from labkit.sim.busybox.libbb import BANNER, Applet, Ctx, Sleep
from labkit.sim.process import kill, write


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


def _hostname(c: Ctx, args: list[str]) -> int:
    ct = c.world.containers[c.proc.cid]
    c.out(ct.hostname + "\n")
    return 0


def _names(c: Ctx, path: str) -> dict[int, str]:
    """Names by id from the container's ``/etc/passwd`` or ``/etc/group`` (as getpwuid(3) reads them)."""
    try:
        text = c.vfs.read(path).decode(errors="replace")
    except OSError:
        return {}
    out: dict[int, str] = {}
    for line in text.splitlines():
        f = line.split(":")
        if len(f) >= 3 and f[2].isdigit():
            out.setdefault(int(f[2]), f[0])
    return out


def _id(c: Ctx, args: list[str]) -> int:
    """busybox id: the process's uid, gid and groups, each with its name where the container's files give one."""
    p = c.proc
    users, groups = _names(c, "/etc/passwd"), _names(c, "/etc/group")

    def named(n: int, names: dict[int, str]) -> str:
        return f"{n}({names[n]})" if n in names else str(n)

    if "-u" in args or "-un" in args:
        c.out((users.get(p.uid, str(p.uid)) if "-n" in args or "-un" in args else str(p.uid)) + "\n")
    elif "-g" in args or "-gn" in args:
        c.out((groups.get(p.gid, str(p.gid)) if "-n" in args or "-gn" in args else str(p.gid)) + "\n")
    else:
        line = f"uid={named(p.uid, users)} gid={named(p.gid, groups)}"
        if p.groups:
            line += " groups=" + ",".join(named(g, groups) for g in p.groups)
        c.out(line + "\n")
    return 0


def _whoami(c: Ctx, args: list[str]) -> int:
    users = _names(c, "/etc/passwd")
    if c.proc.uid not in users:
        c.err(f"whoami: unknown uid {c.proc.uid}\n")
        return 1
    c.out(users[c.proc.uid] + "\n")
    return 0


def _ps(c: Ctx, args: list[str]) -> int:
    procs = c.world.procs_of(c.proc.cid)
    cols = ["pid", "user", "args"]
    if "-o" in args and args.index("-o") + 1 < len(args):
        cols = args[args.index("-o") + 1].split(",")
    widths = {"pid": 5, "ppid": 5, "user": 8, "rss": 5, "stat": 4}
    names = {"comm": "COMMAND", "args": "COMMAND"}
    rows = [" ".join(names.get(col, col.upper()).ljust(widths.get(col, 0)) for col in cols)]
    users = _names(c, "/etc/passwd")
    for q in procs:
        vals = []
        for col in cols:
            if col == "pid":
                vals.append(f"{q.pid:>5}")
            elif col == "ppid":
                vals.append(f"{q.ppid:>5}")
            elif col == "user":
                vals.append(f"{users.get(q.uid, str(q.uid)):<8}")
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


def _pwd(c: Ctx, args: list[str]) -> int:
    write(c.world, c.proc, 1, c.proc.cwd + "\n")
    return 0


#: The applets of this module, by name.
APPLETS: dict[str, Applet] = {
    "true": _true, "false": _false, "sleep": _sleep, "hostname": _hostname, "id": _id, "whoami": _whoami,
    "ps": _ps, "env": _env_applet, "uname": _uname, "date": _date, "kill": _kill, "pwd": _pwd,
}
