"""A delivered flow is seen at every capture point of its path: the two veths of a same-node flow
carry identical headers, and only timing against the bridge tells the client's from the server's."""

from __future__ import annotations

from pathlib import Path

import pytest

from analyzer.pipeline.explain import explain_inputs

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


@pytest.mark.parametrize("sample", ["same-node", "two-endpoints", "cross-node"])
def test_delivered_flows_have_no_absent_hop(sample: str) -> None:
    root = SAMPLES / sample
    if not root.is_dir():
        pytest.skip(f"samples/{sample} is absent")
    doc = explain_inputs([str(root / "node1"), str(root / "node2")], warn=lambda _line: None)
    delivered = [f for f in doc["flows"] if f["status"] == "delivered"]
    assert delivered
    for flow in delivered:
        absent = [(h["node"], h["interface"], h["kind"]) for h in flow["hops"] if h["observed"] is False]
        assert absent == [], (flow["id"], absent)


def test_same_node_flow_names_both_veths() -> None:
    root = SAMPLES / "same-node"
    if not root.is_dir():
        pytest.skip("samples/same-node is absent")
    doc = explain_inputs([str(root / "node1"), str(root / "node2")], warn=lambda _line: None)
    [flow] = [f for f in doc["flows"] if f["kind"] == "pod-to-pod-same-node"]
    veths = [h["interface"] for h in flow["hops"] if h["kind"] == "veth"]
    assert len(veths) == 2 and veths[0] != veths[1] and all(v and v.startswith("veth") for v in veths)


def test_hairpin_off_dies_at_the_bridge_with_the_hairpin_line() -> None:
    root = SAMPLES / "hairpin-off"
    if not root.is_dir():
        pytest.skip("samples/hairpin-off is absent")
    doc = explain_inputs([str(root / "node1"), str(root / "node2")], warn=lambda _line: None)
    [flow] = doc["flows"]
    assert flow["status"] == "dropped"
    [failed] = [h for h in flow["hops"] if h.get("failed")]
    assert (failed["node"], failed["kind"], failed["interface"]) == ("node1", "bridge", "cni0")
    assert any("hairpin off" in (e.get("text") or "") for e in failed["evidence"])
    [finding] = [f for f in flow["findings"] if f["code"] == "HAIRPIN"]
    assert finding["node"] == "node1" and "hairpin on" in finding["fix"]
