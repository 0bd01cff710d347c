"""``reject with ...`` as both nft generations print it: nftables before 1.0 (RHEL 8's firewalld)
wrote ``reject with icmpx type admin-prohibited``, 1.0 and later ``reject with icmpx admin-prohibited``.
Either way the rule is a reject the walk can decide, not a statement it cannot read."""

from __future__ import annotations

from pathlib import Path

import pytest

from analyzer.engines.nft_walk import NftPacket, hook_verdict
from analyzer.inputs.nft_ruleset import parse_nft_ruleset, parse_rule
from analyzer.model.refs import SourceRef

FIREWALLD = Path(__file__).resolve().parents[1] / "nodes" / "data" / "nft" / "firewalld-public.nft"
VXLAN = NftPacket("192.168.56.11", "192.168.56.12", "udp", 50000, 8472, iif="eth0")


@pytest.mark.parametrize(("text", "verdict", "with_", "matches"), [
    ("reject with icmpx admin-prohibited", "reject", "icmpx admin-prohibited", 0),
    ("reject with icmpx type admin-prohibited", "reject", "icmpx admin-prohibited", 0),
    ("ip saddr 10.0.0.0/8 reject with icmp type host-unreachable", "reject", "icmp host-unreachable", 1),
    ("meta l4proto tcp reject with tcp reset", "reject", "tcp reset", 1),
    ("udp dport 8472 reject", "reject", None, 1),
])
def test_reject_statement_read_whole(text: str, verdict: str, with_: str | None, matches: int) -> None:
    rule = parse_rule(text, SourceRef("nft-ruleset", 1, text))
    assert (rule.verdict, rule.reject_with, len(rule.matches), rule.unknown) == (verdict, with_, matches, ())


def test_pre_1_0_firewalld_dump_rejects_the_overlay() -> None:
    old = FIREWALLD.read_text().replace("reject with icmpx admin-prohibited", "reject with icmpx type admin-prohibited")
    assert "icmpx type admin-prohibited" in old
    v = hook_verdict(parse_nft_ruleset(old, "nft-ruleset"), "input", VXLAN)
    assert v is not None
    assert (v.verdict, v.reject_with, v.rule.line if v.rule else None) == ("reject", "icmpx admin-prohibited", 9)
