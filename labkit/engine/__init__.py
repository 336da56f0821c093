"""The Engine, labkit's only door, in one room per resource (:mod:`labkit.engine.core` draws them).

``from labkit.engine import Engine`` and the names below are the package's surface;
the rooms are :mod:`~labkit.engine.containers` (with :mod:`~labkit.engine.lifecycle` and
:mod:`~labkit.engine.upkeep`), :mod:`~labkit.engine.images`,
:mod:`~labkit.engine.volumes`, :mod:`~labkit.engine.networks`,
:mod:`~labkit.engine.services` and :mod:`~labkit.engine.system`, with Docker's option
values read in :mod:`~labkit.engine.options`.
"""

from labkit.backends import DEFAULT_ROOT, default_root
from labkit.engine.core import Engine, connect
from labkit.engine.handles import Container, PhasedRun
from labkit.engine.networks import bridge_idle_seconds
from labkit.engine.options import merge_env, parse_env, parse_port, restart_policy, signal_number

__all__ = [
    "DEFAULT_ROOT",
    "Container",
    "Engine",
    "PhasedRun",
    "bridge_idle_seconds",
    "connect",
    "default_root",
    "merge_env",
    "parse_env",
    "parse_port",
    "restart_policy",
    "signal_number",
]
