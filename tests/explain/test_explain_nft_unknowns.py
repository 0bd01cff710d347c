"""The nftables walk says 'unknown' only where it truly cannot tell: an ICMP type match never
matches a UDP packet (nft ties the selector to its protocol), and a protocol name the walk does
not know is not taken for a mismatch."""

from __future__ import annotations

from analyzer.engines.nft_walk import NftPacket, hook_verdict
from analyzer.inputs.nft_ruleset import parse_nft_ruleset

VXLAN = NftPacket("192.168.56.11", "192.168.56.12", "udp", 50000, 8472, iif="eth0")
PING = NftPacket("192.168.56.11", "192.168.56.12", "icmp", iif="eth0")


def _input(*rules: str) -> str:
    body = "\n".join(f"\t\t{r}" for r in rules)
    return ("table inet firewalld {\n\tchain filter_INPUT {\n\t\ttype filter hook input priority filter + 10; "
            f"policy accept;\n{body}\n\t\treject with icmpx admin-prohibited\n\t}}\n}}\n")


def test_icmp_type_rule_is_passed_by_udp_and_undecided_for_icmp() -> None:
    rs = parse_nft_ruleset(_input("icmp type echo-request accept", "icmpv6 type echo-request accept"), "nft-ruleset")
    v = hook_verdict(rs, "input", VXLAN)
    assert v is not None and (v.verdict, v.rule.line if v.rule else None) == ("reject", 6), v
    ping = hook_verdict(rs, "input", PING)
    assert ping is not None and (ping.verdict, ping.rule.line if ping.rule else None) == ("unknown", 4), ping


def test_unknown_protocol_name_is_not_a_mismatch() -> None:
    rs = parse_nft_ruleset(_input("meta l4proto { udp, frobnicate } accept"), "nft-ruleset")
    assert hook_verdict(rs, "input", VXLAN) is None  # udp is listed: accepted whatever the other name is
    v = hook_verdict(rs, "input", NftPacket("192.168.56.11", "192.168.56.12", "tcp", 1, 22, iif="eth0"))
    assert v is not None and v.verdict == "unknown", v  # tcp might be 'frobnicate': not decided
    rs = parse_nft_ruleset(_input("meta l4proto { tcp, 132 } accept"), "nft-ruleset")
    v = hook_verdict(rs, "input", VXLAN)
    assert v is not None and v.verdict == "reject", v  # every name known, none is udp: a mismatch
