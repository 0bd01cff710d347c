"""kube-proxy's packet-flow semantics (proxier_test.go runPacketFlowTests), on generated rule sets.

Conventions as in kube-proxy's tests: pods 10.244.x.y (cluster CIDR 10.244.0.0/16, this node's
subnet 10.244.0.0/24), node IP 192.168.0.10, services 172.30.0.0/16, external 203.0.113.0/24.
"""

from __future__ import annotations

import pytest

from analyzer.engines.simulate import SimulationResult, simulate_packet
from analyzer.inputs.iptables_save import parse_iptables_save
from analyzer.lab.kube_proxy import Endpoint, ServicePortSpec, generate_rules
from analyzer.model.node import NodeSnapshot

NODE_IP = "192.168.0.10"


def _node(specs: list[ServicePortSpec], **kw) -> NodeSnapshot:
    text = generate_rules(specs, cluster_cidr="10.244.0.0/16", pod_cidr="10.244.0.0/24", node_ip=NODE_IP, **kw)
    rs = parse_iptables_save(text, "node1.save")
    assert rs.warnings == ()
    return NodeSnapshot(name="node1", ruleset=rs)


def _sim(node: NodeSnapshot, src: str, dst: str, dport: int, proto: str = "tcp") -> SimulationResult:
    return simulate_packet([node], src, dst, proto, 40000, dport, local_ips=[NODE_IP])


def _outcomes(r: SimulationResult) -> dict[str, float]:
    """destination (or status) -> probability, like tracePacket's comma-separated outputs."""
    out: dict[str, float] = {}
    for o in r.outcomes:
        if o.probability == 0:
            continue
        key = o.dnat if o.status in ("forwarded", "local") and o.dnat else o.status
        out[key] = out.get(key, 0.0) + o.probability
    return out


SVC = ServicePortSpec("ns1", "svc1", "172.30.0.41", 80, (Endpoint("10.244.1.1", 8080),), port_name="p80",
                      node_port=30001)
MULTI = ServicePortSpec("ns2", "svc2", "172.30.0.42", 80,
                        tuple(Endpoint(f"10.244.{i}.2", 80) for i in (0, 1, 2)), port_name="p80")
EMPTY = ServicePortSpec("ns3", "svc3", "172.30.0.43", 80, (), port_name="p80", node_port=30003)
LOCAL = ServicePortSpec("ns4", "svc4", "172.30.0.44", 80, (Endpoint("10.244.1.4", 80, local=False),),
                        port_name="p80", node_port=30004, external_traffic_policy="Local")
LOCAL_OK = ServicePortSpec("ns5", "svc5", "172.30.0.45", 80,
                           (Endpoint("10.244.0.5", 80, local=True), Endpoint("10.244.1.5", 80)),
                           port_name="p80", node_port=30005, external_traffic_policy="Local")
LB = ServicePortSpec("ns6", "svc6", "172.30.0.46", 80, (Endpoint("10.244.1.6", 80),), port_name="p80",
                     node_port=30006, load_balancer_ips=("5.6.7.8",),
                     load_balancer_source_ranges=("203.0.113.0/25",))
STICKY = ServicePortSpec("ns7", "svc7", "172.30.0.47", 80, (Endpoint("10.244.0.7", 80), Endpoint("10.244.1.7", 80)),
                         port_name="p80", session_affinity_seconds=10800)


@pytest.fixture(scope="module")
def node() -> NodeSnapshot:
    return _node([SVC, MULTI, EMPTY, LOCAL, LOCAL_OK, LB, STICKY])


def test_cluster_ip_one_endpoint_from_a_pod(node: NodeSnapshot) -> None:
    r = _sim(node, "10.244.0.9", "172.30.0.41", 80)
    assert _outcomes(r) == {"10.244.1.1:8080": 1.0}
    [o] = r.outcomes
    assert o.status == "forwarded" and not o.masqueraded
    chains = [rule.chain for _, rule in o.rules]
    assert "KUBE-SERVICES" in chains and any(c.startswith("KUBE-SEP-") for c in chains)
    assert o.reply_status == "delivered"
    assert o.reply_packet is not None and str(o.reply_packet.src) == "172.30.0.41" and o.reply_packet.sport == 80


def test_cluster_ip_several_endpoints_each_one_third(node: NodeSnapshot) -> None:
    r = _sim(node, "10.244.0.9", "172.30.0.42", 80)
    got = _outcomes(r)
    assert set(got) == {"10.244.0.2:80", "10.244.1.2:80", "10.244.2.2:80"}
    for p in got.values():
        assert p == pytest.approx(1 / 3, abs=1e-6)
    assert sum(o.probability for o in r.outcomes) == pytest.approx(1.0, abs=1e-9)
    assert all(o.labels for o in r.outcomes)  # each says which random branch it is


def test_wrong_port_or_ip_is_not_translated(node: NodeSnapshot) -> None:
    assert _outcomes(_sim(node, "10.244.0.9", "172.30.0.41", 81)) == {"forwarded": 1.0}
    assert _outcomes(_sim(node, "10.244.0.9", "172.30.0.41", 80, "udp")) == {"forwarded": 1.0}


def test_no_endpoints_rejects(node: NodeSnapshot) -> None:
    for src in ("10.244.0.9", NODE_IP):
        r = _sim(node, src, "172.30.0.43", 80)
        [o] = r.outcomes
        assert o.status == "rejected" and o.reject_with == "icmp-port-unreachable"
        assert o.decided_by is not None and o.decided_by.comment == "ns3/svc3:p80 has no endpoints"
        assert o.decided_by.table == "filter" and o.decided_by.chain == "KUBE-SERVICES"
    # and its NodePort, from outside
    [o] = _sim(node, "203.0.113.7", NODE_IP, 30003).outcomes
    assert o.status == "rejected" and o.decided_by.chain == "KUBE-EXTERNAL-SERVICES"


def test_nodeport_via_addrtype_local_is_masqueraded(node: NodeSnapshot) -> None:
    [o] = _sim(node, "203.0.113.7", NODE_IP, 30001).outcomes
    assert o.dnat == "10.244.1.1:8080" and o.status == "forwarded"
    assert o.translation("masquerade") is not None  # KUBE-EXT- marks external traffic for SNAT
    assert any(rule.chain == "KUBE-NODEPORTS" for _, rule in o.rules)
    # the same port on an address that is not the node's: no NodePort
    [o2] = _sim(node, "203.0.113.7", "192.168.0.99", 30001).outcomes
    assert o2.dnat is None


def test_external_traffic_policy_local_without_local_endpoints_drops(node: NodeSnapshot) -> None:
    [o] = _sim(node, "203.0.113.7", NODE_IP, 30004).outcomes
    assert o.status == "dropped"
    assert o.decided_by.comment == "ns4/svc4:p80 has no local endpoints"
    # the ClusterIP still works (internal traffic policy Cluster)
    assert _outcomes(_sim(node, "10.244.0.9", "172.30.0.44", 80)) == {"10.244.1.4:80": 1.0}


def test_external_traffic_policy_local_keeps_source_and_picks_local_endpoint(node: NodeSnapshot) -> None:
    r = _sim(node, "203.0.113.7", NODE_IP, 30005)
    assert _outcomes(r) == {"10.244.0.5:80": 1.0}
    assert not r.outcomes[0].masqueraded  # the client address is preserved
    # a pod going through the NodePort is sent to the whole service (both endpoints)
    assert set(_outcomes(_sim(node, "10.244.0.9", NODE_IP, 30005))) == {"10.244.0.5:80", "10.244.1.5:80"}


def test_load_balancer_source_ranges(node: NodeSnapshot) -> None:
    allowed = _sim(node, "203.0.113.7", "5.6.7.8", 80)
    assert _outcomes(allowed) == {"10.244.1.6:80": 1.0}
    [o] = _sim(node, "203.0.113.200", "5.6.7.8", 80).outcomes
    assert o.status == "dropped"
    assert o.decided_by.chain == "KUBE-PROXY-FIREWALL"


def test_session_affinity_follows_both_recent_branches(node: NodeSnapshot) -> None:
    r = _sim(node, "10.244.0.9", "172.30.0.47", 80)
    assert _outcomes(r) == pytest.approx({"10.244.0.7:80": 0.5, "10.244.1.7:80": 0.5})
    sticky = [o for o in r.outcomes if o.probability == 0]
    assert {o.dnat for o in sticky} == {"10.244.0.7:80", "10.244.1.7:80"}
    assert all(any("already has an entry in recent list KUBE-SEP-" in label for label in o.labels) for o in sticky)
    assert sum(o.probability for o in r.outcomes) == pytest.approx(1.0)


def test_hairpin_is_masqueraded_from_the_sep_chain(node: NodeSnapshot) -> None:
    r = _sim(node, "10.244.0.7", "172.30.0.47", 80)
    own = [o for o in r.outcomes if o.dnat == "10.244.0.7:80" and o.probability > 0]
    other = [o for o in r.outcomes if o.dnat == "10.244.1.7:80" and o.probability > 0]
    assert own and other
    assert own[0].translation("masquerade") is not None
    assert any(rule.chain.startswith("KUBE-SEP-") and rule.target == "KUBE-MARK-MASQ" for _, rule in own[0].rules)
    assert other[0].translation("masquerade") is None


def test_traffic_from_outside_the_cluster_cidr_is_masqueraded(node: NodeSnapshot) -> None:
    [o] = _sim(node, NODE_IP, "172.30.0.41", 80).outcomes  # the node itself (OUTPUT path)
    assert o.dnat == "10.244.1.1:8080"
    masq = o.translation("masquerade")
    assert masq is not None and "random-fully" in masq.detail
    assert masq.rule.chain == "KUBE-POSTROUTING"
    assert o.reply_status == "delivered"


def test_pod_to_external_masqueraded_by_flannel(node: NodeSnapshot) -> None:
    [o] = _sim(node, "10.244.0.9", "1.1.1.1", 443).outcomes
    masq = o.translation("masquerade")
    assert masq is not None and masq.rule.chain == "FLANNEL-POSTRTG" and "random-fully" in masq.detail
    # pod to pod keeps its address
    [o2] = _sim(node, "10.244.0.9", "10.244.1.3", 443).outcomes
    assert o2.translation("masquerade") is None


def test_forward_policy_drop_without_flannel_accepts() -> None:
    n = _node([SVC], flannel=False, forward_policy="DROP")
    [o] = _sim(n, "10.244.0.9", "1.1.1.1", 443).outcomes
    assert o.status == "dropped" and o.decided_by is None
    assert "policy" in o.explanation
    # kube-proxy's KUBE-FORWARD accepts marked (masqueraded) service traffic
    [o2] = _sim(n, "203.0.113.7", NODE_IP, 30001).outcomes
    assert o2.status == "forwarded"
