"""busybox's applets for text and words: echo, printf, test, cat, seq, wc, grep, head, tail, tr, sort, cut,
md5sum, basename, dirname.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re

from labkit.sim.busybox.libbb import Applet, Ctx, getopt, parse_flags


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
    flags, files = parse_flags(args[1:], "lwcm")
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
    flags, rest = parse_flags(args[1:], "cvinqlEFsw")
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
    flags, sets = parse_flags(args[1:], "ds")

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


def _sort(c: Ctx, args: list[str]) -> int:
    flags, files = parse_flags(args[1:], "rnu")
    inputs, status = c.read_inputs("sort", files)
    lines = [ln for _, d in inputs for ln in d.decode(errors="replace").splitlines()]
    key = (lambda s: (int(re.match(r"\s*-?\d*", s).group().strip() or 0), s)) if "n" in flags else None  # type: ignore[union-attr]
    lines = sorted(set(lines) if "u" in flags else lines, key=key, reverse="r" in flags)  # type: ignore[arg-type]
    c.out("".join(ln + "\n" for ln in lines))
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
    parsed = getopt(c, args, "b:c:d:f:sO:Dn")
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


def _md5sum(c: Ctx, args: list[str]) -> int:
    """md5sum(1): ``HASH  NAME`` per file (``-`` for stdin); ``-c`` checks the ``HASH  NAME`` lines the files hold."""
    parsed = getopt(c, args, "csw")
    if parsed is None:
        return 1
    opts, files = parsed
    status = 0
    for f in files or ["-"]:
        data = c.open_or_warn("md5sum", f)
        if data is None:
            status = 1
        elif opts.get("c"):
            status |= _md5sum_check(c, f, data, quiet=bool(opts.get("s")))
        else:
            c.out(f"{hashlib.md5(data).hexdigest()}  {f}\n")
    return status


def _md5sum_check(c: Ctx, f: str, listing: bytes, quiet: bool) -> int:
    """``md5sum -c``: each ``HASH  NAME`` line of ``listing`` (read from ``f``) checked.

    Returns:
        0, or 1 when a file's sum differs, a file cannot be read, or ``listing`` holds no such line.
    """
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
        if not quiet:
            c.out(f"{name}: {'OK' if ok else 'FAILED'}\n")
    if not checked:
        c.err(f"md5sum: {f}: no checksum lines found\n")
        return 1
    if failed:
        c.err(f"md5sum: WARNING: {failed} of {checked} computed checksums did NOT match\n")
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


#: The applets of this module, by name.
APPLETS: dict[str, Applet] = {
    "echo": _echo, "printf": _printf, "test": _test, "[": _test, "cat": _cat, "seq": _seq, "wc": _wc, "grep": _grep,
    "head": lambda c, a: _head_tail(c, a, False), "tail": lambda c, a: _head_tail(c, a, True), "tr": _tr,
    "sort": _sort, "cut": _cut, "md5sum": _md5sum, "basename": _basename, "dirname": _dirname,
}
