"""The simulator: labkit's second backend, a modelled kernel in pure Python.

It runs where real containers cannot (no root, macOS, Windows, a locked-down
notebook server) and makes stepping *back* through a run cheap. The modules
mirror the linux backend's, one per kernel concept, each importing only the
ones listed above it (``tests/sim/test_imports.py`` holds them to it):

* :mod:`labkit.sim.kernel`: the world, its simulated clock and the scheduler (handed what runs a process);
* :mod:`labkit.sim.cgroups`: memory and pids counters, the OOM killer's choice, the freezer;
* :mod:`labkit.sim.network`: a container's addresses and interfaces;
* :mod:`labkit.sim.procfs`: the synthesised ``/proc``;
* :mod:`labkit.sim.overlay`: the container filesystem (the overlay model over the image layers, plus mounts);
* :mod:`labkit.sim.namespaces`: PID and UTS namespaces, and the process seen from both sides;
* :mod:`labkit.sim.process`: the process table: fork, exit, signals, output;
* :mod:`labkit.sim.sh_syntax`: the shell's lexer, parser and compiler; :mod:`labkit.sim.sh_arith`: its ``$(( ))``;
* :mod:`labkit.sim.busybox`: busybox's applets (files, text, system; what they share in ``libbb``);
* :mod:`labkit.sim.sh_builtins`: the shell's builtins and variables;
* :mod:`labkit.sim.shell`: the ``sh`` subset's expansion and running;
* :mod:`labkit.sim.programs`: what an exec runs (sh, an applet, the lesson's node server) and one step of it;
* :mod:`labkit.sim.restarts`: what the restart policy (run by a restarter process of the world) did, for the engine;
* :mod:`labkit.sim.saved`: the world saved, on disk and as snapshots to walk back to;
* :mod:`labkit.sim.images`: ``busybox:latest`` made for the simulator, and a Labfile's ``RUN`` step run in it;
* :mod:`labkit.sim.base`: what the backend's rooms stand on: the world on disk, its clock and snapshots, exec;
* :mod:`labkit.sim.networking`: a container's network as the backend connects it, and a GET to one of its ports;
* :mod:`labkit.sim.rootfs`: the container's filesystem as the backend shows it: ``cp``, ``diff``, ``commit``, builds;
* :mod:`labkit.sim.views`: what the pictures and ``top`` read of a container;
* :mod:`labkit.sim.backend`: :class:`~labkit.sim.backend.SimBackend`, the lifecycle's verbs on those rooms, what the
  engine talks to.

Use it with ``labkit.connect(backend="sim")``, ``labkit --backend sim ...`` or ``LABKIT_BACKEND=sim``.
"""
