"""The lab as data: addresses, parameters, the rules each node loads, the API view, the agents.

No namespaces needed: these run anywhere.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
from dataclasses import replace

import pytest

from analyzer.lab import agents
from analyzer.lab import kube_proxy as kp
from analyzer.lab.build import subnet_env
from analyzer.lab.dump import kubectl_json
from analyzer.lab.rules import append_to_table, drop_chain, node_rules
from analyzer.lab.run import client_argv, outcome, resolve
from analyzer.lab.scenarios import SCENARIOS, scenario
from analyzer.lab.topology import LabParams


def _rules(name: str, node: str, **params) -> str:
    sc = scenario(name)
    cluster = sc.cluster(replace(sc.lab_params(LabParams()), **params))
    return node_rules(cluster, cluster.node(node), sc.faults)


def test_flannel_addresses() -> None:
    sc = scenario("three-node")
    cluster = sc.cluster(sc.lab_params(LabParams()))
    assert [(n.name, n.ip, n.subnet, n.gateway, n.vtep_ip) for n in cluster.nodes] == [
        ("node1", "192.168.56.11", "10.244.1.0/24", "10.244.1.1", "10.244.1.0"),
        ("node2", "192.168.56.12", "10.244.2.0/24", "10.244.2.1", "10.244.2.0"),
        ("node3", "192.168.56.13", "10.244.3.0/24", "10.244.3.1", "10.244.3.0"),
    ]
    assert len({n.vtep_mac for n in cluster.nodes}) == 3
    assert [(p.name, p.ip) for p in cluster.pods] == [("client", "10.244.1.2"), ("web-2", "10.244.2.2"),
                                                       ("web-3", "10.244.3.2")]
    assert all(p.veth.startswith("veth") and len(p.veth) == 12 for p in cluster.pods)
    assert cluster.cluster_dns == "10.96.0.10"
    assert LabParams(tag="x1").ns("node1") == "k8sl-x1-node1"


@pytest.mark.parametrize(("params", "message"), [
    ({"pod_cidr": "10.244.0.0/23"}, "too small"),
    ({"pod_cidr": "10.244.0.0/22", "nodes": 4}, "no /24 left"),
    ({"service_cidr": "10.244.0.0/20"}, "overlaps"),
    ({"node_cidr": "fd00::/64"}, "IPv4 only"),
    ({"backend": "ipip"}, "unknown backend"),
])
def test_bad_parameters(params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        replace(LabParams(), **params).validate()


def test_scenario_knobs_yield_to_the_command_line_and_impossible_ones_are_refused() -> None:
    sc = scenario("mtu")
    assert sc.lab_params(LabParams()).pod_mtu == 1500
    assert sc.cluster(replace(sc.lab_params(LabParams()), pod_mtu=1400)).params.pod_mtu == 1400
    three = scenario("three-node")
    with pytest.raises(ValueError, match="needs at least 3 nodes"):
        three.check(replace(three.lab_params(LabParams()), nodes=2))
    with pytest.raises(ValueError, match="needs --backend vxlan"):
        scenario("missing-fdb").check(replace(LabParams(), backend="host-gw"))
    with pytest.raises(ValueError, match="host-gw backend"):
        scenario("host-gw").check(LabParams())
    scenario("cross-node").check(replace(LabParams(), nodes=4, backend="host-gw"))


def test_subnet_env_is_flanneld_s() -> None:
    cluster = scenario("cross-node").cluster(LabParams())
    assert subnet_env(cluster, cluster.node("node2")) == (
        "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.2.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n")
    hostgw = scenario("host-gw").cluster(scenario("host-gw").lab_params(LabParams()))
    assert "FLANNEL_MTU=1500\n" in subnet_env(hostgw, hostgw.node("node1"), ipmasq=False)


def test_blocked_node_rejects_before_accepting_vxlan() -> None:
    blocked = [ln for ln in _rules("vxlan-blocked", "node2").splitlines() if ln.startswith("-A INPUT")]
    reject = blocked.index("-A INPUT -j REJECT --reject-with icmp-host-prohibited")
    accept = blocked.index("-A INPUT -p udp -m udp --dport 8472 -j ACCEPT")
    assert reject < accept
    assert "icmp-host-prohibited" not in _rules("vxlan-blocked", "node1")
    assert "--dport 4789 -j ACCEPT" in _rules("vxlan-blocked", "node2", vxlan_port=4789)


def test_no_masquerade_drops_flannel_postrouting_entirely() -> None:
    healthy, broken = _rules("external-masq", "node1"), _rules("external-no-masq", "node1")
    assert "-j FLANNEL-POSTRTG" in healthy and ":FLANNEL-POSTRTG" in healthy
    assert "FLANNEL-POSTRTG" not in broken
    assert "FLANNEL-FWD" in broken and "KUBE-POSTROUTING" in broken  # everything else is still there


def test_service_rules_use_kube_proxy_chain_names() -> None:
    text = _rules("two-endpoints", "node1")
    spec = "default/web:http" + "tcp"
    svc = "KUBE-SVC-" + kp.chain_hash(spec)
    sep_local = "KUBE-SEP-" + kp.chain_hash(spec + "10.244.1.3:8080")
    sep_remote = "KUBE-SEP-" + kp.chain_hash(spec + "10.244.2.2:8080")
    assert f'-A KUBE-SERVICES -d 10.96.0.100/32 -p tcp -m comment --comment "default/web:http cluster IP" ' \
           f"-m tcp --dport 80 -j {svc}" in text
    assert f"-m statistic --mode random --probability 0.50000000000 -j {sep_local}" in text
    assert "-j DNAT --to-destination 10.244.2.2:8080" in text and f":{sep_remote} - [0:0]" in text
    nodeport = _rules("nodeport", "node1")
    assert "-A KUBE-NODEPORTS -p tcp" in nodeport and "--dport 30080" in nodeport
    empty = _rules("no-endpoints", "node1")
    assert '"default/empty:http has no endpoints"' in empty and "REJECT --reject-with icmp-port-unreachable" in empty


def test_table_edits() -> None:
    text = "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j X\nCOMMIT\n*nat\nCOMMIT\n"
    assert append_to_table(text, "filter", ["-A INPUT -j Y"]).splitlines()[3] == "-A INPUT -j Y"
    assert append_to_table(text, "mangle", ["-A X"]).endswith("*mangle\n-A X\nCOMMIT\n")
    assert drop_chain(":X - [0:0]\n-A X -j ACCEPT\n-A INPUT -j X\n-A INPUT -j XY\n", "X") == "-A INPUT -j XY\n"


def test_api_view_matches_the_cluster() -> None:
    sc = scenario("two-endpoints")
    doc = json.loads(kubectl_json(sc.cluster(LabParams())))
    kinds = [i["kind"] for i in doc["items"]]
    assert kinds.count("Pod") == 3 and kinds.count("Node") == 2 and kinds.count("Service") == 1
    (eps,) = [i for i in doc["items"] if i["kind"] == "EndpointSlice"]
    assert [(e["addresses"], e["nodeName"]) for e in eps["endpoints"]] == [
        (["10.244.1.3"], "node1"), (["10.244.2.2"], "node2")]
    (node2,) = [i for i in doc["items"] if i["kind"] == "Node" and i["metadata"]["name"] == "node2"]
    backend = json.loads(node2["metadata"]["annotations"]["flannel.alpha.coreos.com/backend-data"])
    assert backend == {"VNI": 1, "VtepMAC": "0e:6c:61:62:00:02"}


def test_every_scenario_is_consistent() -> None:
    names = [sc.name for sc in SCENARIOS]
    assert len(names) == len(set(names)) == 25
    for sc in SCENARIOS:
        params = sc.lab_params(LabParams())
        sc.check(params)
        cluster = sc.cluster(params)
        served = {p for p, _ in sc.servers(cluster)}
        for step in sc.steps:
            address = resolve(cluster, step.target)
            assert address
            assert client_argv(step, address)[1].endswith("agents.py")
            kind, _, name = step.target.partition(":")
            if kind == "pod":
                assert name in served, (sc.name, name)
            if kind == "svc":
                svc = cluster.service(name)
                assert set(svc.endpoints) <= served or not svc.endpoints
            assert step.expect.kind in {"pod-to-pod-same-node", "pod-to-pod-cross-node", "pod-to-service",
                                        "pod-to-external", "external-to-service"}
            assert step.expect.status in {"delivered", "refused", "rejected", "dropped", "no-reply"}
            assert (step.expect.finding is None) == (step.expect.finding_node is None)


def test_outcome_words() -> None:
    assert outcome({"op": "http", "ok": True}) == "ok"
    assert outcome({"op": "http", "ok": False, "error": "timeout"}) == "timeout"
    assert outcome({"op": "http-many", "results": [{"ok": True}, {"ok": False, "error": "refused"}]}) == "mixed"
    assert outcome({"op": "ping", "ok": False, "errors": [{"error": "icmp-unreachable code 4", "mtu": 1450}]}) \
        == "frag-needed"


def test_dns_responder_answers_a_and_aaaa() -> None:
    query = agents._dns_query(0x1A02, "web.default.svc.cluster.local", 28)
    reply = agents._dns_answer(query, "10.96.0.100", "fd00::1")
    qid, flags, qd, an = struct.unpack("!HHHH", reply[:8])
    assert (qid, flags, qd, an) == (0x1A02, 0x8180, 1, 1)
    assert socket.inet_ntop(socket.AF_INET6, reply[-16:]) == "fd00::1"
    a = agents._dns_answer(agents._dns_query(7, "x.y", 1), "10.96.0.100", None)
    assert socket.inet_ntoa(a[-4:]) == "10.96.0.100"
    assert struct.unpack("!H", agents._dns_answer(agents._dns_query(8, "x.y", 28), "1.2.3.4", None)[6:8]) == (0,)
    assert agents._dns_answer(b"\x00\x01", "1.2.3.4", None) is None


def test_agents_talk_over_loopback() -> None:
    """The HTTP and DNS agents against each other on 127.0.0.1 (the lab runs the same code in pods)."""
    server = agents._Server(("127.0.0.1", 0), agents._Handler)
    agents._Handler.pod_name = "web-9"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dns.bind(("127.0.0.1", 0))

    def answer() -> None:
        for _ in range(2):
            data, peer = dns.recvfrom(4096)
            dns.sendto(agents._dns_answer(data, "10.96.0.100", "fd00::100"), peer)

    threading.Thread(target=answer, daemon=True).start()
    try:
        port = server.server_address[1]
        got = agents.http_get("127.0.0.1", port, "/bytes/5000", 2.0)
        assert (got["ok"], got["served_by"], got["bytes"]) == (True, "web-9", 5000)
        res = agents.dns_lookup("127.0.0.1", dns.getsockname()[1], "web.default.svc.cluster.local", 2.0)
        assert res["answers"] == {"A": "10.96.0.100", "AAAA": "fd00::100"}
        closed = socket.socket()
        closed.bind(("127.0.0.1", 0))
        refused = agents.http_get("127.0.0.1", closed.getsockname()[1], "/", 1.0)
        closed.close()
        assert refused["error"] == "refused"
    finally:
        server.shutdown()
        server.server_close()
        dns.close()
