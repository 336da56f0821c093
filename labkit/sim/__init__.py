"""The simulator: labkit's second backend, a modelled kernel in pure Python.

It runs where real containers cannot (no root, macOS, Windows, a locked-down
notebook server) and makes stepping *back* through a run cheap. The modules
mirror the linux backend's, one per kernel concept:

* :mod:`labkit.sim.kernel`: the world, its simulated clock and the scheduler;
* :mod:`labkit.sim.namespaces`: PID and UTS namespaces;
* :mod:`labkit.sim.overlay`: the container filesystem (the overlay model over the image layers, plus mounts);
* :mod:`labkit.sim.cgroups`: memory and pids counters, OOM kills, the freezer;
* :mod:`labkit.sim.network`: loopback-only networking and the lesson's web server;
* :mod:`labkit.sim.process`: processes, fork/exec/exit, signals;
* :mod:`labkit.sim.shell`: the ``sh`` subset and busybox's programs;
* :mod:`labkit.sim.backend`: :class:`~labkit.sim.backend.SimBackend`, what the engine talks to.

Use it with ``labkit.connect(backend="sim")``, ``labkit --backend sim ...`` or ``LABKIT_BACKEND=sim``.
"""
