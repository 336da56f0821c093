"""The simulated ``sh``'s syntax: a script read into words, parsed into a tree and compiled into operations.

Nothing here runs anything (mvdan/sh keeps its ``syntax`` package apart from
its interpreter the same way): :mod:`labkit.sim.shell` expands and runs
what :func:`compile_script` makes.

What is understood: ``;``, newlines, ``&&``, ``||``, ``|``, ``&``, ``!``,
``( )``, ``{ }``, ``if``/``elif``/``else``, ``while``/``until``, ``for``,
``case``; redirections ``>``, ``>>``, ``<``, ``N>``, ``N>&M``; quotes,
backslashes, ``$VAR``, ``${VAR}``, ``${VAR:-x}`` (and ``:=``, ``:+``),
``${#VAR}``, ``$$``, ``$?``, ``$!``, ``$#``, ``$@``, ``$0..$9``, ``$(...)``,
backquotes and ``$((...))``.

* :func:`tokenize` splits a script into words, operators, IO numbers and
  newlines; a word is a list of segments ``(kind, value, quoted)``: ``lit``,
  ``var``, ``param``, ``len``, ``cmd`` (a command substitution's source) or
  ``arith`` (an arithmetic expansion's source, see :mod:`labkit.sim.sh_arith`).
* :func:`parse` makes the tree: nested tuples (``("seq", items)``,
  ``("simple", assigns, words, redirs)``, ``("pipe", commands, negate)``, ...).
* :func:`compile_script` flattens it into a list of operations (``run`` a
  simple command, ``jz``/``jnz``/``jmp``, ``for_next``, ``pipe``, ``bg``,
  ...), so a running shell is just data: its code, a program counter and
  its variables, which can stop anywhere and be saved with the world.

A script that cannot be parsed raises :class:`ShellSyntaxError`; ``sh``
prints ``sh: syntax error: ...`` and exits 2.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

_OPS = ("&&", "||", ";;", ">>", ">&", "<&", ";", "&", "|", "(", ")", "<", ">")


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


_ASSIGN = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=")


class ShellSyntaxError(Exception):
    """The script cannot be parsed; ``sh`` prints ``sh: syntax error: ...`` and exits 2."""


# =========================================================================== lexing

def _match_close(src: str, i: int, open_: str = "(", close: str = ")") -> int:
    """Index of the bracket closing the one just before ``i`` (quotes and nesting respected)."""
    depth = 1
    n = len(src)
    while i < n:
        c = src[i]
        if c == "\\":
            i += 2
            continue
        if c == "'":
            i = src.index("'", i + 1) + 1 if "'" in src[i + 1:] else n
            continue
        if c == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            i = j + 1
            continue
        if c == open_:
            depth += 1
        elif c == close:
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ShellSyntaxError(f"unterminated {open_}")


def _read_dollar(src: str, i: int, quoted: bool) -> tuple[tuple, int]:
    """Read one ``$`` expansion starting at ``src[i] == '$'``."""
    nxt = src[i + 1:i + 2]
    if src.startswith("$((", i):
        end = _match_close(src, i + 3)
        if src[end + 1:end + 2] != ")":
            raise ShellSyntaxError("missing ))")
        return ("arith", src[i + 3:end], quoted), end + 2
    if nxt == "(":
        end = _match_close(src, i + 2)
        return ("cmd", src[i + 2:end], quoted), end + 1
    if nxt == "{":
        end = src.find("}", i + 2)
        if end < 0:
            raise ShellSyntaxError("missing }")
        body = src[i + 2:end]
        if body.startswith("#") and len(body) > 1:
            return ("len", body[1:], quoted), end + 1
        m = re.match(r"([A-Za-z_][A-Za-z0-9_]*|[0-9$?!#@*])(:?[-=+?])?(.*)$", body, re.S)
        if not m:
            raise ShellSyntaxError(f"bad substitution ${{{body}}}")
        return ("param", (m.group(1), m.group(2) or "", m.group(3)), quoted), end + 1
    if nxt and nxt in "$?!#@*-0123456789":
        return ("var", nxt, quoted), i + 2
    m = _NAME.match(src, i + 1)
    if m:
        return ("var", m.group(), quoted), m.end()
    return ("lit", "$", quoted), i + 1


def _read_dq(src: str, i: int, segs: list) -> int:
    """Read a double-quoted string (``src[i-1] == '"'``); return the index after its closing quote."""
    lit: list[str] = []
    start = len(segs)
    n = len(src)
    while True:
        if i >= n:
            raise ShellSyntaxError('unterminated quoted string')
        c = src[i]
        if c == '"':
            break
        if c == "\\" and src[i + 1:i + 2] in ('$', '`', '"', "\\", "\n"):
            if src[i + 1] != "\n":
                lit.append(src[i + 1])
            i += 2
        elif c == "$":
            if lit:
                segs.append(("lit", "".join(lit), True))
                lit = []
            seg, i = _read_dollar(src, i, True)
            segs.append(seg)
        elif c == "`":
            if lit:
                segs.append(("lit", "".join(lit), True))
                lit = []
            j = src.index("`", i + 1)
            segs.append(("cmd", src[i + 1:j], True))
            i = j + 1
        else:
            lit.append(c)
            i += 1
    if lit or len(segs) == start:
        segs.append(("lit", "".join(lit), True))
    return i + 1


def _read_word(src: str, i: int) -> tuple[list, int]:
    segs: list = []
    lit: list[str] = []
    n = len(src)

    def flush() -> None:
        if lit:
            segs.append(("lit", "".join(lit), False))
            lit.clear()

    while i < n:
        c = src[i]
        if c in " \t\n;&|()<>":
            break
        if c == "'":
            j = src.find("'", i + 1)
            if j < 0:
                raise ShellSyntaxError("unterminated quoted string")
            flush()
            segs.append(("lit", src[i + 1:j], True))
            i = j + 1
        elif c == '"':
            flush()
            i = _read_dq(src, i + 1, segs)
        elif c == "\\":
            flush()
            if src[i + 1:i + 2] != "\n":
                segs.append(("lit", src[i + 1:i + 2], True))
            i += 2
        elif c == "$":
            flush()
            seg, i = _read_dollar(src, i, False)
            segs.append(seg)
        elif c == "`":
            flush()
            j = src.find("`", i + 1)
            if j < 0:
                raise ShellSyntaxError("unterminated `")
            segs.append(("cmd", src[i + 1:j], False))
            i = j + 1
        else:
            lit.append(c)
            i += 1
    flush()
    return segs, i


def tokenize(src: str) -> list[tuple]:
    """Split a script into words (lists of segments), operators, IO numbers and newlines."""
    toks: list[tuple] = []
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if c in " \t\r":
            i += 1
        elif c == "\\" and src[i + 1:i + 2] == "\n":
            i += 2
        elif c == "\n":
            toks.append(("nl",))
            i += 1
        elif c == "#":
            while i < n and src[i] != "\n":
                i += 1
        else:
            m = re.match(r"\d+(?=[<>])", src[i:])
            if m:
                toks.append(("io", int(m.group())))
                i += len(m.group())
                continue
            for op in _OPS:
                if src.startswith(op, i):
                    toks.append(("op", op))
                    i += len(op)
                    break
            else:
                segs, i = _read_word(src, i)
                toks.append(("w", segs))
    return toks


def tokenize_word(src: str) -> list:
    """Segments of a word found inside another expansion (``${X:-$Y}``, ``$((i+$n))``)."""
    segs: list = []
    lit: list[str] = []
    i = 0
    while i < len(src):
        if src[i] == "$":
            if lit:
                segs.append(("lit", "".join(lit), True))
                lit = []
            seg, i = _read_dollar(src, i, True)
            segs.append(seg)
        else:
            lit.append(src[i])
            i += 1
    if lit:
        segs.append(("lit", "".join(lit), True))
    return segs


# =========================================================================== parsing

def _plain(tok: tuple | None) -> str | None:
    """The word's text if it is one unquoted literal (how reserved words are recognised)."""
    if tok and tok[0] == "w" and len(tok[1]) == 1 and tok[1][0][0] == "lit" and not tok[1][0][2]:
        return tok[1][0][1]
    return None


class _Parser:
    def __init__(self, toks: list[tuple]) -> None:
        self.toks = toks
        self.i = 0

    def peek(self) -> tuple | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> tuple:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def is_op(self, *ops: str) -> bool:
        tok = self.peek()
        return tok is not None and tok[0] == "op" and tok[1] in ops

    def skip_nl(self) -> None:
        while self.peek() is not None and (self.peek()[0] == "nl" or self.is_op(";")):  # type: ignore[index]
            self.i += 1

    def expect(self, word: str) -> None:
        self.skip_nl()
        if _plain(self.peek()) != word:
            got = _plain(self.peek()) or (self.peek()[1] if self.peek() and self.peek()[0] == "op" else "end of file")  # type: ignore[index]
            raise ShellSyntaxError(f"unexpected {got} (expecting \"{word}\")")
        self.i += 1

    def parse_list(self, stop: tuple[str, ...] = ()) -> tuple:
        items: list[tuple[Any, bool]] = []
        while True:
            while self.peek() is not None and self.peek()[0] == "nl":  # type: ignore[index]
                self.i += 1
            tok = self.peek()
            if tok is None or _plain(tok) in stop or self.is_op(")", ";;"):
                break
            if self.is_op(";"):
                raise ShellSyntaxError('unexpected ";"')
            node = self.parse_and_or()
            bg = False
            if self.is_op("&"):
                self.i += 1
                bg = True
            elif self.is_op(";"):
                self.i += 1
            items.append((node, bg))
        return ("seq", items)

    def parse_and_or(self) -> tuple:
        left = self.parse_pipeline()
        while self.is_op("&&", "||"):
            op = self.take()[1]
            while self.peek() is not None and self.peek()[0] == "nl":  # type: ignore[index]
                self.i += 1
            right = self.parse_pipeline()
            left = ("and" if op == "&&" else "or", left, right)
        return left

    def parse_pipeline(self) -> tuple:
        negate = False
        if _plain(self.peek()) == "!":
            self.i += 1
            negate = True
        cmds = [self.parse_command()]
        while self.is_op("|"):
            self.i += 1
            while self.peek() is not None and self.peek()[0] == "nl":  # type: ignore[index]
                self.i += 1
            cmds.append(self.parse_command())
        if len(cmds) == 1 and not negate:
            return cmds[0]
        return ("pipe", cmds, negate)

    def parse_redirs(self) -> list[tuple]:
        redirs: list[tuple] = []
        while True:
            fd = None
            if self.peek() is not None and self.peek()[0] == "io":  # type: ignore[index]
                fd = self.take()[1]
            if not self.is_op(">", ">>", "<", ">&", "<&"):
                if fd is not None:
                    raise ShellSyntaxError("bad redirection")
                return redirs
            op = self.take()[1]
            tok = self.peek()
            if tok is None or tok[0] != "w":
                raise ShellSyntaxError(f"unexpected {'newline' if tok else 'end of file'}")
            self.i += 1
            redirs.append((fd if fd is not None else (0 if op in ("<", "<&") else 1), op, tok[1]))

    def parse_command(self) -> tuple:
        word = _plain(self.peek())
        if self.is_op("("):
            self.i += 1
            body = self.parse_list()
            if not self.is_op(")"):
                raise ShellSyntaxError('unexpected end of file (expecting ")")')
            self.i += 1
            return ("subshell", body, self.parse_redirs())
        if word == "{":
            self.i += 1
            body = self.parse_list(("}",))
            self.expect("}")
            return ("group", body, self.parse_redirs())
        if word == "if":
            self.i += 1
            arms = []
            cond = self.parse_list(("then",))
            self.expect("then")
            arms.append((cond, self.parse_list(("elif", "else", "fi"))))
            other = None
            while True:
                w = _plain(self.peek())
                if w == "elif":
                    self.i += 1
                    cond = self.parse_list(("then",))
                    self.expect("then")
                    arms.append((cond, self.parse_list(("elif", "else", "fi"))))
                elif w == "else":
                    self.i += 1
                    other = self.parse_list(("fi",))
                else:
                    break
            self.expect("fi")
            return ("if", arms, other, self.parse_redirs())
        if word in ("while", "until"):
            self.i += 1
            cond = self.parse_list(("do",))
            self.expect("do")
            body = self.parse_list(("done",))
            self.expect("done")
            return ("while", cond, body, word == "until", self.parse_redirs())
        if word == "for":
            self.i += 1
            tok = self.take() if self.peek() is not None else None
            name = _plain(tok)
            if not name or not _NAME.fullmatch(name):
                raise ShellSyntaxError("bad for loop variable")
            words = None
            while self.peek() is not None and self.peek()[0] == "nl":  # type: ignore[index]
                self.i += 1
            if _plain(self.peek()) == "in":
                self.i += 1
                words = []
                while self.peek() is not None and self.peek()[0] == "w":  # type: ignore[index]
                    words.append(self.take()[1])
            self.expect("do")
            body = self.parse_list(("done",))
            self.expect("done")
            return ("for", name, words, body, self.parse_redirs())
        if word == "case":
            self.i += 1
            subject = self.take()[1]
            self.expect("in")
            cases: list[tuple[list, tuple]] = []
            while True:
                self.skip_nl()
                if _plain(self.peek()) == "esac":
                    self.i += 1
                    break
                if self.is_op("("):
                    self.i += 1
                pats = [self.take()[1]]
                while self.is_op("|"):
                    self.i += 1
                    pats.append(self.take()[1])
                if not self.is_op(")"):
                    raise ShellSyntaxError("expecting ) in case")
                self.i += 1
                body = self.parse_list(("esac",))
                if self.is_op(";;"):
                    self.i += 1
                cases.append((pats, body))
            return ("case", subject, cases, self.parse_redirs())
        return self.parse_simple()

    def parse_simple(self) -> tuple:
        assigns: list[tuple[str, list]] = []
        words: list[list] = []
        redirs: list[tuple] = []
        while True:
            tok = self.peek()
            if tok is None or tok[0] == "nl":
                break
            if tok[0] == "io" or self.is_op(">", ">>", "<", ">&", "<&"):
                redirs += self.parse_redirs()
                continue
            if tok[0] == "op":
                break
            segs = tok[1]
            self.i += 1
            first = segs[0] if segs else None
            if not words and first and first[0] == "lit" and not first[2] and _ASSIGN.match(first[1]):
                name = _ASSIGN.match(first[1]).group(1)  # type: ignore[union-attr]
                rest = first[1][len(name) + 1:]
                assigns.append((name, ([("lit", rest, True)] if rest else []) + list(segs[1:])))
                continue
            words.append(segs)
        if not assigns and not words and not redirs:
            tok = self.peek()
            shown = "end of file" if tok is None else tok[1] if tok[0] == "op" else "newline"
            raise ShellSyntaxError(f"unexpected {shown}")
        return ("simple", assigns, words, redirs)


def parse(src: str) -> tuple:
    """Parse a script into its AST (nested tuples)."""
    p = _Parser(tokenize(src))
    node = p.parse_list()
    if p.peek() is not None:
        tok = p.peek()
        raise ShellSyntaxError(f"unexpected {tok[1] if tok[0] == 'op' else _plain(tok) or 'word'}")  # type: ignore[index]
    return node


# =========================================================================== compiling

class _Compiler:
    def __init__(self) -> None:
        self.code: list[Any] = []
        self.slots = 0

    def slot(self) -> int:
        self.slots += 1
        return self.slots

    def emit(self, op: Any) -> int:
        self.code.append(op)
        return len(self.code) - 1

    def node(self, n: tuple) -> None:
        kind = n[0]
        if kind == "seq":
            if not n[1]:
                self.emit(("status", 0))
            for item, bg in n[1]:
                if bg:
                    self.emit(("bg", item))
                else:
                    self.node(item)
        elif kind == "simple":
            self.emit(("run", n))
        elif kind == "pipe":
            self.emit(("pipe", n[1], n[2]))
        elif kind in ("and", "or"):
            self.node(n[1])
            j = self.emit(None)
            self.node(n[2])
            self.code[j] = ("jnz" if kind == "and" else "jz", len(self.code))
        elif kind == "subshell":
            self.emit(("sub", n[1], n[2]))
        elif kind == "group":
            self._with_redirs(n[2], lambda: self.node(n[1]))
        elif kind == "if":
            self._with_redirs(n[3], lambda: self._if(n))
        elif kind == "while":
            self._with_redirs(n[4], lambda: self._while(n))
        elif kind == "for":
            self._with_redirs(n[4], lambda: self._for(n))
        elif kind == "case":
            self._with_redirs(n[3], lambda: self._case(n))
        else:
            raise ShellSyntaxError(f"cannot run {kind}")

    def _with_redirs(self, redirs: list, body: Callable[[], None]) -> None:
        if redirs:
            self.emit(("redir_push", redirs))
        body()
        if redirs:
            self.emit(("redir_pop",))

    def _if(self, n: tuple) -> None:
        ends = []
        for cond, body in n[1]:
            self.node(cond)
            j = self.emit(None)
            self.node(body)
            ends.append(self.emit(None))
            self.code[j] = ("jnz", len(self.code))
        if n[2] is not None:
            self.node(n[2])
        else:
            self.emit(("status", 0))
        for e in ends:
            self.code[e] = ("jmp", len(self.code))

    def _while(self, n: tuple) -> None:
        s = self.slot()
        self.emit(("loop_start", s))
        top = len(self.code)
        self.node(n[1])
        j = self.emit(None)
        self.node(n[2])
        self.emit(("loop_body", s))
        self.emit(("jmp", top))
        self.code[j] = ("loop_cond", s, len(self.code), n[3])

    def _for(self, n: tuple) -> None:
        s = self.slot()
        self.emit(("for_init", s, n[2]))
        top = self.emit(None)
        self.node(n[3])
        self.emit(("loop_body", s))
        self.emit(("jmp", top))
        self.code[top] = ("for_next", s, n[1], len(self.code))

    def _case(self, n: tuple) -> None:
        j = self.emit(None)
        targets = []
        ends = []
        for pats, body in n[2]:
            targets.append((pats, len(self.code)))
            self.node(body)
            ends.append(self.emit(None))
        end = len(self.code)
        self.emit(("status", 0))
        self.code[j] = ("case", n[1], targets, end)
        for e in ends:
            self.code[e] = ("jmp", end + 1)


def compile_script(src: str) -> list[Any]:
    """Parse and compile a script into the operations a shell process executes."""
    return compile_node(parse(src))


def compile_node(node: tuple) -> list[Any]:
    c = _Compiler()
    c.node(node)
    return c.code
