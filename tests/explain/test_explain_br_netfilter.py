"""BRIDGE_NF_CALL_DISABLED on the recorded sample (node1 with bridge-nf-call-iptables = 0): the
service's answer crosses cni0 without conntrack, reaches the client from the pod address, and the
client resets it. With the dumps: an error naming the sysctl line; from one ``-i any`` capture
alone: the same status, the finding as a suspicion. Healthy DNATed flows never raise it."""

from __future__ import annotations

import pytest
from explaincheck import codes, explain, only_flow, sample


def test_with_dumps() -> None:
    root = sample("br-netfilter-off")
    flow = only_flow(explain(root / "node1", root / "node2"))
    assert (flow["kind"], flow["status"]) == ("pod-to-service", "dropped"), flow["verdict"]["en"]
    assert [t["type"] for t in flow["translations"]] == ["dnat"]
    assert "not un-DNATed" in flow["verdict"]["en"] and "没有撤销 DNAT" in flow["verdict"]["zh"]
    f = codes(flow)["BRIDGE_NF_CALL_DISABLED"]
    assert (f["node"], f["severity"], f["checkable"]) == ("node1", "error", True)
    lines = [e for e in f["evidence"] if e["line"]]
    assert lines and lines[0]["file"].endswith("node1/sysctl")
    assert lines[0]["text"].strip() == "net.bridge.bridge-nf-call-iptables = 0"
    texts = [e["text"] for e in f["evidence"] if e["packet"]]
    assert any("10.244.1.3:8080 > 10.244.1.2:" in t and "SYN/ACK" in t for t in texts), texts
    assert any(t.endswith("RST") and "> 10.244.1.3:8080" in t for t in texts), texts
    assert "sysctl -w net.bridge.bridge-nf-call-iptables=1" in f["fix"]
    failed = [h for h in flow["hops"] if h["failed"]]
    assert [(h["node"], h["kind"]) for h in failed] == [("node1", "bridge")]
    # the server's veth is web's, not the client's (whose reset goes to the pod address)
    veths = [h["interface"] for h in flow["hops"] if h["kind"] == "veth"]
    assert veths[0] != veths[-1], veths


def test_from_one_any_capture() -> None:
    flow = only_flow(explain(sample("br-netfilter-off") / "node1" / "any.pcap"))
    assert flow["status"] == "dropped", flow["verdict"]["en"]
    f = codes(flow)["BRIDGE_NF_CALL_DISABLED"]
    assert f["checkable"] is False and f["severity"] == "info"


@pytest.mark.parametrize("name", ["hairpin", "service-remote", "two-endpoints", "nodeport", "dns", "no-endpoints"])
def test_healthy_dnat_is_not_flagged(name: str) -> None:
    root = sample(name)
    for inputs in ([root / "node1", root / "node2"], [root / "node1" / "any.pcap"]):
        doc = explain(*inputs)
        for flow in doc["flows"]:
            assert "BRIDGE_NF_CALL_DISABLED" not in codes(flow), (name, flow["verdict"]["en"])
            assert "not un-DNATed" not in flow["verdict"]["en"]
