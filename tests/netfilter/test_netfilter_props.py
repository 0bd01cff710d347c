"""Properties: the reader is total over arbitrary text, and every walk over arbitrary rule sets
ends in outcomes whose probabilities sum to 1, without exceptions."""

from __future__ import annotations

import ipaddress
import re

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from analyzer.engines.netfilter import NetfilterEngine, NodeAddresses, PacketState, Verdict
from analyzer.inputs.iptables_save import parse_iptables_save

WHERE = re.compile(r"^fuzz\.save(:\d+)?: ")

FRAGMENTS = [
    "-s 10.0.0.0/8", "! -s 10.0.0.0/8", "-d 10.96.0.10/32", "-d ! 10.96.0.10", "-p tcp", "-p udp", "! -p tcp",
    "-i eth0", "! -o cni0", "-o eth+", "-m tcp --dport 80", "-m tcp ! --dport 80:90", "-m udp --sport 53",
    "-m multiport --dports 80,443", "-m comment --comment \"a \\\"q\\\" b\"", "-m mark --mark 0x4000/0x4000",
    "-m mark ! --mark 0x1", "-m conntrack --ctstate NEW", "-m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT",
    "-m state --state INVALID", "-m addrtype --dst-type LOCAL", "-m addrtype ! --src-type LOCAL",
    "-m statistic --mode random --probability 0.25", "-m statistic --mode nth --every 3 --packet 0",
    "-m recent --rcheck --seconds 10 --name X --mask 255.255.255.255 --rsource", "-m set --match-set s src",
    "-m limit --limit 5/sec", "-m length --length 0:100", "-m owner --uid-owner 0", "-m physdev --physdev-is-bridged",
    "-m icmp --icmp-type echo-request", "-f", "--dport", "!", "garbage",
]
TARGETS = ["-j ACCEPT", "-j DROP", "-j REJECT", "-j REJECT --reject-with icmp-host-prohibited", "-j RETURN",
           "-j C1", "-j C2", "-g C2", "-j MARK --set-xmark 0x4000/0x4000", "-j LOG", "-j MASQUERADE",
           "-j DNAT --to-destination 10.244.1.1:8080", "-j SNAT --to-source 1.2.3.4", "-j TEE --gateway 1.1.1.1",
           "-j CT --notrack", ""]


@st.composite
def rule_sets(draw: st.DrawFn) -> str:
    out = []
    for table, builtins in (("filter", ("INPUT", "FORWARD", "OUTPUT")),
                            ("nat", ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"))):
        out.append(f"*{table}")
        for c in builtins:
            out.append(f":{c} {draw(st.sampled_from(['ACCEPT', 'DROP']))} [0:0]")
        out += [":C1 - [0:0]", ":C2 - [0:0]"]
        for _ in range(draw(st.integers(0, 12))):
            chain = draw(st.sampled_from([*builtins, "C1", "C2"]))
            parts = draw(st.lists(st.sampled_from(FRAGMENTS), max_size=4))
            out.append(" ".join([f"-A {chain}", *parts, draw(st.sampled_from(TARGETS))]).strip())
        out.append("COMMIT")
    return "\n".join(out) + "\n"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(alphabet=st.sampled_from(list("*:-AjmsdpN!\"\\ \n[]0123456789COMMITfilterACCEPTDROP")),
                    max_size=300))
@example(text="*filter\n-A\n")
@example(text="*nat\n:X - [1:2\n-A X -j\n")
def test_reader_is_total(text: str) -> None:
    rs = parse_iptables_save(text, "fuzz.save")
    for w in rs.warnings:
        assert WHERE.match(w), w
    for rule in rs.rules():
        assert rule.error is None or isinstance(rule.error, str)
        assert rule.matches is not None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=rule_sets(), hook=st.sampled_from(["routed", "local", "sent"]),
       dport=st.sampled_from([53, 80, 85, 443]), mark=st.sampled_from([0, 0x4000]))
def test_walks_end_and_probabilities_sum_to_one(text: str, hook: str, dport: int, mark: int) -> None:
    rs = parse_iptables_save(text, "fuzz.save")
    engine = NetfilterEngine(rs, NodeAddresses.from_ips(["192.168.0.10"]))
    pkt = PacketState(ipaddress.ip_address("10.244.0.5"), ipaddress.ip_address("10.96.0.10"), 6, 40000, dport,
                      in_interface="cni0" if hook != "sent" else None, out_interface="eth0", mark=mark)
    branches = engine.walk_path(hook, pkt)
    assert branches
    assert abs(sum(b.probability for b in branches) - 1.0) < 1e-9
    for b in branches:
        assert b.verdict in Verdict
        if b.verdict is Verdict.UNKNOWN:
            assert b.reason and "fuzz.save:" in b.reason
        if b.verdict in (Verdict.DROP, Verdict.REJECT) and b.decided_by is not None:
            assert b.decided_by.target in ("DROP", "REJECT")


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=rule_sets(), src=st.sampled_from(["10.244.0.5", "192.168.0.10", "203.0.113.9"]),
       dst=st.sampled_from(["10.96.0.10", "192.168.0.10", "10.244.1.1", "8.8.8.8"]),
       proto=st.sampled_from(["tcp", "udp", "icmp"]), length=st.sampled_from([None, 60, 1500]))
def test_simulate_is_total(text: str, src: str, dst: str, proto: str, length: int | None) -> None:
    from analyzer.engines.simulate import simulate_packet
    from analyzer.model.node import NodeSnapshot

    node = NodeSnapshot(name="n", ruleset=parse_iptables_save(text, "fuzz.save"))
    r = simulate_packet([node], src, dst, proto, 40000, 80, local_ips=["192.168.0.10"], length=length)
    assert r.outcomes and abs(sum(o.probability for o in r.outcomes) - 1.0) < 1e-9
    doc = r.to_contract()
    assert doc["schema"] == "k8s-trace.simulate/1"
    for o in doc["outcomes"]:
        assert o["status"] in ("forwarded", "local", "dropped", "rejected", "unknown")
        if o["status"] == "unknown":
            assert o["reason"]
