"""The ``labkit`` commands, one module per kind of thing they act on, as ``docker``'s are.

Each module holds its commands' handlers (``cmd_*``: parse, call the Engine,
print — nothing more) and a ``register(command)`` that adds them and their
flags to the command line (:func:`labkit.cli.parser.build_parser` calls each):

* :mod:`.run` — ``run`` and ``create``, and the flags they share.
* :mod:`.containers` — the lifecycle verbs, ``attach``, ``ps``, ``inspect``, ``diff``, ``logs``, ``exec``,
  ``rename``, ``update``.
* :mod:`.copy` — ``cp``: files between this host and a container.
* :mod:`.monitor` — ``port``, ``top``, ``stats``: watching a container.
* :mod:`.images` — ``images``, ``build``, ``commit``, ``history``, ``rmi``, ``tag``, ``save``, ``load``,
  ``export``, ``import``.
* :mod:`.registry` — ``pull``, ``push``, ``login``, ``logout``, ``search``, refused: labkit works offline.
* :mod:`.volumes`, :mod:`.networks`, :mod:`.services` — their ``create``/``ls``/``rm``/``inspect`` groups.
* :mod:`.system` — ``trace``, ``show``, ``doctor``, ``version``, ``server``, ``info``.

* :mod:`.groups` — ``container …``, ``image …``, ``system …``: the same commands again, by group.

The grading commands (``grade``, ``quiz``, ``grades``) register from :mod:`labkit.grading.cli`.
"""
