"""kube-proxy's nftables mode in the netfilter simulator: the ``table ip kube-proxy`` kube-proxy 1.33
writes (tests/netfilter/nft_kp.py, the shape of a real ``nft list ruleset``) lowered next to
iptables' tables. Each test walks one packet and checks the verdict, the branch weights, the
translations and the nft-ruleset line every decisive step cites."""

from __future__ import annotations

import ipaddress
import math
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from analyzer.engines.netfilter import NetfilterEngine, NodeAddresses, PacketState, Verdict
from analyzer.engines.nft_lower import engine_tables, no_endpoint_elements
from analyzer.engines.nft_walk import NftPacket, hook_verdict
from analyzer.inputs.iptables_save import parse_iptables_save
from analyzer.inputs.nft_ruleset import parse_nft_ruleset
from analyzer.model.netfilter import RuleSet

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nft_kp import Svc, endpoint_chain, kube_proxy_table, service_chain  # noqa: E402  (helper next to this file)

DATA = Path(__file__).parent / "data_nft"
WEB = Svc("default", "web", "10.96.0.100", 80, (("10.244.2.2", 8080), ("10.244.1.3", 8080), ("10.244.2.4", 8080)),
          nodeport=30080)
NONE = Svc("default", "none", "10.96.0.200", 80, (), nodeport=30090)
NODE = NodeAddresses.from_ips(["192.168.56.11", "10.244.1.1"])


def ip(a: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(a)


def pkt(src: str, dst: str, dport: int, *, sport: int = 40000, iif: str | None = "cni0", oif: str | None = None,
        state: str = "NEW") -> PacketState:
    return PacketState(ip(src), ip(dst), 6, sport, dport, in_interface=iif, out_interface=oif, ctstate=state)


def engine(text: str, iptables: str = "", family: int = 4) -> tuple[NetfilterEngine, str]:
    nft = parse_nft_ruleset(text, "nft-ruleset")
    assert nft.warnings == ()
    rs = parse_iptables_save(iptables, "iptables-save") if iptables else RuleSet("iptables-save")
    return NetfilterEngine(rs, NODE, engine_tables(nft, family)), text


def line_of(text: str, needle: str) -> int:
    hits = [n for n, line in enumerate(text.splitlines(), 1) if needle in line]
    assert len(hits) == 1, (needle, hits)
    return hits[0]


def test_cluster_ip_three_endpoints_each_one_third() -> None:
    eng, text = engine(kube_proxy_table([WEB, NONE], nodeport_ips=["192.168.56.11"]))
    branches = eng.walk_hook("PREROUTING", pkt("10.244.1.2", "10.96.0.100", 80))
    assert math.isclose(sum(b.probability for b in branches), 1.0)
    got = {}
    for b in branches:
        assert b.verdict is Verdict.ACCEPT
        (t,) = b.translations
        got[t.after] = (b.probability, t.rule.line)
        assert t.rule.text.startswith("meta l4proto tcp dnat to ")
    want = {f"{a}:{p}": line_of(text, f"dnat to {a}:{p}") for a, p in WEB.endpoints}
    assert {k: v[1] for k, v in got.items()} == want
    assert all(math.isclose(v[0], 1 / 3) for v in got.values())
    # one label per branch, naming the endpoint it chose (the numgen element, as KUBE-SVC's comment does)
    assert sorted(b.labels[0].split(":", 2)[1].split(" -> ")[1] for b in branches if len(b.labels) == 1) == sorted(
        f"{a}" for a, _ in WEB.endpoints) and all(len(b.labels) == 1 for b in branches)
    # the path there: services' vmap element, then the numgen element, each on its own nft line
    b = branches[0]
    lines = [s.rule.line for s in b.steps if s.rule is not None]
    assert line_of(text, "type nat hook prerouting") + 1 in lines  # nat-prerouting: jump services
    assert line_of(text, f": goto {service_chain(WEB)}") in lines  # the @service-ips element
    assert line_of(text, "numgen random mod 3") in lines
    assert b.packet.mark == 0  # a pod inside the cluster CIDR: not marked for masquerade


def test_no_endpoints_rejected_by_service_endpoints_check() -> None:
    eng, text = engine(kube_proxy_table([WEB, NONE], nodeport_ips=["192.168.56.11"]))
    p = pkt("10.244.1.2", "10.96.0.200", 80, oif="eth0")
    (pre,) = eng.walk_hook("PREROUTING", p)
    assert pre.verdict is Verdict.ACCEPT and pre.translations == ()  # no @service-ips element: no DNAT
    (b,) = eng.walk_hook("FORWARD", pre.packet)
    assert (b.verdict, b.reject_with) == (Verdict.REJECT, "icmp-port-unreachable")
    # the @no-endpoint-services element that names the service decides (reject-chain is only "reject")
    assert b.decided_by.line == line_of(text, '10.96.0.200 . tcp . 80 comment "default/none:http" : goto reject-chain')
    assert b.decided_by.chain == "service-endpoints-check" and b.decided_by.comment == "default/none:http"


def test_unallocated_cluster_ip_dropped_and_wrong_port_rejected() -> None:
    eng, text = engine(kube_proxy_table([WEB], nodeport_ips=["192.168.56.11"]))
    (b,) = eng.walk_hook("FORWARD", pkt("10.244.1.2", "10.96.5.5", 80, oif="eth0"))
    assert b.verdict is Verdict.DROP and b.decided_by.line == line_of(text, "Drop traffic to unallocated")
    (b,) = eng.walk_hook("FORWARD", pkt("10.244.1.2", "10.96.0.100", 81, oif="eth0"))
    assert b.verdict is Verdict.REJECT and b.decided_by.line == line_of(text, "Reject traffic to invalid ports")
    # an established connection does not meet the ct state new checks
    (b,) = eng.walk_hook("FORWARD", pkt("10.244.1.2", "10.96.5.5", 80, oif="eth0", state="ESTABLISHED"))
    assert b.verdict is Verdict.ACCEPT


def test_nodeport_marks_dnats_and_masquerades() -> None:
    eng, text = engine(kube_proxy_table([WEB], nodeport_ips=["192.168.56.11"]))
    p = pkt("192.168.56.1", "192.168.56.11", 30080, iif="eth0")
    branches = eng.walk_hook("PREROUTING", p)
    assert len(branches) == 3 and math.isclose(sum(b.probability for b in branches), 1.0)
    b = branches[0]
    assert b.packet.mark == 0x4000  # external-... jumps to mark-for-masquerade
    assert b.translations[0].type == "dnat"
    assert line_of(text, "tcp . 30080 : goto external-") in [s.rule.line for s in b.steps if s.rule]
    (post,) = eng.walk_hook("POSTROUTING", replace(b.packet, out_interface="flannel.1"))
    (t,) = post.translations
    assert (t.type, t.rule.line, t.detail) == ("masquerade", line_of(text, "masquerade fully-random"),
                                               "--random-fully")
    assert post.packet.mark == 0  # masquerading clears the bit (meta mark set meta mark ^ 0x4000)


def test_source_outside_cluster_cidr_is_masqueraded_not_a_pod() -> None:
    eng, text = engine(kube_proxy_table([WEB], nodeport_ips=["192.168.56.11"]))
    pre = eng.walk_hook("PREROUTING", pkt("192.168.56.1", "10.96.0.100", 80, iif="eth0"))
    assert all(b.packet.mark == 0x4000 for b in pre)
    pod = eng.walk_hook("PREROUTING", pkt("10.244.1.2", "10.96.0.100", 80))
    assert all(b.packet.mark == 0 for b in pod)
    post = eng.walk_hook("POSTROUTING", pod[0].packet)
    assert post[0].translations == ()
    assert line_of(text, "meta mark & 0x00004000 == 0x00000000 return") in [s.rule.line for s in post[0].steps
                                                                         if s.rule]


def test_ipv6_table() -> None:
    svc = Svc("default", "web", "fd00:96::100", 80, (("fd00:244:2::2", 8080), ("fd00:244:1::3", 8080)))
    text = kube_proxy_table([svc], nodeport_ips=["fd00:56::11"], cluster_cidr="fd00:244::/48",
                            service_cidr="fd00:96::/112", family=6)
    nft = parse_nft_ruleset(text, "nft-ruleset")
    assert engine_tables(nft, 4) is None  # table ip6: nothing for IPv4 packets
    eng = NetfilterEngine(RuleSet("ip6tables-save", family="ipv6"), NodeAddresses(), engine_tables(nft, 6))
    branches = eng.walk_hook("PREROUTING", pkt("fd00:244:1::2", "fd00:96::100", 80))
    assert sorted((b.translations[0].after, round(b.probability, 6)) for b in branches) == [
        ("[fd00:244:1::3]:8080", 0.5), ("[fd00:244:2::2]:8080", 0.5)]
    (b,) = eng.walk_hook("FORWARD", pkt("fd00:244:1::2", "fd00:96::7", 80, oif="eth0"))
    assert b.verdict is Verdict.DROP  # ip6 daddr fd00:96::/112 drop


IPT_NAT = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -d 10.96.0.100/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.9.9.9:80
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
COMMIT
"""


def test_first_nat_chain_to_translate_wins() -> None:
    # equal priority (dstnat): iptables' nat table runs first and its DNAT binds the connection
    eng, text = engine(kube_proxy_table([WEB], nodeport_ips=[]), IPT_NAT)
    (b,) = eng.walk_hook("PREROUTING", pkt("10.244.1.2", "10.96.0.100", 80))
    assert [t.after for t in b.translations] == ["10.9.9.9:80"]
    assert any(s.action == "skip" and "nat-prerouting" in s.explanation for s in b.steps)
    # kube-proxy's chain at dstnat - 10 runs before it: its DNAT wins, iptables' nat does not run
    early = kube_proxy_table([WEB], nodeport_ips=[]).replace("type nat hook prerouting priority dstnat;",
                                                             "type nat hook prerouting priority dstnat - 10;")
    eng, text = engine(early, IPT_NAT)
    branches = eng.walk_hook("PREROUTING", pkt("10.244.1.2", "10.96.0.100", 80))
    assert {b.translations[0].after for b in branches} == {f"{a}:{p}" for a, p in WEB.endpoints}
    assert all(len(b.translations) == 1 for b in branches)


def test_nft_accept_ends_only_its_base_chain() -> None:
    text = kube_proxy_table([WEB], nodeport_ips=[]).replace(
        "ct state new jump cluster-ips-check\n", "ct state new jump cluster-ips-check\n\t\taccept\n", 1)
    eng, _ = engine(text, IPT_NAT)
    (b,) = eng.walk_hook("FORWARD", pkt("10.244.1.2", "10.244.2.2", 8080, oif="flannel.1"))
    assert b.verdict is Verdict.DROP and b.decided_by is None  # iptables' FORWARD policy DROP still runs


def test_unknown_statement_is_not_guessed_and_affinity_from_the_dump() -> None:
    text = kube_proxy_table([WEB], nodeport_ips=[])
    chain = service_chain(WEB)
    text = text.replace(f"\tchain {chain} {{\n", f"\tchain {chain} {{\n\t\tct mark set 0x1\n", 1)
    eng, _ = engine(text)
    (b,) = eng.walk_hook("PREROUTING", pkt("10.244.1.2", "10.96.0.100", 80))
    assert b.verdict is Verdict.UNKNOWN and b.decided_by.text == "ct mark set 0x1" and "nftables" in b.reason
    # session affinity: a set the packets fill; the dump lists its entries of that moment
    ep = endpoint_chain(WEB, "10.244.2.4", 8080)
    for listed, want in (("", {"10.244.2.2:8080", "10.244.1.3:8080", "10.244.2.4:8080"}),
                         ("\t\telements = { 10.244.1.2 expires 2h59m58s, 10.244.1.7 expires 1h }\n", {"10.244.2.4:8080"})):
        aff = kube_proxy_table([WEB], nodeport_ips=[]).replace(
            "\tmap service-ips {", "\tset affinity-X {\n\t\ttype ipv4_addr\n\t\tflags dynamic,timeout\n"
            f"\t\ttimeout 3h\n{listed}\t}}\n\n\tmap service-ips {{", 1).replace(
            f"\tchain {chain} {{\n", f"\tchain {chain} {{\n\t\tip saddr @affinity-X goto {ep}\n", 1)
        eng, _ = engine(aff)
        branches = eng.walk_hook("PREROUTING", pkt("10.244.1.2", "10.96.0.100", 80))
        assert math.isclose(sum(b.probability for b in branches), 1.0)
        assert {b.translations[0].after for b in branches} == want
        assert all(any("@affinity-X is filled by the packets" in a for a in b.assumptions) for b in branches)


def test_filter_walk_decides_kube_proxy_checks() -> None:
    nft = parse_nft_ruleset(kube_proxy_table([WEB, NONE], nodeport_ips=["192.168.56.11"]), "nft-ruleset")
    v = hook_verdict(nft, "input", NftPacket("192.168.56.1", "192.168.56.11", "tcp", 40000, 30090))
    assert v is not None and v.verdict == "reject" and v.chain == "reject-chain"
    assert hook_verdict(nft, "input", NftPacket("192.168.56.1", "192.168.56.11", "tcp", 40000, 30080)) is None
    assert hook_verdict(nft, "input", NftPacket("192.168.56.12", "192.168.56.11", "udp", 40000, 8472)) is None
    assert hook_verdict(nft, "input", NftPacket("192.168.56.1", "192.168.56.11", "tcp", 40000, 30090),
                        skip_nat_tables=True) is None  # the simulator runs kube-proxy's table itself


@pytest.mark.parametrize("name", ["kp-example.nft", "kp-six-services.nft"])
def test_real_nft_listing(name: str) -> None:
    """Outputs of `nft list ruleset` after the kernel loaded the table (element lists wrapped)."""
    text = (DATA / name).read_text()
    nft = parse_nft_ruleset(text, name)
    assert nft.warnings == ()
    (t,) = nft.tables
    ips = t.set("service-ips").elements
    assert [e.key[1:] for e in ips] == [("tcp", "80")] * len(ips)
    assert all(e.source.line == line_of(text, e.key[0] + " . tcp . 80 :") for e in ips)
    assert t.chain("filter-prerouting").priority == -110  # "priority dstnat - 10"
    eng = NetfilterEngine(RuleSet("x"), NODE, engine_tables(nft, 4))
    for e in ips:
        (b,) = eng.walk_hook("PREROUTING", pkt("10.244.1.2", e.key[0], 80))
        assert b.translations[0].after == "10.244.2.2:8080"


def test_no_endpoint_elements_for_findings() -> None:
    text = kube_proxy_table([WEB, NONE], nodeport_ips=["192.168.56.11"])
    nft = parse_nft_ruleset(text, "nft-ruleset")
    assert [r.line for r in no_endpoint_elements(nft, "10.96.0.200", 80)] == [
        line_of(text, "10.96.0.200 . tcp . 80 comment")]
    assert no_endpoint_elements(nft, "10.96.0.100") == [] and no_endpoint_elements(None, "10.96.0.200") == []


def test_load_balancer_source_ranges_and_local_traffic() -> None:
    text = kube_proxy_table([WEB], nodeport_ips=["192.168.56.11"]).replace(
        '\t\tcomment "destinations that are subject to LoadBalancerSourceRanges"\n',
        '\t\tcomment "destinations that are subject to LoadBalancerSourceRanges"\n'
        "\t\telements = { 203.0.113.50 . tcp . 80 : goto firewall-ABCDEFGH-default/web/tcp/http }\n", 1)
    text = text.replace("\tchain reject-chain {", "\tchain firewall-ABCDEFGH-default/web/tcp/http {\n"
                        "\t\tip saddr != { 198.51.100.0/24, 192.0.2.1-192.0.2.9 } drop\n\t}\n\n\tchain reject-chain {", 1)
    eng, text = engine(text)
    (b,) = eng.walk_hook("PREROUTING", pkt("203.0.113.9", "203.0.113.50", 80, iif="eth0"))
    assert b.verdict is Verdict.DROP and b.decided_by.text.startswith("ip saddr != {")
    for allowed in ("198.51.100.7", "192.0.2.5"):
        (b,) = eng.walk_hook("PREROUTING", pkt(allowed, "203.0.113.50", 80, iif="eth0"))
        assert b.verdict is Verdict.ACCEPT, allowed
    # `fib saddr type local`: the node's own address is local, a pod's is not
    rule = "fib saddr type local jump mark-for-masquerade"
    text2 = kube_proxy_table([WEB], nodeport_ips=[]).replace("\tchain mark-for-masquerade {", "\tchain local-mark {\n"
                                                               f"\t\t{rule}\n\t}}\n\n\tchain mark-for-masquerade {{", 1)
    text2 = text2.replace("\t\tjump services\n", "\t\tjump local-mark\n\t\tjump services\n")
    eng, _ = engine(text2)
    mine = eng.walk_hook("OUTPUT", pkt("192.168.56.11", "10.96.0.100", 80, iif=None))
    pods = eng.walk_hook("PREROUTING", pkt("10.244.1.2", "10.96.0.100", 80))
    assert {b.packet.mark for b in mine} == {0x4000} and {b.packet.mark for b in pods} == {0}


def test_big_table_lowers_only_what_the_walk_reaches() -> None:
    svcs = [Svc("ns", f"s{i}", str(ipaddress.ip_address("10.96.16.0") + i), 80,
                ((f"10.244.{i % 200}.{i % 250 + 2}", 8080), (f"10.244.{(i + 7) % 200}.{i % 250 + 2}", 8080)))
            for i in range(3000)]
    text = kube_proxy_table(svcs, nodeport_ips=["192.168.56.11"])
    nft = parse_nft_ruleset(text, "nft-ruleset")
    lowered = engine_tables(nft, 4)
    assert engine_tables(nft, 4) is lowered  # one lowering per ruleset: the simulator's engines are reused
    eng = NetfilterEngine(RuleSet("x"), NODE, lowered)
    last = svcs[-1]
    branches = eng.walk_hook("PREROUTING", pkt("10.244.1.2", last.ip, 80))
    assert last.ip == "10.96.27.183"
    assert sorted(b.translations[0].after for b in branches) == ["10.244.199.251:8080", "10.244.6.251:8080"]
    chains = lowered.tables["ip kube-proxy"].chains
    assert len(chains) == 16 + 3 * 3000 and len(chains._done) < 12  # noqa: SLF001 - the laziness is the point


FIREWALLD = Path(__file__).resolve().parents[1] / "nodes" / "data" / "nft" / "firewalld-public.nft"
FIREWALLD_NAT = """\tchain nat_POSTROUTING {
\t\ttype nat hook postrouting priority srcnat + 10; policy accept;
\t\toifname != "lo" ip saddr 10.88.0.0/16 masquerade
\t}

\tchain filter_IN_public_allow {"""


@pytest.mark.parametrize(("src", "dst", "proto", "dport", "iif", "state"), [
    ("192.168.56.11", "192.168.56.12", "tcp", 22, "eth0", "new"),
    ("192.168.56.11", "192.168.56.12", "tcp", 443, "eth0", "new"),
    ("192.168.56.11", "192.168.56.12", "udp", 8472, "eth0", "new"),
    ("192.168.56.11", "192.168.56.12", "udp", 8472, "eth0", "established"),
    ("192.168.56.11", "192.168.56.12", "icmp", None, "eth0", "new"),
    ("127.0.0.1", "127.0.0.1", "tcp", 443, "lo", "new"),
    ("fd00::1", "fd00::2", "tcp", 6443, "eth0", "new"),
    ("fd00::1", "fd00::2", "udp", 546, "eth0", "new"),
    ("fe80::1", "fe80::2", "udp", 546, "eth0", "new"),
    ("fd00::1", "fd00::2", "icmpv6", None, "eth0", "new"),
])
def test_firewalld_with_nat_chains_decides_as_the_filter_walk(src: str, dst: str, proto: str, dport: int | None,
                                                               iif: str, state: str) -> None:
    """A firewalld table with NAT chains runs in the simulator (lowered): its INPUT verdicts are the
    ones the nftables filter walk gives for the same table without them, rule for rule."""
    plain = parse_nft_ruleset(FIREWALLD.read_text(), "nft-ruleset")
    with_nat = parse_nft_ruleset(FIREWALLD.read_text().replace("\tchain filter_IN_public_allow {", FIREWALLD_NAT, 1),
                                 "nft-ruleset")
    assert with_nat.tables[0].has_nat and not plain.tables[0].has_nat
    want = hook_verdict(plain, "input", NftPacket(src, dst, proto, 40000 if dport else None, dport, iif=iif,
                                                  ct_state=state))
    family = 6 if ":" in src else 4
    eng = NetfilterEngine(RuleSet("x", family="ipv4" if family == 4 else "ipv6"), NodeAddresses(),
                          engine_tables(with_nat, family))
    num = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58}[proto]
    p = PacketState(ip(src), ip(dst), num, 40000 if dport else None, dport, in_interface=iif,
                    ctstate=state.upper(), icmp_type=8 if proto == "icmp" else 128 if proto == "icmpv6" else None)
    (b,) = eng.walk_hook("INPUT", p)
    got = b.verdict.value
    assert got == (want.verdict if want is not None else "accept"), (b.steps[-1:], want)
    if want is not None and want.rule is not None and not want.policy:
        assert b.decided_by is not None and b.decided_by.line == want.rule.line
    assert hook_verdict(with_nat, "input", NftPacket(src, dst, proto, None, dport, iif=iif, ct_state=state),
                        skip_nat_tables=True) is None  # the simulator walks it, not the filter walk
