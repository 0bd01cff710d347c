"""Real kernel versus `simulate` for kube-proxy's nftables mode: the ``table ip kube-proxy`` of
tests/netfilter/nft_kp.py loaded with ``nft -f`` into a router namespace (no iptables rules at all).

Topology (all namespaces are ours, prefix ka-kpn-, removed at the end)::

    client 10.0.1.2 --- r-c 10.0.1.1 [router "node"] r-s1 10.0.2.1 --- s1 10.0.2.2
                                    uplink 192.168.99.1 (default route)
                                                      r-s2 10.0.3.1 --- s2 10.0.3.2
                                                      r-s3 172.16.4.1 --- s3 172.16.4.2

The cluster CIDR is 10.0.0.0/16 (the client is a pod), services are in 10.96.0.0/16, the router's
10.0.1.1 takes NodePorts. Each server answers TCP on 8080 with its name and the source address it
saw: the client observes the kernel's DNAT (who answered) and masquerade (what the server saw); a
REJECT shows as ECONNREFUSED, a DROP as a timeout. After each load the router's own
``nft list ruleset``, ``iptables-save`` and iproute2 dumps become a bundle and `simulate_packet`
must predict what the kernel did.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import textwrap
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from analyzer.engines.simulate import SimulationResult, simulate_packet
from analyzer.inputs.bundle import load_bundle

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nft_kp import Svc, kube_proxy_table  # noqa: E402  (helper next to this file)
from routerlab import namespaces, router_lab, sh  # noqa: E402

pytestmark = pytest.mark.netns

PREFIX = f"ka-kpn-{os.getpid() % 100000}"
NS = namespaces(PREFIX)
PORT = 8080

SERVER = textwrap.dedent("""\
    import socket, sys
    name = sys.argv[1]
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", 8080)); s.listen(128)
    print("ready", flush=True)
    while True:
        c, peer = s.accept()
        try:
            c.sendall(f"{name} {peer[0]}".encode())
        finally:
            c.close()
    """)

CLIENT = textwrap.dedent("""\
    import errno, json, socket, sys
    host, port, count, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    out = []
    for i in range(count):
        s = socket.socket(); s.settimeout(timeout)
        try:
            s.connect((host, port))
            out.append({"reply": s.recv(200).decode()})
        except socket.timeout:
            out.append({"error": "timeout"})
        except OSError as exc:
            out.append({"error": errno.errorcode.get(exc.errno, str(exc.errno))})
        finally:
            s.close()
    print(json.dumps(out))
    """)



@pytest.fixture(scope="module")
def lab(netns: None) -> Iterator[None]:
    if shutil.which("nft") is None:
        pytest.skip("nft is not installed")
    with router_lab(NS, PREFIX, SERVER):
        yield


def load(services: list[Svc]) -> str:
    text = kube_proxy_table(services, nodeport_ips=["10.0.1.1"], cluster_cidr="10.0.0.0/16")
    sh("nft", "flush", "ruleset", ns=NS["router"])
    sh("nft", "-f", "-", ns=NS["router"], stdin=text)
    sh("conntrack", "-F", ns=NS["router"], check=False)
    return text


def simulate(tmp: Path, dst: str, port: int) -> SimulationResult:
    d = tmp / "router"
    d.mkdir(exist_ok=True)
    r = NS["router"]
    (d / "node").write_text("router\n")
    (d / "nft-ruleset").write_text(sh("nft", "list", "ruleset", ns=r))
    (d / "ip-addr").write_text(sh("ip", "-d", "addr", "show", ns=r))
    (d / "ip-link").write_text(sh("ip", "-d", "link", "show", ns=r))
    (d / "ip-route").write_text(sh("ip", "route", "show", "table", "all", ns=r))
    (d / "ip-rule").write_text(sh("ip", "rule", "show", ns=r))
    (d / "ip-neigh").write_text(sh("ip", "neigh", "show", ns=r))
    node = load_bundle(d)
    assert node.nft is not None and node.nft.warnings == ()
    res = simulate_packet([node], "10.0.1.2", dst, "tcp", 40000, port, in_interface="r-c")
    assert sum(o.probability for o in res.outcomes) == pytest.approx(1.0)
    return res


def client(host: str, port: int, count: int = 1, timeout: float = 2.0) -> list[dict]:
    return json.loads(sh(sys.executable, "-c", CLIENT, host, str(port), str(count), str(timeout), ns=NS["client"],
                         timeout=count * timeout + 20))


def test_kernel_cluster_ip_endpoints_and_checks(lab: None, tmp_path: Path) -> None:
    load([Svc("default", "three", "10.96.0.3", 80, (("10.0.2.2", PORT), ("10.0.3.2", PORT), ("172.16.4.2", PORT))),
          Svc("default", "none", "10.96.0.4", 80, ())])
    replies = client("10.96.0.3", 80, count=45)
    seen = Counter(r["reply"].split()[0] for r in replies)
    assert set(seen) == {"s1", "s2", "s3"} and min(seen.values()) >= 3, seen
    assert {r["reply"].split()[1] for r in replies} == {"10.0.1.2"}  # a pod source: kube-proxy does not masquerade
    sim = simulate(tmp_path, "10.96.0.3", 80)
    assert {o.dnat: round(o.probability, 6) for o in sim.outcomes} == {
        "10.0.2.2:8080": 0.333333, "10.0.3.2:8080": 0.333333, "172.16.4.2:8080": 0.333333}
    assert all(o.status == "forwarded" and not o.masqueraded and o.reply_status == "delivered" for o in sim.outcomes)
    # no endpoints: reject-chain; a port the ClusterIP does not serve: reject; an unallocated ClusterIP: drop
    for dst, port, kernel, status in (("10.96.0.4", 80, "ECONNREFUSED", "rejected"),
                                      ("10.96.0.3", 81, "ECONNREFUSED", "rejected"),
                                      ("10.96.7.7", 80, "timeout", "dropped")):
        assert client(dst, port) == [{"error": kernel}], (dst, port)
        [o] = simulate(tmp_path, dst, port).outcomes
        assert o.status == status, (dst, port, o)
        assert o.rules[-1][1].file.endswith("nft-ruleset")


def test_kernel_nodeport_marked_and_masqueraded(lab: None, tmp_path: Path) -> None:
    load([Svc("default", "np", "10.96.0.5", 80, (("10.0.3.2", PORT),), nodeport=30080)])
    [r] = client("10.0.1.1", 30080)
    assert r["reply"] == "s2 10.0.3.1"  # masqueraded to the router's address on r-s2
    [o] = simulate(tmp_path, "10.0.1.1", 30080).outcomes
    assert (o.status, o.dnat, o.masquerade, o.out_interface) == ("forwarded", "10.0.3.2:8080", "10.0.3.1", "r-s2")
    assert o.reply_status == "delivered" and o.reply_packet.endpoint("src") == "10.0.1.1:30080"
    texts = [rule.text for _, rule in o.rules]
    assert "meta mark set meta mark | 0x00004000" in texts and "masquerade fully-random" in texts
