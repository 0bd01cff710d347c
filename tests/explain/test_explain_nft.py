"""UDP 8472 rejected by firewalld's nftables zone while iptables-save shows it accepted: the
finding names the nft rule (``nft list ruleset`` of the node, file:line), not a guess."""

from __future__ import annotations

import shutil
from pathlib import Path

from builders import ether, icmp, ipv4, tcp, udp, vxlan, write_pcap
from explaincheck import codes, explain, only_flow, sample

T0 = 1_700_000_000.0
CLIENT, SERVER = "10.244.1.2", "10.244.2.2"
N1, N2 = "192.168.56.11", "192.168.56.12"
FIREWALLD = Path(__file__).resolve().parents[1] / "nodes" / "data" / "nft" / "firewalld-public.nft"


def test_firewalld_nft_zone_rejects_the_overlay(tmp_path: Path) -> None:
    node = tmp_path / "node2"
    shutil.copytree(sample("cross-node") / "node2", node,
                    ignore=shutil.ignore_patterns("*.pcap", "*.pcapng", "conntrack"))
    shutil.copy(FIREWALLD, node / "nft-ruleset")
    frames = []
    for i, t in enumerate((0.0, 1.0)):
        inner = ether(ipv4(tcp(sport=40000, dport=8080, flags="S", seq=7), src=CLIENT, dst=SERVER, ident=100 + i))
        outer = ipv4(udp(vxlan(inner, vni=1), sport=51000 + i, dport=8472), src=N1, dst=N2, ident=300 + i)
        err = ipv4(icmp(bytes(outer)[:28 + 8 + 14 + 20 + 8], type=3, code=13, rest=b"\0\0\0\0"), src=N2, dst=N1)
        frames += [(T0 + t, ether(outer)), (T0 + t + 0.0001, ether(err))]
    write_pcap(node / "eth0.pcap", frames)
    write_pcap(node / "flannel.1.pcap", [])
    flow = only_flow(explain(node))
    assert (flow["kind"], flow["status"]) == ("pod-to-pod-cross-node", "rejected"), flow["verdict"]["en"]
    f = codes(flow)["OVERLAY_PORT_BLOCKED"]
    assert (f["node"], f["checkable"]) == ("node2", True)
    lines = [e for e in f["evidence"] if e["line"]]
    assert lines and lines[0]["file"].endswith("node2/nft-ruleset") and lines[0]["line"] == 9
    assert lines[0]["text"].strip() == "reject with icmpx admin-prohibited"
    assert "firewall-cmd --permanent --add-port=8472/udp" in f["fix"]
    # iptables-save alone (the same node without the nft dump) has no rule to show
    (node / "nft-ruleset").unlink()
    f = codes(only_flow(explain(node)))["OVERLAY_PORT_BLOCKED"]
    assert not [e for e in f["evidence"] if e["line"]]


def test_recorded_firewalld_block() -> None:
    """samples/vxlan-blocked-nft: a real kernel rejecting VXLAN in firewalld's nftables table."""
    root = sample("vxlan-blocked-nft")
    flow = only_flow(explain(root / "node1", root / "node2"))
    assert (flow["kind"], flow["status"]) == ("pod-to-pod-cross-node", "rejected"), flow["verdict"]["en"]
    f = codes(flow)["OVERLAY_PORT_BLOCKED"]
    assert (f["node"], f["checkable"]) == ("node2", True)
    [line] = [e for e in f["evidence"] if e["line"]]
    assert line["file"].endswith("node2/nft-ruleset") and line["text"].strip() == "reject with icmpx admin-prohibited"
    assert "an iptables ACCEPT cannot override its reject" in f["fix"]
    iptables = (root / "node2" / "iptables-save").read_text()
    assert "REJECT" not in iptables and "8472" not in iptables  # iptables-save alone shows nothing wrong
