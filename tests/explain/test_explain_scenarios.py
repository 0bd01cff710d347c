"""explain on the lab's real recordings (samples/: captures on every interface plus dumps per node).

Each scenario must give the right kind, status, translations, encapsulation and finding (with the
node it names), and the hops must say where the packet was seen and where it was not.
"""

from __future__ import annotations

import pytest
from explaincheck import codes, explain, only_flow, sample

# scenario -> (kind, status, encapsulation types, translation types, finding, finding node)
EXPECTED = {
    "cross-node": ("pod-to-pod-cross-node", "delivered", ["vxlan"], [], None, None),
    "same-node": ("pod-to-pod-same-node", "delivered", [], [], None, None),
    "service-remote": ("pod-to-service", "delivered", ["vxlan"], ["dnat"], None, None),
    "vxlan-blocked": ("pod-to-pod-cross-node", "rejected", ["vxlan"], [], "OVERLAY_PORT_BLOCKED", "node2"),
    "no-endpoints": ("pod-to-service", "rejected", [], [], "SERVICE_NO_ENDPOINTS", "node1"),
    "external-masq": ("pod-to-external", "delivered", [], ["masquerade"], None, None),
    "external-no-masq": ("pod-to-external", "no-reply", [], [], "MISSING_MASQUERADE", "node1"),
    "host-gw": ("pod-to-pod-cross-node", "delivered", [], [], None, None),
    "nodeport": ("external-to-service", "delivered", ["vxlan"], ["dnat", "masquerade"], None, None),
    "missing-fdb": ("pod-to-pod-cross-node", "dropped", [], [], "MISSING_FDB", "node1"),
}
#: findings that would be wrong on a healthy flow
PROBLEMS = {"OVERLAY_PORT_BLOCKED", "SERVICE_NO_ENDPOINTS", "MISSING_MASQUERADE", "MISSING_ROUTE", "MISSING_FDB",
            "MISSING_NEIGH", "FORWARD_BLOCKED", "BAD_OVERLAY_CHECKSUM", "CONNECTION_REFUSED", "MTU_EXCEEDED"}


@pytest.fixture(scope="module")
def docs() -> dict[str, dict]:
    return {}


def _doc(docs: dict[str, dict], name: str) -> dict:
    if name not in docs:
        docs[name] = explain(sample(name))
    return docs[name]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_scenario_kind_status_translations_encapsulation_finding(docs: dict, name: str) -> None:
    kind, status, encap, nat, finding, node = EXPECTED[name]
    doc = _doc(docs, name)
    assert doc["schema"] == "k8s-trace.explain/1"
    flow = only_flow(doc)
    assert flow["kind"] == kind
    assert flow["status"] == status, flow["verdict"]["en"]
    assert [e["type"] for e in flow["encapsulation"]] == encap
    assert [t["type"] for t in flow["translations"]] == nat
    found = codes(flow)
    if finding is None:
        assert not set(found) & PROBLEMS, found
    else:
        assert finding in found, list(found)
        f = found[finding]
        assert f["node"] == node
        assert f["severity"] == "error" and f["checkable"] is True
        assert f["evidence"], "no finding without evidence"
        assert f["fix"] and f["fix_zh"] and f["message_zh"]
    # every hop is in path order with the contract's keys, and the graph follows the hops
    assert [n["id"] for n in flow["graph"]["nodes"]] == [h["id"] for h in flow["hops"]]
    assert len(flow["graph"]["edges"]) == len(flow["hops"]) - 1
    for h in flow["hops"]:
        assert {"node", "interface", "kind", "action", "observed", "evidence"} <= set(h)
        assert h["observed"] in (True, False, None)
        assert h["explanation"]["en"] and h["explanation"]["zh"]
        if h["observed"] is True:
            assert h["packets"] or h["evidence"]
    assert flow["packets"] > 0 and flow["first_seen"] <= flow["last_seen"]
    assert flow["verdict"]["en"] and flow["verdict"]["zh"]


def _hop(flow: dict, node: str | None, interface: str | None = None, kind: str | None = None) -> dict:
    hits = [h for h in flow["hops"] if h["node"] == node and (interface is None or h["interface"] == interface)
            and (kind is None or h["kind"] == kind) and (kind == "pod" or h["kind"] != "pod")]
    assert hits, (node, interface, kind, [(h["node"], h["interface"], h["kind"]) for h in flow["hops"]])
    return hits[0]


def test_cross_node_path_is_seen_everywhere_and_drawn_with_the_encapsulation(docs: dict) -> None:
    doc = _doc(docs, "cross-node")
    flow = only_flow(doc)
    assert flow["client"]["role"] == "pod" and flow["client"]["node"] == "node1"
    assert flow["server"]["role"] == "pod" and flow["server"]["node"] == "node2"
    assert flow["client"]["name"] == "default/client" and flow["server"]["name"] == "default/web"
    kinds = [h["kind"] for h in flow["hops"]]
    assert kinds.index("vtep") < kinds.index("nic") < kinds.index("underlay")
    for node, iface in (("node1", "cni0"), ("node1", "flannel.1"), ("node1", "eth0"), ("node2", "eth0"),
                        ("node2", "flannel.1"), ("node2", "cni0")):
        assert _hop(flow, node, iface)["observed"] is True, (node, iface)
    assert all(h["observed"] is not False for h in flow["hops"])
    assert not any(h["failed"] for h in flow["hops"])
    encap_edges = [e for e in flow["graph"]["edges"] if e["kind"] == "encap"]
    assert encap_edges and "vni 1" in encap_edges[0]["label"] and "192.168.56.12:8472" in encap_edges[0]["label"]
    e = flow["encapsulation"][0]
    assert (e["vni"], e["port"], e["outer_src"], e["outer_dst"], e["observed"]) == (
        1, 8472, "192.168.56.11", "192.168.56.12", True)
    # the ladder has a lane per capture point and the SYN first
    lanes = {lane["id"]: lane for lane in flow["ladder"]["lanes"]}
    assert {(lane["node"], lane["interface"]) for lane in lanes.values()} >= {("node1", "eth0"), ("node2", "eth0")}
    first = flow["ladder"]["events"][0]
    assert first["label"] == "SYN" and first["dir"] == "fwd" and first["rel"] == 0
    assert doc["summary"]["by_status"] == {"delivered": 1}
    assert {n["name"]: n["pod_cidr"] for n in doc["nodes"]} == {"node1": "10.244.1.0/24", "node2": "10.244.2.0/24"}
    assert doc["not_checkable"] == []


def test_service_is_named_from_kube_proxy_comments_and_dnat_happens_on_the_client_node(docs: dict) -> None:
    flow = only_flow(_doc(docs, "service-remote"))
    assert flow["server"]["role"] == "service" and flow["server"]["name"] == "default/web:http"
    [t] = flow["translations"]
    assert (t["type"], t["node"], t["from"], t["to"], t["observed"]) == (
        "dnat", "node1", "10.96.0.100:80", "10.244.2.2:8080", True)
    prerouting = _hop(flow, "node1", kind="netfilter")
    assert prerouting["observed"] is True and "DNAT 10.96.0.100:80 -> 10.244.2.2:8080" in prerouting["action"]
    assert any(e["kind"] == "nat" and "DNAT" in e["label"] for e in flow["graph"]["edges"])
    assert "via 10.244.2.2:8080" in flow["verdict"]["en"]


def test_blocked_overlay_names_node2_its_reject_rule_and_the_commands_that_fix_it(docs: dict) -> None:
    flow = only_flow(_doc(docs, "vxlan-blocked"))
    f = codes(flow)["OVERLAY_PORT_BLOCKED"]
    lines = [e for e in f["evidence"] if e["line"]]
    assert lines and lines[0]["file"].endswith("node2/iptables-save") and "REJECT" in lines[0]["text"]
    icmp = [e for e in f["evidence"] if e["packet"] and "ICMP 3/10" in e["text"]]
    assert icmp, f["evidence"]
    assert "iptables -I INPUT -p udp --dport 8472 -s 192.168.56.11 -j ACCEPT" in f["fix"]
    assert "firewall-cmd --permanent --add-port=8472/udp && firewall-cmd --reload" in f["fix"]
    failed = [h for h in flow["hops"] if h["failed"]]
    assert [(h["node"], h["kind"]) for h in failed] == [("node2", "netfilter")]
    assert _hop(flow, "node2", "eth0")["observed"] is True
    assert _hop(flow, "node2", "flannel.1")["observed"] is False
    # the server pod's veth, never reached, is still named: cni0's neighbour entry + the bridge FDB port
    veth = [h for h in flow["hops"] if h["kind"] == "veth" and h["node"] == "node2"][0]
    assert veth["interface"] and veth["interface"].startswith("veth") and veth["observed"] is False


def test_missing_fdb_is_seen_on_flannel1_and_absent_from_eth0_of_node1(docs: dict) -> None:
    flow = only_flow(_doc(docs, "missing-fdb"))
    assert _hop(flow, "node1", "flannel.1")["observed"] is True
    assert _hop(flow, "node1", "eth0")["observed"] is False
    assert _hop(flow, "node2", "eth0")["observed"] is False
    f = codes(flow)["MISSING_FDB"]
    files = {e["file"].rsplit("/", 1)[-1] for e in f["evidence"] if e["line"]}
    assert {"ip-route", "ip-neigh"} <= files
    assert "bridge fdb append" in f["fix"] and "dst 192.168.56.12" in f["fix"]
    assert "never seen at node1 eth0" in flow["verdict"]["en"]


def test_service_without_endpoints_points_at_kube_proxys_reject_rule(docs: dict) -> None:
    flow = only_flow(_doc(docs, "no-endpoints"))
    f = codes(flow)["SERVICE_NO_ENDPOINTS"]
    assert any(e["line"] and "has no endpoints" in e["text"] for e in f["evidence"])
    assert "default/empty" in f["message"]
    assert "CONNECTION_REFUSED" not in codes(flow)


def test_missing_masquerade_shows_the_pod_source_leaving_eth0(docs: dict) -> None:
    flow = only_flow(_doc(docs, "external-no-masq"))
    f = codes(flow)["MISSING_MASQUERADE"]
    assert "10.244.1.2" in f["message"] and "203.0.113.10" in f["message"]
    assert any(e["packet"] for e in f["evidence"])
    assert "MASQUERADE" in f["fix"]
    assert flow["server"]["role"] == "external"


def test_masquerade_is_learnt_from_the_packets(docs: dict) -> None:
    flow = only_flow(_doc(docs, "external-masq"))
    [t] = flow["translations"]
    assert (t["type"], t["node"], t["from"]) == ("masquerade", "node1", f"10.244.1.2:{flow['client']['port']}")
    assert t["to"].startswith("192.168.56.11:")


def test_nodeport_dnat_then_masquerade_on_the_receiving_node(docs: dict) -> None:
    flow = only_flow(_doc(docs, "nodeport"))
    assert flow["client"]["role"] == "external" and flow["server"]["role"] == "node"
    assert flow["server"]["port"] == 30080
    assert [(t["type"], t["node"]) for t in flow["translations"]] == [("dnat", "node1"), ("masquerade", "node1")]
    assert flow["translations"][0]["to"] == "10.244.2.2:8080"
    assert _hop(flow, "node2", "cni0")["observed"] is True


def test_mtu_frag_needed_names_the_mtu_and_the_node_that_sent_it() -> None:
    doc = explain(sample("mtu"))
    by_proto = {f["proto"]: f for f in doc["flows"]}
    tcp, icmp = by_proto["tcp"], by_proto["icmp"]
    assert tcp["status"] == "delivered"
    assert codes(tcp)["MTU_EXCEEDED"]["node"] == "node2"
    assert codes(tcp)["MTU_EXCEEDED"]["severity"] == "warning"
    assert icmp["status"] == "rejected"
    f = codes(icmp)["MTU_EXCEEDED"]
    assert f["node"] == "node1" and "1450" in f["message"]
    assert any("ICMP 3/4" in e["text"] for e in f["evidence"])


def test_two_endpoints_split_between_the_bridge_and_vxlan() -> None:
    doc = explain(sample("two-endpoints"))
    flows = doc["flows"]
    assert len(flows) == 12
    assert {f["kind"] for f in flows} == {"pod-to-service"} and {f["status"] for f in flows} == {"delivered"}
    targets = {f["translations"][0]["to"].split(":")[0] for f in flows}
    assert len(targets) == 2
    for f in flows:
        remote = any(h["kind"] == "vtep" for h in f["hops"])
        assert remote == bool(f["encapsulation"])


def test_dns_to_the_cluster_dns_service() -> None:
    doc = explain(sample("dns"))
    dns = [f for f in doc["flows"] if f["server"]["port"] == 53]
    assert dns and all(f["kind"] == "pod-to-service" and f["status"] == "delivered" for f in dns)
    assert all(f["server"]["name"] and f["server"]["name"].startswith("kube-system/kube-dns") for f in dns)
    assert all(f["translations"][0]["type"] == "dnat" for f in dns)


def test_reply_hops_walk_the_path_back_with_the_nat_undone(docs: dict) -> None:
    flow = only_flow(_doc(docs, "service-remote"))
    reply = flow["reply"]
    assert reply[0]["kind"] == "pod" and reply[0]["node"] == "node2"
    assert reply[-1]["kind"] == "pod" and reply[-1]["node"] == "node1"
    seen = [(h["node"], h["interface"]) for h in reply if h["observed"] is True and h["kind"] != "netfilter"]
    assert seen.index(("node2", "flannel.1")) < seen.index(("node2", "eth0")) < seen.index(("node1", "eth0")) \
        < seen.index(("node1", "cni0"))
    undo = [h for h in reply if h["kind"] == "netfilter" and "conntrack undoes DNAT" in h["action"]]
    assert [h["node"] for h in undo] == ["node1"]
    encap = [h for h in reply if h["kind"] == "vtep" and "VXLAN" in h["action"]]
    assert encap and "192.168.56.12 -> 192.168.56.11:8472" in encap[0]["action"]
    assert only_flow(_doc(docs, "missing-fdb"))["reply"] is None
