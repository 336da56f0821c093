"""What busybox's applets share (busybox's own ``libbb/``): the applet's context, option parsing, usage texts.

An applet is a function ``(ctx, argv) -> status`` (or :class:`Sleep`); its
:class:`Ctx` is the process it runs as, its streams and its filesystem.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from labkit.sim.kernel import World
from labkit.sim.overlay import vfs_for
from labkit.sim.process import Proc, write


@dataclass(frozen=True)
class Sleep:
    """What ``sleep`` returns: the caller sleeps this many simulated seconds."""

    seconds: float


class Ctx:
    """What an applet sees: its process, its output streams, its filesystem."""

    def __init__(self, world: World, proc: Proc, name: str | None = None) -> None:
        self.world = world
        self.proc = proc
        self.name = name or (os.path.basename(proc.argv[0]) if proc.argv else "sh")  # busybox's applet_name
        self.vfs = vfs_for(world, proc.cid, proc)
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

    def open_or_warn(self, name: str, f: str) -> bytes | None:
        """libbb's fopen_or_warn_stdin(): what file ``f`` holds (``-``: stdin), or ``None`` once applet ``name`` has
        said ``can't open 'F': REASON`` on stderr."""
        try:
            return self.stdin() if f == "-" else self.vfs.read(self.path(f))
        except OSError as e:
            self.err(f"{name}: can't open '{f}': {os.strerror(e.errno or errno.ENOENT)}\n")
            return None

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


#: An applet: ``(ctx, argv)`` to its exit status, or a :class:`Sleep` (it sleeps, then exits 0).
Applet = Callable[[Ctx, list[str]], Any]


def parse_flags(args: list[str], known: str) -> tuple[set[str], list[str]]:
    """The single-letter flags among ``args`` that are all in ``known``, and the operands (what follows ``--`` too);
    an argument with another letter is an operand, as the simulator's older applets have always read it."""
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


#: The first line of busybox's usage texts (the Debian busybox the real image is made from).
BANNER = "BusyBox v1.35.0 (Debian 1:1.35.0-4+deb12u1+b1) multi-call binary.\n\n"


USAGE = {
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


def usage(c: Ctx, applet: str) -> int:
    """bb_show_usage(): the applet's usage on stderr, exit status 1."""
    c.err(BANNER + USAGE[applet])
    return 1


def getopt(c: Ctx, args: list[str], spec: str) -> tuple[dict[str, str | bool], list[str]] | None:
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
                usage(c, applet)
                return None
            if k + 1 < len(spec) and spec[k + 1] == ":":
                if j + 1 < len(a):
                    opts[ch] = a[j + 1:]
                elif i + 1 < len(args):
                    i += 1
                    opts[ch] = args[i]
                else:
                    c.err(f"{applet}: option requires an argument -- '{ch}'\n")
                    usage(c, applet)
                    return None
                break
            opts[ch] = True
            j += 1
        i += 1
    return opts, rest


def mode_string(st: Any) -> str:
    """bb_mode_string(): ``drwxrwxrwt``, with setuid/setgid (s/S) and the sticky bit (t/T)."""
    t = {"dir": "d", "symlink": "l", "dev": "c"}.get(st.kind, "-")
    bits = [ch if st.mode & (1 << (8 - i)) else "-" for i, ch in enumerate("rwxrwxrwx")]
    for i, flag, ch in ((2, 0o4000, "s"), (5, 0o2000, "s"), (8, 0o1000, "t")):
        if st.mode & flag:
            bits[i] = ch if bits[i] == "x" else ch.upper()
    return t + "".join(bits)


def id_names(c: Ctx, table: str) -> dict[int, str]:
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


def concat_path(path: str, name: str) -> str:
    """``path/name`` as busybox's concat_path_file writes it (no doubled slash after ``d/`` or ``/``)."""
    return path + name if path.endswith("/") else f"{path}/{name}"
