"""Shell arithmetic, ``$(( ))``: the expression is evaluated after its own expansions (``$((i + $n))``).

Integers, variables, ``+ - * / % **``, comparisons, shifts, ``&& || !`` and
parentheses, with busybox ash's precedence and messages. Pure: it reads the
variables it is handed and nothing else.
"""

from __future__ import annotations

import re


class ArithError(ArithmeticError):
    """``$(( ))`` cannot be evaluated; ``str()`` is ash's message (``divide by zero``, ``exponent less than 0``)."""


def arith(expr: str, variables: dict[str, str]) -> int:
    """Evaluate shell arithmetic: integers, variables, ``+ - * / % **``, comparisons, ``&& || !``, parentheses.

    ``**`` binds tighter than ``* / %`` and groups from the right (``2**3**2`` is 512); a unary minus
    binds tighter still (``-2**2`` is 4), as in busybox's ash.

    Raises:
        ArithError: Division by zero, or a negative exponent.
    """
    toks = re.findall(r"\d+|[A-Za-z_][A-Za-z0-9_]*|\*\*|==|!=|<=|>=|&&|\|\||<<|>>|[-+*/%()<>!]", expr)
    pos = 0

    def peek() -> str | None:
        return toks[pos] if pos < len(toks) else None

    def take() -> str:
        nonlocal pos
        pos += 1
        return toks[pos - 1]

    def atom() -> int:
        t = take() if peek() is not None else "0"
        if t == "(":
            v = level(0)
            if peek() == ")":
                take()
            return v
        if t == "-":
            return -atom()
        if t == "+":
            return atom()
        if t == "!":
            return int(not atom())
        if t.isdigit():
            return int(t)
        raw = variables.get(t, "0") or "0"
        try:
            return int(raw)
        except ValueError:
            return arith(raw, variables)

    levels = [("||",), ("&&",), ("==", "!="), ("<", ">", "<=", ">="), ("<<", ">>"), ("+", "-"), ("*", "/", "%")]

    def power() -> int:
        base = atom()
        if peek() != "**":
            return base
        take()
        exponent = power()
        if exponent < 0:
            raise ArithError("exponent less than 0")
        return int(base ** exponent)

    def level(i: int) -> int:
        if i == len(levels):
            return power()
        v = level(i + 1)
        while peek() in levels[i]:
            op = take()
            r = level(i + 1)
            if op == "||":
                v = int(bool(v) or bool(r))
            elif op == "&&":
                v = int(bool(v) and bool(r))
            elif op == "==":
                v = int(v == r)
            elif op == "!=":
                v = int(v != r)
            elif op == "<":
                v = int(v < r)
            elif op == ">":
                v = int(v > r)
            elif op == "<=":
                v = int(v <= r)
            elif op == ">=":
                v = int(v >= r)
            elif op == "<<":
                v = v << r
            elif op == ">>":
                v = v >> r
            elif op == "+":
                v = v + r
            elif op == "-":
                v = v - r
            elif op == "*":
                v = v * r
            elif op in "/%":
                if r == 0:
                    raise ArithError("divide by zero")
                q = abs(v) // abs(r) * (1 if (v >= 0) == (r >= 0) else -1)
                v = q if op == "/" else v - q * r
        return v

    return level(0)
