"""Capabilities: root's powers, split into pieces a container keeps or loses.

capabilities(7) splits what root may do into about forty named powers. A
process has several sets of them; the two that matter for a container are

* the **bounding set**: the most any program this process executes can ever
  get. Dropping a capability from it (``prctl(PR_CAPBSET_DROP)``) is final.
* the **effective set**: what the kernel checks right now.

Docker starts every container's process with the same 14 capabilities
(:data:`DOCKER_DEFAULT`). A root process inside keeps uid 0 but cannot, for
example, mount filesystems (CAP_SYS_ADMIN), load kernel modules
(CAP_SYS_MODULE) or change the clock (CAP_SYS_TIME). ``grep Cap
/proc/1/status`` inside a container shows the mask ``00000000a80425fb``.

The shim drops the rest before the command starts (``pid1.c``'s
restrict_caps), in the order the kernel requires: every other capability out
of the bounding set (``prctl(PR_CAPBSET_DROP)``, which needs CAP_SETPCAP and
so comes first), the ambient set cleared, then capset(2) with effective and
permitted set to the mask and inheritable to nothing, as Docker does since
CVE-2022-24769. This module names them and computes the mask it is given
(``--caps``).
"""

from __future__ import annotations

from collections.abc import Iterable

from labkit.model.hostconfig import CAPABILITIES as NAMES
from labkit.model.hostconfig import DOCKER_DEFAULT

__all__ = ["DOCKER_DEFAULT", "NAMES", "mask", "names_of"]


def mask(names: Iterable[str]) -> int:
    """The bit mask of the named capabilities (``CHOWN`` is bit 0)."""
    return sum(1 << NAMES.index(name) for name in set(names))


def names_of(bits: int) -> list[str]:
    """The names of the capabilities set in ``bits``, in kernel order."""
    return [name for number, name in enumerate(NAMES) if bits >> number & 1]
