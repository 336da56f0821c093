"""The resident engine behind the ``labkit`` command, as ``dockerd`` is behind ``docker``.

Two rooms, imported apart:

* :mod:`labkit.daemon.client` — what a caller needs to know of the engine: where
  it listens (:func:`~labkit.daemon.client.socket_dir`), whether it runs, and
  how to stop it. Standard library only; the command line and ``labkit doctor``
  import this and nothing else of the daemon.
* :mod:`labkit.daemon.server` — the engine itself (``python -m
  labkit.daemon.server DIR``): it imports labkit once and runs each command in
  a fork of itself.

This package imports neither, so importing the client never loads the server.
"""
