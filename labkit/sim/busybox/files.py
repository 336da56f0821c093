"""busybox's applets for files and directories: ls, touch, rm, mkdir, rmdir, mv, cp, chmod, find, ln, stat,
truncate.

They act through the container's filesystem (:class:`labkit.sim.overlay.Vfs`),
so every change is an overlay operation: ``touch`` on an image file copies
it up, ``rm`` leaves a whiteout, ``mv`` of a lower directory gets EXDEV and
copies (as busybox's mv does when rename(2) says so).
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import functools
import os
import re
import stat as _stat_mod
from datetime import datetime, timezone
from typing import Any

from labkit.sim.busybox.libbb import Applet, Ctx, concat_path, getopt, id_names, mode_string, parse_flags, usage


def _ls_time(c: Ctx, mtime: int) -> str:
    """ls -l's time: "Jun 22 12:34" within half a year, else "Jun 22  2017" (busybox's ls.c)."""
    when = datetime.fromtimestamp(mtime, timezone.utc)
    age = c.world.epoch + c.world.now - mtime
    return when.strftime("%b %e %H:%M") if -15 * 60 < age < 3600 * 24 * 365 / 2 else when.strftime("%b %e  %Y")


def _ls(c: Ctx, args: list[str]) -> int:
    flags, paths = parse_flags(args[1:], "alAdF1h")
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

    users, groups = (id_names(c, "/etc/passwd"), id_names(c, "/etc/group")) if "l" in flags else ({}, {})

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
        return f"{mode_string(st)} {st.nlink:>4} {user:<8.8} {group:<8.8} {size} {_ls_time(c, st.mtime)} {name}{extra}"

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
    _, files = parse_flags(args[1:], "cam")
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
    flags, files = parse_flags(args[1:], "rRfiv")
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
    flags, dirs = parse_flags(args[1:], "p")
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
    _, names = parse_flags(args[1:], "fin")
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
    flags, names = parse_flags(args[1:], "rRapfdP")
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
    flags, rest = parse_flags(args[1:], "R")
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
                change(os.path.join(path, name), concat_path(shown, name), False)

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
                walk(os.path.join(path, entry), concat_path(shown, entry), depth + 1)

    for top in paths or ["."]:
        try:
            walk(c.path(top), top, 0)
        except OSError as e:
            c.err(f"find: {top}: {os.strerror(e.errno or errno.ENOENT)}\n")
            status = 1
    return status


def _ln(c: Ctx, args: list[str]) -> int:
    flags, names = parse_flags(args[1:], "sf")
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


_SIZE_SUFFIXES = {"": 1, "b": 512, "k": 1024, "K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}


def _truncate(c: Ctx, args: list[str]) -> int:
    """truncate(1): ftruncate(2) each FILE to SIZE (created empty first unless -c); a copy-up for an image file."""
    parsed = getopt(c, args, "cs:")
    if parsed is None:
        return 1
    opts, files = parsed
    if "s" not in opts or not files:
        return usage(c, "truncate")
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
    parsed = getopt(c, args, "c:fLt")
    if parsed is None:
        return 1
    opts, files = parsed
    if not files:
        return usage(c, "stat")
    if opts.get("f"):
        c.err("stat: -f (file system status) is not simulated\n")
        return 1
    users, groups = id_names(c, "/etc/passwd"), id_names(c, "/etc/group")
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
            "a": f"{st.mode:o}", "A": mode_string(st), "b": str(st.blocks), "B": "512", "d": str(dev),
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
                  f"Access: ({st.mode:04o}/{mode_string(st)})  Uid: ({st.uid:>5}/{users.get(st.uid, 'UNKNOWN'):>8})"
                  f"   Gid: ({st.gid:>5}/{groups.get(st.gid, 'UNKNOWN'):>8})\n"
                  f"Access: {when}\nModify: {when}\nChange: {when}\n")
    return status


#: The applets of this module, by name.
APPLETS: dict[str, Applet] = {
    "ls": _ls, "touch": _touch, "rm": _rm, "mkdir": _mkdir, "rmdir": _rmdir, "mv": _mv, "cp": _cp, "chmod": _chmod,
    "find": _find, "ln": _ln, "stat": _stat_applet, "truncate": _truncate,
}
