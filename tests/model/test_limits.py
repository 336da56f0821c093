"""The limits a container may be given: Docker's bounds and the kernel's, checked before anything is made."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labkit.errors import InvalidArgument
from labkit.model import limits
from labkit.model.humanize import parse_size

MiB = 1 << 20


@pytest.mark.parametrize(("memory", "swap", "words"), [
    (MiB, 0, "Minimum memory limit allowed is 6MB"),
    (-1, 0, "invalid memory limit -1"),
    (2**63 - 1, 0, "more than a cgroup can hold"),
    (64 * MiB, 2**64, "--memory-swap 18446744073709551616 is more than a cgroup can hold"),
    (0, 64 * MiB, "You should always set the Memory limit when using Memoryswap limit"),
    (64 * MiB, 32 * MiB, "Minimum memoryswap limit should be larger than memory limit"),
    (64 * MiB, -2, "invalid memory swap limit -2"),
])
def test_memory_limits_docker_and_the_kernel_refuse(memory, swap, words):
    """Each refusal says what in Docker's words where Docker has them, and what to try."""
    with pytest.raises(InvalidArgument, match=words) as caught:
        limits.check_memory(memory, swap)
    assert caught.value.hint


@pytest.mark.parametrize(("memory", "swap"), [
    (0, 0), (6 * MiB, 0), (64 * MiB, -1), (64 * MiB, 64 * MiB), (limits.MAX_MEMORY, limits.MAX_MEMORY),
])
def test_memory_limits_that_hold(memory, swap):
    limits.check_memory(memory, swap)


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_cpus_are_a_finite_number_from_a_hundredth_to_the_host(cpus):
    """Any float is either refused or becomes a quota of at least 1 ms per 100 ms and at most the host's CPUs."""
    try:
        nano = limits.check_cpus(cpus, 2)
    except InvalidArgument:
        assert not math.isfinite(cpus) or cpus < 0.01 or cpus > 2
        return
    assert nano == 0 if cpus == 0 else 10_000_000 <= nano <= 2_000_000_000


def test_pids_above_the_kernels_pid_max_limit_are_refused():
    limits.check_pids(limits.MAX_PIDS)
    with pytest.raises(InvalidArgument, match="PID_MAX_LIMIT"):
        limits.check_pids(limits.MAX_PIDS + 1)


def test_a_size_is_read_exactly():
    """2**63 - 1 bytes is read as typed, not rounded through a float to 2**63."""
    assert parse_size("9223372036854775807") == 2**63 - 1
    assert parse_size("1.5g") == 3 * 512 * MiB
