"""Control groups: a container's limits, its accounting and its processes.

A control group is a directory in a cgroup filesystem; the processes listed in
its ``cgroup.procs`` share the limits written into its other files (see
cgroups(7) and the kernel's Documentation/admin-guide/cgroup-v1/ and
Documentation/admin-guide/cgroup-v2.rst). Hosts come in three shapes, and this
module handles all of them, detected at run time from the mount table:

- **v1**: one hierarchy per controller (``/sys/fs/cgroup/memory``,
  ``/sys/fs/cgroup/pids``, ...). A container is one directory *in each*
  hierarchy, and its process writes itself into every one of them.
- **v2**: one unified hierarchy (``/sys/fs/cgroup`` is ``cgroup2``). A container
  is one directory; a parent must list a controller in its
  ``cgroup.subtree_control`` before its children get that controller's files.
- **hybrid**: the v1 hierarchies plus a ``cgroup2`` mount (usually
  ``/sys/fs/cgroup/unified``) that holds few or no controllers but still offers
  ``cgroup.freeze``, ``cgroup.kill`` and ``cgroup.events`` in child groups. A
  container joins the v1 hierarchies *and* the unified one, as runc does, so the
  v2 freezer and ``cgroup.kill`` can be used there too.

Which v1 hierarchies a container joins, and why:

- ``memory``, ``pids``, ``cpu``: the limits (``--memory``, ``--pids-limit``,
  ``--cpus``) and their accounting.
- ``cpuacct``: the CPU time the group used (``cpuacct.usage``), which v2 keeps in
  ``cpu.stat`` of every group.
- ``freezer``: ``docker pause``.
- ``devices``: Docker's device rules (:mod:`labkit.linux.devices`), written
  before any process joins. On the unified hierarchy the same rules are a BPF
  program attached to the group; the kernel applies both where both exist.
- ``blkio``: the bytes the group read from and wrote to block devices
  (``blkio.throttle.io_service_bytes``, ``docker stats``' BLOCK I/O); labkit sets
  no I/O rules, but without a group of its own a container's I/O is counted in
  its parent's. On v2 the same counters are ``io.stat``.
- Not ``cpuset`` (labkit sets no CPU pinning, and a new cpuset group would need
  ``cpuset.cpus``/``cpuset.mems`` copied in before a process may join).

Every path is derived from the mount table passed to :func:`detect`, so tests
can point it at a temporary directory laid out like cgroupfs, and the file
operations go through :class:`~labkit.linux.cgroupfs.Cgroupfs`, which tests may
replace with one that creates interface files the way the kernel does on
``mkdir``. A group's paths are :class:`~labkit.linux.cgroupfs.GroupFiles`'; its
freezer (``docker pause``) is :class:`~labkit.linux.freezer.CgroupFreezer`, which
:class:`Cgroup` builds on.
"""

from __future__ import annotations

import errno
import itertools
import os
import signal
import time
from dataclasses import dataclass

from labkit.errors import Conflict, HostUnsupported, LabkitError, NotFound
from labkit.linux import devices as device_rules
from labkit.linux.cgroupfs import POLL, Cgroupfs, check_name
from labkit.linux.freezer import CgroupFreezer
from labkit.linux.hierarchies import JOINED_V1, LIMIT_FLAGS, V1_CONTROLLERS, Layout, delegated, detect
from labkit.model import limits

__all__ = ["JOINED_V1", "V1_CONTROLLERS", "Cgroup", "Cgroupfs", "Layout", "Limits", "delegated", "detect", "stale"]


#: The controllers enabled for a container's group on the unified hierarchy (where the hierarchy, or the
#: delegated subtree, offers them): ``io`` too, without which the group has no ``io.stat`` for ``stats``'
#: block I/O (cgroup-v2.rst, "IO Interface Files").
ENABLED_V2 = ("memory", "pids", "cpu", "io")

#: The CFS bandwidth period Docker uses: ``--cpus 1.5`` is 150000 µs of CPU time
#: per 100000 µs of wall time (Documentation/scheduler/sched-bwc.rst).
CPU_PERIOD_US = limits.CPU_PERIOD_US


@dataclass(frozen=True)
class Limits:
    """The resource limits of one container, in Docker's units.

    Attributes:
        memory: Memory limit in bytes (``--memory``); None or 0 means unlimited.
        memory_swap: Memory *plus* swap in bytes (``--memory-swap``); None or 0
            means twice ``memory`` (Docker's default, applied where the host accounts
            swap); -1 means unlimited swap.
        nano_cpus: CPU share in billionths of a CPU (``--cpus 1.5`` is
            1_500_000_000); None or 0 means unlimited.
        pids_limit: Most processes at once (``--pids-limit``); None, 0 or a
            negative number means unlimited.
    """

    memory: int | None = None
    memory_swap: int | None = None
    nano_cpus: int | None = None
    pids_limit: int | None = None

    def __post_init__(self) -> None:
        limits.check_memory(self.memory or 0, self.memory_swap or 0)
        if self.nano_cpus:
            limits.check_cpus(self.nano_cpus / 1e9, os.cpu_count() or 1)
        if self.pids_limit:
            limits.check_pids(self.pids_limit)

    @property
    def memory_max(self) -> int | None:
        """The memory limit in bytes, or None when memory is unlimited."""
        return self.memory or None

    @property
    def swap_total(self) -> int | None:
        """Memory plus swap in bytes; -1 for unlimited swap; None when memory is unlimited."""
        if not self.memory:
            return None
        if not self.memory_swap:
            return 2 * self.memory
        return self.memory_swap

    @property
    def cpu_quota_us(self) -> int | None:
        """CPU time per :data:`CPU_PERIOD_US` in microseconds, or None when CPU is unlimited."""
        if not self.nano_cpus:
            return None
        return self.nano_cpus * CPU_PERIOD_US // 1_000_000_000

    @property
    def pids_max(self) -> int | None:
        """The process limit, or None when it is unlimited (Docker: a value ≤ 0 means none)."""
        if self.pids_limit is None or self.pids_limit <= 0:
            return None
        return self.pids_limit


class Cgroup(CgroupFreezer):
    """One container's control group, across every hierarchy it joins.

    Paths are deterministic (``<hierarchy>/<parent>/<name>``), so another
    process can :meth:`open` the same group by name.

    Attributes:
        layout: The host layout the group was made for.
        name: The group's directory name (a container id).
        parent: The directory, under each hierarchy, that holds labkit's groups.
        dirs: Every group directory, one per joined hierarchy.
        procs_files: The ``cgroup.procs`` files a new process writes its pid into.
        oom_file: ``memory.oom_control`` (v1) or ``memory.events`` (v2), whose
            ``oom_kill N`` line counts OOM kills; None without a memory controller.
        written: ``(path, value)`` of every write this object made, in order
            (controllers enabled, limits, freezer, cgroup.kill), for the step trace;
            the device rules are not listed (the same dozen lines for every container).
        device_mechanisms: How :meth:`create` set the device rules: ``("v1", "v2")``,
            one of them, or ``()`` when it set none.
    """

    def __init__(self, layout: Layout, name: str, parent: str = "labkit", fs: Cgroupfs | None = None) -> None:
        super().__init__(layout, name, parent, fs)
        memory = self.interface_file("memory", "memory.events" if layout.is_unified("memory") else "memory.oom_control")
        self.oom_file: str | None = memory
        self.device_mechanisms: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"Cgroup({self.parent}/{self.name}, {self.layout.version})"

    # -- making and opening --------------------------------------------------

    @classmethod
    def create(
        cls, layout: Layout, name: str, limits: Limits, parent: str = "labkit", fs: Cgroupfs | None = None,
        devices: tuple[device_rules.Rule, ...] | None = None,
        device_mechanisms: tuple[str, ...] = device_rules.MECHANISMS,
        count_io_on: tuple[str, ...] = (),
    ) -> Cgroup:
        """Make the group in every hierarchy it joins, write its limits and set its device rules.

        An existing group of the same name (left by a crash) is reused and its
        limits rewritten, as runc does.

        Args:
            layout: What the host offers (from :func:`detect`).
            name: The group's directory name, usually the container id.
            limits: The limits to write.
            parent: The directory under each hierarchy holding labkit's groups: made if missing, and
                removed with the last group in it (:meth:`destroy`, the supervisor's cleanup).
            fs: The file operations to use (the real cgroupfs by default).
            devices: The devices the group's processes may make and open, everything
                else denied (:data:`labkit.linux.devices.DOCKER_DEFAULT` for a root
                container); None sets no device rules (a rootless container, whose
                user namespace cannot make a device node anyway).
            device_mechanisms: Which of ``"v1"`` (the devices hierarchy) and ``"v2"``
                (a BPF program on the unified group) set them; both by default, where
                the host has them. Tests turn one off to prove the other holds alone.
            count_io_on: Disks (``MAJ:MIN``, :func:`disk_of`) whose I/O the v1 blkio group is to count
                (:meth:`_count_block_io`).

        Raises:
            HostUnsupported: A limit needs a controller this host lacks, the kernel
                refused a directory or a value, or device rules were asked for and
                neither mechanism exists here. Nothing is left behind.
        """
        group = cls(layout, name, parent, fs)
        group._require(limits)
        if devices is not None and device_mechanisms and not group._device_mechanisms(device_mechanisms):
            raise HostUnsupported(
                "this host has neither a cgroup v1 devices controller nor a cgroup v2 hierarchy, so labkit cannot "
                "keep a root container from making and opening the host's devices and will not run it",
                "Mount the devices controller (mount -t cgroup -o devices none /sys/fs/cgroup/devices) or a "
                "cgroup2 filesystem, or run labkit as a user (rootless).",
            )
        made: list[str] = []
        try:
            for hierarchy, path in group._dir.items():
                group._make_group(hierarchy, path)
                made.append(path)
            if devices is not None:
                group._set_devices(devices, device_mechanisms)
            group._write_limits(limits)
            group._count_block_io(count_io_on)
        except BaseException as error:
            for path in reversed(made):
                try:
                    group.fs.rmdir(path)
                except OSError:
                    continue
                group._drop_parent(path)
            if isinstance(error, OSError) and not isinstance(error, LabkitError):
                raise HostUnsupported(
                    f"could not set up cgroup {parent}/{name}: {error.strerror or error} ({error.filename})",
                    "Run 'labkit doctor' to see what this host's cgroups allow.",
                ) from error
            raise
        return group

    @classmethod
    def open(cls, layout: Layout, name: str, parent: str = "labkit", fs: Cgroupfs | None = None) -> Cgroup:
        """The group another process made, found by name.

        Raises:
            NotFound: No hierarchy has this group.
        """
        group = cls(layout, name, parent, fs)
        present = [group.fs.exists(d) for d in group.dirs]
        if not any(present):
            raise NotFound(f"no cgroup {parent}/{name} exists on this host", "It was removed or never made.")
        # A group an older labkit made before it joined a hierarchy (devices) has no directory there:
        # a process that joins it (exec) joins the hierarchies the group has.
        group.procs_files = tuple(p for p, here in zip(group.procs_files, present, strict=True) if here)
        return group

    def _require(self, limits: Limits) -> None:
        """Refuse limits whose controller is missing, before anything is made."""
        wanted = {
            "memory": limits.memory_max is not None,
            "pids": limits.pids_max is not None,
            "cpu": limits.cpu_quota_us is not None,
        }
        for controller, needed in wanted.items():
            if needed and controller not in self.layout.controllers:
                raise HostUnsupported(
                    f"this host has no {controller} controller, so {LIMIT_FLAGS[controller]} cannot be enforced",
                    f"Run without {LIMIT_FLAGS[controller]}, or use a host whose cgroups offer {controller} "
                    "('labkit doctor' shows what this one offers).",
                )

    def _make_group(self, hierarchy: str, path: str, tries: int = 3) -> None:
        """Make the parents, then the group. Another container's last group may take the parent away
        between the two (see :meth:`_drop_parent`): the group's mkdir(2) then fails with ENOENT, and
        the parent is made again. Once the group exists, its parent cannot go (rmdir(2) is EBUSY)."""
        for attempt in range(tries):
            self._make_parents(hierarchy)
            try:
                self.fs.mkdir(path)  # mkdir(2) alone, no stat(2) first: EEXIST says what a look would
                return
            except FileExistsError:
                return  # left by a crash: reused, its limits written again
            except FileNotFoundError:
                if attempt == tries - 1:
                    raise

    def _drop_parent(self, path: str) -> None:
        """Remove the parent of a group just removed, if that was its last group; left as it is otherwise.

        The parent is labkit's alone (``<hierarchy>/labkit``): nothing of it stays on the
        host once no container runs. rmdir(2) refuses a cgroup with children (EBUSY).
        """
        try:
            self.fs.rmdir(os.path.dirname(path))
        except OSError:
            pass

    def _make_parents(self, hierarchy: str) -> None:
        """Make ``<hierarchy>/<parent>``; on the unified hierarchy, enable controllers down to it.

        cgroup v2 gives a group a controller's files only if its parent lists the
        controller in ``cgroup.subtree_control`` (cgroup-v2.rst, "Enabling and
        Disabling"), so every level from the root to the parent enables them.
        """
        if hierarchy != self.layout.unified:
            enable = []
        else:
            enable = [c for c in ENABLED_V2 if self.layout.is_unified(c)]
        level = hierarchy
        for part in [*self.parent.split("/"), None]:
            if enable:
                control = os.path.join(level, "cgroup.subtree_control")
                present = set(self.fs.read(control).split())
                missing = [c for c in enable if c not in present]
                if missing:
                    self._write(control, " ".join(f"+{c}" for c in missing))
            if part is None:
                break
            level = os.path.join(level, part)
            try:
                self.fs.mkdir(level)
            except FileExistsError:
                pass  # there already, for another container (or made by another process just now)

    def _device_mechanisms(self, wanted: tuple[str, ...]) -> tuple[str, ...]:
        """Which of ``wanted`` this group can use: ``v1`` with a v1 devices hierarchy, ``v2`` with a unified one."""
        have = []
        if "v1" in wanted and "devices" in self.layout.controllers and not self.layout.is_unified("devices"):
            have.append("v1")
        if "v2" in wanted and self.layout.unified is not None:
            have.append("v2")
        return tuple(have)

    def _set_devices(self, rules: tuple[device_rules.Rule, ...], wanted: tuple[str, ...]) -> None:
        """Deny every device but ``rules``, through each mechanism this host has (see :mod:`labkit.linux.devices`).

        Called right after the group is made and before any process joins it, so
        nothing in the container ever runs without the rules. Where the v1 rules
        are set, a kernel that cannot attach a device program to the unified group
        (one built without CONFIG_CGROUP_BPF: EINVAL) keeps the v1 rules alone.
        """
        mechanisms = self._device_mechanisms(wanted)
        if "v1" in mechanisms:
            # One rule per write(2), as devices.allow reads them, on one open file per run of rules to the same
            # file (``a`` to devices.deny, then the list to devices.allow): twelve opens of a cgroup file cost
            # more than the rules themselves.
            for filename, lines in itertools.groupby(device_rules.v1_lines(rules), key=lambda rule: rule[0]):
                path = self.interface_file("devices", filename)
                assert path is not None
                self.fs.write_each(path, [line for _, line in lines])
        if "v2" in mechanisms:
            assert self.layout.unified is not None
            try:
                device_rules.attach(self._dir[self.layout.unified], rules)
            except OSError as error:
                if "v1" not in mechanisms or error.errno not in (errno.EINVAL, errno.ENOSYS):
                    raise OSError(error.errno, f"the device program was refused: {error.strerror}",
                                  self._dir[self.layout.unified]) from None
        self.device_mechanisms = mechanisms

    def _count_block_io(self, disks: tuple[str, ...]) -> None:
        """On v1, give the blkio group a rule for each of ``disks`` that holds nothing back (the largest rate),
        so that the kernel counts the group's I/O in ``blkio.throttle.io_service_bytes``.

        blk-throttle (block/blk-throttle.c) sees a bio only when its group has a rule on the bio's
        disk, and counts only the bios it sees: without a rule the file stays ``Total 0`` however much the
        group reads and writes. (cgroup v2's ``io.stat`` counts every bio; nothing is written there.)
        A disk the kernel refuses a rule for is left uncounted, as it would be without this.
        """
        path = self.interface_file("blkio", "blkio.throttle.read_bps_device")
        if path is None or self.layout.is_unified("blkio"):
            return
        for disk in disks:
            for name in ("blkio.throttle.read_bps_device", "blkio.throttle.write_bps_device"):
                try:
                    self.fs.write(os.path.join(os.path.dirname(path), name), f"{disk} {UNTHROTTLED}")
                except OSError:
                    break

    def _write_limits(self, limits: Limits) -> None:
        memory, total = limits.memory_max, limits.swap_total
        if memory is not None:
            if self.layout.is_unified("memory"):
                self._set("memory", "memory.max", str(memory))
                swap = self.interface_file("memory", "memory.swap.max")
                if swap and self.fs.exists(swap) and total is not None:
                    # memory.swap.max counts swap alone, Docker's MemorySwap counts memory + swap.
                    self._write(swap, "max" if total == -1 else str(total - memory))
            else:
                # The memory limit first: memsw may never be below it (cgroup-v1/memory.rst, 2.5).
                self._set("memory", "memory.limit_in_bytes", str(memory))
                memsw = self.interface_file("memory", "memory.memsw.limit_in_bytes")
                if memsw and self.fs.exists(memsw) and total is not None:
                    self._write(memsw, str(total))
        if limits.pids_max is not None:
            self._set("pids", "pids.max", str(limits.pids_max))
        quota = limits.cpu_quota_us
        if quota is not None:
            if self.layout.is_unified("cpu"):
                self._set("cpu", "cpu.max", f"{quota} {CPU_PERIOD_US}")
            else:
                self._set("cpu", "cpu.cfs_period_us", str(CPU_PERIOD_US))
                self._set("cpu", "cpu.cfs_quota_us", str(quota))

    # -- processes ------------------------------------------------------------

    def add(self, pid: int) -> None:
        """Move process ``pid`` (and its threads) into the group in every hierarchy.

        A new container process calls this with its own pid before it execs, so
        nothing it runs escapes the limits.
        """
        for procs in self.procs_files:
            self.fs.write(procs, str(pid))

    def pids(self) -> list[int]:
        """Every process in the group, from all its ``cgroup.procs`` files (exited ones are not listed)."""
        found: set[int] = set()
        for procs in self.procs_files:
            try:
                found.update(int(p) for p in self.fs.read(procs).split())
            except OSError:
                continue
        return sorted(found)

    def kill_all(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to every process in the group, then thaw it if it was frozen.

        SIGKILL goes through v2 ``cgroup.kill`` where the group has one: the
        kernel then also kills children forked while it works. Otherwise each
        pid is signalled, re-reading the group until no new pid shows up. A
        frozen group is thawed *after* the signal, as Docker does for a paused
        container: a v1-frozen task cannot fork, and it acts on the pending
        signal as soon as it thaws.
        """
        was_frozen = self.freeze_requested()
        kill_file = self._unified("cgroup.kill")
        if sig == signal.SIGKILL and kill_file is not None and self.fs.exists(kill_file):
            self._write(kill_file, "1")
        else:
            signalled: set[int] = set()
            while True:
                fresh = [p for p in self.pids() if p not in signalled]
                if not fresh:
                    break
                for pid in fresh:
                    try:
                        os.kill(pid, sig)
                    except ProcessLookupError:
                        pass
                signalled.update(fresh)
        if was_frozen:
            self.thaw()

    # -- accounting -----------------------------------------------------------

    def oom_kills(self) -> int:
        """How many processes the kernel's OOM killer killed in this group (``oom_kill N``)."""
        return self._read_keyed(self.oom_file).get("oom_kill", 0)

    def memory_usage(self) -> int | None:
        """Memory charged to the group now, in bytes; None without a memory controller."""
        name = "memory.current" if self.layout.is_unified("memory") else "memory.usage_in_bytes"
        return self._read_int(self.interface_file("memory", name))

    def pids_current(self) -> int | None:
        """Processes and threads in the group now (``pids.current``); None without a pids controller."""
        return self._read_int(self.interface_file("pids", "pids.current"))

    def forks_refused(self) -> int:
        """How many forks the pids limit refused in this group (``pids.events`` ``max N``; 0 without the file)."""
        return self._read_keyed(self.interface_file("pids", "pids.events")).get("max", 0)

    def cpu_usage_ns(self) -> int | None:
        """CPU time the group's processes used, in nanoseconds.

        v1 keeps it in ``cpuacct.usage`` (ns); v2 keeps ``usage_usec`` in every
        group's ``cpu.stat``, whether or not the cpu controller is enabled.
        """
        if "cpuacct" in self.layout.controllers and not self.layout.is_unified("cpuacct"):
            return self._read_int(self.interface_file("cpuacct", "cpuacct.usage"))
        usec = self._read_keyed(self._unified("cpu.stat")).get("usage_usec")
        return None if usec is None else usec * 1000

    def memory_limit(self) -> int | None:
        """The group's memory limit in bytes (``memory.max`` / ``memory.limit_in_bytes``); None when unlimited."""
        name = "memory.max" if self.layout.is_unified("memory") else "memory.limit_in_bytes"
        path = self.interface_file("memory", name)
        if path is None:
            return None
        try:
            text = self.fs.read(path).strip()
        except OSError:
            return None
        # v1 says "unlimited" as the largest page-aligned number (PAGE_COUNTER_MAX pages).
        return None if text == "max" or not text.isdigit() or int(text) >= 1 << 62 else int(text)

    def inactive_file(self) -> int | None:
        """Inactive page cache charged to the group (``memory.stat``: v2 ``inactive_file``, v1
        ``total_inactive_file``), which ``docker stats`` subtracts from the usage."""
        stat = self._read_keyed(self.interface_file("memory", "memory.stat"))
        return stat.get("inactive_file" if self.layout.is_unified("memory") else "total_inactive_file")

    def block_io(self) -> tuple[int, int] | None:
        """Bytes read from and written to block devices by the group: v2 ``io.stat`` (``rbytes=``, ``wbytes=``
        per device), v1 ``blkio.throttle.io_service_bytes`` (``MAJ:MIN Read N`` lines)."""
        if self.layout.is_unified("io") or ("blkio" not in self.layout.controllers and self.layout.unified):
            path = self._unified("io.stat")
            try:
                text = self.fs.read(path) if path else ""
            except OSError:
                return None
            read = write = 0
            for line in text.splitlines():
                for field in line.split()[1:]:
                    key, _, value = field.partition("=")
                    if key == "rbytes" and value.isdigit():
                        read += int(value)
                    elif key == "wbytes" and value.isdigit():
                        write += int(value)
            return read, write
        path = self.interface_file("blkio", "blkio.throttle.io_service_bytes")
        try:
            text = self.fs.read(path) if path else ""
        except OSError:
            return None
        read = write = 0
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[2].isdigit():
                read += int(parts[2]) if parts[1] == "Read" else 0
                write += int(parts[2]) if parts[1] == "Write" else 0
        return read, write

    def update(self, limits: Limits) -> None:
        """Write new limits to a group whose processes run (``docker update``).

        On v1 the memory limit may never exceed ``memory.memsw.limit_in_bytes``
        (cgroup-v1/memory.rst, 2.5), so when both grow, memsw is written first: the
        order that is refused (EINVAL) is tried the other way round.
        """
        try:
            self._write_limits(limits)
        except OSError as error:
            total = limits.swap_total
            memsw = self.interface_file("memory", "memory.memsw.limit_in_bytes")
            if error.errno != errno.EINVAL or self.layout.is_unified("memory") or not memsw or total is None:
                raise
            self._write(memsw, str(total))
            self._write_limits(limits)
        if limits.pids_limit is not None and limits.pids_limit <= 0 and self.interface_file("pids", "pids.max"):
            self._set("pids", "pids.max", "max")  # lifted: --pids-limit -1

    # -- removal --------------------------------------------------------------

    def destroy(self, timeout: float = 2.0) -> None:
        """Remove the group's directory in every hierarchy, and the parent with the last group in it.

        rmdir(2) fails with EBUSY while a process is still in the group (a
        killed process may take a moment to leave), so it is retried until
        ``timeout``.

        Raises:
            Conflict: A directory still had processes after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        busy = []
        for path in self.dirs:
            while True:
                try:
                    self.fs.rmdir(path)
                    self._drop_parent(path)
                    break
                except FileNotFoundError:
                    self._drop_parent(path)
                    break
                except OSError as error:
                    if error.errno != errno.EBUSY or time.monotonic() > deadline:
                        busy.append(path)
                        break
                    time.sleep(POLL)
        if busy:
            raise Conflict(
                f"could not remove cgroup {', '.join(busy)}: it still has processes",
                "Stop them first (kill_all), then remove the group again.",
            )


#: The largest rate a blk-throttle rule takes (bytes per second): a rule that holds nothing back.
UNTHROTTLED = 2**63 - 1


def disk_of(path: str, sys_dev_block: str = "/sys/dev/block") -> str | None:
    """``MAJ:MIN`` of the whole disk the filesystem holding ``path`` is on (a partition's disk), or None when it
    is on none (tmpfs, overlayfs, btrfs: a device number of their own, with no entry in ``/sys/dev/block``).
    blk-throttle takes rules for whole disks only."""
    try:
        dev = os.stat(path).st_dev
    except OSError:
        return None
    entry = os.path.join(sys_dev_block, f"{os.major(dev)}:{os.minor(dev)}")
    if not os.path.isdir(entry):
        return None
    if os.path.exists(os.path.join(entry, "partition")):
        try:
            with open(os.path.join(entry, "..", "dev")) as f:
                return f.read().strip()
        except OSError:
            return None
    return f"{os.major(dev)}:{os.minor(dev)}"


def stale(layout: Layout, parent: str = "labkit", fs: Cgroupfs | None = None) -> list[str]:
    """Every group directory under ``<hierarchy>/<parent>`` on this host, for leak checks and ``labkit doctor``."""
    check_name("parent", parent, allow_slash=True)
    fs = fs or Cgroupfs()
    found: list[str] = []
    for hierarchy in layout.hierarchies:
        base = os.path.join(hierarchy, parent)
        if fs.exists(base):
            found.extend(os.path.join(base, child) for child in sorted(fs.listdir(base)))
    return found
