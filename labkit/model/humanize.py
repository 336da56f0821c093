"""Durations, sizes, times and STATUS strings written the way Docker writes them.

Docker's daemon and CLI format these through the go-units library, and a
learner who compares ``labkit ps`` with ``docker ps`` should see the same
words: "Up 5 seconds", "Exited (0) 3 minutes ago", "12.3MB". The rules here
are the same rules, restated in Python. Everything is pure: the current time
is always a parameter.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from fractions import Fraction
from typing import Any

from labkit.errors import InvalidArgument

#: The text Go writes for its zero ``time.Time``; Docker uses it for "never".
ZERO_TIME = "0001-01-01T00:00:00Z"

_MINUTE = 60
_HOUR = 60 * _MINUTE
_DAY = 24 * _HOUR

_DECIMAL_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
_BINARY_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")
_BINARY_PREFIX = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}

# A number (Go's regexp accepts "1.2.3" here and lets the float parse fail),
# an optional space, an optional k/m/g/t/p, an optional "i", an optional "b".
_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)*) ?([kmgtp])?i?b?$", re.IGNORECASE)


def human_duration(seconds: float) -> str:
    """Say how long ``seconds`` is, in the coarse words ``docker ps`` uses.

    The buckets: under a second; seconds up to a minute; minutes up to an
    hour; hours (rounded to the nearest) below 48; days below two weeks;
    weeks below 60 days; months (of 30 days) below two years; then years.
    A negative duration (clock skew) reads as "Less than a second".

    Args:
        seconds: The duration in seconds.

    Returns:
        For example ``"About a minute"``, ``"3 hours"``, ``"2 weeks"``.
    """
    whole_seconds = int(seconds)
    if whole_seconds < 1:
        return "Less than a second"
    if whole_seconds == 1:
        return "1 second"
    if whole_seconds < _MINUTE:
        return f"{whole_seconds} seconds"
    minutes = int(seconds / _MINUTE)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    # Hours round to the nearest hour, so 1h29m is still "About an hour".
    hours = int(seconds / _HOUR + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    # Years count whole (unrounded) hours.
    return f"{int(seconds / _HOUR) // 24 // 365} years"


def _units(size: float, base: float, names: tuple[str, ...]) -> tuple[float, str]:
    """Divide ``size`` by ``base`` until it is below ``base`` (or units run out)."""
    index = 0
    while size >= base and index < len(names) - 1:
        size /= base
        index += 1
    return size, names[index]


def human_size(n: float, precision: int = 4) -> str:
    """Write a byte count with decimal units and ``precision`` significant digits.

    ``docker images`` uses three digits (``"12.3MB"``); most other places use
    four (``"1.049MB"``). Trailing zeros are dropped, as ``%g`` does.

    Args:
        n: A size in bytes.
        precision: Significant digits to keep.

    Returns:
        For example ``"0B"``, ``"1kB"``, ``"1.024kB"``, ``"3.42GB"``.
    """
    size, unit = _units(float(n), 1000.0, _DECIMAL_UNITS)
    return f"{size:.{precision}g}{unit}"


def bytes_size(n: float) -> str:
    """Write a byte count with binary units and four significant digits (``"7.763GiB"``)."""
    size, unit = _units(float(n), 1024.0, _BINARY_UNITS)
    return f"{size:.4g}{unit}"


def parse_size(text: str) -> int:
    """Read a memory size the way ``docker run --memory`` does.

    Units are binary and case-insensitive, and the ``b`` is optional:
    ``"512k"`` is 524288, ``"64m"`` is 67108864, ``"1g"`` and ``"1GiB"`` are
    1073741824, ``"100b"`` and ``"100"`` are 100. A fraction is allowed
    (``"1.5g"``) and the result is truncated to whole bytes.

    Args:
        text: What the user typed.

    Returns:
        The size in bytes.

    Raises:
        InvalidArgument: When ``text`` is not a size, e.g. ``"-1"``, ``"1x"``, ``""``.
    """
    match = _SIZE_RE.match(text)
    number = match.group(1) if match else ""
    if not match or number.count(".") > 1:
        raise InvalidArgument(
            f"invalid size: '{text}'", "Give a number with an optional unit b, k, m, g, t or p, like 512k, 64m or 1g"
        )
    prefix = (match.group(2) or "").lower()
    return int(Fraction(number) * _BINARY_PREFIX.get(prefix, 1))  # exact: a float would round 2**63-1 up


def rfc3339(moment: datetime | None) -> str:
    """Write a time as Go's RFC3339Nano does: trailing zeros of the fraction dropped.

    A naive datetime is taken as UTC; ``None`` (never) gives Go's zero time
    ``"0001-01-01T00:00:00Z"``.

    Args:
        moment: The time to write.

    Returns:
        For example ``"2024-05-01T12:00:03.25Z"``.
    """
    if moment is None:
        return ZERO_TIME
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    text = (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
        f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    )
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    offset = moment.utcoffset() or timedelta(0)
    if not offset:
        return text + "Z"
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"{text}{sign}{minutes // 60:02d}:{minutes % 60:02d}"


_RFC3339_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$"
)


def parse_rfc3339(text: str) -> datetime:
    """Read an RFC3339 time with up to nanoseconds (kept to microseconds).

    Args:
        text: For example ``"2024-05-01T12:00:03.123456789Z"`` or ``"...+02:00"``.

    Returns:
        An aware datetime; Go's zero time becomes ``datetime(1, 1, 1, tzinfo=UTC)``.

    Raises:
        InvalidArgument: When ``text`` is not an RFC3339 time.
    """
    match = _RFC3339_RE.match(text.strip())
    if not match:
        raise InvalidArgument(f'parsing time "{text}" as RFC3339 failed', "Write it like 2024-05-01T12:00:03Z")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    micro = int((match.group(7) or "0").ljust(9, "0")[:6])
    if match.group(8):
        tz = timezone.utc
    else:
        delta = timedelta(hours=int(match.group(10)), minutes=int(match.group(11)))
        tz = timezone(delta if match.group(9) == "+" else -delta)
    try:
        return datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)
    except ValueError as error:
        raise InvalidArgument(f'parsing time "{text}": {error}', "Write it like 2024-05-01T12:00:03Z") from error


def _since(value: Any, now: datetime) -> float:
    """Seconds from an RFC3339 string (or datetime) to ``now``."""
    moment = value if isinstance(value, datetime) else parse_rfc3339(value or ZERO_TIME)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    return (now - moment).total_seconds()


def _is_zero(value: Any) -> bool:
    """True when a StartedAt/FinishedAt value means "never"."""
    if not value:
        return True
    if isinstance(value, datetime):
        return value.year == 1
    return str(value).startswith("0001-01-01")


def status_string(state: Mapping[str, Any], now: datetime) -> str:
    """Build the STATUS column of ``docker ps`` from an inspect ``State``.

    The daemon builds this text, not the CLI, and in this order: a running
    container is "Up <D>", with " (Paused)" when frozen or its health in
    brackets; a restarting one is "Restarting (<code>) <D> ago" counted from
    its last exit; otherwise "Removal In Progress", "Dead", "Created" (never
    started), or "Exited (<code>) <D> ago" counted from FinishedAt.

    Args:
        state: The ``State`` object of ``docker inspect`` (Status, Running,
            Paused, Restarting, Dead, ExitCode, StartedAt, FinishedAt, Health).
        now: The current time (aware, or naive UTC).

    Returns:
        For example ``"Up 2 minutes (Paused)"`` or ``"Exited (137) 3 seconds ago"``.
    """
    status = state.get("Status", "")
    running = bool(state.get("Running")) or status in ("running", "paused", "restarting")
    code = state.get("ExitCode", 0)
    if running:
        if state.get("Paused") or status == "paused":
            return f"Up {human_duration(_since(state.get('StartedAt'), now))} (Paused)"
        if state.get("Restarting") or status == "restarting":
            return f"Restarting ({code}) {human_duration(_since(state.get('FinishedAt'), now))} ago"
        up = f"Up {human_duration(_since(state.get('StartedAt'), now))}"
        health = (state.get("Health") or {}).get("Status", "")
        if health == "starting":
            return f"{up} (health: starting)"
        if health in ("healthy", "unhealthy"):
            return f"{up} ({health})"
        return up
    if status == "removing":
        return "Removal In Progress"
    if state.get("Dead") or status == "dead":
        return "Dead"
    if _is_zero(state.get("StartedAt")):
        return "Created"
    if _is_zero(state.get("FinishedAt")):
        return ""
    return f"Exited ({code}) {human_duration(_since(state.get('FinishedAt'), now))} ago"


_GO_DURATION = re.compile(r"[-+]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _go_duration(text: str) -> float | None:
    """Seconds in a Go duration (``10m``, ``1h30m``, ``1.5s``; ``0`` alone is one), or None if it is not one."""
    if text == "0":
        return 0.0
    if not _GO_DURATION.fullmatch(text):
        return None
    sign = -1.0 if text.startswith("-") else 1.0
    parts = re.findall(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)", text)
    return sign * sum(float(n) * _GO_UNITS[unit] for n, unit in parts)


def parse_timestamp(value: str, now: datetime) -> float:
    """``logs --since/--until``: a moment as unix seconds, read as Docker's client reads it
    (moby's ``api/types/time.GetTimestamp``).

    A Go duration (``10m``, ``1h30m``) counts back from ``now``; RFC 3339 times with or without a zone
    (``2024-05-01T12:00:00Z``, ``2024-05-01T12:00``, ``2024-05-01``; without a zone, in ``now``'s);
    unix seconds with an optional fraction (``1714564800``, ``1714564800.5``).

    Raises:
        InvalidArgument: None of those.
    """
    seconds = _go_duration(value)
    if seconds is not None and value != "0":
        return now.timestamp() - seconds
    zone = now.tzinfo or timezone.utc
    in_location = not (any(c in value for c in "zZ+") or value.count("-") == 3)
    text = value
    if text.endswith(("z", "Z")):
        text = text[:-1] + "+00:00"
    formats = ("%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H", "%Y-%m-%d")
    for fmt in formats:
        for candidate in ((text,) if in_location else (text, re.sub(r"([+-]\d\d):?(\d\d)$", r"\1\2", text))):
            try:
                moment = datetime.strptime(re.sub(r"(\.\d{6})\d+", r"\1", candidate), fmt + ("" if in_location
                                                                                          else "%z"))
            except ValueError:
                continue
            return (moment.replace(tzinfo=zone) if in_location else moment).timestamp()
    if "-" in value:
        raise InvalidArgument(f'parsing time "{value}": it is not an RFC 3339 time',
                              "Write a time like 2024-05-01T12:00:00Z, a duration like 10m, or unix seconds")
    if re.fullmatch(r"\d+(\.\d{1,9})?", value):
        return float(value)
    raise InvalidArgument(f'failed to parse value as time or duration: "{value}"',
                          "Write a time like 2024-05-01T12:00:00Z, a duration like 10m, or unix seconds")
