"""The simulator against the lab's kube-proxy nftables generator (analyzer/lab/kube_proxy_nft.py, the
proxier.go shapes: hashAndTruncate names, internal/external traffic policy Local, session affinity,
load balancers with source ranges, external IPs, NodePorts on listed addresses or on every local
one via fib): every rule is understood (nothing lowers to 'unknown') and each kind of packet gets
the outcome kube-proxy means it to."""

from __future__ import annotations

import ipaddress
import math

import pytest

from analyzer.engines.netfilter import NetfilterEngine, NodeAddresses, PacketState, Verdict
from analyzer.engines.nft_lower import engine_tables
from analyzer.inputs.nft_ruleset import parse_nft_ruleset
from analyzer.lab.kube_proxy import Endpoint, ServicePortSpec
from analyzer.lab.kube_proxy_nft import generate_ruleset
from analyzer.model.netfilter import RuleSet

E = Endpoint
REMOTE, LOCAL = E("10.244.2.2", 8080), E("10.244.1.3", 8080, local=True)
SERVICES = [
    ServicePortSpec("default", "web", "10.96.0.100", 80, (REMOTE, LOCAL), port_name="http", node_port=30080),
    ServicePortSpec("default", "loc", "10.96.0.101", 80, (REMOTE, LOCAL), port_name="http", node_port=30081,
                    external_traffic_policy="Local", internal_traffic_policy="Local"),
    ServicePortSpec("default", "aff", "10.96.0.102", 80, (REMOTE, LOCAL), session_affinity_seconds=10800),
    ServicePortSpec("default", "lb", "10.96.0.103", 80, (REMOTE,), node_port=30083, load_balancer_ips=("203.0.113.50",),
                    load_balancer_source_ranges=("198.51.100.0/24",), external_ips=("192.0.2.10",)),
    ServicePortSpec("default", "none", "10.96.0.104", 80, (), node_port=30084),
    ServicePortSpec("default", "nolocal", "10.96.0.105", 80, (REMOTE,), node_port=30085, external_traffic_policy="Local"),
    ServicePortSpec("kube-system", "dns", "10.96.0.10", 53, (E("10.244.1.9", 53, local=True),), protocol="udp",
                    port_name="dns"),
]
NODE = NodeAddresses.from_ips(["192.168.56.11", "10.244.1.1"])


def walk(engine: NetfilterEngine, src: str, dst: str, dport: int, proto: int = 6, iif: str = "cni0") -> list:
    p = PacketState(ipaddress.ip_address(src), ipaddress.ip_address(dst), proto, 40000, dport, in_interface=iif)
    out = []
    for b in engine.walk_hook("PREROUTING", p):
        if b.verdict is Verdict.ACCEPT and not b.translations:  # not translated: the filter checks decide
            out.extend(engine.continue_branch(b, "INPUT" if NODE.is_local(b.packet.dst) else "FORWARD"))
        else:
            out.append(b)
    assert math.isclose(sum(b.probability for b in out), 1.0)
    return out


@pytest.fixture(params=[["192.168.56.11"], None], ids=["nodeport-ips", "fib-local"])
def engine(request: pytest.FixtureRequest) -> NetfilterEngine:
    text = generate_ruleset(SERVICES, nodeport_ips=request.param, node_ip="192.168.56.11")
    nft = parse_nft_ruleset(text, "nft-ruleset")
    assert nft.warnings == () and all(not r.unknown for c in nft.tables[0].chains for r in c.rules)
    lowered = engine_tables(nft, 4)
    chains = lowered.tables["ip kube-proxy"].chains
    unknown = [(r.line, r.text) for name in chains for r in chains[name].rules
               if any(m.module == "nft-unknown" for m in r.matches)]
    assert unknown == []
    return NetfilterEngine(RuleSet("iptables-save"), NODE, lowered)


def dnats(branches: list) -> dict[str, float]:
    return {b.translations[0].after: round(b.probability, 6) for b in branches if b.translations}


def test_cluster_ips(engine: NetfilterEngine) -> None:
    assert dnats(walk(engine, "10.244.1.2", "10.96.0.100", 80)) == {"10.244.2.2:8080": 0.5, "10.244.1.3:8080": 0.5}
    # internalTrafficPolicy Local: only this node's endpoint
    assert dnats(walk(engine, "10.244.1.2", "10.96.0.101", 80)) == {"10.244.1.3:8080": 1.0}
    assert dnats(walk(engine, "10.244.1.2", "10.96.0.10", 53, proto=17)) == {"10.244.1.9:53": 1.0}
    # session affinity: the dump lists no entry for this client yet, so the random choice applies
    aff = walk(engine, "10.244.1.2", "10.96.0.102", 80)
    assert dnats(aff) == {"10.244.2.2:8080": 0.5, "10.244.1.3:8080": 0.5}
    assert all(any("session affinity" in a for a in b.assumptions) for b in aff)
    (b,) = walk(engine, "10.244.1.2", "10.96.0.104", 80)  # no endpoints
    assert (b.verdict, b.decided_by.comment) == (Verdict.REJECT, "default/none")


def test_external_traffic(engine: NetfilterEngine) -> None:
    # a load balancer IP from outside the source ranges is dropped; from inside, DNATed and marked
    (b,) = walk(engine, "203.0.113.9", "203.0.113.50", 80, iif="eth0")
    assert b.verdict is Verdict.DROP
    (b,) = walk(engine, "198.51.100.7", "203.0.113.50", 80, iif="eth0")
    assert b.translations[0].after == "10.244.2.2:8080" and b.packet.mark & 0x4000
    (b,) = walk(engine, "192.0.2.99", "192.0.2.10", 80, iif="eth0")  # an external IP
    assert b.translations[0].after == "10.244.2.2:8080"
    # NodePorts
    assert dnats(walk(engine, "192.0.2.99", "192.168.56.11", 30080, iif="eth0")) == {
        "10.244.2.2:8080": 0.5, "10.244.1.3:8080": 0.5}
    # externalTrafficPolicy Local: the local endpoint, source kept (not marked)
    (b,) = walk(engine, "192.0.2.99", "192.168.56.11", 30081, iif="eth0")
    assert b.translations[0].after == "10.244.1.3:8080" and b.packet.mark == 0
    # ... and no local endpoint: the NodePort drops it (no-endpoint-nodeports says drop)
    (b,) = walk(engine, "192.0.2.99", "192.168.56.11", 30085, iif="eth0")
    assert b.verdict is Verdict.DROP
