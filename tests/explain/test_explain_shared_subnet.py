"""Pods of two nodes in one /24 (Calico's /26 blocks, or any non-flannel VXLAN/IPIP): the /24 is no
node's pod subnet; each pod address goes with the node whose tunnel header carried it."""

from __future__ import annotations

import json
from pathlib import Path

from builders import ether, ipv4, tcp, udp, vxlan, write_pcap
from explaincheck import explain

T0 = 1_700_000_000.0
A, B = "192.168.0.21", "192.168.0.22"
POD_A, POD_B = "10.1.5.10", "10.1.5.70"  # two /26 blocks of one /24


def _frames(*, ipip: bool) -> list[tuple[float, bytes]]:
    out = []
    for n, (src, dst, flags, sp, dp, osrc, odst) in enumerate((
            (POD_A, POD_B, "S", 41000, 80, A, B), (POD_B, POD_A, "SA", 80, 41000, B, A),
            (POD_A, POD_B, "A", 41000, 80, A, B))):
        inner = ipv4(tcp(sport=sp, dport=dp, flags=flags, seq=500 + n, ack=n), src=src, dst=dst, ident=70 + n)
        if ipip:
            frame = ether(ipv4(inner, src=osrc, dst=odst, proto=4))
        else:
            frame = ether(ipv4(udp(vxlan(ether(inner), vni=4096), sport=51000, dport=4789), src=osrc, dst=odst))
        out.append((T0 + n * 0.001, frame))
    return out


def test_pods_are_placed_by_their_tunnel_headers(tmp_path: Path) -> None:
    for ipip in (False, True):
        cap = tmp_path / f"c{int(ipip)}.pcap"
        write_pcap(cap, _frames(ipip=ipip))
        doc = explain(cap)
        nodes = {n["name"]: n for n in doc["nodes"]}
        assert set(nodes) == {A, B}
        assert all(n["pod_cidr"] is None for n in nodes.values()), nodes
        assert {n["backend"] for n in nodes.values()} == {"ipip" if ipip else "vxlan"}
        (flow,) = doc["flows"]
        assert (flow["client"]["role"], flow["client"]["node"]) == ("pod", A)
        assert (flow["server"]["role"], flow["server"]["node"]) == ("pod", B)
        assert (flow["kind"], flow["status"]) == ("pod-to-pod-cross-node", "delivered")
        assert "pod subnet 10.1.5.0/24 is seen behind several nodes" in json.dumps(doc)
