"""labkit: learn how containers work by running real ones.

    >>> import labkit
    >>> lab = labkit.connect()                     # the real backend when the host allows it
    >>> c = lab.run("busybox", ["echo", "hi"])     # a real PID 1 in its own namespaces
    >>> c.logs()
    'hi\\n'

The :class:`Engine` is the only door; :mod:`labkit.errors` holds every error it raises.
"""

from typing import TYPE_CHECKING

from labkit._lazy import lazy
from labkit.errors import (
    AmbiguousReference,
    Breakout,
    BuildFailed,
    Conflict,
    HostUnsupported,
    IllegalTransition,
    InvalidArgument,
    InvalidCapability,
    InvalidConfig,
    InvalidName,
    InvalidOption,
    LabfileError,
    LabkitError,
    LabkitWarning,
    LimitDiscarded,
    NameInUse,
    NetworkReduced,
    NoSuchContainer,
    NoSuchImage,
    NoSuchNetwork,
    NoSuchVolume,
    NotATerminal,
    NotFound,
    StartFailed,
    UsageError,
    VolumeInUse,
)

if TYPE_CHECKING:
    from labkit.engine import Container, Engine, connect

# The engine is imported on first use, so `labkit --help` and the graders start fast.
__getattr__ = lazy("labkit", {"Container": "engine", "Engine": "engine", "connect": "engine"})

__version__ = "0.1.0"

__all__ = [
    "AmbiguousReference",
    "Breakout",
    "BuildFailed",
    "Conflict",
    "Container",
    "Engine",
    "HostUnsupported",
    "IllegalTransition",
    "InvalidArgument",
    "InvalidCapability",
    "InvalidConfig",
    "InvalidName",
    "InvalidOption",
    "LabfileError",
    "LabkitError",
    "LabkitWarning",
    "LimitDiscarded",
    "NameInUse",
    "NetworkReduced",
    "NoSuchContainer",
    "NoSuchImage",
    "NoSuchNetwork",
    "NoSuchVolume",
    "NotATerminal",
    "NotFound",
    "StartFailed",
    "UsageError",
    "VolumeInUse",
    "connect",
]
