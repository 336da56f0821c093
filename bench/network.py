#!/usr/bin/env python3
"""What a container's network costs: the bridge vs none, and a published port vs the container's own address.

    sudo .venv/bin/python bench/network.py [--rounds N] [--quick]

Prints medians (min–max) and per-round ratios of:
  * start-to-exit of `run --rm busybox true` in-process, default bridge (netns, veth, address, route)
    vs `--network none` — interleaved (A B A B …) so load hits both alike; target ≤ 2×;
  * connection setup + one HTTP request to busybox httpd in a container: through the published port
    on 127.0.0.1 (the supervisor relays it) vs straight to the container's address on the bridge;
  * sequential request throughput over each path for a fixed time.
Uses a private state root and removes everything it made (containers, bridge) at the end.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import labkit  # noqa: E402

SERVE = "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www"


def fmt(xs: list[float]) -> str:
    return f"{statistics.median(xs):8.2f} ({min(xs):.2f}–{max(xs):.2f})"


def request(host: str, port: int) -> float:
    """One fresh connection and one GET; milliseconds."""
    t = time.perf_counter()
    conn = http.client.HTTPConnection(host, port, timeout=5)
    conn.request("GET", "/")
    body = conn.getresponse().read()
    conn.close()
    if body != b"ok\n":
        raise RuntimeError(f"unexpected answer from {host}:{port}: {body!r}")
    return (time.perf_counter() - t) * 1000


def throughput(host: str, port: int, seconds: float) -> float:
    """Sequential requests per second for ``seconds``."""
    n, end = 0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        request(host, port)
        n += 1
    return n / seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--quick", action="store_true", help="a tiny pass for CI smoke tests")
    args = ap.parse_args()
    rounds = 3 if args.quick else args.rounds
    if os.geteuid() != 0:
        print("bench/network.py needs root (bridges and veth pairs); run it with sudo", file=sys.stderr)
        return 2
    root = tempfile.mkdtemp(prefix="labkit-bench-net-")
    lab = labkit.connect(backend="linux", root=root)
    web = None
    try:
        lab.run("busybox", ["true"], auto_remove=True)  # warm: image, shim, pyroute2 imported
        lab.run("busybox", ["true"], auto_remove=True, network="none")
        bridge, none, ratio = [], [], []
        for _ in range(rounds):
            t = time.perf_counter()
            lab.run("busybox", ["true"], auto_remove=True)
            b = (time.perf_counter() - t) * 1000
            t = time.perf_counter()
            lab.run("busybox", ["true"], auto_remove=True, network="none")
            n = (time.perf_counter() - t) * 1000
            bridge.append(b)
            none.append(n)
            ratio.append(b / n)
        print(f"{'start-to-exit of true, in-process (ms)':48} {'median (min–max)':>24}")
        print(f"{'  --network none':48} {fmt(none):>24}")
        print(f"{'  default bridge':48} {fmt(bridge):>24}")
        verdict = "met" if statistics.median(ratio) <= 2 else "not met"
        print(f"{'  ratio bridge / none, per round':48} {fmt(ratio):>24}   target ≤ 2×: {verdict}")

        web = lab.run("busybox", ["sh", "-c", SERVE], detach=True, ports=["127.0.0.1::8080"])
        info = web.inspect()["NetworkSettings"]
        host_port = int(info["Ports"]["8080/tcp"][0]["HostPort"])
        ip = info["IPAddress"]
        for _ in range(100):  # until httpd listens
            try:
                request(ip, 8080)
                break
            except OSError:
                time.sleep(0.02)
        published, direct, cratio = [], [], []
        for _ in range(rounds * 10):
            p = request("127.0.0.1", host_port)
            d = request(ip, 8080)
            published.append(p)
            direct.append(d)
            cratio.append(p / d)
        print(f"\n{'connect + one GET (ms)':48} {'median (min–max)':>24}")
        print(f"{'  straight to the container ' + ip + ':8080':48} {fmt(direct):>24}")
        print(f"{'  published 127.0.0.1:' + str(host_port) + ' (relayed)':48} {fmt(published):>24}")
        print(f"{'  ratio published / direct, per request':48} {fmt(cratio):>24}")
        seconds = 0.5 if args.quick else 2.0
        tp, td = [], []
        for _ in range(1 if args.quick else 3):
            tp.append(throughput("127.0.0.1", host_port, seconds))
            td.append(throughput(ip, 8080, seconds))
        print(f"\n{'sequential requests per second':48} {'median (min–max)':>24}")
        print(f"{'  straight to the container':48} {fmt(td):>24}")
        print(f"{'  published port':48} {fmt(tp):>24}")
        print(f"{'  ratio published / direct':48} {statistics.median(tp) / statistics.median(td):>24.2f}")
        return 0
    finally:
        if web is not None:
            lab.rm(web.id, force=True)
        for c in lab.ps(all=True):
            lab.rm(c["Id"], force=True)
        lab.network_prune()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
