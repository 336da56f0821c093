#!/usr/bin/env python3
"""How long the pictures take to render, and what a stepper update costs, at a lesson-sized state.

    python bench/viz.py [--rounds N]

Every figure is built from plain data (no engine, no root), the way the simulator
or a real run would feed it, and sized like the lesson's:

  * layers: frontend-app:v2.1.0's three read-only layers under two containers whose
    upper dirs hold about 50 entries between them (copy-ups, whiteouts, opaque
    directories, new files and directories), with a chosen path framed;
  * lifecycle: the lesson's five statuses with one current, and the ``--all`` view;
  * walls: host view against container view, from /proc texts;
  * resources: 300 samples of memory and processes against their limits, an OOM kill;
  * network: a bridged container with an address and two published ports.

A figure's time is ``draw`` (build the Figure) plus ``png`` (rasterise it at the
widgets' resolution, as the stepper does). A stepper update is one click, timed
around ``Stepper.step()`` / ``Stepper.back()``: the walk to the new position, the
picture drawn (on the one figure the stepper keeps for its clicks) and rasterised,
caption and image set. Step and Back land on positions not shown before (the
expensive case); the last stepper row is a Back onto a cached position. Back is measured near the end and near the start of a 1 000-step trace: with
:class:`labkit.model.walk.Walk` behind the stepper the two cost the same.

Prints medians (min–max) in milliseconds and whether each is below the 150 ms aim.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from labkit.model import events, views  # noqa: E402
from labkit.model.events import Step  # noqa: E402
from labkit.viz import layers, lifecycle, network, resources, stepper, walls  # noqa: E402
from labkit.viz import palette as P  # noqa: E402

AIM_MS = 150.0
TRACE_STEPS = 1_000
IMAGE = "frontend-app:v2.1.0"
LAYERS = [
    {"role": "base OS", "size": 1_982_425, "files": 285},
    {"role": "runtime", "size": 104_330_536, "files": 14},
    {"role": "app code", "size": 1577, "files": 3},
]
WEB1, WEB2 = "a" * 64, "b" * 64


# -- the data --------------------------------------------------------------------------------------------

def _container(name: str, cid: str, copied: dict[str, tuple[int, int]], gone: list[str], new_dirs: list[str],
               new_files: list[tuple[str, int]], opaque: list[str], serves: Any) -> dict[str, Any]:
    """One container's plain data: its upper dir's entries and what the image layers hold at those paths."""
    upper: list[dict[str, Any]] = []
    below: dict[str, dict[str, int]] = {}
    parents = {p.rsplit("/", 1)[0] for p in [*copied, *gone]} - {""}
    for d in sorted(parents):  # directories copied up only to hold what is below them
        upper.append({"path": d, "type": "dir", "size": 0})
        below[d] = {"layer": 1, "size": 0}
    for path, (size, layer) in copied.items():
        upper.append({"path": path, "type": "file", "size": size + 7})
        below[path] = {"layer": layer, "size": size}
    upper += [{"path": p, "type": "whiteout", "size": 0} for p in gone]
    upper += [{"path": d, "type": "dir", "size": 0} for d in new_dirs]
    upper += [{"path": p, "type": "file", "size": s} for p, s in new_files]
    for d in opaque:
        upper.append({"path": d, "type": "dir", "size": 0, "opaque": True})
        below[d] = {"layer": 1, "size": 0}
    return {"name": name, "id": cid, "status": "running", "upper": upper, "below": below, "serves": serves}


def layer_scene() -> layers.LayerScene:
    """Two containers on the lesson's three layers, 50 upper entries between them."""
    web1 = _container(
        "web1", WEB1,
        copied={"/app/server.js": (1459, 3), "/etc/hosts": (174, 1), "/etc/hostname": (13, 1),
                "/etc/resolv.conf": (112, 1), "/etc/passwd": (340, 1), "/usr/local/bin/node": (96_000_000, 2)},
        gone=["/app/package.json", "/etc/motd", "/var/log/boot.log"],
        new_dirs=["/app/cache", "/run/app"],
        new_files=[(f"/app/cache/page-{i}.html", 2_000 + 37 * i) for i in range(13)] + [("/run/app/pid", 4)],
        opaque=["/tmp"], serves="upper")
    web2 = _container(
        "web2", WEB2,
        copied={"/etc/hosts": (174, 1), "/etc/hostname": (13, 1), "/etc/resolv.conf": (112, 1)},
        gone=["/etc/motd", "/usr/share/doc"],
        new_dirs=["/app/uploads"],
        new_files=[(f"/app/uploads/photo-{i}.jpg", 150_000 + 1_000 * i) for i in range(10)],
        opaque=["/var/cache"], serves=3)
    sc = layers.scene(IMAGE, LAYERS, [web1, web2], path="/app/server.js")
    return sc


def usage() -> resources.Usage:
    """300 samples, 20 ms apart: memory climbing to the 32 MiB limit, then the OOM kill."""
    n, limit = 300, 32 << 20
    samples = [(i * 0.02, int(limit * min(1.0, 0.1 + 0.9 * i / (n - 1))), 1 + (i // 40) % 4) for i in range(n)]
    return resources.usage("hog", samples, memory_limit=limit, pids_limit=20, oom_at=samples[-1][0],
                           exit_code=137)


def walls_view() -> walls.WallsView:
    """The walls of a container with a memory and a pids limit, as /proc shows them on both sides."""
    net_host = "Inter-|   Receive\n face |bytes\n" + "".join(f"  {n}: 0 0\n" for n in
                                                             ("lo", "eth0", "docker0", "lkbr0", "veth1a2b"))
    net_in = "Inter-|   Receive\n face |bytes\n    lo: 0 0\n  eth0: 0 0\n"
    host = {"status": "Name:\tnode\nPid:\t722\nNSpid:\t722\t1\n", "hostname": "lab-vm\n", "net_dev": net_host,
            "mounts": "m\n" * 34, "cgroup": f"4:memory:/labkit/{WEB1}\n0::/labkit/{WEB1}\n",
            "memory_limit": "33554432\n", "pids_limit": "20\n"}
    inside = {"status": "Pid:\t1\nNSpid:\t1\n", "hostname": WEB1[:12], "net_dev": net_in, "mounts": "m\n" * 9,
              "cgroup": "4:memory:/\n0::/\n", "meminfo": "MemTotal:  24576000 kB\n", "cgroup_files": 0}
    return walls.view("web1", views.ProcessView(views.side_from_texts(host, innermost=False),
                                               views.side_from_texts(inside, innermost=True)))


def net_view() -> network.NetView:
    """A container on a bridge with an address and two published ports."""
    info = {"Name": "/web1", "HostConfig": {"NetworkMode": "bridge"},
            "NetworkSettings": {"IPAddress": "172.18.0.2", "IPPrefixLen": 16, "Gateway": "172.18.0.1",
                                "MacAddress": "02:42:ac:12:00:02", "Bridge": "lkbr0", "Ports": {
                "3000/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}],
                "9229/tcp": [{"HostIp": "127.0.0.1", "HostPort": "9229"}]}}}
    host = ("1: lo    inet 127.0.0.1/8 scope host lo\n2: eth0    inet 10.0.0.4/24 brd 10.0.0.255 scope global eth0\n"
            "3: lkbr0    inet 172.18.0.1/16 scope global lkbr0\n4: veth1a2b@if2    inet6 fe80::1/64 scope link\n")
    inside = "1: lo    inet 127.0.0.1/8 scope host lo\n2: eth0@if4    inet 172.18.0.2/16 scope global eth0\n"
    return network.view(info, views.NetworkView(views.parse_ip(host), views.parse_ip(inside), "veth1a2b"),
                        "172.18.0.0/16")


def layer_trace(n: int = TRACE_STEPS) -> list[Step]:
    """Two containers started, then n steps of copy-ups, new files, whiteouts, pauses and cgroup writes."""
    made: list[tuple[str, str, tuple[str, str, str, dict[str, Any]]]] = []
    for cid, ip in ((WEB1, "172.18.0.2"), (WEB2, "172.18.0.3")):
        made += [("run", cid, e) for e in (
            events.create_layer(f"/u/{cid[:4]}"),
            events.mount_overlay(["/l3", "/l2", "/l1"], f"/u/{cid[:4]}", "/w", "/m"),
            events.cgroup_write("memory.limit_in_bytes", "33554432", "the memory limit"),
            events.cgroup_write("pids.max", "20", "the process limit"),
            events.clone(pid=700 + len(made)),
            events.pivot_root("/m"),
            events.execve(["node", "/app/server.js"], 700 + len(made)),
            events.network_attach("veth1a2b", "lkbr0", ip, "02:42:ac:12:00:02"),
        )]
    i = 0
    while len(made) < n - 2:
        cid = (WEB1, WEB2)[i % 2]
        k = i // 2
        pick = k % 10
        if pick in (0, 3, 6):
            e = events.copy_up(f"/etc/conf-{k % 12}.d", 100 + k, 1 + k % 3)
        elif pick in (1, 4, 7):
            e = events.added(f"/app/cache/page-{k % 11}.html", 2_000 + k)
        elif pick == 2:
            e = events.whiteout(f"/var/log/old-{k % 4}.log")
        elif pick == 5:
            e = events.opaque("/tmp")
        elif pick == 8:
            e = events.freeze(k % 20 == 8)
        else:
            e = events.cgroup_write("memory.limit_in_bytes", str((32 + k % 8) << 20), "a new memory limit")
        made.append(("exec", cid, e))
        i += 1
    made += [("stop", WEB2, events.signal(15, 701)), ("stop", WEB2, events.exited(143))]
    return [Step(seq, verb, cid, *e) for seq, (verb, cid, e) in enumerate(made[:n])]


def lifecycle_trace(n: int = TRACE_STEPS) -> list[Step]:
    """One container's n lifecycle steps: start, pause, unpause, stop, start again, … (no layer steps)."""
    cycle = [events.execve(["sleep", "600"], 722), events.freeze(True), events.freeze(False),
             events.cgroup_write("pids.max", "20", "the process limit"), events.signal(15, 722), events.exited(143)]
    return [Step(i, "walk", WEB1, *cycle[i % len(cycle)]) for i in range(n)]


# -- timing --------------------------------------------------------------------------------------------

def ms(t0: float, t1: float) -> float:
    return (t1 - t0) * 1000


def figure_times(make: Callable[[], Any], rounds: int) -> tuple[list[float], list[float], list[float]]:
    """(total, draw, png) per round, after one warm-up round that is not counted."""
    total, draw, png = [], [], []
    for r in range(rounds + 1):
        t0 = time.perf_counter()
        fig = make()
        t1 = time.perf_counter()
        P.png(fig)
        t2 = time.perf_counter()
        if r:
            total.append(ms(t0, t2))
            draw.append(ms(t0, t1))
            png.append(ms(t1, t2))
    return total, draw, png


def stepper_times(steps: list[Step], base: Any, rounds: int) -> dict[str, list[float]]:
    """Step, Back near the end, Back near the start, and Back onto a cached position, each on a fresh position."""
    s = stepper.Stepper(steps, base=base)
    last = len(steps) - 1
    out: dict[str, list[float]] = {"step": [], "back-end": [], "back-start": [], "back-cached": []}
    for _ in range(rounds):
        t0 = time.perf_counter()
        s.step()  # positions 1, 2, … : never shown before
        out["step"].append(ms(t0, time.perf_counter()))
    for key, at in (("back-end", lambda r: last - 2 * r), ("back-start", lambda r: rounds + 10 + 2 * r)):
        for r in range(rounds):
            s.slider.value = at(r)  # a jump, not timed; the position behind it has not been shown
            t0 = time.perf_counter()
            s.back()
            out[key].append(ms(t0, time.perf_counter()))
    for _ in range(rounds):
        s.step()
        t0 = time.perf_counter()
        s.back()
        out["back-cached"].append(ms(t0, time.perf_counter()))
    return out


def state_times(steps: list[Step], base: layers.LayerScene, rounds: int) -> dict[str, list[float]]:
    """What the state behind a Back costs at the trace's end: the walk's, and replaying the whole prefix."""
    pics = stepper.TracePictures(steps, base)
    last = len(steps) - 1
    pics.state(last)
    walk, replay, scene = [], [], []
    for _ in range(rounds):
        pics.state(last)
        t0 = time.perf_counter()
        pics.state(last - 1)
        walk.append(ms(t0, time.perf_counter()))
        t0 = time.perf_counter()
        pics.scene(last - 1)
        scene.append(ms(t0, time.perf_counter()))
        t0 = time.perf_counter()
        layers.replay(base, steps[:last])
        replay.append(ms(t0, time.perf_counter()))
    return {"walk": walk, "scene": scene, "replay": replay}


# -- the table ----------------------------------------------------------------------------------------

def row(case: str, total: list[float], draw: list[float] | None = None, png: list[float] | None = None,
        aim: bool = True) -> str:
    med = statistics.median(total)
    spread = f"{med:8.1f} ({min(total):.1f}–{max(total):.1f})"
    parts = f"{statistics.median(draw):7.1f} {statistics.median(png):7.1f}" if draw and png else f"{'':7} {'':7}"
    verdict = ("yes" if med < AIM_MS else "NO") if aim else ""
    return f"{case:58} {spread:>24} {parts}   {verdict}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15, help="timed rounds per case (1–200; default 15)")
    args = ap.parse_args()
    if not 1 <= args.rounds <= 200:
        ap.error("--rounds must be between 1 and 200: the stepper rows need a fresh trace position per round")
    rounds = args.rounds
    sc = layer_scene()
    entries = sum(w.files for w in sc.containers)
    u = usage()
    figures: list[tuple[str, Callable[[], Any]]] = [
        (f"layers: 2 containers, 3 layers, {entries} upper entries", lambda: layers.draw(sc)),
        ("lifecycle: 5 statuses, one current", lambda: lifecycle.draw("running", name="web1")),
        ("lifecycle --all: 8 statuses", lambda: lifecycle.draw("paused", all_statuses=True)),
        ("walls: host view | container view", lambda: walls.draw(walls_view())),
        (f"resources: {len(u.samples)} samples, OOM kill", lambda: resources.draw(u)),
        ("network: bridge, address, 2 published ports", lambda: network.draw(net_view())),
    ]
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"labkit.viz at a lesson-sized state: {rounds} rounds per case, times in ms; aim: below {AIM_MS:g} ms")
    print(f"{os.cpu_count()} CPUs, load average {load} (other work on the machine inflates every figure)")
    print(f"\n{'case':58} {'median (min–max)':>24} {'draw':>7} {'png':>7}   < {AIM_MS:g} ms")
    for name, make in figures:
        total, draw, png = figure_times(make, rounds)
        print(row(f"figure  {name}", total, draw, png))

    base = layers.scene(IMAGE, LAYERS)
    for label, steps in (("layers", layer_trace()), ("lifecycle", lifecycle_trace())):
        t = stepper_times(steps, base if label == "layers" else None, rounds)
        n = len(steps)
        print(row(f"stepper {label}, {n} steps: Step to a new position", t["step"]))
        print(row(f"stepper {label}, {n} steps: Back near step {n}", t["back-end"]))
        print(row(f"stepper {label}, {n} steps: Back near step {rounds + 10}", t["back-start"]))
        print(row(f"stepper {label}, {n} steps: Back to a position shown before", t["back-cached"]))

    steps = layer_trace()
    st = state_times(steps, base, rounds)
    print(f"\nthe state behind Back at step {len(steps)} (no drawing)")
    print(row("  Walk: from the nearest checkpoint", st["walk"], aim=False))
    print(row("  Walk state → layer scene", st["scene"], aim=False))
    print(row(f"  replaying all {len(steps) - 1} steps before it (layers.replay)", st["replay"], aim=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
