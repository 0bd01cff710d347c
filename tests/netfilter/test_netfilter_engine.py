"""The netfilter engine on small hand-written rule sets: every target and match it models, and
the explicit insufficient-information outcome for what it does not."""

from __future__ import annotations

import ipaddress
import textwrap

import pytest

from analyzer.engines.netfilter import NetfilterEngine, NodeAddresses, PacketState, Verdict
from analyzer.inputs.iptables_save import parse_iptables_save


def _engine(body: str, local: tuple[str, ...] = ("192.168.0.10",), ifaces: dict | None = None) -> NetfilterEngine:
    rs = parse_iptables_save(textwrap.dedent(body), "t.save")
    assert rs.warnings == ()
    by_if = {k: tuple(ipaddress.ip_interface(a) for a in v) for k, v in (ifaces or {}).items()}
    return NetfilterEngine(rs, NodeAddresses(frozenset(ipaddress.ip_address(a) for a in local), by_if))


def _pkt(src: str = "10.244.0.5", dst: str = "10.96.0.10", proto: int = 6, sport: int = 40000, dport: int = 80,
         **kw) -> PacketState:
    kw.setdefault("length", 60)
    return PacketState(ipaddress.ip_address(src), ipaddress.ip_address(dst), proto, sport, dport, **kw)


FILTER = """\
    *filter
    :INPUT ACCEPT [0:0]
    :FORWARD DROP [0:0]
    :OUTPUT ACCEPT [0:0]
    :A - [0:0]
    :B - [0:0]
    -A FORWARD -p tcp -m multiport --dports 8000:8100,9000 -j ACCEPT
    -A FORWARD -p udp -m udp --sport 53 -j ACCEPT
    -A FORWARD -m mark --mark 0x10/0xf0 -j ACCEPT
    -A FORWARD -p icmp -m icmp --icmp-type echo-request -j ACCEPT
    -A FORWARD -p tcp -m tcp --tcp-flags SYN,RST,ACK SYN -m length --length 0:60 -j LOG
    -A FORWARD -s 10.9.0.0/16 -g A
    -A FORWARD -s 10.8.0.0/16 -j A
    -A FORWARD -d 10.96.0.99 -j REJECT
    -A FORWARD -d 10.96.0.98 -p tcp -j REJECT --reject-with tcp-reset
    -A FORWARD -i eth+ ! -o eth0 -j ACCEPT
    -A A -j B
    -A A -p tcp -j DROP
    -A B -d 10.96.0.10/32 -j RETURN
    -A B -j ACCEPT
    COMMIT
    """


def test_policy_ports_marks_icmp_and_goto() -> None:
    e = _engine(FILTER)
    def verdict(**kw):
        [b] = e.walk_hook("FORWARD", _pkt(**kw))
        return b.verdict, b.decided_by.line if b.decided_by else None
    assert verdict(dport=8050) == (Verdict.ACCEPT, None)
    assert verdict(dport=9000)[0] is Verdict.ACCEPT
    [b] = e.walk_hook("FORWARD", _pkt(dport=80))
    assert b.verdict is Verdict.DROP and b.decided_by is None  # FORWARD policy
    assert b.steps[-1].action == "policy"
    assert verdict(proto=17, sport=53, dport=999)[0] is Verdict.ACCEPT
    assert verdict(mark=0x1F)[0] is Verdict.ACCEPT
    assert verdict(mark=0x20)[0] is Verdict.DROP
    assert verdict(proto=1, sport=None, dport=None, icmp_type=8, icmp_code=0)[0] is Verdict.ACCEPT
    assert verdict(proto=1, sport=None, dport=None, icmp_type=0, icmp_code=0)[0] is Verdict.DROP
    # -g A: B RETURNs (dst 10.96.0.10) back to A (a goto does not come back to FORWARD) -> DROP in A
    [g] = e.walk_hook("FORWARD", _pkt(src="10.9.1.1", dport=80, length=60))
    assert g.verdict is Verdict.DROP and g.decided_by.chain == "A"
    assert [s.action for s in g.steps][:2] == ["log", "goto"]
    # -j A from FORWARD: B accepts other destinations
    [j] = e.walk_hook("FORWARD", _pkt(src="10.8.1.1", dst="10.96.0.11", length=60))
    assert j.verdict is Verdict.ACCEPT and j.steps[-1].rule.chain == "B"
    # REJECT defaults to icmp-port-unreachable; tcp-reset kept
    [r1] = e.walk_hook("FORWARD", _pkt(dst="10.96.0.99", length=60))
    assert (r1.verdict, r1.reject_with) == (Verdict.REJECT, "icmp-port-unreachable")
    [r2] = e.walk_hook("FORWARD", _pkt(dst="10.96.0.98", length=60))
    assert r2.reject_with == "tcp-reset"
    # interface wildcards and negation
    assert verdict(in_interface="eth1", out_interface="cni0", length=60)[0] is Verdict.ACCEPT
    assert verdict(in_interface="eth1", out_interface="eth0", length=60)[0] is Verdict.DROP


def test_length_unknown_is_insufficient_information() -> None:
    e = _engine(FILTER)
    [b] = e.walk_hook("FORWARD", _pkt(dport=80, length=None))
    # the LOG rule needs the length: without it the walk cannot go on
    assert b.verdict is Verdict.UNKNOWN and "length" in b.reason and "t.save:11" in b.reason


NAT = """\
    *nat
    :PREROUTING ACCEPT [0:0]
    :INPUT ACCEPT [0:0]
    :OUTPUT ACCEPT [0:0]
    :POSTROUTING ACCEPT [0:0]
    -A PREROUTING -d 10.96.0.1/32 -p tcp -m tcp --dport 443 -j DNAT --to-destination 192.168.0.10:6443
    -A PREROUTING -d 10.96.0.2/32 -p tcp -j DNAT --to-destination 10.244.1.1-10.244.1.9:8000-8010
    -A PREROUTING -p tcp -m tcp --dport 8080 -j REDIRECT --to-ports 3128
    -A PREROUTING -d 10.96.0.3/32 -m statistic --mode nth --every 3 --packet 0 -j DNAT --to-destination 10.244.3.3
    -A POSTROUTING -s 10.244.0.0/16 -o eth0 -j MASQUERADE --to-ports 20000-30000
    -A POSTROUTING -s 10.245.0.0/16 -j SNAT --to-source 192.168.0.77
    -A POSTROUTING -m mark --mark 0x4000/0x4000 -j MASQUERADE
    COMMIT
    *mangle
    :PREROUTING ACCEPT [0:0]
    :INPUT ACCEPT [0:0]
    :FORWARD ACCEPT [0:0]
    :OUTPUT ACCEPT [0:0]
    :POSTROUTING ACCEPT [0:0]
    -A PREROUTING -d 10.96.0.4/32 -j MARK --set-xmark 0x4000/0x4000
    -A PREROUTING -d 10.96.0.4/32 -j CONNMARK --save-mark
    -A PREROUTING -d 10.96.0.5/32 -j MARK --or-mark 0x3
    -A PREROUTING -d 10.96.0.5/32 -j MARK --xor-mark 0x1
    -A PREROUTING -d 10.96.0.6/32 -p tcp -j TPROXY --on-port 3128
    COMMIT
    *raw
    :PREROUTING ACCEPT [0:0]
    :OUTPUT ACCEPT [0:0]
    -A PREROUTING -p udp -m udp --dport 8472 -j NOTRACK
    COMMIT
    """


def test_nat_targets() -> None:
    e = _engine(NAT, ifaces={"eth0": ("192.168.0.10/24",), "cni0": ("10.244.0.1/24",)})
    [d] = e.walk_hook("PREROUTING", _pkt(dst="10.96.0.1", dport=443))
    assert (str(d.packet.dst), d.packet.dport, d.packet.ct_dnat) == ("192.168.0.10", 6443, True)
    assert d.translations[0].before == "10.96.0.1:443" and d.translations[0].after == "192.168.0.10:6443"
    [rng] = e.walk_hook("PREROUTING", _pkt(dst="10.96.0.2", dport=80))
    assert rng.translations[0].after == "10.244.1.1:8000" and "range" in rng.translations[0].detail
    [red] = e.walk_hook("PREROUTING", _pkt(dst="8.8.8.8", dport=8080, in_interface="cni0"))
    assert red.translations[0].type == "redirect" and red.translations[0].after == "10.244.0.1:3128"
    nth = e.walk_hook("PREROUTING", _pkt(dst="10.96.0.3"))
    assert sorted(round(b.probability, 6) for b in nth) == [round(1 / 3, 6), round(2 / 3, 6)]
    # source NAT in POSTROUTING
    post = _pkt(out_interface="eth0")
    [m] = e.walk_hook("POSTROUTING", post)
    assert str(m.packet.src) == "192.168.0.10" and m.packet.sport == 20000
    [s] = e.walk_hook("POSTROUTING", _pkt(src="10.245.0.5", out_interface="eth0"))
    assert s.translations[0].after == "192.168.0.77:40000"
    # MASQUERADE with an out interface whose address is unknown: said, not invented
    [u] = e.walk_hook("POSTROUTING", _pkt(src="172.16.0.1", mark=0x4000, out_interface="tun9"))
    assert u.translations[0].type == "masquerade" and u.translations[0].after is None


def test_marks_connmark_notrack_and_unknown_target() -> None:
    e = _engine(NAT)
    [b] = e.walk_hook("PREROUTING", _pkt(dst="10.96.0.4", mark=0x1))
    assert b.packet.mark == 0x4001 and b.packet.ctmark == 0x4001
    [x] = e.walk_hook("PREROUTING", _pkt(dst="10.96.0.5", mark=0x4))
    assert x.packet.mark == (0x4 | 0x3) ^ 0x1
    [u] = e.walk_hook("PREROUTING", _pkt(dst="10.96.0.6"))
    assert u.verdict is Verdict.UNKNOWN and "TPROXY" in u.reason and "t.save:24" in u.reason
    [nt] = e.walk_hook("PREROUTING", _pkt(proto=17, dport=8472, dst="10.96.0.1"))
    assert nt.packet.ctstate == "UNTRACKED" and nt.translations == ()


def test_nat_is_skipped_for_established_packets() -> None:
    e = _engine(NAT)
    [b] = e.walk_hook("PREROUTING", _pkt(dst="10.96.0.1", dport=443, ctstate="ESTABLISHED"))
    assert b.translations == () and any(s.action == "skip" for s in b.steps)


UNKNOWN_MATCH = """\
    *filter
    :INPUT ACCEPT [0:0]
    :FORWARD ACCEPT [0:0]
    :OUTPUT ACCEPT [0:0]
    -A FORWARD -d 10.0.0.1/32 -m owner --uid-owner 0 -j DROP
    -A FORWARD -m set --match-set blocked src -j DROP
    -A FORWARD -m conntrack --ctstate INVALID -j DROP
    -A FORWARD -m addrtype --dst-type LOCAL --limit-iface-in -j DROP
    -A FORWARD -m pkttype --pkt-type broadcast -j DROP
    -A FORWARD -m physdev --physdev-is-bridged --physdev-in veth+ -j DROP
    COMMIT
    """


def test_unknown_match_set_and_physdev() -> None:
    e = _engine(UNKNOWN_MATCH, ifaces={"eth0": ("192.168.0.10/24",)})
    [u] = e.walk_hook("FORWARD", _pkt(dst="10.0.0.1"))
    assert u.verdict is Verdict.UNKNOWN and "-m owner" in u.reason and "t.save:5" in u.reason
    branches = e.walk_hook("FORWARD", _pkt(dst="10.0.0.2", in_interface="eth0"))
    assert sorted((b.verdict.value, b.probability) for b in branches) == [("accept", 0.5), ("drop", 0.5)]
    assert all(any("ipset blocked" in label for label in b.labels) for b in branches)
    # addrtype LOCAL limited to the input interface: 192.168.0.10 is on eth0, not on cni0
    on_eth0 = e.walk_hook("FORWARD", _pkt(dst="192.168.0.10", in_interface="eth0"))
    assert all(b.verdict is Verdict.DROP for b in on_eth0)
    on_cni = e.walk_hook("FORWARD", _pkt(dst="192.168.0.10", in_interface="cni0"))
    assert {b.verdict for b in on_cni} == {Verdict.DROP, Verdict.ACCEPT}  # only the ipset fork drops
    bcast = e.walk_hook("FORWARD", _pkt(dst="192.168.0.255", in_interface="cni0"))
    assert all(b.verdict is Verdict.DROP for b in bcast)
    bridged = e.walk_hook("FORWARD", _pkt(dst="10.244.0.3", in_interface="cni0", bridged=True,
                                          physdev_in="veth12"))
    assert all(b.verdict is Verdict.DROP for b in bridged)


def test_missing_chain_and_loops_do_not_hang() -> None:
    text = """\
        *filter
        :INPUT ACCEPT [0:0]
        :FORWARD ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        :L - [0:0]
        -A FORWARD -j L
        -A L -j L
        COMMIT
        """
    e = _engine(text)
    [b] = e.walk_hook("FORWARD", _pkt())
    assert b.verdict is Verdict.UNKNOWN and "loop" in b.reason


@pytest.mark.parametrize("path,hooks", [("routed", ["PREROUTING", "FORWARD", "POSTROUTING"]),
                                        ("sent", ["OUTPUT", "POSTROUTING"]), ("local", ["PREROUTING", "INPUT"])])
def test_paths_visit_hooks_in_kernel_order(path: str, hooks: list[str]) -> None:
    tables = []
    for table, chains in (("raw", ("PREROUTING", "OUTPUT")),
                          ("mangle", ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING")),
                          ("nat", ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING")),
                          ("filter", ("INPUT", "FORWARD", "OUTPUT"))):
        lines = [f"*{table}"] + [f":{c} ACCEPT [0:0]" for c in chains]
        lines += [f"-A {c} -j LOG --log-prefix {table}-{c}" for c in chains] + ["COMMIT"]
        tables.append("\n".join(lines))
    e = _engine("\n".join(tables) + "\n")
    [b] = e.walk_path(path, _pkt())
    seen = [(s.hook, s.table) for s in b.steps if s.action == "log"]
    order = {"PREROUTING": ["raw", "mangle", "nat"], "INPUT": ["mangle", "filter", "nat"],
             "FORWARD": ["mangle", "filter"], "OUTPUT": ["raw", "mangle", "nat", "filter"],
             "POSTROUTING": ["mangle", "nat"]}
    assert seen == [(h, t) for h in hooks for t in order[h]]


def test_big_chains_are_indexed_not_scanned() -> None:
    from analyzer.engines.simulate import simulate_packet
    from analyzer.lab.kube_proxy import Endpoint, ServicePortSpec, generate_rules
    from analyzer.model.node import NodeSnapshot

    specs = [ServicePortSpec("ns", f"s{i}", f"10.96.{i // 250}.{i % 250 + 1}", 80,
                             (Endpoint(f"10.244.{i // 250}.{i % 250 + 1}", 80), Endpoint("10.244.9.9", 80)),
                             node_port=30000 + i) for i in range(1500)]
    rs = parse_iptables_save(generate_rules(specs, pod_cidr="10.244.0.0/24"), "big.save")
    assert rs.rule_count() > 15_000
    node = NodeSnapshot(name="n", ruleset=rs)
    r = simulate_packet([node], "10.244.0.9", "10.96.5.101", "tcp", 40000, 80, local_ips=["192.168.0.10"])
    assert {o.dnat for o in r.outcomes} == {"10.244.5.101:80", "10.244.9.9:80"}
    r2 = simulate_packet([node], "203.0.113.1", "192.168.0.10", "tcp", 40000, 31400, local_ips=["192.168.0.10"])
    assert {o.dnat for o in r2.outcomes} == {"10.244.5.151:80", "10.244.9.9:80"}
    # the walks looked at a handful of the 1500-rule KUBE-SERVICES and KUBE-NODEPORTS chains
    from analyzer.engines.netfilter import NodeAddresses, engine_for
    from analyzer.engines.simulate import node_addresses
    engine = engine_for(rs, node_addresses(node, ["192.168.0.10"]))
    for chain in ("KUBE-SERVICES", "KUBE-NODEPORTS"):
        compiled = engine._chain("nat", chain)
        assert compiled is not None and compiled.rest is not None
        looked_at = sum(1 for c in compiled.rules if c.preds is not None)
        assert 1 <= looked_at <= 5, (chain, looked_at)
    assert isinstance(engine.addresses, NodeAddresses)


def test_bench_smoke() -> None:
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "bench" / "rules_bench.py"
    spec = importlib.util.spec_from_file_location("rules_bench", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--services", "200", "--endpoints", "3", "--repeat", "3", "--no-restore", "--json"]) == 0


def test_kube_mark_drop_is_a_mark_then_a_drop() -> None:
    text = """\
        *filter
        :INPUT ACCEPT [0:0]
        :FORWARD ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        :KUBE-FIREWALL - [0:0]
        -A FORWARD -j KUBE-FIREWALL
        -A KUBE-FIREWALL -m comment --comment "kubernetes firewall for dropping marked packets" -m mark --mark 0x8000/0x8000 -j DROP
        COMMIT
        *nat
        :PREROUTING ACCEPT [0:0]
        :INPUT ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        :POSTROUTING ACCEPT [0:0]
        :KUBE-MARK-DROP - [0:0]
        :KUBE-XLB-X - [0:0]
        -A PREROUTING -d 10.96.0.9/32 -j KUBE-XLB-X
        -A KUBE-MARK-DROP -j MARK --set-xmark 0x8000/0x8000
        -A KUBE-XLB-X -m comment --comment "ns/svc has no local endpoints" -j KUBE-MARK-DROP
        COMMIT
        """
    e = _engine(text)
    [b] = e.walk_path("routed", _pkt(dst="10.96.0.9", in_interface="eth0", out_interface="eth1"))
    assert b.verdict is Verdict.DROP and b.decided_by.chain == "KUBE-FIREWALL"
    marks = [s for s in b.steps if s.action == "mark"]
    assert len(marks) == 1 and "0x0 -> 0x8000" in marks[0].explanation
    jump = next(s for s in b.steps if s.action == "jump" and s.rule.target == "KUBE-MARK-DROP")
    assert "KUBE-FIREWALL drops it" in jump.explanation
    [ok] = e.walk_path("routed", _pkt(dst="10.96.0.8", in_interface="eth0", out_interface="eth1"))
    assert ok.verdict is Verdict.ACCEPT


def test_conntrack_original_destination_survives_dnat() -> None:
    text = """\
        *nat
        :PREROUTING ACCEPT [0:0]
        :INPUT ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        :POSTROUTING ACCEPT [0:0]
        -A PREROUTING -d 10.96.0.1/32 -j DNAT --to-destination 10.244.1.1
        COMMIT
        *filter
        :INPUT ACCEPT [0:0]
        :FORWARD DROP [0:0]
        :OUTPUT ACCEPT [0:0]
        -A FORWARD -m conntrack --ctstate DNAT --ctorigdst 10.96.0.1 -j ACCEPT
        COMMIT
        """
    e = _engine(text)
    [b] = e.walk_path("routed", _pkt(dst="10.96.0.1", in_interface="eth0", out_interface="cni0"))
    assert b.verdict is Verdict.ACCEPT and str(b.packet.dst) == "10.244.1.1"
    [d] = e.walk_path("routed", _pkt(dst="10.244.1.1", in_interface="eth0", out_interface="cni0"))
    assert d.verdict is Verdict.DROP  # the same destination without DNAT


def test_cut_off_dump_gives_insufficient_information_where_rules_are_missing() -> None:
    text = textwrap.dedent("""\
        *filter
        :INPUT ACCEPT [0:0]
        :FORWARD ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        :KUBE-FORWARD - [0:0]
        :LATER - [0:0]
        -A FORWARD -d 10.0.0.1/32 -j DROP
        -A FORWARD -j KUBE-FORWARD
        -A KUBE-FORWARD -d 10.0.0.2/32 -j ACCEPT
        -A KUBE-FORWARD -d 10.0.0.3/32 -j DNAT --to-destination 10.244""")
    rs = parse_iptables_save(text, "cut.save")
    assert rs.cut_at == 10 and rs.incomplete == {"filter": frozenset({"KUBE-FORWARD", "LATER"})}
    assert any("cut.save:10: the last line has no newline" in w for w in rs.warnings)
    cut_rule = rs.rule_at(10)
    assert cut_rule.truncated and cut_rule.dst.value == "10.0.0.3/32" and cut_rule.error is None
    e = NetfilterEngine(rs, NodeAddresses())
    # decided before the cut: known
    [drop] = e.walk_hook("FORWARD", _pkt(dst="10.0.0.1"))
    assert drop.verdict is Verdict.DROP
    [acc] = e.walk_hook("FORWARD", _pkt(dst="10.0.0.2"))
    assert acc.verdict is Verdict.ACCEPT
    # reaches the cut-off rule, or the missing end of KUBE-FORWARD: unknown, never a silent policy ACCEPT
    [cut] = e.walk_hook("FORWARD", _pkt(dst="10.0.0.3"))
    assert cut.verdict is Verdict.UNKNOWN and "cut.save:10" in cut.reason
    [end] = e.walk_hook("FORWARD", _pkt(dst="10.0.0.4"))
    assert end.verdict is Verdict.UNKNOWN and "cut off (line 10) before the end of chain KUBE-FORWARD" in end.reason


def test_unreadable_target_values_are_insufficient_information() -> None:
    text = """\
        *nat
        :PREROUTING ACCEPT [0:0]
        :INPUT ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        :POSTROUTING ACCEPT [0:0]
        -A PREROUTING -d 10.96.0.1/32 -j DNAT --to-destination 10.244
        -A PREROUTING -d 10.96.0.2/32 -j MARK --set-xmark banana
        COMMIT
        """
    e = _engine(text)
    for dst, line in (("10.96.0.1", 6), ("10.96.0.2", 7)):
        [b] = e.walk_hook("PREROUTING", _pkt(dst=dst))
        assert b.verdict is Verdict.UNKNOWN and f"t.save:{line}" in b.reason


def test_pathological_forks_are_bounded() -> None:
    lines = ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]"]
    chains = [f"C{i}" for i in range(40)]
    lines += [f":{c} - [0:0]" for c in chains]
    lines.append("-A FORWARD -j C0")
    for i, c in enumerate(chains[:-1]):  # every level doubles the branches: 2^39 without a bound
        lines.append(f"-A {c} -m statistic --mode random --probability 0.5 -j {chains[i + 1]}")
        lines.append(f"-A {c} -j {chains[i + 1]}")
    lines += ["-A C39 -j DROP", "COMMIT"]
    e = _engine("\n".join(lines) + "\n")
    e.max_forks = 64
    branches = e.walk_hook("FORWARD", _pkt())
    assert sum(b.probability for b in branches) == pytest.approx(1.0)
    assert any(b.verdict is Verdict.UNKNOWN and "more than 64" in b.reason for b in branches)
    assert len(branches) < 5000
