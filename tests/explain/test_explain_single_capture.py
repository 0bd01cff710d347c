"""explain from one `tcpdump -i any` capture of the client's node, without any dump.

Nodes, pod subnets, the overlay and service addresses are inferred from the packets; findings that
need the dumps are suspicions (``checkable: false``, severity info) and the checks that could not
run are listed in ``not_checkable``.
"""

from __future__ import annotations

import pytest
from explaincheck import codes, explain, only_flow, sample

# scenario -> (kind, status, encapsulation, translations, finding, checkable)
EXPECTED = {
    "cross-node": ("pod-to-pod-cross-node", "delivered", ["vxlan"], [], None, None),
    "same-node": ("pod-to-pod-same-node", "delivered", [], [], None, None),
    "service-remote": ("pod-to-service", "delivered", ["vxlan"], ["dnat"], None, None),
    "vxlan-blocked": ("pod-to-pod-cross-node", "rejected", ["vxlan"], [], "OVERLAY_PORT_BLOCKED", True),
    "no-endpoints": ("pod-to-service", "rejected", [], [], "SERVICE_NO_ENDPOINTS", False),
    "external-masq": ("pod-to-external", "delivered", [], ["masquerade"], None, None),
    "external-no-masq": ("pod-to-external", "no-reply", [], [], "MISSING_MASQUERADE", True),
    "host-gw": ("pod-to-pod-cross-node", "delivered", [], [], None, None),
    "nodeport": ("external-to-service", "delivered", ["vxlan"], ["dnat", "masquerade"], None, None),
    "missing-fdb": ("pod-to-pod-cross-node", "dropped", [], [], "MISSING_FDB", False),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_one_any_capture_without_dumps(name: str) -> None:
    kind, status, encap, nat, finding, checkable = EXPECTED[name]
    doc = explain(sample(name) / "node1" / "any.pcap")
    flow = only_flow(doc)
    assert (flow["kind"], flow["status"]) == (kind, status), flow["verdict"]["en"]
    assert [e["type"] for e in flow["encapsulation"]] == encap
    assert [t["type"] for t in flow["translations"]] == nat
    found = codes(flow)
    if finding is not None:
        assert finding in found, list(found)
        assert found[finding]["checkable"] is checkable
        assert found[finding]["evidence"]
    for f in flow["findings"]:
        if not f["checkable"]:
            assert f["severity"] == "info"
            assert f["message"].startswith("Suspected")
    # what could not be checked is said plainly
    unchecked = {n["code"] for n in doc["not_checkable"]}
    assert {"MISSING_ROUTE", "MISSING_FDB", "MISSING_NEIGH", "FORWARD_BLOCKED"} <= unchecked
    assert all(n["reason"] for n in doc["not_checkable"])
    assert doc["inferred"], "what was inferred from the packets is listed"
    # the capture was attributed to the client's node, and every node is marked as inferred
    [cap] = doc["captures"]
    assert cap["interface"] == "any"
    if flow["client"]["role"] == "pod":
        assert cap["node"] == flow["client"]["node"]
    assert all(n["inferred"] for n in doc["nodes"])


def test_vxlan_single_capture_infers_nodes_and_overlay_from_outer_headers() -> None:
    doc = explain(sample("cross-node") / "node1" / "any.pcap")
    nodes = {n["name"]: n for n in doc["nodes"]}
    assert set(nodes) == {"192.168.56.11", "192.168.56.12"}
    assert nodes["192.168.56.11"]["pod_cidr"] == "10.244.1.0/24"
    assert nodes["192.168.56.12"]["pod_cidr"] == "10.244.2.0/24"
    assert all(n["backend"] == "vxlan" for n in nodes.values())
    flow = only_flow(doc)
    assert flow["client"]["node"] == "192.168.56.11" and flow["server"]["node"] == "192.168.56.12"
    # hops on the captured node are seen; on the other node they are inferred (no capture there)
    for h in flow["hops"]:
        if h["node"] == "192.168.56.12":
            assert h["observed"] is None
        elif h["kind"] in ("veth", "bridge", "vtep", "nic"):
            assert h["observed"] is True, h


def test_service_address_is_inferred_from_the_dnat_twin() -> None:
    doc = explain(sample("service-remote") / "node1" / "any.pcap")
    flow = only_flow(doc)
    assert flow["server"]["role"] == "service" and flow["server"]["ip"] == "10.96.0.100"
    [t] = flow["translations"]
    assert (t["from"], t["to"]) == ("10.96.0.100:80", "10.244.2.2:8080")


def test_receiving_node_capture_sees_the_rejection_it_sends() -> None:
    doc = explain(sample("vxlan-blocked") / "node2" / "any.pcap")
    flow = only_flow(doc)
    assert flow["status"] == "rejected"
    f = codes(flow)["OVERLAY_PORT_BLOCKED"]
    assert f["node"] == "192.168.56.12" and f["checkable"] is True
