"""The simulator's modules stand in the order ``labkit.sim``'s docstring lists them, and import one another at the top.

``tests/test_imports.py`` reads labkit's whole import graph from the source
(every import, function-local ones too) and holds it to no circle. Here the
simulator's part of that graph is held to more: no circle among its modules,
no arrow running back up the list of modules its package docstring draws
bottom up (the kernel first, the backend last), and no simulator module
imported inside a function, which is how a circle hides from Python.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import textwrap

import labkit.sim
from tests.sim.conftest import state_root
from tests.test_imports import MODULES, circles, graph

PACKAGE = "labkit.sim"


def _in_sim(module: str) -> bool:
    return module.startswith(PACKAGE + ".")


def _sim_graph() -> dict[str, set[str]]:
    """The arrows between the simulator's modules (type-only imports count: mypy follows them)."""
    return {m: {t for t in targets if _in_sim(t)} for m, targets in graph(runtime_only=False).items() if _in_sim(m)}


def _floors(doc: str) -> list[str]:
    """The modules a package docstring names with ``:mod:``, in the order it first names them."""
    return list(dict.fromkeys(re.findall(r":mod:`(labkit\.sim\.\w+)`", doc)))


def _floor(module: str, floors: list[str]) -> int:
    """Where ``module`` stands in ``floors`` (a package's modules stand with it); ``len(floors)``: not listed."""
    while module not in floors and module.count(".") > 2:
        module = module.rsplit(".", 1)[0]
    return floors.index(module) if module in floors else len(floors)


def _function_local_sim_imports(source: str) -> list[int]:
    """The lines of imports of simulator modules (absolute or relative) made inside a function."""
    lines = []
    for fn in ast.walk(ast.parse(source)):
        if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            for node in ast.walk(fn):
                if isinstance(node, ast.Import) and any(_in_sim(a.name) for a in node.names):
                    lines.append(node.lineno)
                elif isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith(PACKAGE)):
                    lines.append(node.lineno)
    return sorted(set(lines))


def test_the_helpers_read_floors_and_function_local_imports():
    """The floors come in the docstring's order, a package's modules stand with it, and an import inside a
    function is seen whether absolute or relative."""
    floors = _floors("* :mod:`labkit.sim.kernel`: …\n* :mod:`labkit.sim.busybox`: … :mod:`labkit.sim.kernel`\n")
    assert floors == ["labkit.sim.kernel", "labkit.sim.busybox"]
    assert _floor("labkit.sim.busybox.files", floors) == 1 and _floor("labkit.sim.nowhere", floors) == 2
    source = "import os\nfrom labkit.sim import kernel\ndef f():\n    from labkit.sim.shell import Exec\n" \
             "    import labkit.sim.process\n    from . import busybox\n    import json\n"
    assert _function_local_sim_imports(source) == [4, 5, 6]


def test_no_circle_among_the_simulators_modules():
    """No module of labkit.sim reaches itself again through the simulator modules it imports."""
    found = circles(_sim_graph())
    assert found == [], "modules of labkit.sim in one import circle: " + "; ".join(", ".join(sorted(c)) for c in found)


def test_every_module_imports_only_what_the_package_docstring_lists_before_it():
    """labkit.sim's docstring lists every module of the simulator, bottom up, and no import runs back up the list
    (a package's own modules may import one another)."""
    floors = _floors(labkit.sim.__doc__ or "")
    assert floors[0] == "labkit.sim.kernel" and floors[-1] == "labkit.sim.backend"
    edges = _sim_graph()
    unlisted = [m for m in edges if _floor(m, floors) == len(floors)]
    assert unlisted == [], f"modules of labkit.sim its docstring does not list: {unlisted}"
    upward = [f"{m} imports {t}" for m, targets in edges.items() for t in sorted(targets)
              if _floor(t, floors) > _floor(m, floors)]
    assert upward == [], "imports running up labkit.sim's list of modules: " + ", ".join(upward)


def test_no_simulator_module_is_imported_inside_a_function():
    """Simulator modules import one another at the top: none of them is heavy enough to keep off a hot path."""
    hidden = [f"{m}:{line}" for m, path in sorted(MODULES.items()) if _in_sim(m) or m == PACKAGE
              for line in _function_local_sim_imports(path.read_text())]
    assert hidden == [], "function-local imports of simulator modules: " + ", ".join(hidden)


#: A simulated run with a published port, as root's network and as a user's, in a process where
#: ``import labkit.linux`` fails as it does on a host without Linux.
_WITHOUT_LINUX = textwrap.dedent("""
    import json, sys
    sys.modules["labkit.linux"] = None
    from labkit.engine import Engine
    from labkit.sim.backend import SimBackend
    from labkit.store import Store

    seen = {}
    for rootless in (False, True):
        lab = Engine(root=sys.argv[1], backend=SimBackend(Store(sys.argv[1]), realtime=False, rootless=rootless))
        c = lab.run("busybox", ["sleep", "600"], detach=True, ports=["8080:80"])
        try:
            ns = c.inspect()["NetworkSettings"]
            seen["user" if rootless else "root"] = [ns["IPAddress"], ns["Ports"]["80/tcp"][0]["HostPort"]]
        finally:
            c.remove(force=True)
    print(json.dumps({"seen": seen, "linux": sorted(m for m in sys.modules if m.startswith("labkit.linux."))}))
""")


def test_the_simulator_runs_where_labkit_linux_cannot_be_imported():
    """With ``labkit.linux`` unimportable, as on macOS, a simulated container is made, published, inspected (its
    NetworkSettings as root and as a user) and removed, and no module of labkit.linux was loaded."""
    done = subprocess.run([sys.executable, "-c", _WITHOUT_LINUX, str(state_root())], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert got["linux"] == []
    assert got["seen"]["user"] == ["10.0.2.100", "8080"]
    assert got["seen"]["root"][0].startswith(("172.", "192.168.")) and got["seen"]["root"][1] == "8080"
