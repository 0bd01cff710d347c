"""How endpoints are named: a NodePort after its service, a node's own address as the node."""

from __future__ import annotations

from explaincheck import explain, only_flow, sample

from analyzer.report.fmt import endpoint_name


def test_nodeport_is_named_after_its_service() -> None:
    root = sample("nodeport")
    flow = only_flow(explain(root / "node1", root / "node2"))
    server = flow["server"]
    assert (server["role"], server["name"], server["node"]) == ("node", "default/web:http", "node1")
    assert endpoint_name(server) == "default/web:http @node1"


def test_a_node_address_reads_as_the_node() -> None:
    assert endpoint_name({"ip": "192.168.56.11", "role": "node", "name": "node1", "node": "node1"}) == "node node1"
    assert endpoint_name({"ip": "10.244.1.2", "role": "pod", "name": "default/client", "node": "node1"}) == \
        "default/client @node1"
