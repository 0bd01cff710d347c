"""The router-namespace topology of the real-kernel tests (iptables in test_netfilter_kernel.py,
kube-proxy's nftables table in test_netfilter_nft_kernel_nat.py)::

    client 10.0.1.2 --- r-c 10.0.1.1 [router "node"] r-s1 10.0.2.1 --- s1 10.0.2.2
                                    uplink 192.168.99.1 (a veth going nowhere, default route)
                                                      r-s2 10.0.3.1 --- s2 10.0.3.2
                                                      r-s3 172.16.4.1 --- s3 172.16.4.2

Each server runs the given Python code with its name as argument and says "ready" on stdout.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

SERVERS = {"s1": ("10.0.2.2", "10.0.2.1", "r-s1"), "s2": ("10.0.3.2", "10.0.3.1", "r-s2"),
           "s3": ("172.16.4.2", "172.16.4.1", "r-s3")}


def namespaces(prefix: str) -> dict[str, str]:
    return {"client": f"{prefix}-c", "router": f"{prefix}-r", "s1": f"{prefix}-s1", "s2": f"{prefix}-s2",
            "s3": f"{prefix}-s3"}


def sh(*args: str, ns: str | None = None, check: bool = True, timeout: float = 20, stdin: str | None = None) -> str:
    cmd = (["ip", "netns", "exec", ns] if ns else []) + list(args)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=stdin)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {r.stderr.strip()}")
    return r.stdout


@contextmanager
def router_lab(ns: Mapping[str, str], prefix: str, server: str) -> Iterator[None]:
    """Build the topology, start the servers; on the way out kill them and delete every namespace
    (other suites may create namespaces meanwhile: only ours must be gone)."""
    servers: list[subprocess.Popen] = []
    try:
        for name in ns.values():
            sh("ip", "netns", "add", name)
            sh("ip", "link", "set", "lo", "up", ns=name)
        r = ns["router"]
        sh("ip", "link", "add", "r-c", "netns", r, "type", "veth", "peer", "name", "eth0", "netns", ns["client"])
        sh("ip", "addr", "add", "10.0.1.1/24", "dev", "r-c", ns=r)
        sh("ip", "addr", "add", "10.0.1.2/24", "dev", "eth0", ns=ns["client"])
        sh("ip", "link", "set", "r-c", "up", ns=r)
        sh("ip", "link", "set", "eth0", "up", ns=ns["client"])
        sh("ip", "route", "add", "default", "via", "10.0.1.1", ns=ns["client"])
        for name, (ip, gw, dev) in SERVERS.items():
            sh("ip", "link", "add", dev, "netns", r, "type", "veth", "peer", "name", "eth0", "netns", ns[name])
            sh("ip", "addr", "add", f"{gw}/24", "dev", dev, ns=r)
            sh("ip", "link", "set", dev, "up", ns=r)
            sh("ip", "addr", "add", f"{ip}/24", "dev", "eth0", ns=ns[name])
            sh("ip", "link", "set", "eth0", "up", ns=ns[name])
            sh("ip", "route", "add", "default", "via", gw, ns=ns[name])
        # an uplink with a default route, as every node has (service IPs are routed there)
        sh("ip", "link", "add", "uplink", "type", "veth", "peer", "name", "uplink-peer", ns=r)
        sh("ip", "addr", "add", "192.168.99.1/24", "dev", "uplink", ns=r)
        sh("ip", "link", "set", "uplink", "up", ns=r)
        sh("ip", "link", "set", "uplink-peer", "up", ns=r)
        sh("ip", "route", "add", "default", "via", "192.168.99.254", ns=r)
        sh("sysctl", "-qw", "net.ipv4.ip_forward=1", ns=r)
        for name in SERVERS:
            p = subprocess.Popen(["ip", "netns", "exec", ns[name], sys.executable, "-c", server, name],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            servers.append(p)
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        yield
    finally:
        for p in servers:
            p.kill()
            p.wait(timeout=5)
        for name in ns.values():
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)
        assert prefix not in sh("ip", "netns", "list")
