"""Durations, sizes, times and STATUS strings match what Docker prints."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labkit.errors import InvalidArgument
from labkit.model.humanize import (
    ZERO_TIME,
    bytes_size,
    human_duration,
    human_size,
    parse_rfc3339,
    parse_size,
    rfc3339,
    status_string,
)

SECOND = 1
MINUTE = 60
HOUR = 60 * MINUTE
DAY = 24 * HOUR
WEEK = 7 * DAY
MONTH = 30 * DAY
YEAR = 365 * DAY

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)

# The table go-units tests HumanDuration with, bucket edge by bucket edge.
DURATIONS = [
    (0.45, "Less than a second"),
    (-5, "Less than a second"),
    (1, "1 second"),
    (1.9, "1 second"),
    (45, "45 seconds"),
    (59, "59 seconds"),
    (60, "About a minute"),
    (119, "About a minute"),
    (120, "2 minutes"),
    (3 * MINUTE, "3 minutes"),
    (35 * MINUTE + 40, "35 minutes"),
    (59 * MINUTE + 59, "59 minutes"),
    (HOUR, "About an hour"),
    (HOUR + 29 * MINUTE, "About an hour"),
    (HOUR + 31 * MINUTE, "2 hours"),
    (3 * HOUR + 29 * MINUTE, "3 hours"),
    (3 * HOUR + 31 * MINUTE, "4 hours"),
    (24 * HOUR, "24 hours"),
    (DAY + 12 * HOUR, "36 hours"),
    (47 * HOUR + 29 * MINUTE, "47 hours"),
    (2 * DAY, "2 days"),
    (13 * DAY + 5 * HOUR, "13 days"),
    (2 * WEEK, "2 weeks"),
    (2 * WEEK + 4 * DAY, "2 weeks"),
    (4 * WEEK + 3 * DAY, "4 weeks"),
    (MONTH, "4 weeks"),
    (MONTH + 2 * WEEK, "6 weeks"),
    (2 * MONTH, "2 months"),
    (5 * MONTH + 2 * WEEK, "5 months"),
    (13 * MONTH, "13 months"),
    (24 * MONTH, "24 months"),
    (24 * MONTH + 2 * WEEK, "2 years"),
    (3 * YEAR + 2 * MONTH, "3 years"),
]


@pytest.mark.parametrize(("seconds", "text"), DURATIONS)
def test_human_duration_matches_go_units(seconds: float, text: str) -> None:
    """Every bucket edge of go-units HumanDuration gives the same words."""
    assert human_duration(seconds) == text


@given(st.floats(min_value=-1e9, max_value=1e10, allow_nan=False))
def test_human_duration_always_answers(seconds: float) -> None:
    """Any finite duration gets a non-empty phrase, never an exception."""
    assert human_duration(seconds)


SIZES = [
    (0, 4, "0B"),
    (999, 4, "999B"),
    (1000, 4, "1kB"),
    (1024, 4, "1.024kB"),
    (1_000_000, 4, "1MB"),
    (1_048_576, 4, "1.049MB"),
    (2_000_000, 4, "2MB"),
    (3_420_000_000, 4, "3.42GB"),
    (5_372_000_000_000, 4, "5.372TB"),
    (12_345_678, 3, "12.3MB"),
    (1_234_567_890, 3, "1.23GB"),
    (4_300_000, 3, "4.3MB"),
    (10**28, 4, "1e+04YB"),
]


@pytest.mark.parametrize(("n", "precision", "text"), SIZES)
def test_human_size_matches_go_units(n: int, precision: int, text: str) -> None:
    """Decimal units and significant digits are those of HumanSizeWithPrecision."""
    assert human_size(n, precision) == text


def test_bytes_size_uses_binary_units() -> None:
    """bytes_size writes KiB/MiB/GiB with four significant digits."""
    assert bytes_size(1024) == "1KiB"
    assert bytes_size(3.42 * 1024**3) == "3.42GiB"
    assert bytes_size(8_335_265_792) == "7.763GiB"


PARSED = [
    ("32", 32),
    ("32b", 32),
    ("32B", 32),
    ("100b", 100),
    ("512k", 512 * 1024),
    ("32K", 32 * 1024),
    ("32kb", 32 * 1024),
    ("32Kib", 32 * 1024),
    ("32KIB", 32 * 1024),
    ("64m", 64 * 1024**2),
    ("64M", 64 * 1024**2),
    ("1g", 1024**3),
    ("1GiB", 1024**3),
    ("32Tb", 32 * 1024**4),
    ("32P", 32 * 1024**5),
    ("32.3", 32),
    ("32.3 mb", int(32.3 * 1024**2)),
    ("0.3MB", int(0.3 * 1024**2)),
]


@pytest.mark.parametrize(("text", "n"), PARSED)
def test_parse_size_matches_ram_in_bytes(text: str, n: int) -> None:
    """Binary units, case-insensitive, optional b: as go-units RAMInBytes."""
    assert parse_size(text) == n


@pytest.mark.parametrize("text", ["", "hello", "-32", " 32 ", "32m b", "32bm", "1.2.3m", ".5m", "64x"])
def test_parse_size_rejects_garbage_with_docker_words(text: str) -> None:
    """A bad size raises InvalidArgument saying invalid size: '<text>'."""
    with pytest.raises(InvalidArgument) as caught:
        parse_size(text)
    assert str(caught.value) == f"invalid size: '{text}'"
    assert caught.value.hint


def test_rfc3339_writes_go_nano_form() -> None:
    """UTC is Z, trailing fraction zeros go, and None is Go's zero time."""
    assert rfc3339(datetime(2024, 5, 1, 12, 0, 3, tzinfo=timezone.utc)) == "2024-05-01T12:00:03Z"
    assert rfc3339(datetime(2024, 5, 1, 12, 0, 3, 250000, tzinfo=timezone.utc)) == "2024-05-01T12:00:03.25Z"
    assert rfc3339(datetime(2024, 5, 1, 12, 0, 3, 123456)) == "2024-05-01T12:00:03.123456Z"
    assert rfc3339(None) == ZERO_TIME == "0001-01-01T00:00:00Z"
    tz = timezone(timedelta(hours=2))
    assert rfc3339(datetime(2024, 5, 1, 14, 0, 0, tzinfo=tz)) == "2024-05-01T14:00:00+02:00"


def test_parse_rfc3339_reads_nanoseconds_and_offsets() -> None:
    """Nanosecond fractions are cut to microseconds; offsets are honoured; zero time parses."""
    assert parse_rfc3339("2024-05-01T12:00:03.123456789Z") == datetime(2024, 5, 1, 12, 0, 3, 123456, timezone.utc)
    assert parse_rfc3339("2024-05-01T14:00:00+02:00") == datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)
    assert parse_rfc3339(ZERO_TIME) == datetime(1, 1, 1, tzinfo=timezone.utc)
    with pytest.raises(InvalidArgument):
        parse_rfc3339("yesterday")


@given(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(timezone.utc)))
def test_rfc3339_round_trips(moment: datetime) -> None:
    """Writing then reading a time gives the same time back."""
    assert parse_rfc3339(rfc3339(moment)) == moment


def _at(seconds_ago: float) -> str:
    return rfc3339(NOW - timedelta(seconds=seconds_ago))


STATES = [
    ({"Status": "created", "StartedAt": ZERO_TIME, "FinishedAt": ZERO_TIME}, "Created"),
    ({"Status": "running", "Running": True, "StartedAt": _at(5)}, "Up 5 seconds"),
    ({"Status": "running", "Running": True, "StartedAt": _at(0.2)}, "Up Less than a second"),
    ({"Status": "paused", "Running": True, "Paused": True, "StartedAt": _at(150)}, "Up 2 minutes (Paused)"),
    (
        {
            "Status": "restarting",
            "Running": True,
            "Restarting": True,
            "ExitCode": 1,
            "StartedAt": _at(10),
            "FinishedAt": _at(3),
        },
        "Restarting (1) 3 seconds ago",
    ),
    ({"Status": "exited", "ExitCode": 0, "StartedAt": _at(10), "FinishedAt": _at(3)}, "Exited (0) 3 seconds ago"),
    (
        {"Status": "exited", "ExitCode": 137, "StartedAt": _at(9000), "FinishedAt": _at(7200)},
        "Exited (137) 2 hours ago",
    ),
    ({"Status": "dead", "Dead": True, "StartedAt": _at(10), "FinishedAt": _at(3)}, "Dead"),
    ({"Status": "removing", "StartedAt": _at(10), "FinishedAt": _at(3)}, "Removal In Progress"),
    (
        {"Status": "running", "Running": True, "StartedAt": _at(5), "Health": {"Status": "healthy"}},
        "Up 5 seconds (healthy)",
    ),
    (
        {"Status": "running", "Running": True, "StartedAt": _at(5), "Health": {"Status": "starting"}},
        "Up 5 seconds (health: starting)",
    ),
    # A failed first start leaves StartedAt zero: still "Created", whatever the exit code.
    ({"Status": "created", "ExitCode": 127, "StartedAt": ZERO_TIME, "FinishedAt": ZERO_TIME}, "Created"),
]


@pytest.mark.parametrize(("state", "text"), STATES)
def test_status_string_for_every_status(state: dict, text: str) -> None:
    """Each State gives the STATUS text the daemon would build."""
    assert status_string(state, NOW) == text


def test_status_string_accepts_naive_now() -> None:
    """A naive 'now' is taken as UTC."""
    state = {"Status": "running", "Running": True, "StartedAt": _at(120)}
    assert status_string(state, NOW.replace(tzinfo=None)) == "Up 2 minutes"
