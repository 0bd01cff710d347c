"""The host firewall's INPUT rule for an overlay over IPv6 node addresses: firewalld chooses its zone
by the interface the packet arrives on, so the rule is found only when the walk is told that NIC
(it was left unknown for every IPv6 address)."""

from __future__ import annotations

import shutil
from pathlib import Path

from explaincheck import sample

from analyzer.engines.diagnose import _input_rule
from analyzer.inputs.bundle import load_bundle

FIREWALLD = Path(__file__).resolve().parents[1] / "nodes" / "data" / "nft" / "firewalld-public.nft"


def test_ipv6_underlay_finds_the_firewalld_reject(tmp_path: Path) -> None:
    node = tmp_path / "node2"
    shutil.copytree(sample("cross-node") / "node2", node,
                    ignore=shutil.ignore_patterns("*.pcap", "*.pcapng", "conntrack"))
    shutil.copy(FIREWALLD, node / "nft-ruleset")
    addr = node / "ip-addr"
    text = addr.read_text()
    v4 = "    inet 192.168.56.12/24 scope global eth0\n"
    assert v4 in text
    addr.write_text(text.replace(v4, v4 + "    inet6 fd00:56::12/64 scope global \n"))
    snap = load_bundle(node)
    assert snap.interface_of_address("fd00:56::12") is not None
    ref = _input_rule(snap, "fd00:56::11", "fd00:56::12", 8472)
    assert ref is not None and ref.file.endswith("nft-ruleset") and ref.line == 9, ref
    assert ref.text.strip() == "reject with icmpx admin-prohibited"
    assert _input_rule(snap, "192.168.56.11", "192.168.56.12", 8472) == ref  # IPv4 as before
