"""kube-proxy in nftables mode (no KUBE-* chains in iptables-save; ``table ip kube-proxy`` in the
node's ``nft-ruleset``): explain and simulate give the same answers as for the iptables-mode sample,
and the DNAT, REJECT and masquerade evidence cites the nft-ruleset lines."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from explaincheck import codes, explain, only_flow, sample

from analyzer.engines.simulate import simulate_packet
from analyzer.inputs.bundle import load_bundle

NETFILTER = Path(__file__).resolve().parents[1] / "netfilter"
KP_EXAMPLE = NETFILTER / "data_nft" / "kp-example.nft"  # a real `nft list ruleset` of kube-proxy's table
sys.path.insert(0, str(NETFILTER))
from nft_kp import Svc, kube_proxy_table  # noqa: E402  (fixture generator)


def nft_mode(name: str, dest: Path, nft_text: str) -> list[Path]:
    """Sample ``name`` as an nftables-mode cluster: KUBE-* rules gone from iptables-save, kube-proxy's
    nft table in each node's nft-ruleset."""
    out = []
    for node in sorted(p for p in sample(name).iterdir() if p.is_dir()):
        d = dest / node.name
        shutil.copytree(node, d)
        ipt = d / "iptables-save"
        ipt.write_text("".join(line for line in ipt.read_text().splitlines(keepends=True) if "KUBE" not in line))
        (d / "nft-ruleset").write_text(nft_text)
        out.append(d)
    return out


def test_service_remote_explained_from_nft_rules(tmp_path: Path) -> None:
    nodes = nft_mode("service-remote", tmp_path, KP_EXAMPLE.read_text())
    flow = only_flow(explain(*nodes))
    ipt = only_flow(explain(sample("service-remote")))
    assert (flow["kind"], flow["status"]) == (ipt["kind"], ipt["status"]) == ("pod-to-service", "delivered")
    (t,) = [t for t in flow["translations"] if t["type"] == "dnat"]
    assert (t["from"], t["to"]) == ("10.96.0.100:80", "10.244.2.2:8080")
    assert t["rule"]["file"].endswith("node1/nft-ruleset") and t["rule"]["line"] == 128
    assert (t["rule"]["table"], t["rule"]["text"]) == ("ip kube-proxy", "meta l4proto tcp dnat to 10.244.2.2:8080")
    dnat_hop = next(h for h in flow["hops"] if h["kind"] == "netfilter" and "DNAT" in (h.get("action") or "") + str(
        h.get("label") or ""))
    cited = [(e["file"].rsplit("/", 2)[-2:], e["line"]) for e in dnat_hop["evidence"] if e.get("line")]
    assert (["node1", "nft-ruleset"], 128) in cited, dnat_hop
    assert set(codes(flow)) == set(codes(ipt))


def test_simulate_nft_mode_like_iptables_mode(tmp_path: Path) -> None:
    nodes = [load_bundle(p) for p in nft_mode("service-remote", tmp_path, KP_EXAMPLE.read_text())]
    ref = [load_bundle(p) for p in sorted(x for x in sample("service-remote").iterdir() if x.is_dir())]
    for dst, dport in (("10.244.2.2", 8080), ("10.96.0.100", 80)):
        got = simulate_packet(nodes, "10.244.1.2", dst, "tcp", 40000, dport).to_contract()
        want = simulate_packet(ref, "10.244.1.2", dst, "tcp", 40000, dport).to_contract()
        key = [(o["status"], o["probability"], o["dnat"], o["snat"], o["masquerade"], o["out_interface"])
               for o in got["outcomes"]]
        assert key == [(o["status"], o["probability"], o["dnat"], o["snat"], o["masquerade"], o["out_interface"])
                       for o in want["outcomes"]]
        assert all(o["status"] != "unknown" for o in got["outcomes"])
    (o,) = simulate_packet(nodes, "10.244.1.2", "10.96.0.100", "tcp", 40000, 80).to_contract()["outcomes"]
    assert o["dnat"] == "10.244.2.2:8080"
    nft_rules = [(r["table"], r["line"]) for r in o["rules"] if r["file"].endswith("nft-ruleset")]
    assert ("ip kube-proxy", 128) in nft_rules and ("ip kube-proxy", 33) in nft_rules  # dnat, @service-ips element


def test_service_without_endpoints_rejected_by_nft(tmp_path: Path) -> None:
    text = kube_proxy_table([Svc("default", "empty", "10.96.0.200", 80, ())], nodeport_ips=["192.168.56.11"])
    nodes = nft_mode("no-endpoints", tmp_path, text)
    (o,) = simulate_packet([load_bundle(p) for p in nodes], "10.244.1.2", "10.96.0.200", "tcp", 40000,
                           80).to_contract()["outcomes"]
    assert (o["status"], o["reject_with"]) == ("rejected", "icmp-port-unreachable")
    lines = text.splitlines()
    cited = {lines[r["line"] - 1].strip() for r in o["rules"] if r["file"].endswith("nft-ruleset")}
    assert 'elements = { 10.96.0.200 . tcp . 80 comment "default/empty:http" : goto reject-chain }' in cited
    assert o["rules"][-1]["chain"] == "service-endpoints-check"  # the element decides: reject-chain is a helper
    flow = only_flow(explain(*nodes))
    assert (flow["kind"], flow["status"]) == ("pod-to-service", "rejected")


def flannel_nft(pod_subnet: str) -> str:
    """flannel's own nftables mode (EnableNFTables, flannel >= 0.25): its masquerade and forward rules."""
    return f"""table ip flannel-ipv4 {{
\tchain postrtg {{
\t\ttype nat hook postrouting priority srcnat; policy accept;
\t\tmeta mark & 0x00004000 == 0x00004000 return
\t\tip saddr {pod_subnet} ip daddr 10.244.0.0/16 return
\t\tip saddr 10.244.0.0/16 ip daddr {pod_subnet} return
\t\tip saddr != {pod_subnet} ip daddr 10.244.0.0/16 return
\t\tip saddr 10.244.0.0/16 ip daddr != 224.0.0.0/4 masquerade fully-random
\t\tip saddr != 10.244.0.0/16 ip daddr 10.244.0.0/16 masquerade fully-random
\t}}

\tchain forward {{
\t\ttype filter hook forward priority filter; policy drop;
\t\tip saddr 10.244.0.0/16 accept
\t\tip daddr 10.244.0.0/16 accept
\t}}
}}
"""


def test_pure_nftables_node_without_iptables(tmp_path: Path) -> None:
    """No iptables-save at all: kube-proxy's and flannel's nftables tables are the whole netfilter."""
    nodes = []
    for d, subnet in zip(nft_mode("service-remote", tmp_path, ""), ("10.244.1.0/24", "10.244.2.0/24")):
        (d / "iptables-save").unlink()
        (d / "nft-ruleset").write_text(KP_EXAMPLE.read_text() + flannel_nft(subnet))
        nodes.append(load_bundle(d))
    assert all(n.ruleset is None for n in nodes)
    (o,) = simulate_packet(nodes, "10.244.1.2", "10.96.0.100", "tcp", 40000, 80).outcomes
    assert (o.status, o.dnat, o.masqueraded, o.reply_status) == ("forwarded", "10.244.2.2:8080", False, "delivered")
    # a pod leaving the cluster: flannel's nft postrtg chain masquerades it
    (o,) = simulate_packet(nodes, "10.244.1.2", "1.1.1.1", "udp", 40000, 53).outcomes
    assert o.status == "forwarded" and o.masquerade == "192.168.56.11"
    (t,) = o.translations
    assert (t.translation.rule.table, t.translation.rule.chain) == ("ip flannel-ipv4", "postrtg")
    # flannel's forward chain (policy drop) lets pod traffic through only: a host routed through node1 is dropped
    (o,) = simulate_packet(nodes[:1], "192.168.56.1", "172.16.0.9", "tcp", 40000, 22, in_interface="eth0").outcomes
    assert (o.status, o.explanation) == ("dropped", "dropped by the policy of nftables ip flannel-ipv4 chain forward on node1")
