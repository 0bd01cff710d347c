"""``nft list ruleset`` (the tables iptables-save does not show) and the walk of their base chains:
parsed from a real dump, and the walk's verdict for UDP 8472 checked against a real kernel."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from analyzer.engines.nft_walk import NftPacket, hook_verdict
from analyzer.inputs.bundle import load_bundle, sniff_kind
from analyzer.inputs.nft_ruleset import parse_nft_ruleset

DATA = Path(__file__).parent / "data" / "nft"
FIREWALLD = DATA / "firewalld-public.nft"  # `nft list ruleset` of a namespace with firewalld's zone
VXLAN = NftPacket("192.168.56.11", "192.168.56.12", "udp", 50000, 8472, iif="eth0")


def test_parse_real_dump() -> None:
    rs = parse_nft_ruleset(FIREWALLD.read_text(), "nft-ruleset")
    assert rs.warnings == ()
    assert [(t.family, t.name, t.by_iptables) for t in rs.tables] == [("inet", "firewalld", False),
                                                                      ("ip", "filter", True)]
    fw = rs.tables[0]
    inp = fw.chain("filter_INPUT")
    assert (inp.hook, inp.type, inp.priority, inp.policy) == ("input", "filter", 10, "accept")
    last = inp.rules[-1]
    assert (last.verdict, last.reject_with, last.source.line) == ("reject", "icmpx admin-prohibited", 9)
    allow = fw.chain("filter_IN_public_allow").rules[0]
    assert [(m.key, m.values) for m in allow.matches] == [("tcp dport", ("22",)), ("ct state", ("new", "untracked"))]
    assert sniff_kind(FIREWALLD.read_text()) == "nft-ruleset"


def test_walk_firewalld_zone() -> None:
    rs = parse_nft_ruleset(FIREWALLD.read_text(), "nft-ruleset")
    v = hook_verdict(rs, "input", VXLAN)
    assert v is not None and (v.verdict, v.table, v.chain, v.rule.line) == (
        "reject", "inet firewalld", "filter_INPUT", 9)
    assert hook_verdict(rs, "input", NftPacket("192.168.56.11", "192.168.56.12", "tcp", 50000, 22, iif="eth0")) is None
    # iptables-nft's own table (iptables-save shows it) is not walked again: its accept changes nothing
    unknown = hook_verdict(rs, "input", NftPacket("192.168.56.11", "192.168.56.12", "udp", 50000, 8472))
    assert unknown is not None and unknown.verdict == "unknown"  # the input interface decides `iifname "lo"`
    assert hook_verdict(None, "input", VXLAN) is None


def test_named_sets_are_looked_up() -> None:
    text = """table inet fw {
\tset peers {
\t\ttype ipv4_addr
\t\telements = { 192.168.56.11,
\t\t\t     192.168.56.13 }
\t}
\tchain input {
\t\ttype filter hook input priority filter; policy drop;
\t\ttcp dport 22 accept
\t\tip saddr @peers udp dport 8472 accept
\t}
}
"""
    rs = parse_nft_ruleset(text, "n")
    assert rs.warnings == () and [c.name for c in rs.tables[0].chains] == ["input"]
    assert [e.key for e in rs.tables[0].set("peers").elements] == [("192.168.56.11",), ("192.168.56.13",)]
    assert hook_verdict(rs, "input", VXLAN) is None  # 192.168.56.11 is in @peers: accepted
    stranger = NftPacket("192.168.56.99", "192.168.56.12", "udp", 50000, 8472, iif="eth0")
    v = hook_verdict(rs, "input", stranger)
    assert (v.verdict, v.policy, v.rule.line) == ("drop", True, 7)
    # TCP 443 falls to the drop policy
    v = hook_verdict(rs, "input", NftPacket("192.168.56.11", "192.168.56.12", "tcp", 1, 443, iif="eth0"))
    assert (v.verdict, v.policy, v.rule.line) == ("drop", True, 7)


def test_bundle_reads_it(tmp_path: Path) -> None:
    (tmp_path / "node").write_text("node2\n")
    shutil.copy(FIREWALLD, tmp_path / "nft-ruleset")
    snap = load_bundle(tmp_path)
    assert snap.nft is not None and snap.nft.own_tables()[0].name == "firewalld"


RECEIVER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 8472))
s.settimeout(float(sys.argv[1]))
try:
    s.recvfrom(2048)
    print("got")
except socket.timeout:
    print("none")
"""


def _ns(name: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", name, *args], capture_output=True, text=True, check=check)


@pytest.mark.netns
def test_walk_agrees_with_the_kernel(netns: None, tmp_path: Path) -> None:
    if shutil.which("nft") is None:
        pytest.skip("nft is not installed (.ci/run installs nftables)")
    peer, node = f"ktn-peer-{os.getpid()}", f"ktn-node-{os.getpid()}"
    zones = {
        "as-dumped": "",
        "8472 allowed": "udp dport 8472 accept",
        "peer denied": "ip saddr 192.168.56.11 udp dport 8472 drop",
    }
    try:
        for n in (peer, node):
            subprocess.run(["ip", "netns", "add", n], check=True)
        subprocess.run(["ip", "-n", peer, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", node],
                       check=True)
        for n, ip in ((peer, "192.168.56.11"), (node, "192.168.56.12")):
            subprocess.run(["ip", "-n", n, "addr", "add", f"{ip}/24", "dev", "eth0"], check=True)
            subprocess.run(["ip", "-n", n, "link", "set", "eth0", "up"], check=True)
            subprocess.run(["ip", "-n", n, "link", "set", "lo", "up"], check=True)
        for label, extra in zones.items():
            _ns(node, "nft", "flush", "ruleset")
            rules = FIREWALLD.read_text().split("table ip filter")[0]  # firewalld's table only
            if extra:
                chain = "filter_IN_public_allow" if "accept" in extra else "filter_IN_public_deny"
                rules = rules.replace(f"chain {chain} {{\n", f"chain {chain} {{\n\t\t{extra}\n", 1)
            (tmp_path / "load.nft").write_text(rules)
            _ns(node, "nft", "-f", str(tmp_path / "load.nft"))
            dumped = _ns(node, "nft", "list", "ruleset").stdout
            receiver = subprocess.Popen(["ip", "netns", "exec", node, sys.executable, "-c", RECEIVER, "1.0"],
                                        stdout=subprocess.PIPE, text=True)
            time.sleep(0.3)
            _ns(peer, sys.executable, "-c",
                "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x' * 50, "
                "('192.168.56.12', 8472))")
            out, _ = receiver.communicate(timeout=10)
            kernel_accepts = out.strip() == "got"
            v = hook_verdict(parse_nft_ruleset(dumped, "nft-ruleset"), "input", VXLAN)
            assert (v is None) == kernel_accepts, (label, v, out)
            if v is not None:
                assert v.verdict in ("drop", "reject") and v.rule.text.strip() in dumped
    finally:
        for n in (peer, node):
            subprocess.run(["ip", "netns", "del", n], capture_output=True)
    assert not {peer, node} & set(subprocess.run(["ip", "netns", "list"], capture_output=True,
                                                 text=True).stdout.split())


def test_simulate_meets_firewalld_after_iptables(tmp_path: Path) -> None:
    """The VXLAN packet passes node2's iptables INPUT, then firewalld's nftables zone rejects it."""
    from analyzer.engines.simulate import simulate_packet

    root = Path(__file__).resolve().parents[2] / "samples" / "cross-node"
    if not root.is_dir():
        pytest.skip("samples/cross-node is absent")
    for n in ("node1", "node2"):
        shutil.copytree(root / n, tmp_path / n, ignore=shutil.ignore_patterns("*.pcap", "*.pcapng"))
    healthy = [load_bundle(tmp_path / n) for n in ("node1", "node2")]
    [ok] = simulate_packet(healthy, "10.244.1.2", "10.244.2.2", "tcp", 40000, 8080).outcomes
    assert ok.status == "forwarded"
    shutil.copy(FIREWALLD, tmp_path / "node2" / "nft-ruleset")
    nodes = [load_bundle(tmp_path / n) for n in ("node1", "node2")]
    [o] = simulate_packet(nodes, "10.244.1.2", "10.244.2.2", "tcp", 40000, 8080).outcomes
    assert (o.status, o.node, o.reject_with) == ("rejected", "node2", "icmpx admin-prohibited")
    last = o.hops[-1]
    assert last.hook == "INPUT" and last.evidence[0].line == 9 and last.evidence[0].file.endswith("nft-ruleset")
    assert "iptables-save does not show this table" in last.explanation


def test_the_reply_meets_firewalld_on_the_clients_node(tmp_path: Path) -> None:
    """The request passes; the answer's VXLAN packet enters the client's node, whose firewalld
    zone rejects it: the reply walk says so with the nft rule, as the forward walk does."""
    from analyzer.engines.simulate import simulate_packet

    root = Path(__file__).resolve().parents[2] / "samples" / "cross-node"
    if not root.is_dir():
        pytest.skip("samples/cross-node is absent")
    for n in ("node1", "node2"):
        shutil.copytree(root / n, tmp_path / n, ignore=shutil.ignore_patterns("*.pcap", "*.pcapng"))
    shutil.copy(FIREWALLD, tmp_path / "node1" / "nft-ruleset")
    nodes = [load_bundle(tmp_path / n) for n in ("node1", "node2")]
    [o] = simulate_packet(nodes, "10.244.1.2", "10.244.2.2", "tcp", 40000, 8080).outcomes
    assert (o.status, o.reply_status) == ("forwarded", "rejected")
    last = o.reply[-1]
    assert (last.node, last.hook, last.action) == ("node1", "INPUT", "REJECT")
    assert last.evidence[0].file.endswith("node1/nft-ruleset") and last.evidence[0].line == 9
