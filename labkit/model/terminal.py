"""Docker's detach keys, read from ``--detach-keys`` (pure: no terminal is touched here).

A caller attached to a container's terminal (``run -it``, ``attach``,
``exec -it``) leaves it running by typing the detach keys, Docker's
``ctrl-p,ctrl-q`` unless ``--detach-keys`` names others: comma-separated, each
a single character or ``ctrl-`` and a letter or one of ``@ [ \\ ] ^ _``
(the control codes 0-31 a terminal sends for them).
"""

from __future__ import annotations

from labkit.errors import InvalidArgument

#: Docker's default detach keys, as written and as the bytes a terminal sends.
DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"
DEFAULT_KEYS = b"\x10\x11"

_CTRL = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}


def detach_keys(text: str | None) -> bytes:
    """Docker's ``--detach-keys``: comma-separated keys, each a single character or ``ctrl-X``.

    ``X`` is a letter or one of ``@ [ \\ ] ^ _``. ``None`` or ``""``: Docker's ``ctrl-p,ctrl-q``.

    Raises:
        InvalidArgument: A key Docker would not take.
    """
    keys = bytearray()
    for key in (text or DEFAULT_DETACH_KEYS).split(","):
        if len(key) == 1:
            keys.append(ord(key))
            continue
        rest = key[5:] if key.lower().startswith("ctrl-") else ""
        if len(rest) == 1 and rest.isascii() and rest.isalpha():
            keys.append(ord(rest.lower()) - ord("a") + 1)
        elif len(rest) == 1 and rest in _CTRL:
            keys.append(_CTRL[rest])
        elif rest == "\\\\":
            keys.append(_CTRL["\\"])
        else:
            raise InvalidArgument(f"Invalid detach keys ({text}) provided",
                                  "Give keys such as ctrl-p,ctrl-q or ctrl-x,x: a character, or ctrl- and a letter "
                                  "or one of @ [ \\ ] ^ _")
    return bytes(keys)
