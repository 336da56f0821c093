"""The limits a container may be given, checked the way Docker checks them, before anything is made.

``docker run`` refuses a limit the kernel could not hold before it creates
the container; labkit does the same in one place, here, for the engine (at
``create``) and for both backends. The bounds come from the kernel:

* memory: at least 6 MiB (Docker's floor) and at most the largest value a
  cgroup's page counter holds, ``PAGE_COUNTER_MAX`` pages of 4 KiB
  (``LONG_MAX / PAGE_SIZE``, mm/page_counter.c): 9223372036854771712 bytes,
  which ``memory.max`` / ``memory.limit_in_bytes`` read back as "unlimited";
* memory plus swap: set only with a memory limit, and at least as large
  (cgroup v1 refuses ``memory.memsw.limit_in_bytes`` below
  ``memory.limit_in_bytes`` with EINVAL);
* CPUs: a quota of at least 1 ms per 100 ms period (``cpu.cfs_quota_us``,
  Documentation/scheduler/sched-bwc.rst), so 0.01 CPU, and at most the CPUs
  this host has;
* processes: ``pids.max`` takes at most ``PID_MAX_LIMIT`` (4194304 on 64-bit,
  include/linux/threads.h) and answers EINVAL above it.
"""

from __future__ import annotations

import math

from labkit.errors import InvalidArgument

#: Docker's smallest memory limit.
MIN_MEMORY = 6 * 1024 * 1024

#: The largest memory limit a cgroup holds: PAGE_COUNTER_MAX pages (``LONG_MAX // 4096``) of 4 KiB.
MAX_MEMORY = (2**63 - 1) // 4096 * 4096

#: The CFS bandwidth period Docker uses (µs) and the smallest quota the kernel takes (1 ms).
CPU_PERIOD_US = 100_000
MIN_CPU_QUOTA_US = 1_000

#: The most processes ``pids.max`` accepts (PID_MAX_LIMIT on 64-bit).
MAX_PIDS = 4 * 1024 * 1024

#: Docker's API carries limits as signed 64-bit numbers.
INT64_MAX = 2**63 - 1


def check_memory(memory: int, memory_swap: int) -> None:
    """Refuse a memory limit or a memory-plus-swap limit that Docker or the kernel would refuse.

    Args:
        memory: Bytes; 0 means no limit.
        memory_swap: Bytes of memory plus swap; 0 means the default, -1 unlimited swap.

    Raises:
        InvalidArgument: In Docker's words, with what to try.
    """
    if memory < 0:
        raise InvalidArgument(f"invalid memory limit {memory}: it must be a number of bytes, 0 or more",
                              "Use a size such as 64m or 1g")
    if memory and memory < MIN_MEMORY:
        raise InvalidArgument("Minimum memory limit allowed is 6MB", "Use --memory 6m or more")
    for flag, value in (("--memory", memory), ("--memory-swap", memory_swap)):
        if value > MAX_MEMORY:
            raise InvalidArgument(
                f"{flag} {value} is more than a cgroup can hold (at most {MAX_MEMORY} bytes, about 8 EiB)",
                f"Leave {flag} out for no limit, or give a size such as 64m or 1g",
            )
    if memory_swap not in (0, -1):
        if memory_swap < -1:
            raise InvalidArgument(f"invalid memory swap limit {memory_swap}",
                                  "Give a size such as 128m, or -1 for unlimited swap")
        if not memory:
            raise InvalidArgument("You should always set the Memory limit when using Memoryswap limit, see usage",
                                  "Add --memory, or drop --memory-swap")
        if memory_swap < memory:
            raise InvalidArgument(
                "Minimum memoryswap limit should be larger than memory limit, see usage",
                "--memory-swap counts memory plus swap, so it must be at least --memory (or -1 for unlimited)",
            )


def check_cpus(cpus: float, available: int) -> int:
    """The CPU limit as billionths of a CPU (Docker's ``NanoCpus``), or refuse it.

    Args:
        cpus: What ``--cpus`` asked for; 0 means no limit.
        available: CPUs on this host.

    Returns:
        ``round(cpus * 1e9)``.

    Raises:
        InvalidArgument: Not a finite number, or outside 0.01 to ``available``.
    """
    if not math.isfinite(cpus):
        raise InvalidArgument(f"invalid argument \"{cpus}\" for \"--cpus\": it is not a number of CPUs",
                              "Use a positive number such as 0.5")
    if cpus == 0:
        return 0
    nano = int(round(cpus * 1e9)) if 0 < cpus <= available else 0
    if nano * CPU_PERIOD_US // 1_000_000_000 < MIN_CPU_QUOTA_US:
        raise InvalidArgument(
            f"Range of CPUs is from 0.01 to {available}.00, as there are only {available} CPUs available",
            f"Use --cpus with a value from 0.01 to {available}, such as 0.5",
        )
    return nano


def check_pids(pids_limit: int) -> None:
    """Refuse a process limit that ``pids.max`` would not take (0 or less means unlimited).

    Raises:
        InvalidArgument: Above PID_MAX_LIMIT.
    """
    if pids_limit > MAX_PIDS:
        raise InvalidArgument(f"pids limit {pids_limit} is more than the kernel allows ({MAX_PIDS}, PID_MAX_LIMIT)",
                              "Use a smaller number, or -1 for no limit")
