"""simulate across node bundles (routing, VXLAN overlay, reply path) and the CLI around it."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from analyzer.engines.simulate import simulate_packet
from analyzer.inputs.bundle import load_bundle
from analyzer.lab.kube_proxy import Endpoint, ServicePortSpec

sys.path.insert(0, str(Path(__file__).resolve().parent))
from flannel_bundles import write_bundles  # noqa: E402  (helper next to this file)

WEB = ServicePortSpec("default", "web", "10.96.0.50", 80, (Endpoint("10.244.2.7", 8080),), node_port=30080)
EMPTY = ServicePortSpec("default", "empty", "10.96.0.51", 80, ())


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "analyzer", *args], capture_output=True, text=True, timeout=60)


@pytest.fixture()
def bundles(tmp_path: Path) -> list[Path]:
    return write_bundles(tmp_path, [WEB, EMPTY])


def test_pod_to_service_crosses_the_overlay_and_the_reply_comes_back(bundles: list[Path]) -> None:
    nodes = [load_bundle(b) for b in bundles]
    r = simulate_packet(nodes, "10.244.1.5", "10.96.0.50", "tcp", 40000, 80)
    [o] = r.outcomes
    assert r.packet.node == "node1" and r.packet.in_interface == "cni0"
    assert o.status == "forwarded" and o.node == "node2" and o.dnat == "10.244.2.7:8080"
    kinds = [(h.node, h.kind, h.action) for h in o.hops]
    assert ("node1", "overlay", "TRANSMITTED") in kinds
    assert ("node2", "receive", "RECEIVED") in kinds
    assert kinds[-1] == ("node2", "deliver", "DELIVERED")
    assert "veth-b" in o.hops[-1].explanation
    fdb = [h for h in o.hops if h.action == "ENCAPSULATED"]
    assert fdb and fdb[0].evidence[0].file.endswith("node1/bridge-fdb")
    recv = next(h for h in o.hops if h.node == "node2" and h.kind == "receive")
    assert recv.interface == "flannel.1"
    # the reply: un-DNAT on node1, back to the client from the service address
    assert o.reply_status == "delivered"
    assert o.reply_packet is not None and o.reply_packet.endpoint("src") == "10.96.0.50:80"
    undnat = [h for h in o.reply if h.action == "UN-DNAT"]
    assert len(undnat) == 1 and undnat[0].node == "node1"


def test_nodeport_on_node1_masquerades_to_node1s_address(bundles: list[Path]) -> None:
    nodes = [load_bundle(b) for b in bundles]
    r = simulate_packet(nodes, "203.0.113.9", "192.168.56.11", "tcp", 40000, 30080, in_interface="eth0")
    [o] = r.outcomes
    assert o.dnat == "10.244.2.7:8080"
    assert o.masquerade == "10.244.1.0"  # the address of flannel.1, the interface it leaves by
    assert o.status == "forwarded" and o.node == "node2"
    assert o.reply_status == "delivered"
    assert [h.action for h in o.reply].count("UN-SNAT") == 1
    assert o.reply_packet.endpoint("src") == "192.168.56.11:30080"
    assert o.reply_packet.endpoint("dst") == "203.0.113.9:40000"


def test_missing_fdb_entry_drops_at_the_overlay(tmp_path: Path) -> None:
    nodes = [load_bundle(b) for b in write_bundles(tmp_path, [WEB], drop_node2_fdb=True)]
    [o] = simulate_packet(nodes, "10.244.1.5", "10.244.2.7", "tcp", 40000, 8080).outcomes
    assert o.status == "dropped" and o.node == "node1"
    assert "FDB" in o.explanation or "fdb" in o.explanation.lower()


def test_cli_json_contract(bundles: list[Path]) -> None:
    r = run("simulate", str(bundles[0]), str(bundles[1]), "--src", "10.244.1.5", "--dst", "10.96.0.50:80",
            "--proto", "tcp", "--format", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["schema"] == "k8s-trace.simulate/1"
    assert doc["packet"] == {"src": "10.244.1.5:40000", "dst": "10.96.0.50:80", "proto": "tcp", "node": "node1",
                             "in_interface": "cni0"}
    [o] = doc["outcomes"]
    for key in ("probability", "status", "dnat", "snat", "masquerade", "out_interface", "next_hop", "hops", "rules"):
        assert key in o
    assert o["probability"] == 1 and o["status"] == "forwarded" and o["dnat"] == "10.244.2.7:8080"
    assert o["out_interface"] == "cni0" and o["next_hop"] == "10.244.2.7"
    for rule in o["rules"]:
        assert set(rule) >= {"file", "line", "table", "chain", "text"}
        assert Path(rule["file"]).read_text().splitlines()[rule["line"] - 1] == rule["text"]
    assert all({"node", "interface", "kind", "action", "explanation", "evidence"} <= set(h) for h in o["hops"])


def test_cli_tarball_and_rejected_service(bundles: list[Path], tmp_path: Path) -> None:
    tar = tmp_path / "node1.tar.gz"
    with tarfile.open(tar, "w:gz") as tf:
        tf.add(bundles[0], arcname="node1")
    r = run("simulate", str(tar), "--src", "10.244.1.5", "--dst", "10.96.0.51:80", "--fail-on-drop")
    assert r.returncode == 4, r.stderr
    assert "REJECTED" in r.stdout and "icmp-port-unreachable" in r.stdout
    assert "default/empty has no endpoints" in r.stdout


def test_cli_bare_file_and_errors(tmp_path: Path, corpus_dir: Path) -> None:
    dump = corpus_dir / "real-iptables" / "02-ubuntu-kubeadm-flannel-service1.txt"
    r = run("simulate", str(dump), "--src", "10.244.0.9", "--dst", "10.108.64.11:8080", "--local-ip",
            "192.168.157.133", "--format", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert sorted(o["dnat"] for o in doc["outcomes"]) == ["10.244.1.4:8080", "10.244.1.5:8080", "10.244.1.6:8080"]
    assert sum(o["probability"] for o in doc["outcomes"]) == pytest.approx(1.0)
    assert all(o["out_interface"] is None and o["next_hop"] is None for o in doc["outcomes"])
    assert "unknown without routing dumps" in doc["outcomes"][0]["explanation"]
    garbage = tmp_path / "garbage.save"
    garbage.write_text("*filter\n:FORWARD ACCEPT [0:0]\nnonsense here\n-A FORWARD -m frobnicate --x 1 -j DROP\n")
    r = run("simulate", str(garbage), "--src", "10.0.0.1", "--dst", "10.0.0.2:80", "--fail-on-drop")
    assert r.returncode == 5, r.stdout + r.stderr
    assert "garbage.save:3: unknown line" in r.stderr
    assert "without COMMIT" in r.stderr
    assert "UNKNOWN" in r.stdout and "-m frobnicate" in r.stdout and "garbage.save:4" in r.stdout
    for args, code, text in (
        (["/nonexistent", "--src", "1.1.1.1", "--dst", "2.2.2.2:80"], 3, "no such file"),
        ([str(dump), "--src", "1.1.1.1", "--dst", "2.2.2.2"], 2, "needs a port"),
        ([str(dump), "--src", "1.1.1.1", "--dst", "fd00::1:80"], 2, "needs a port"),
        ([str(dump), "--src", "banana", "--dst", "2.2.2.2:80"], 2, "not an IP address"),
        ([str(dump), "--src", "1.1.1.1", "--dst", "[fd00::1]:80"], 2, "different IP families"),
    ):
        r = run("simulate", *args)
        assert r.returncode == code, (args, r.stderr)
        assert text in r.stderr and "Traceback" not in r.stderr
    binary = tmp_path / "bin.save"
    binary.write_bytes(b"\x00\x01garbage")
    r = run("simulate", str(binary), "--src", "1.1.1.1", "--dst", "2.2.2.2:80")
    assert r.returncode == 3 and "binary data" in r.stderr and "Traceback" not in r.stderr


def test_pod_to_pod_on_one_bridge_is_switched_through_br_netfilter(tmp_path: Path) -> None:
    bundles = write_bundles(tmp_path, [WEB], extra_filter=[
        "-A KUBE-FORWARD -s 10.244.1.5/32 -d 10.244.1.66/32 -m physdev --physdev-is-bridged -j DROP"])
    nodes = [load_bundle(b) for b in bundles]
    [o] = simulate_packet(nodes, "10.244.1.5", "10.244.1.9", "tcp", 40000, 80).outcomes
    assert o.status == "forwarded" and o.node == "node1" and o.out_interface == "cni0"
    assert [h.action for h in o.hops][:2] == ["RECEIVED", "SWITCHED"]
    assert not any(h.kind == "route" for h in o.hops)  # switched, not routed
    assert any("bridge-nf-call-iptables is not in the dumps" in a for a in o.assumptions)
    assert any(h.hook == "FORWARD" for h in o.hops)
    [d] = simulate_packet(nodes, "10.244.1.5", "10.244.1.66", "tcp", 40000, 80).outcomes
    assert d.status == "dropped" and "physdev" in d.decided_by.text
    # without br_netfilter the same frame never meets iptables
    (bundles[0] / "sysctl").write_text("net.bridge.bridge-nf-call-iptables = 0\nnet.ipv4.ip_forward = 1\n")
    nodes = [load_bundle(b) for b in bundles]
    [o2] = simulate_packet(nodes, "10.244.1.5", "10.244.1.66", "tcp", 40000, 80).outcomes
    assert o2.status == "forwarded" and not o2.rules
    skipped = next(h for h in o2.hops if h.action == "SKIPPED")
    assert skipped.evidence and skipped.evidence[0].file.endswith("node1/sysctl")


def test_ipv6_bare_dump(tmp_path: Path) -> None:
    dump = tmp_path / "ip6tables-save"
    dump.write_text(
        "# Generated by ip6tables-save v1.8.9 (nf_tables)\n*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n"
        ":OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"
        "-A PREROUTING -d fd00:10:96::a/128 -p udp -m udp --dport 53 -j DNAT --to-destination [fd00:10:244:1::5]:53\n"
        "COMMIT\n*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
        "[3:240] -A FORWARD -d fd00:10:244:1::9/128 -j REJECT\nCOMMIT\n")
    r = run("simulate", str(dump), "--src", "fd00:10:244:2::7", "--dst", "[fd00:10:96::a]:53", "--proto", "udp",
            "--format", "json")
    assert r.returncode == 0, r.stderr
    [o] = json.loads(r.stdout)["outcomes"]
    assert o["dnat"] == "[fd00:10:244:1::5]:53" and o["status"] == "forwarded"
    r2 = run("simulate", str(dump), "--src", "fd00:10:244:2::7", "--dst", "[fd00:10:244:1::9]:80")
    assert "REJECTED" in r2.stdout and "icmp6-port-unreachable" in r2.stdout
    assert "its counters show 3 packets (240 bytes) matched so far" in r2.stdout


def test_cli_directory_of_bundles(bundles: list[Path]) -> None:
    root = bundles[0].parent
    r = run("simulate", str(root), "--src", "10.244.1.5", "--dst", "10.96.0.50:80", "--format", "json")
    assert r.returncode == 0, r.stderr
    [o] = json.loads(r.stdout)["outcomes"]
    assert (o["node"], o["dnat"], o["reply"]["status"]) == ("node2", "10.244.2.7:8080", "delivered")


def test_reply_vxlan_blocked_on_the_client_node_is_one_way(tmp_path: Path) -> None:
    bundles = write_bundles(tmp_path, [WEB])
    # node1 (the client's node) rejects VXLAN in INPUT, CentOS style: the request gets through,
    # the reply's VXLAN packet does not
    save = bundles[0] / "iptables-save"
    lines = save.read_text().splitlines()
    at = lines.index("-A INPUT -j KUBE-FIREWALL") + 1
    lines.insert(at, "-A INPUT -p udp -m udp --dport 8472 -j REJECT --reject-with icmp-host-prohibited")
    save.write_text("\n".join(lines) + "\n")
    nodes = [load_bundle(b) for b in bundles]
    [o] = simulate_packet(nodes, "10.244.1.5", "10.244.2.7", "tcp", 40000, 8080).outcomes
    assert o.status == "forwarded" and o.node == "node2"
    assert o.reply_status == "rejected"
    blocked = [h for h in o.reply if h.action == "REJECTED"]
    assert blocked and blocked[0].node == "node1" and "8472" in blocked[0].rule.text
    # without the rule the reply's outer packet passes both nodes
    ok_nodes = [load_bundle(b) for b in write_bundles(tmp_path / "ok", [WEB])]
    [ok] = simulate_packet(ok_nodes, "10.244.1.5", "10.244.2.7", "tcp", 40000, 8080).outcomes
    assert ok.reply_status == "delivered"
    assert [h.node for h in ok.reply if h.action == "OUTER"] == ["node2", "node1"]


def test_existing_and_stale_conntrack_entries(bundles: list[Path]) -> None:
    (bundles[0] / "conntrack").write_text(
        "udp      17 28 src=10.244.1.5 dst=10.96.0.50 sport=5353 dport=80 src=10.244.2.99 dst=10.244.1.5 "
        "sport=8080 dport=5353 mark=0 use=1\n"
        "tcp      6 86390 ESTABLISHED src=10.244.1.5 dst=10.96.0.50 sport=41000 dport=80 src=10.244.2.7 "
        "dst=10.244.1.5 sport=8080 dport=41000 [ASSURED] mark=0 use=1\n")
    nodes = [load_bundle(b) for b in bundles]
    r = simulate_packet(nodes, "10.244.1.5", "10.96.0.50", "tcp", 41000, 80)
    [c] = r.conntrack
    assert (c.node, c.source.line, c.state, c.replies_from, c.stale) == ("node1", 2, "ESTABLISHED",
                                                                         "10.244.2.7:8080", False)
    assert not any("stale" in w for w in r.warnings)
    # UDP 80 is no service port (any more): the rules leave it alone, conntrack still DNATs it
    u = simulate_packet(nodes, "10.244.1.5", "10.96.0.50", "udp", 5353, 80)
    assert [o.dnat for o in u.outcomes] == [None]
    [cu] = u.conntrack
    assert cu.stale and cu.replies_from == "10.244.2.99:8080" and cu.state is None
    # a TCP flow pinned to an endpoint that is gone from the rules
    (bundles[0] / "conntrack").write_text(
        "tcp      6 86390 ESTABLISHED src=10.244.1.5 dst=10.96.0.50 sport=41000 dport=80 src=10.244.2.99 "
        "dst=10.244.1.5 sport=8080 dport=41000 [ASSURED] mark=0 use=1\n")
    nodes = [load_bundle(b) for b in bundles]
    r2 = simulate_packet(nodes, "10.244.1.5", "10.96.0.50", "tcp", 41000, 80)
    [c2] = r2.conntrack
    assert c2.stale and c2.replies_from == "10.244.2.99:8080"
    assert any("node1/conntrack:1" in w and "no longer choose" in w for w in r2.warnings)
    assert r2.to_contract()["conntrack"][0]["stale"] is True
