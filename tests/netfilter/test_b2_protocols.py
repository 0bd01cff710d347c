"""One protocol table (analyzer.model.protocols) for flows, netfilter and the simulator: the
contract's names, every name a real iptables-save prints, and the engine matching by number."""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess

import pytest

from analyzer.engines import netfilter as nf
from analyzer.engines import simulate
from analyzer.inputs.iptables_save import parse_iptables_save
from analyzer.model import flow
from analyzer.model.packet import TRANSPORT_NAMES
from analyzer.model.protocols import PROTO_NAMES, proto_name, proto_number


def test_contract_names() -> None:
    assert {n: proto_name(n) for n in (1, 6, 17, 58, 132)} == {
        1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6", 132: "sctp"}
    assert proto_name(250) == "proto-250"
    assert set(PROTO_NAMES.values()) >= TRANSPORT_NAMES  # decode's l4 names are the table's names


def test_one_table_everywhere() -> None:
    assert flow.proto_name is proto_name and flow.PROTO_NAMES is PROTO_NAMES
    assert nf.proto_number is proto_number and simulate.proto_name is proto_name
    packet = nf.PacketState(ipaddress.ip_address("10.0.0.1"), ipaddress.ip_address("10.0.0.2"), 47)
    assert packet.proto_name == "gre"


def test_every_number_round_trips() -> None:
    for num in range(256):
        assert proto_number(proto_name(num)) == num


@pytest.mark.parametrize("text,num", [
    ("tcp", 6), ("TCP", 6), ("6", 6), ("4", 4), ("ipencap", 4), ("IP-ENCAP", 4), ("ipip", 94),
    ("icmpv6", 58), ("ipv6-icmp", 58), ("icmp6", 58), ("sctp", 132), ("gre", 47), ("esp", 50), ("ah", 51),
    ("all", 0), ("udplite", 136), ("mh", 135), ("mobility-header", 135), ("dccp", 33), ("vrrp", 112),
    ("proto-99", 99), ("no-such-protocol", None), (None, None), (17, 17),
])
def test_iptables_spellings(text: str | int | None, num: int | None) -> None:
    assert proto_number(text) == num


def _save(ns: str, family: str, rules: list[str]) -> str:
    restore, save = ("iptables-restore", "iptables-save") if family == "4" else ("ip6tables-restore", "ip6tables-save")
    text = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n" + "".join(
        f"-A INPUT {r}\n" for r in rules) + "COMMIT\n"
    subprocess.run(["ip", "netns", "exec", ns, restore], input=text, text=True, check=True, capture_output=True,
                   timeout=30)
    return subprocess.run(["ip", "netns", "exec", ns, save], text=True, check=True, capture_output=True,
                          timeout=30).stdout


@pytest.mark.netns
def test_names_real_iptables_save_prints(netns: None) -> None:
    """Every protocol number given to iptables comes back, as iptables-save spells it, as that number."""
    if shutil.which("ip6tables-restore") is None:
        pytest.skip("ip6tables-restore is not installed")
    ns = f"ktb-proto-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True, timeout=10)
    try:
        numbers = list(range(1, 256))
        v4 = _save(ns, "4", [f"-p {n} -j ACCEPT" for n in numbers] + ["-p ipencap -j DROP", "-p ipip -j DROP"])
        v6 = _save(ns, "6", [f"-p {n} -j ACCEPT" for n in (6, 17, 58, 132, 135, 136, 47, 41, 4, 50)])
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
    ruleset = parse_iptables_save(v4, "iptables-save")
    rules = ruleset.tables["filter"].chains["INPUT"].rules
    printed = [r.protocol.value for r in rules]
    assert "ipencap" in printed and "ipip" in printed  # names, not numbers, for the ones /etc/protocols has
    assert [proto_number(p) for p in printed] == [*numbers, 4, 94], list(zip(printed, numbers, strict=False))
    rules6 = parse_iptables_save(v6, "ip6tables-save").tables["filter"].chains["INPUT"].rules
    assert [proto_number(r.protocol.value) for r in rules6] == [6, 17, 58, 132, 135, 136, 47, 41, 4, 50]


SAVED = """*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p ipencap -j ACCEPT
-A INPUT -p gre -j ACCEPT
-A INPUT -p ipip -j REJECT --reject-with icmp-proto-unreachable
-A INPUT -p esp -j ACCEPT
COMMIT
"""


@pytest.mark.parametrize("num,verdict", [(4, "accept"), (47, "accept"), (94, "reject"), (50, "accept"),
                                         (51, "drop"), (6, "drop")])
def test_engine_matches_by_number(num: int, verdict: str) -> None:
    """flannel's IPIP is protocol 4 (`ipencap`); iptables' `ipip` is 94 and must not let it in."""
    engine = nf.engine_for(parse_iptables_save(SAVED, "iptables-save"), nf.NodeAddresses.from_ips(["10.0.0.2"]))
    packet = nf.PacketState(ipaddress.ip_address("10.0.0.1"), ipaddress.ip_address("10.0.0.2"), num)
    assert [b.verdict.value for b in engine.walk_hook("INPUT", packet)] == [verdict]
