"""resolve_overlay against the real kernel: two namespaces programmed the way flanneld programs
VXLAN nodes; a datagram from node 1's pod subnet to node 2's crosses flannel.1 only when our
overlay engine says the chain (route -> neighbour -> FDB -> underlay) is complete."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
from pathlib import Path

import pytest

from analyzer.engines.overlay import resolve_overlay, reverse_lookup_vtep
from analyzer.engines.routing import lookup_route
from analyzer.inputs.bundle import BUNDLE_COMMANDS, load_bundle
from analyzer.model.node import NodeSnapshot

MACS = {1: "9a:5f:1e:77:01:01", 2: "9a:5f:1e:77:02:02"}
DUMPS = ("node", "ip-addr", "ip-link", "ip-route", "ip-rule", "bridge-fdb", "ip-neigh")

RECEIVER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.244.2.1", 9999))
s.settimeout(float(sys.argv[1]))
print("ready", flush=True)
try:
    data, peer = s.recvfrom(100)
    print("got", peer[0], data.decode(), flush=True)
except OSError:
    print("nothing", flush=True)
"""
SENDER = """
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.244.1.1", 0))
for _ in range(5):
    try:
        s.sendto(b"hello", ("10.244.2.1", 9999))
    except OSError:
        pass
    time.sleep(0.1)
"""


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), check=check, capture_output=True, text=True, timeout=30)


class Cluster:
    def __init__(self) -> None:
        self.ns = {1: f"k8sC-ov1-{os.getpid()}", 2: f"k8sC-ov2-{os.getpid()}"}

    def x(self, n: int, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run("ip", "netns", "exec", self.ns[n], *args, check=check)

    def build(self) -> None:
        for n in (1, 2):
            run("ip", "netns", "add", self.ns[n])
            self.x(n, "ip", "link", "set", "lo", "up")
        self.x(1, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", self.ns[2])
        for n in (1, 2):
            other = 3 - n
            self.x(n, "ip", "addr", "add", f"192.168.77.1{n}/24", "dev", "eth0")
            self.x(n, "ip", "link", "set", "eth0", "up")
            self.x(n, "ip", "link", "add", "cni0", "type", "bridge")
            self.x(n, "ip", "addr", "add", f"10.244.{n}.1/24", "dev", "cni0")
            self.x(n, "ip", "link", "set", "cni0", "up")
            self.x(n, "ip", "link", "add", "flannel.1", "type", "vxlan", "id", "1", "local", f"192.168.77.1{n}",
                   "dev", "eth0", "dstport", "8472", "nolearning")
            self.x(n, "ip", "link", "set", "flannel.1", "address", MACS[n], "mtu", "1450", "up")
            self.x(n, "ip", "addr", "add", f"10.244.{n}.0/32", "dev", "flannel.1")
            self.x(n, "ip", "route", "add", f"10.244.{other}.0/24", "via", f"10.244.{other}.0", "dev", "flannel.1",
                   "onlink")
            self.add_neigh(n)
            self.add_fdb(n)

    def add_neigh(self, n: int) -> None:
        other = 3 - n
        self.x(n, "ip", "neigh", "replace", f"10.244.{other}.0", "lladdr", MACS[other], "dev", "flannel.1",
               "nud", "permanent")

    def add_fdb(self, n: int) -> None:
        other = 3 - n
        self.x(n, "bridge", "fdb", "append", MACS[other], "dev", "flannel.1", "dst", f"192.168.77.1{other}",
               "self", "permanent")

    def delivered(self) -> bool:
        receiver = subprocess.Popen(["ip", "netns", "exec", self.ns[2], sys.executable, "-c", RECEIVER, "1.5"],
                                    stdout=subprocess.PIPE, text=True)
        assert receiver.stdout is not None
        assert receiver.stdout.readline().strip() == "ready"
        self.x(1, sys.executable, "-c", SENDER)
        out, _ = receiver.communicate(timeout=10)
        return out.startswith("got 10.244.1.1 hello")

    def snapshot(self, n: int, where: Path) -> NodeSnapshot:
        where.mkdir()
        commands = dict(BUNDLE_COMMANDS)
        for name in DUMPS:
            text = self.x(n, "sh", "-c", commands[name]).stdout if name != "node" else f"node{n}\n"
            (where / name).write_text(text)
        return load_bundle(where)

    def destroy(self) -> None:
        for name in self.ns.values():
            run("ip", "netns", "del", name, check=False)


@pytest.mark.netns
def test_overlay_verdicts_match_the_kernel(netns: None, tmp_path: Path) -> None:
    cluster = Cluster()
    try:
        cluster.build()
        results = []
        for case in ("complete", "no-fdb", "no-neigh"):
            if case == "no-fdb":
                cluster.x(1, "bridge", "fdb", "del", MACS[2], "dev", "flannel.1", "dst", "192.168.77.12", "self")
            if case == "no-neigh":
                cluster.add_fdb(1)
                cluster.x(1, "ip", "neigh", "del", "10.244.2.0", "dev", "flannel.1")
            snap = cluster.snapshot(1, tmp_path / case)
            assert snap.warnings == ()
            overlay = resolve_overlay(snap, lookup_route(snap, "10.244.2.1", src="10.244.1.1"))
            assert overlay is not None
            results.append((case, cluster.delivered(), overlay.status, overlay.remote))
        back = reverse_lookup_vtep(cluster.snapshot(2, tmp_path / "node2"), "192.168.77.11")
    finally:
        cluster.destroy()
    listed = run("ip", "netns", "list").stdout.split()
    assert not [n for n in listed if n in cluster.ns.values()]
    assert results == [
        ("complete", True, "ok", ipaddress.ip_address("192.168.77.12")),
        ("no-fdb", False, "missing-fdb", None),
        ("no-neigh", False, "missing-neigh", None),
    ]
    assert back is not None and str(back.subnet) == "10.244.1.0/24" and back.vtep_mac == MACS[1]
