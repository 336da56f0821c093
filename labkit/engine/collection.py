"""What every resource of the engine shares: a collection over the engine, and the mark of a verb.

As docker-py's ``models/resource.py``: ``lab.volumes``, ``lab.networks`` … are collections,
each holding the :class:`~labkit.engine.Engine` it belongs to, and their verbs read
``lab.volumes.create``, ``lab.networks.rm``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from labkit.engine.core import Engine

F = TypeVar("F", bound=Callable[..., Any])


class Collection:
    """One kind of thing the engine keeps: its verbs, over the engine's store, backend and trace.

    Args:
        engine: The engine whose state root and backend the verbs use.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine


def verb(name: str) -> Callable[[F], F]:
    """Mark a collection's method as a verb: the steps it takes are recorded under ``name``."""

    def wrap(method: F) -> F:
        @functools.wraps(method)
        def inner(self: Collection, *args: Any, **kw: Any) -> Any:
            with self.engine._doing(name):
                return method(self, *args, **kw)

        return inner  # type: ignore[return-value]

    return wrap
