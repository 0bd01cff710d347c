"""A capture taken between the nodes (a switch mirror port): overlay packets of several node pairs
that share no node. It belongs to no node; the flows are seen on their path's underlay hop. IPIP
flows get an INPUT check for IP protocol 4, not a UDP port."""

from __future__ import annotations

from pathlib import Path

from builders import ether, ipv4, tcp, udp, vxlan, write_pcap
from explaincheck import explain

T0 = 1_700_000_000.0
NODES = {"10.244.0": "192.168.0.11", "10.244.1": "192.168.0.12", "10.244.2": "192.168.0.13",
         "10.244.3": "192.168.0.14"}


def _node(ip: str) -> str:
    return NODES[ip.rsplit(".", 1)[0]]


def _conv(t: float, a: str, b: str, sport: int, *, ipip: bool = False) -> list[tuple[float, bytes]]:
    """SYN, SYN/ACK, ACK between pods ``a`` and ``b`` wrapped the way their nodes send them."""
    out = []
    for n, (src, dst, flags, sp, dp) in enumerate(((a, b, "S", sport, 80), (b, a, "SA", 80, sport),
                                                  (a, b, "A", sport, 80))):
        inner = ipv4(tcp(sport=sp, dport=dp, flags=flags, seq=sport * 7 + n, ack=n), src=src, dst=dst,
                     ident=(sport * 3 + n) & 0xFFFF)
        if ipip:
            outer = ipv4(inner, src=_node(src), dst=_node(dst), proto=4)
        else:
            outer = ipv4(udp(vxlan(ether(inner), vni=1), sport=50000 + n, dport=8472), src=_node(src), dst=_node(dst))
        out.append((t + n * 0.001, ether(outer)))
    return out


def test_mirror_capture_is_the_underlay(tmp_path: Path) -> None:
    cap = tmp_path / "mirror.pcap"
    write_pcap(cap, _conv(T0, "10.244.0.5", "10.244.1.6", 40000) + _conv(T0 + 1, "10.244.2.7", "10.244.3.8", 40001)
               + _conv(T0 + 2, "10.244.1.9", "10.244.2.10", 40002, ipip=True))
    doc = explain(cap)
    (point,) = doc["captures"]
    assert (point["node"], point["interface"]) == (None, "underlay"), point
    assert any("mirror.pcap holds tunnel packets of several node pairs" in s for s in doc["inferred"])
    flows = {f["client"]["ip"]: f for f in doc["flows"]}
    assert len(flows) == 3
    for f in flows.values():
        assert (f["kind"], f["status"]) == ("pod-to-pod-cross-node", "delivered"), f["verdict"]["en"]
        under = [h for h in f["hops"] if h["kind"] == "underlay"]
        assert len(under) == 1 and under[0]["observed"] is True, f["hops"]
        assert under[0]["packets"] and under[0]["packets"][0]["file"].endswith("mirror.pcap")
        # nothing is claimed of the nodes' own interfaces: no capture was taken on them
        assert all(h["observed"] is None for h in f["hops"] if h["kind"] in ("veth", "bridge", "vtep", "nic"))
    ipip = flows["10.244.1.9"]
    assert [e["type"] for e in ipip["encapsulation"]] == ["ipip"]
    labels = [h["action"] for h in ipip["hops"]]
    assert "INPUT ipencap" in labels and not any(":None" in str(h) or "udp/" in str(h) for h in ipip["hops"]), labels


def test_one_node_capture_keeps_its_node(tmp_path: Path) -> None:
    """Overlay packets that all involve one node: that node's capture, not the underlay."""
    cap = tmp_path / "eth0.pcap"
    write_pcap(cap, _conv(T0, "10.244.0.5", "10.244.1.6", 40000) + _conv(T0 + 1, "10.244.0.7", "10.244.2.8", 40001))
    (point,) = explain(cap)["captures"]
    assert point["node"] == "192.168.0.11" and point["interface"] == "eth0"
