"""Walk one packet through an iptables ``RuleSet`` the way the kernel's netfilter hooks do.

The kernel runs, for each hook, the tables registered there in priority order (raw -300,
conntrack -200, mangle -150, nat-dst -100, filter 0, security 50, nat-src 100). A packet
follows one of four paths: routed (PREROUTING, FORWARD, POSTROUTING), locally delivered
(PREROUTING, INPUT), locally sent (OUTPUT, POSTROUTING), or bridged with br_netfilter (the same
three hooks as routed, with ``-m physdev`` telling the bridge ports). The nat table is only
consulted for the first packet of a connection (conntrack state NEW); later packets and replies
are translated by conntrack.

The walk never guesses silently:

* ``-m statistic --mode random`` forks: every branch is followed with its probability, so the
  outcomes of one packet sum to 1;
* ``-m recent --rcheck/--update`` (session affinity) forks into "this client has no affinity entry
  yet" (it carries the probability) and "it already has one" (probability 0, labelled);
* ``-m set`` (ipset membership is not in the dumps) forks into both memberships, each half of the
  weight, labelled;
* an ``-i``/``-o`` test on an interface the caller did not know is evaluated as "not that
  interface" and recorded as an assumption on the outcome;
* a match or target this engine does not model ends the branch with verdict ``UNKNOWN`` naming
  the rule (``file:line``): insufficient information, never a silent pass.

Chains with many rules are indexed by destination address and by destination port, so one walk
through a 10,000-service ``KUBE-SERVICES`` chain only looks at the few rules that can match;
chains and rules are compiled when a walk first reaches them. A dump that is cut off gives an
UNKNOWN verdict wherever the walk needs the missing rules.

nftables tables with NAT chains (kube-proxy's nftables mode, ``table ip kube-proxy``) are lowered
into the same rule model (``engines/nft_lower.py``) and run at their hooks by priority among
iptables' tables (raw -300, mangle -150, dstnat -100, filter 0, srcnat 100; iptables' table first at
an equal priority): each base chain is a unit of its own, so an nft ``accept`` ends only that chain,
while ``drop``/``reject`` end the packet. The NAT chains of a hook run inside the kernel's one NAT hook
(-100 at PREROUTING/OUTPUT, 100 at INPUT/POSTROUTING, whatever their own priority), in their priority
order there, until one chooses a translation (the kernel's NAT binding): the later ones are skipped
for that connection.
"""

from __future__ import annotations

import heapq
import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

from analyzer.engines.nft_lower import Lowered, kube_proxy_names
from analyzer.model.flow import endpoint_text
from analyzer.model.netfilter import Match, Option, Rule, RuleSet, Selector, Table
from analyzer.model.protocols import proto_name, proto_number  # proto_number is in __all__ (diagnose uses it)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

__all__ = [
    "HOOK_TABLES",
    "PATHS",
    "Branch",
    "NetfilterEngine",
    "NodeAddresses",
    "PacketState",
    "Step",
    "Translation",
    "Verdict",
    "engine_for",
    "proto_number",
]

#: tables run at each hook, in the kernel's priority order
HOOK_TABLES: Mapping[str, tuple[str, ...]] = {
    "PREROUTING": ("raw", "mangle", "nat"),
    "INPUT": ("mangle", "filter", "security", "nat"),
    "FORWARD": ("mangle", "filter", "security"),
    "OUTPUT": ("raw", "mangle", "nat", "filter", "security"),
    "POSTROUTING": ("mangle", "nat"),
}
#: the hooks a packet meets on each path through a node
PATHS: Mapping[str, tuple[str, ...]] = {
    "routed": ("PREROUTING", "FORWARD", "POSTROUTING"),
    "local": ("PREROUTING", "INPUT"),
    "sent": ("OUTPUT", "POSTROUTING"),
    "bridged": ("PREROUTING", "FORWARD", "POSTROUTING"),
}
ICMP_TYPES: Mapping[str, tuple[int, int | None]] = {
    "any": (-1, None), "echo-reply": (0, None), "pong": (0, None), "destination-unreachable": (3, None),
    "network-unreachable": (3, 0), "host-unreachable": (3, 1), "protocol-unreachable": (3, 2),
    "port-unreachable": (3, 3), "fragmentation-needed": (3, 4), "source-route-failed": (3, 5),
    "network-unknown": (3, 6), "host-unknown": (3, 7), "network-prohibited": (3, 9), "host-prohibited": (3, 10),
    "TOS-network-unreachable": (3, 11), "TOS-host-unreachable": (3, 12), "communication-prohibited": (3, 13),
    "host-precedence-violation": (3, 14), "precedence-cutoff": (3, 15), "source-quench": (4, None),
    "redirect": (5, None), "echo-request": (8, None), "ping": (8, None), "router-advertisement": (9, None),
    "router-solicitation": (10, None), "time-exceeded": (11, None), "ttl-exceeded": (11, None),
    "ttl-zero-during-transit": (11, 0), "ttl-zero-during-reassembly": (11, 1), "parameter-problem": (12, None),
    "timestamp-request": (13, None), "timestamp-reply": (14, None), "address-mask-request": (17, None),
    "address-mask-reply": (18, None),
}
ICMPV6_TYPES: Mapping[str, tuple[int, int | None]] = {
    "destination-unreachable": (1, None), "no-route": (1, 0), "communication-prohibited": (1, 1),
    "beyond-scope": (1, 2), "address-unreachable": (1, 3), "port-unreachable": (1, 4), "failed-policy": (1, 5),
    "reject-route": (1, 6), "packet-too-big": (2, None), "time-exceeded": (3, None), "ttl-exceeded": (3, None),
    "parameter-problem": (4, None), "echo-request": (128, None), "ping": (128, None), "echo-reply": (129, None),
    "pong": (129, None), "router-solicitation": (133, None), "router-advertisement": (134, None),
    "neighbour-solicitation": (135, None), "neighbor-solicitation": (135, None),
    "neighbour-advertisement": (136, None), "neighbor-advertisement": (136, None), "redirect": (137, None),
}
TCP_FLAGS: Mapping[str, int] = {"FIN": 1, "SYN": 2, "RST": 4, "PSH": 8, "ACK": 16, "URG": 32, "ECE": 64, "CWR": 128}
#: targets that only annotate the packet and let the walk go on
CONTINUE_TARGETS = frozenset({"LOG", "NFLOG", "ULOG", "TRACE", "TCPMSS", "CHECKSUM", "AUDIT", "CLASSIFY", "DSCP",
                              "TOS", "TTL", "HL", "IDLETIMER", "LED"})
#: tables in which each NAT target is valid
NAT_TARGETS = frozenset({"DNAT", "SNAT", "MASQUERADE", "REDIRECT", "NETMAP"})
#: the index is built for chains longer than this
INDEX_MIN_RULES = 24
#: the priority of each iptables table at its hooks (nat: -100 at PREROUTING/OUTPUT, 100 at INPUT/POSTROUTING)
TABLE_PRIORITY: Mapping[str, int] = {"raw": -300, "mangle": -150, "filter": 0, "security": 50}
#: conntrack's priority: the original tuple is recorded here
CONNTRACK_PRIORITY = -200


class Verdict(StrEnum):
    ACCEPT = "accept"  # the hook let the packet through
    DROP = "drop"
    REJECT = "reject"
    QUEUE = "queue"  # handed to user space: what happens next is not in the dumps
    UNKNOWN = "unknown"  # a rule this engine does not model decided: insufficient information


@dataclass(frozen=True, slots=True)
class PacketState:
    """The header fields and kernel metadata netfilter matches on, as they are at one point."""

    src: IPAddress
    dst: IPAddress
    proto: int  # IANA number
    sport: int | None = None
    dport: int | None = None
    in_interface: str | None = None  # None: not received (locally sent) or unknown
    out_interface: str | None = None  # None: not yet routed, or unknown
    in_known: bool = True  # False: the caller does not know the input interface
    out_known: bool = True
    mark: int = 0
    ctmark: int = 0
    ctstate: str = "NEW"  # NEW / ESTABLISHED / RELATED / INVALID / UNTRACKED
    ct_dnat: bool = False  # the connection's destination was translated
    ct_snat: bool = False
    ct_orig_src: IPAddress | None = None  # the connection's original tuple (for -m conntrack --ctorig*)
    ct_orig_dst: IPAddress | None = None
    ct_orig_dport: int | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None
    tcp_flags: int | None = None  # None: a first TCP packet is a SYN
    length: int | None = None
    physdev_in: str | None = None
    physdev_out: str | None = None
    bridged: bool = False
    src_mac: str | None = None
    pref_src: IPAddress | None = None  # the route's source address (what MASQUERADE uses), if known

    @property
    def family(self) -> int:
        return self.src.version

    @property
    def proto_name(self) -> str:
        return proto_name(self.proto)

    @property
    def flags(self) -> int:
        if self.tcp_flags is not None:
            return self.tcp_flags
        return 2 if self.ctstate == "NEW" else 16  # SYN for a first packet, ACK afterwards

    def endpoint(self, which: str) -> str:
        ip, port = (self.src, self.sport) if which == "src" else (self.dst, self.dport)
        return endpoint_text(str(ip), port)


@dataclass(frozen=True, slots=True)
class NodeAddresses:
    """What ``-m addrtype``, MASQUERADE and REDIRECT need to know about the node."""

    local: frozenset[IPAddress] = frozenset()
    by_interface: Mapping[str, tuple[ipaddress.IPv4Interface | ipaddress.IPv6Interface, ...]] = field(
        default_factory=dict)

    @classmethod
    def from_ips(cls, ips: Iterable[str | IPAddress]) -> NodeAddresses:
        return cls(frozenset(ipaddress.ip_address(str(i)) for i in ips))

    def is_local(self, ip: IPAddress, iface: str | None = None) -> bool:
        if iface is not None and self.by_interface:
            return any(a.ip == ip for a in self.by_interface.get(iface, ()))
        return ip.is_loopback or ip in self.local

    def is_broadcast(self, ip: IPAddress) -> bool:
        if ip.version == 4 and int(ip) == 0xFFFFFFFF:
            return True
        return any(a.version == 4 and a.network.prefixlen < 31 and a.network.broadcast_address == ip
                   for addrs in self.by_interface.values() for a in addrs)

    def address_of(self, iface: str | None, family: int) -> IPAddress | None:
        if iface is None:
            return None
        return next((a.ip for a in self.by_interface.get(iface, ()) if a.version == family
                     and not (a.version == 6 and a.ip.is_link_local)), None)


@dataclass(frozen=True, slots=True)
class Step:
    """One thing that happened in the walk: a rule that matched, a policy, a fork, a skipped table."""

    hook: str
    table: str
    chain: str
    action: str  # jump goto return accept drop reject dnat snat masquerade redirect mark connmark log
    #              notrack policy branch skip unknown queue
    explanation: str
    rule: Rule | None = None  # None for policies, skipped tables and forks without a rule


@dataclass(frozen=True, slots=True)
class Translation:
    type: str  # dnat / snat / masquerade / redirect
    before: str  # "10.96.0.10:53"
    after: str | None  # None when the address is not in the dumps (MASQUERADE without addresses)
    rule: Rule
    hook: str
    detail: str = ""  # "--random-fully", the full range of a DNAT range


@dataclass(frozen=True, slots=True)
class Branch:
    """One way a packet can leave a hook (or a whole path): its weight, verdict and history."""

    probability: float
    verdict: Verdict
    packet: PacketState
    steps: tuple[Step, ...] = ()
    translations: tuple[Translation, ...] = ()
    labels: tuple[str, ...] = ()  # why this branch and not another ("endpoint 10.244.1.5:80 (p=1/3)")
    assumptions: tuple[str, ...] = ()
    reject_with: str | None = None
    decided_by: Rule | None = None  # the rule (or None: a policy) that gave the final verdict
    reason: str | None = None  # for UNKNOWN: what is not modelled

    @property
    def rules(self) -> tuple[Rule, ...]:
        return tuple(s.rule for s in self.steps if s.rule is not None)


# -- match results -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Fork:
    """A match whose outcome is not determined by the packet: both ways, with weights and labels."""

    p_match: float
    label_match: str
    label_miss: str
    assumption: bool = False  # the weights are an assumption, not a kernel probability


@dataclass(frozen=True, slots=True)
class _Unknown:
    reason: str


@dataclass(frozen=True, slots=True)
class _Assume:
    """The match was decided under an assumption (unknown interface): the result plus the note."""

    result: bool
    note: str


MatchResult = bool | _Fork | _Unknown | _Assume
Predicate = Callable[[PacketState, "NodeAddresses"], MatchResult]


class _Unsupported(Exception):
    pass


# -- compiling rules -------------------------------------------------------------------------------

def _net(text: str) -> IPNetwork:
    if "/" in text:
        addr, _, mask = text.partition("/")
        if "." in mask and ":" not in addr:  # 10.0.0.0/255.255.0.0
            return ipaddress.ip_network(f"{addr}/{mask}", strict=False)
        return ipaddress.ip_network(text, strict=False)
    return ipaddress.ip_network(text, strict=False)


def _nets(text: str) -> tuple[IPNetwork, ...]:
    return tuple(_net(t) for t in text.split(","))


def _iface_matcher(pattern: str) -> Callable[[str], bool]:
    if pattern.endswith("+"):
        prefix = pattern[:-1]
        return lambda name: name.startswith(prefix)
    return lambda name: name == pattern


def _ports(text: str) -> tuple[tuple[int, int], ...]:
    out = []
    for part in text.split(","):
        lo, sep, hi = part.partition(":")
        low = int(lo) if lo else 0
        high = (int(hi) if hi else 65535) if sep else low
        out.append((low, high))
    return tuple(out)


def _in_ports(port: int | None, ranges: tuple[tuple[int, int], ...]) -> bool:
    return port is not None and any(lo <= port <= hi for lo, hi in ranges)


def _value_mask(text: str) -> tuple[int, int]:
    value, _, mask = text.partition("/")
    return int(value, 0), (int(mask, 0) if mask else 0xFFFFFFFF)


def _icmp_spec(text: str, table: Mapping[str, tuple[int, int | None]]) -> tuple[int, int | None]:
    if text in table:
        return table[text]
    typ, _, code = text.partition("/")
    if not typ.isdigit():
        raise _Unsupported(f"unknown ICMP type {text!r}")
    return int(typ), (int(code) if code else None)


def _neg(pred: Predicate, negated: bool) -> Predicate:
    if not negated:
        return pred

    def inverted(p: PacketState, n: NodeAddresses) -> MatchResult:
        r = pred(p, n)
        if r is True or r is False:
            return not r
        if isinstance(r, _Assume):
            return _Assume(not r.result, r.note)
        if isinstance(r, _Fork):
            return _Fork(1.0 - r.p_match, r.label_miss, r.label_match, r.assumption)
        return r
    return inverted


def _selector_preds(rule: Rule) -> list[Predicate]:
    preds: list[Predicate] = []
    for sel, attr in ((rule.src, "src"), (rule.dst, "dst")):
        if sel is None:
            continue
        nets = _nets(sel.value)
        if attr == "src":
            preds.append(_neg(lambda p, n, nets=nets: any(p.src in net for net in nets), sel.negated))
        else:
            preds.append(_neg(lambda p, n, nets=nets: any(p.dst in net for net in nets), sel.negated))
    if rule.protocol is not None and rule.protocol.value not in ("all", "0"):
        num = proto_number(rule.protocol.value)
        if num is None:
            raise _Unsupported(f"unknown protocol {rule.protocol.value!r}")
        preds.append(_neg(lambda p, n, num=num: p.proto == num, rule.protocol.negated))
    for sel, which in ((rule.in_interface, "in"), (rule.out_interface, "out")):
        if sel is not None:
            preds.append(_iface_pred(sel, which))
    if rule.fragment is not None:  # we walk whole (first) packets: never a non-first fragment
        want = rule.fragment
        preds.append(lambda p, n, want=want: not want)
    return preds


def _iface_pred(sel: Selector, which: str) -> Predicate:
    test = _iface_matcher(sel.value)
    flag = "!" if sel.negated else ""

    def pred(p: PacketState, n: NodeAddresses) -> MatchResult:
        name = p.in_interface if which == "in" else p.out_interface
        known = p.in_known if which == "in" else p.out_known
        if name is None and not known:
            opt = "-i" if which == "in" else "-o"
            kind = "input" if which == "in" else "output"
            return _Assume(sel.negated, f"the {kind} interface is unknown: assumed it is not {sel.value} "
                                        f"({flag}{opt} {sel.value})")
        return (name is not None and test(name)) != sel.negated
    return pred


def _compile_match(m: Match, rule: Rule) -> list[Predicate]:
    mod = m.module
    preds: list[Predicate] = []
    if mod == "comment":
        return preds
    if mod in ("tcp", "udp", "sctp", "udplite"):
        for opt in m.options:
            if opt.name in ("dport", "destination-port", "sport", "source-port"):
                ranges = _ports(opt.value)
                if opt.name in ("dport", "destination-port"):
                    preds.append(_neg(lambda p, n, r=ranges: _in_ports(p.dport, r), opt.negated))
                else:
                    preds.append(_neg(lambda p, n, r=ranges: _in_ports(p.sport, r), opt.negated))
            elif opt.name == "syn" and mod == "tcp":
                preds.append(_neg(lambda p, n: p.flags & 0x17 == 0x02, opt.negated))
            elif opt.name == "tcp-flags" and mod == "tcp" and len(opt.values) == 2:
                mask = _flag_bits(opt.values[0])
                comp = _flag_bits(opt.values[1])
                preds.append(_neg(lambda p, n, mask=mask, comp=comp: p.flags & mask == comp, opt.negated))
            else:
                raise _Unsupported(f"-m {mod} --{opt.name}")
        num = proto_number(mod)
        if not m.implicit:  # "-m tcp" without "-p tcp" only matches that protocol anyway
            preds.insert(0, lambda p, n, num=num: p.proto == num)
        return preds
    if mod == "multiport":
        for opt in m.options:
            ranges = _ports(opt.value)
            if opt.name in ("dports", "destination-ports"):
                preds.append(_neg(lambda p, n, r=ranges: _in_ports(p.dport, r), opt.negated))
            elif opt.name in ("sports", "source-ports"):
                preds.append(_neg(lambda p, n, r=ranges: _in_ports(p.sport, r), opt.negated))
            elif opt.name == "ports":
                preds.append(_neg(lambda p, n, r=ranges: _in_ports(p.sport, r) or _in_ports(p.dport, r),
                                  opt.negated))
            else:
                raise _Unsupported(f"-m multiport --{opt.name}")
        return preds
    if mod == "addrtype":
        limit_in = m.option("limit-iface-in") is not None
        limit_out = m.option("limit-iface-out") is not None
        for opt in m.options:
            if opt.name in ("src-type", "dst-type"):
                types = frozenset(opt.value.upper().split(","))
                preds.append(_neg(_addrtype_pred(opt.name == "src-type", types, limit_in, limit_out),
                                  opt.negated))
            elif opt.name not in ("limit-iface-in", "limit-iface-out"):
                raise _Unsupported(f"-m addrtype --{opt.name}")
        return preds
    if mod == "statistic":
        mode = m.option("mode")
        if mode is None:
            raise _Unsupported("-m statistic without --mode")
        if mode.value == "random":
            prob = m.option("probability")
            pv = float(prob.value) if prob else 1.0
            neg = bool(prob and prob.negated)
            p_match = 1.0 - pv if neg else pv
            label = f"random choice, probability {p_match:.4g}"
            preds.append(lambda p, n, f=_Fork(p_match, label, f"random choice, probability {1 - p_match:.4g}"): f)
            return preds
        if mode.value == "nth":
            every = m.option("every")
            packet = m.option("packet")
            if every is None:
                raise _Unsupported("-m statistic --mode nth without --every")
            k = int(every.value)
            which = int(packet.value) if packet else 0
            f = _Fork(1.0 / k, f"packet number {which} of every {k} (1/{k} of packets)",
                      f"the other {k - 1} of every {k} packets")
            preds.append(_neg(lambda p, n, f=f: f, every.negated))
            return preds
        raise _Unsupported(f"-m statistic --mode {mode.value}")
    if mod in ("mark", "connmark"):
        opt = m.option("mark")
        if opt is None:
            raise _Unsupported(f"-m {mod} without --mark")
        value, mask = _value_mask(opt.value)
        if mod == "mark":
            preds.append(_neg(lambda p, n, v=value, k=mask: p.mark & k == v, opt.negated))
        else:
            preds.append(_neg(lambda p, n, v=value, k=mask: p.ctmark & k == v, opt.negated))
        return preds
    if mod in ("conntrack", "state"):
        for opt in m.options:
            if opt.name in ("ctstate", "state"):
                states = frozenset(opt.value.upper().split(","))
                preds.append(_neg(lambda p, n, s=states: _ct_states(p) & s != frozenset(), opt.negated))
            elif opt.name in ("ctorigdst", "ctorigsrc"):
                nets = _nets(opt.value)
                if opt.name == "ctorigdst":
                    preds.append(_neg(lambda p, n, nets=nets: any((p.ct_orig_dst or p.dst) in x for x in nets),
                                      opt.negated))
                else:
                    preds.append(_neg(lambda p, n, nets=nets: any((p.ct_orig_src or p.src) in x for x in nets),
                                      opt.negated))
            elif opt.name == "ctorigdstport":
                ranges = _ports(opt.value)
                preds.append(_neg(lambda p, n, r=ranges: _in_ports(p.ct_orig_dport or p.dport, r), opt.negated))
            elif opt.name == "ctproto":
                num = proto_number(opt.value)
                preds.append(_neg(lambda p, n, num=num: p.proto == num, opt.negated))
            elif opt.name == "ctdir":
                want = opt.value.upper()
                preds.append(_neg(lambda p, n, w=want: (w == "ORIGINAL") == (p.ctstate == "NEW" or
                                                                             p.ct_orig_src in (None, p.src)),
                                  opt.negated))
            else:
                raise _Unsupported(f"-m conntrack --{opt.name}")
        return preds
    if mod in ("icmp", "icmp6", "icmpv6"):
        table = ICMP_TYPES if mod == "icmp" else ICMPV6_TYPES
        num = 1 if mod == "icmp" else 58
        opt = m.option("icmp-type") or m.option("icmpv6-type")
        if opt is None:
            return [lambda p, n, num=num: p.proto == num]
        typ, code = _icmp_spec(opt.value, table)
        preds.append(lambda p, n, num=num: p.proto == num)
        if typ >= 0:
            preds.append(_neg(lambda p, n, t=typ, c=code: p.icmp_type == t and (c is None or p.icmp_code == c),
                              opt.negated))
        return preds
    if mod == "recent":
        name = (m.option("name").value if m.option("name") else "DEFAULT")
        check = m.option("rcheck") or m.option("update")
        if check is not None:
            secs = m.option("seconds")
            within = f" within {secs.value}s" if secs else ""
            f = _Fork(0.0, f"this client already has an entry in recent list {name}{within} "
                           "(session affinity: it keeps its earlier choice)",
                      f"this client has no entry in recent list {name} yet (first connection)", True)
            preds.append(_neg(lambda p, n, f=f: f, check.negated))
        elif m.option("set") is None and m.option("remove") is None:
            raise _Unsupported("-m recent without --set/--rcheck/--update/--remove")
        return preds
    if mod == "set":
        opt = m.option("match-set")
        if opt is None or len(opt.values) < 1:
            raise _Unsupported("-m set without --match-set")
        setname = opt.values[0]
        flags = opt.values[1] if len(opt.values) > 1 else "src"
        f = _Fork(0.5, f"assumed {flags} IS in ipset {setname} (membership is not in the dumps; weight 1/2)",
                  f"assumed {flags} is NOT in ipset {setname} (membership is not in the dumps; weight 1/2)", True)
        preds.append(_neg(lambda p, n, f=f: f, opt.negated))
        return preds
    if mod == "physdev":
        for opt in m.options:
            if opt.name in ("physdev-in", "physdev-out"):
                test = _iface_matcher(opt.value)
                attr = "physdev_in" if opt.name == "physdev-in" else "physdev_out"
                preds.append(_neg(lambda p, n, t=test, a=attr: getattr(p, a) is not None and t(getattr(p, a)),
                                  opt.negated))
            elif opt.name == "physdev-is-bridged":
                preds.append(_neg(lambda p, n: p.bridged, opt.negated))
            elif opt.name == "physdev-is-in":
                preds.append(_neg(lambda p, n: p.physdev_in is not None, opt.negated))
            elif opt.name == "physdev-is-out":
                preds.append(_neg(lambda p, n: p.physdev_out is not None, opt.negated))
            else:
                raise _Unsupported(f"-m physdev --{opt.name}")
        return preds
    if mod in ("limit", "hashlimit"):
        # a rate limit matches while the traffic stays under it: a single packet does
        return preds
    if mod == "length":
        opt = m.option("length")
        if opt is None:
            raise _Unsupported("-m length without --length")
        ranges = _ports(opt.value)

        def length_pred(p: PacketState, n: NodeAddresses, r=ranges, neg=opt.negated) -> MatchResult:
            if p.length is None:
                return _Unknown("the packet length is not known (give --length)")
            return _in_ports(p.length, r) != neg
        preds.append(length_pred)
        return preds
    if mod == "mac":
        opt = m.option("mac-source")
        if opt is None:
            raise _Unsupported("-m mac without --mac-source")
        mac = opt.value.lower()

        def mac_pred(p: PacketState, n: NodeAddresses, mac=mac, neg=opt.negated) -> MatchResult:
            if p.src_mac is None:
                return _Unknown("the source MAC address is not known")
            return (p.src_mac.lower() == mac) != neg
        preds.append(mac_pred)
        return preds
    if mod == "pkttype":
        opt = m.option("pkt-type")
        if opt is None:
            raise _Unsupported("-m pkttype without --pkt-type")
        want = opt.value.lower()
        preds.append(_neg(lambda p, n, w=want: _pkttype(p, n) == w, opt.negated))
        return preds
    if mod == "iprange":
        for opt in m.options:
            lo, _, hi = opt.value.partition("-")
            low, high = ipaddress.ip_address(lo), ipaddress.ip_address(hi or lo)
            if opt.name == "src-range":
                preds.append(_neg(lambda p, n, a=low, b=high: a <= p.src <= b, opt.negated))
            elif opt.name == "dst-range":
                preds.append(_neg(lambda p, n, a=low, b=high: a <= p.dst <= b, opt.negated))
            else:
                raise _Unsupported(f"-m iprange --{opt.name}")
        return preds
    if mod == "nft":
        return [_nft_pred(opt) for opt in m.options]
    if mod == "nft-unknown":
        raise _Unsupported(f"nftables {m.option('what').value if m.option('what') else 'expression'}")
    raise _Unsupported(f"-m {mod}")


_NFT_L4 = {"tcp": 6, "udp": 17, "sctp": 132}


def _nft_pred(opt: Option) -> Predicate:
    """A match of a lowered nftables rule (``engines/nft_lower.py``): address, protocol, interface,
    port, ICMP type and packet type lists (with ranges and prefixes), and set lookups (``lookup`` =
    "keys . keys", elements...). A value it cannot evaluate is unknown only when no other value
    matches: a TCP packet never matches ``icmpv6 type { nd-router-advert }``."""
    name = opt.name
    if name == "dynamic-lookup":
        keys = opt.values[0].split(" . ")
        setname, listed = opt.values[1], opt.values[2:]
        tests = [_element_preds(keys, e.split(" . ")) for e in listed]
        n = len(listed)
        note = (f"set @{setname} is filled by the packets themselves (session affinity): decided by the "
                f"{n if n else 'no'} entr{'y' if n == 1 else 'ies'} the dump lists (entries expire)")

        def dynamic(p: PacketState, nodes: NodeAddresses, tests=tests, note=note) -> MatchResult:
            hit = _any(_all(t(p, nodes) for t in el) for el in tests)
            return _Assume(hit, note) if isinstance(hit, bool) else hit
        return _neg(dynamic, opt.negated)
    if name == "lookup":
        keys = opt.values[0].split(" . ")
        tests = [_element_preds(keys, e.split(" . ")) for e in opt.values[1:]]
        return _neg(lambda p, n, tests=tests: _any(_all(t(p, n) for t in el) for el in tests), opt.negated)
    key = {"src-in": "ip saddr", "dst-in": "ip daddr", "l4proto-in": "meta l4proto", "in_interface-in": "iifname",
           "out_interface-in": "oifname"}.get(name, name.replace("-", " "))
    tests = [_nft_value_pred(key, v) for v in opt.values]
    return _neg(lambda p, n, tests=tests: _any(t(p, n) for t in tests), opt.negated)


def _element_preds(keys: Sequence[str], parts: Sequence[str]) -> list[Predicate]:
    """One test per part of a set element; an element of another shape than the key (a mangled
    dump) is unknown, not a shorter key that ``zip`` would match on fewer parts."""
    if len(parts) != len(keys):
        why = _Unknown(f"nftables set element {' . '.join(parts)!r} has {len(parts)} parts where the key "
                       f"{' . '.join(keys)} has {len(keys)}")
        return [lambda p, n: why]
    return [_nft_value_pred(k, v) for k, v in zip(keys, parts)]


def _any(results: Iterable[MatchResult]) -> MatchResult:
    unknown: MatchResult | None = None
    for r in results:
        if r is True:
            return True
        if r is not False:
            unknown = unknown or r
    return unknown if unknown is not None else False


def _all(results: Iterable[MatchResult]) -> MatchResult:
    unknown: MatchResult | None = None
    for r in results:
        if r is False:
            return False
        if r is not True:
            unknown = unknown or r
    return unknown if unknown is not None else True


#: nft's ICMP type names (``nft describe icmp type``) that iptables spells otherwise
NFT_ICMP_TYPES: Mapping[str, tuple[int, int | None]] = {**ICMP_TYPES, "info-request": (15, None),
                                                        "info-reply": (16, None)}
NFT_ICMPV6_TYPES: Mapping[str, tuple[int, int | None]] = {
    **ICMPV6_TYPES, "mld-listener-query": (130, None), "mld-listener-report": (131, None),
    "mld-listener-done": (132, None), "mld-listener-reduction": (132, None), "nd-router-solicit": (133, None),
    "nd-router-advert": (134, None), "nd-neighbor-solicit": (135, None), "nd-neighbor-advert": (136, None),
    "nd-redirect": (137, None), "router-renumbering": (138, None), "ind-neighbor-solicit": (141, None),
    "ind-neighbor-advert": (142, None), "mld2-listener-report": (143, None),
}


def _nft_value_pred(key: str, value: str) -> Callable[[PacketState, NodeAddresses], MatchResult]:
    """``key == value`` for one nft selector and one value (an address, prefix or range, a protocol,
    a port or port range, an interface name or ``eth*`` pattern, an ICMP type, a packet type)."""
    if key in ("ip saddr", "ip daddr", "ip6 saddr", "ip6 daddr"):
        src = key.endswith("saddr")
        if "-" in value and "/" not in value:
            lo, hi = (ipaddress.ip_address(x.strip()) for x in value.split("-", 1))
            return lambda p, n: lo.version == p.family and lo <= (p.src if src else p.dst) <= hi
        net = _net(value)
        return lambda p, n: (p.src if src else p.dst) in net
    if key in ("meta l4proto", "ip protocol", "ip6 nexthdr"):
        num = proto_number(value)
        if num is None:
            why = _Unknown(f"nftables protocol {value!r}")
            return lambda p, n: why
        return lambda p, n: p.proto == num
    if key in ("iifname", "oifname", "iif", "oif"):
        test = _iface_matcher(value.replace("*", "+"))
        attr = "in_interface" if key.startswith("i") else "out_interface"
        known = "in_known" if key.startswith("i") else "out_known"

        def iface(p: PacketState, n: NodeAddresses) -> MatchResult:
            name = getattr(p, attr)
            if name is None and not getattr(p, known):
                return _Unknown(f"the {'input' if key.startswith('i') else 'output'} interface is unknown ({key} "
                                f"{value})")
            return name is not None and test(name)
        return iface
    if key in ("icmp type", "icmpv6 type"):
        v6 = key == "icmpv6 type"
        spec = (NFT_ICMPV6_TYPES if v6 else NFT_ICMP_TYPES).get(value)
        want = 58 if v6 else 1

        def icmp(p: PacketState, n: NodeAddresses) -> MatchResult:
            if p.proto != want:
                return False  # the selector implies its protocol
            if spec is None:
                return _Unknown(f"nftables {key} {value}")
            return p.icmp_type == spec[0]
        return icmp
    if key == "meta pkttype":
        return lambda p, n: _pkttype(p, n) == value
    words = key.split()
    if len(words) == 2 and words[0] in ("tcp", "udp", "sctp", "th") and words[1] in ("dport", "sport"):
        l4 = _NFT_L4.get(words[0])
        lo, _, hi = value.partition("-")
        if not lo.isdigit() or (hi and not hi.isdigit()):
            why = _Unknown(f"nftables port {value!r}")
            return lambda p, n: why if p.proto in (6, 17, 132, 136) else False
        low, high = int(lo), int(hi or lo)
        dport = words[1] == "dport"

        def port_pred(p: PacketState, n: NodeAddresses) -> bool:
            if (l4 is not None and p.proto != l4) or (l4 is None and p.proto not in (6, 17, 132, 136)):
                return False
            port = p.dport if dport else p.sport
            return port is not None and low <= port <= high
        return port_pred
    raise _Unsupported(f"nftables {key} {value}")


def _flag_bits(text: str) -> int:
    if text.upper() == "ALL":
        return 0xFF
    if text.upper() == "NONE":
        return 0
    bits = 0
    for name in text.upper().split(","):
        if name not in TCP_FLAGS:
            raise _Unsupported(f"unknown TCP flag {name}")
        bits |= TCP_FLAGS[name]
    return bits


def _ct_states(p: PacketState) -> frozenset[str]:
    states = {p.ctstate}
    if p.ct_dnat:
        states.add("DNAT")
    if p.ct_snat:
        states.add("SNAT")
    return frozenset(states)


def _pkttype(p: PacketState, n: NodeAddresses) -> str:
    if p.dst.is_multicast:
        return "multicast"
    if n.is_broadcast(p.dst):
        return "broadcast"
    return "unicast"


def _addr_types(ip: IPAddress, n: NodeAddresses, iface: str | None) -> frozenset[str]:
    if ip.is_multicast:
        return frozenset({"MULTICAST"})
    if n.is_broadcast(ip):
        return frozenset({"BROADCAST"})
    if ip.is_unspecified:
        return frozenset({"UNSPEC"})
    if n.is_local(ip, iface):
        return frozenset({"LOCAL"})
    return frozenset({"UNICAST"})


def _addrtype_pred(src: bool, types: frozenset[str], limit_in: bool, limit_out: bool) -> Predicate:
    def pred(p: PacketState, n: NodeAddresses) -> MatchResult:
        iface = p.in_interface if limit_in else p.out_interface if limit_out else None
        return bool(_addr_types(p.src if src else p.dst, n, iface) & types)
    return pred


# -- the engine ------------------------------------------------------------------------------------

@dataclass(slots=True)
class _CompiledRule:
    rule: Rule
    preds: list[Predicate] | None  # None until the walk first reaches the rule


@dataclass(slots=True)
class _CompiledChain:
    rules: list[_CompiledRule]
    policy: str | None
    by_dst: dict[IPAddress, list[int]] | None = None
    by_port: dict[tuple[int, int], list[int]] | None = None
    rest: list[int] | None = None


def _compile_rule(rule: Rule) -> list[Predicate]:
    """The predicates of one rule; a part that is not modelled (or cannot be parsed) becomes an
    Unknown predicate, so the rule is still decided by its known parts when one of them fails."""
    preds: list[Predicate] = []
    problems: list[str] = []
    if rule.error:
        problems.append(f"an option that cannot be parsed ({rule.error})")
    else:
        if rule.truncated:
            problems.append("a line the dump is cut off in (its end may be missing)")
        try:
            preds.extend(_selector_preds(rule))
        except (_Unsupported, ValueError) as exc:
            problems.append(str(exc))
        for m in rule.matches:
            try:
                preds.extend(_compile_match(m, rule))
            except (_Unsupported, ValueError) as exc:
                problems.append(str(exc))
    if problems:
        reason = "; ".join(problems)
        preds.append(lambda p, n, reason=reason: _Unknown(f"{reason}, which k8s-trace does not model"))
    return preds


_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')
_DST_OPTS = frozenset({"-d", "--destination", "--dst"})
_DPORT_OPTS = frozenset({"--dport", "--destination-port"})


def _index_key_text(text: str) -> tuple[str, object] | None:
    """The index key of a rule, read from its text without parsing it: ("dst", ip) for a rule that
    can only match one destination address, ("port", (proto, port)) for one that can only match one
    destination port, else None. Conservative: any "!" in the rule means no key."""
    if '"' in text:
        text = _QUOTED.sub('""', text)
    tokens = text.split()
    if "!" in tokens:
        return None
    dst = proto = dport = None
    for i, tok in enumerate(tokens[:-1]):
        if tok in _DST_OPTS:
            if dst is not None:
                return None
            dst = tokens[i + 1]
        elif tok in ("-p", "--protocol"):
            proto = tokens[i + 1]
        elif tok in _DPORT_OPTS:
            if dport is not None:
                return None
            dport = tokens[i + 1]
    if dst is not None and "," not in dst:
        try:
            net = _net(dst)
        except ValueError:
            return None
        if net.num_addresses == 1:
            return ("dst", net.network_address)
    if proto is not None and dport is not None and dport.isdigit():
        num = proto_number(proto)
        if num is not None:
            return ("port", (num, int(dport)))
    return None


@dataclass(slots=True)
class _Work:
    prob: float
    packet: PacketState
    steps: list[Step]
    translations: list[Translation]
    labels: list[str]
    assumptions: list[str]
    after_miss: bool = False  # a random branch was just not taken: label the rule that catches it


class NetfilterEngine:
    """A compiled, indexed ``RuleSet`` plus the node's addresses; walks packets through hooks."""

    #: forks (statistic, recent, set) one table walk may make before the rest end as UNKNOWN: a
    #: service with thousands of endpoints fits, a pathological rule set cannot blow up
    max_forks = 4096

    def __init__(self, ruleset: RuleSet, addresses: NodeAddresses | None = None, nft: Lowered | None = None) -> None:
        self.ruleset = ruleset
        self.addresses = addresses or NodeAddresses()
        self.nft = nft
        self._tables: dict[str, Table] = {**ruleset.tables, **(nft.tables if nft else {})}
        self._chains: dict[tuple[str, str], _CompiledChain | None] = {}
        self._names = {t: frozenset(table.chains) for t, table in self._tables.items()}
        self._units: dict[str, list[tuple[int, str, str, bool]]] = {}
        for tname, names in self._names.items():  # index the big chains now: walks stay fast
            if " " in tname:
                continue  # a lowered nftables table: each chain is lowered, compiled and indexed when first reached
            for cname in names:
                if len(self._tables[tname].chains[cname].rules) >= INDEX_MIN_RULES:
                    self._chain(tname, cname)

    def _exists(self, table: str, chain: str) -> bool:
        names = self._names.get(table)
        return names is not None and chain in names

    def _chain(self, table: str, name: str) -> _CompiledChain | None:
        key = (table, name)
        if key in self._chains:
            return self._chains[key]
        t = self._tables.get(table)
        chain = t.chains.get(name) if t is not None else None
        compiled = None if chain is None else self._compile_chain(chain.rules, chain.policy)
        self._chains[key] = compiled
        return compiled

    @staticmethod
    def _compile_chain(rules: Sequence[Rule], policy: str | None) -> _CompiledChain:
        compiled = [_CompiledRule(rule, None) for rule in rules]
        chain = _CompiledChain(compiled, policy)
        if len(compiled) >= INDEX_MIN_RULES:
            by_dst: dict[IPAddress, list[int]] = {}
            by_port: dict[tuple[int, int], list[int]] = {}
            rest: list[int] = []
            for i, c in enumerate(compiled):
                key = _index_key_fields(c.rule) if " " in c.rule.table else _index_key_text(c.rule.source.text)
                if key is None:
                    rest.append(i)
                elif key[0] == "dst":
                    by_dst.setdefault(key[1], []).append(i)  # type: ignore[arg-type]
                else:
                    by_port.setdefault(key[1], []).append(i)  # type: ignore[arg-type]
            chain.by_dst, chain.by_port, chain.rest = by_dst, by_port, rest
        return chain

    # -- public walks ------------------------------------------------------------------------------
    def walk_hook(self, hook: str, packet: PacketState, *, probability: float = 1.0) -> list[Branch]:
        """Run every table registered at ``hook`` over ``packet``; one Branch per way out."""
        start = _Work(probability, packet, [], [], [], [])
        return [self._finish(w, v, extra) for w, v, extra in self._walk_hook(hook, start)]

    def walk_path(self, path: str, packet: PacketState) -> list[Branch]:
        """Run the hooks of ``path`` ("routed", "local", "sent", "bridged") one after the other."""
        work = [(_Work(1.0, packet, [], [], [], []))]
        done: list[Branch] = []
        for hook in PATHS[path]:
            nxt: list[_Work] = []
            for w in work:
                for w2, verdict, extra in self._walk_hook(hook, w):
                    if verdict is Verdict.ACCEPT:
                        nxt.append(w2)
                    else:
                        done.append(self._finish(w2, verdict, extra))
            work = nxt
        done.extend(self._finish(w, Verdict.ACCEPT, {}) for w in work)
        return done

    def continue_branch(self, branch: Branch, hook: str, packet: PacketState | None = None) -> list[Branch]:
        """Walk ``hook`` starting from an earlier Branch (keeps its history, labels and weight)."""
        w = _Work(branch.probability, packet or branch.packet, list(branch.steps), list(branch.translations),
                  list(branch.labels), list(branch.assumptions))
        return [self._finish(w2, v, extra) for w2, v, extra in self._walk_hook(hook, w)]

    # -- internals ---------------------------------------------------------------------------------
    @staticmethod
    def _finish(w: _Work, verdict: Verdict, extra: dict) -> Branch:
        return Branch(w.prob, verdict, w.packet, tuple(w.steps), tuple(w.translations), tuple(w.labels),
                      tuple(dict.fromkeys(w.assumptions)), extra.get("reject_with"), extra.get("rule"),
                      extra.get("reason"))

    def _hook_units(self, hook: str) -> list[tuple[int, str, str, bool]]:
        """(priority, table, base chain, is NAT) of every unit at ``hook``, in the kernel's order (a NAT
        chain's priority is its NAT hook's)."""
        units = self._units.get(hook)
        if units is None:
            # every NAT chain of a hook (iptables' nat table among them) runs inside the kernel's one NAT
            # hook, at -100 (PREROUTING, OUTPUT) or 100 (INPUT, POSTROUTING), by its own priority there
            nat_hook = -100 if hook in ("PREROUTING", "OUTPUT") else 100
            keyed: list[tuple[int, tuple[int, str, str, bool]]] = []  # (priority in the NAT hook, unit)
            for table in HOOK_TABLES[hook]:
                if table == "nat":
                    keyed.append((nat_hook, (nat_hook, table, hook, True)))
                else:
                    keyed.append((0, (TABLE_PRIORITY[table], table, hook, False)))
            for b in self.nft.chains if self.nft else ():
                if b.hook == hook:
                    keyed.append((b.priority, (nat_hook if b.nat else b.priority, b.table, b.chain, b.nat)))
            keyed.sort(key=lambda k: (k[1][0], k[0]))  # stable: iptables' table first at an equal priority
            units = self._units[hook] = [u for _, u in keyed]
        return units

    def _walk_hook(self, hook: str, start: _Work) -> list[tuple[_Work, Verdict, dict]]:
        current = [start]
        out: list[tuple[_Work, Verdict, dict]] = []
        recorded = hook not in ("PREROUTING", "OUTPUT")
        known = len(start.translations)  # translations before this hook are not its NAT binding
        for prio, table, base, nat in self._hook_units(hook):
            if not recorded and prio > CONNTRACK_PRIORITY:
                recorded = True
                for w in current:  # conntrack runs between raw and mangle: it records the original tuple
                    if w.packet.ctstate == "NEW" and w.packet.ct_orig_dst is None:
                        w.packet = replace(w.packet, ct_orig_src=w.packet.src, ct_orig_dst=w.packet.dst,
                                           ct_orig_dport=w.packet.dport)
            if not self._exists(table, base):
                continue
            nft = " " in table
            if nat:
                tracked = [w for w in current if w.packet.ctstate == "NEW"]
                for w in current:
                    if w.packet.ctstate == "NEW":
                        continue
                    why = ("the packet is not tracked (NOTRACK), so no NAT" if w.packet.ctstate == "UNTRACKED"
                           else f"conntrack state {w.packet.ctstate}: nat rules only see a connection's first "
                                "packet; conntrack applies the translation chosen then")
                    w.steps.append(Step(hook, table, base, "skip", why) if nft else Step(hook, "nat", hook, "skip", why))
                untracked = [w for w in current if w.packet.ctstate != "NEW"]
                current = []
                for w in tracked:
                    chosen = _nat_binding(w.translations[known:], hook)
                    if chosen is None:
                        current.append(w)
                        continue
                    where = f"nftables {table} chain {base}" if nft else f"*nat {hook}"
                    w.steps.append(Step(hook, table, base, "skip", f"{where} does not run: {chosen.rule.where()} "
                                                                   f"already chose this connection's {chosen.type} at "
                                                                   f"{hook} (the kernel runs NAT chains only until "
                                                                   "one translates)"))
                    untracked.append(w)
            else:
                untracked = []
            nxt: list[_Work] = []
            for w in current:
                for w2, verdict, extra in self._walk_table(hook, table, w, base):
                    if verdict is Verdict.ACCEPT:
                        nxt.append(w2)
                    else:
                        out.append((w2, verdict, extra))
            current = nxt + untracked
        out.extend((w, Verdict.ACCEPT, {}) for w in current)
        return out

    def _candidates(self, chain: _CompiledChain, p: PacketState) -> Sequence[int]:
        if chain.rest is None:
            return range(len(chain.rules))
        lists = [chain.rest]
        if chain.by_dst:
            d = chain.by_dst.get(p.dst)
            if d:
                lists.append(d)
        if chain.by_port and p.dport is not None:
            d = chain.by_port.get((p.proto, p.dport))
            if d:
                lists.append(d)
        if len(lists) == 1:
            return chain.rest
        return list(heapq.merge(*lists))

    def _walk_table(self, hook: str, table: str, start: _Work, base: str | None = None
                    ) -> list[tuple[_Work, Verdict, dict]]:
        """Depth-first over the chains of one table from its chain ``base`` (the hook's built-in chain
        for iptables, the base chain for an nftables table); forks become separate work items."""
        base = base or hook
        results: list[tuple[_Work, Verdict, dict]] = []
        # a frame: (work, chain name, position in the candidate list, candidates, call stack)
        # a frame: (work, chain, position, candidates, call stack, chains entered on the way here);
        # a call stack entry: (chain, position, candidates, chains entered on the way to it)
        stack: list[tuple] = [(start, base, 0, None, (), frozenset({base}))]
        depth_limit = 64
        fork_budget = self.max_forks
        while stack:
            w, cname, pos, cands, calls, trail = stack.pop()
            chain = self._chain(table, cname)
            if chain is None:
                w.steps.append(Step(hook, table, cname, "unknown", f"chain {cname} does not exist in *{table}"))
                results.append((w, Verdict.UNKNOWN, {"reason": f"jump to missing chain {cname} in *{table}"}))
                continue
            if cands is None:
                cands = self._candidates(chain, w.packet)
            ended = False
            while pos < len(cands):
                cr = chain.rules[cands[pos]]
                pos += 1
                rule = cr.rule
                if cr.preds is None:
                    cr.preds = _compile_rule(rule)
                verdict = True
                forks: list[_Fork] = []
                notes: list[str] = []
                unknown: str | None = None
                for pred in cr.preds:
                    r = pred(w.packet, self.addresses)
                    if r is True:
                        continue
                    if r is False:
                        verdict = False
                        break
                    if isinstance(r, _Assume):
                        notes.append(r.note)
                        if not r.result:
                            verdict = False
                            break
                    elif isinstance(r, _Fork):
                        forks.append(r)
                    else:
                        unknown = r.reason
                if not verdict:
                    if notes:
                        w.assumptions.extend(notes)
                    continue
                if unknown is not None:
                    w.steps.append(Step(hook, table, cname, "unknown",
                                        f"rule {rule.where()} cannot be decided: {unknown}", rule))
                    results.append((w, Verdict.UNKNOWN, {"rule": rule, "reason": f"{unknown} ({rule.where()})"}))
                    ended = True
                    break
                w.assumptions.extend(notes)
                if forks and fork_budget <= 0:
                    why = (f"more than {self.max_forks} random or unknown-membership branches in one table walk "
                           f"(at {rule.where()}): the walk stops following them")
                    w.steps.append(Step(hook, table, cname, "unknown", why, rule))
                    results.append((w, Verdict.UNKNOWN, {"rule": rule, "reason": why}))
                    ended = True
                    break
                if forks:
                    fork_budget -= 1
                    p_match = 1.0
                    label_match = []
                    for f in forks:
                        p_match *= f.p_match
                        label_match.append(f.label_match)
                    # the branch where the rule does NOT match continues after it
                    miss = _Work(w.prob * (1.0 - p_match), w.packet, list(w.steps), list(w.translations),
                                 list(w.labels), list(w.assumptions))
                    miss_label = forks[0].label_miss if len(forks) == 1 else "not (" + " and ".join(label_match) + ")"
                    miss.steps.append(Step(hook, table, cname, "branch", f"rule {rule.where()} not taken: "
                                                                         f"{miss_label}", rule))
                    if any(f.assumption for f in forks):
                        miss.labels.append(miss_label)
                    else:
                        miss.after_miss = True
                    if any(f.assumption for f in forks) or 1.0 - p_match > 0:
                        stack.append((miss, cname, pos, cands, calls, trail))
                    w.prob *= p_match
                    w.after_miss = False  # this rule is the choice: it is labelled here, not the next rule
                    what = rule.comment or f"-j {rule.target}"
                    w.labels.append(f"{what}: {' and '.join(label_match)}")
                    w.steps.append(Step(hook, table, cname, "branch", f"rule {rule.where()} taken: "
                                                                      f"{' and '.join(label_match)}", rule))
                elif w.after_miss and rule.target not in (None, "KUBE-MARK-MASQ", "MARK", "LOG"):
                    w.labels.append(f"{rule.comment or '-j ' + str(rule.target)}: the remaining choice")
                    w.after_miss = False
                # the rule matched: its target
                try:
                    outcome = self._target(hook, table, cname, cr.rule, w)
                except ValueError as exc:  # a value iptables-restore would refuse (--to-destination 10.244)
                    outcome = self._unknown(w, hook, table, cname, rule, f"an unreadable target option ({exc})")
                if outcome is None:  # non-terminating target: go on with the next rule
                    continue
                if outcome == "jump" or outcome == "goto":
                    target = rule.target or ""
                    if target in trail or len(calls) >= depth_limit:
                        why = (f"{rule.where()} jumps back into {target}, which the walk is already in: a loop "
                               "(iptables-restore refuses such a rule set)" if target in trail else
                               f"chain nesting deeper than {depth_limit} at {rule.where()}")
                        w.steps.append(Step(hook, table, cname, "unknown", why, rule))
                        results.append((w, Verdict.UNKNOWN, {"rule": rule, "reason": why}))
                        ended = True
                        break
                    new_calls = calls if outcome == "goto" else (*calls, (cname, pos, cands, trail))
                    stack.append((w, target, 0, None, new_calls, trail | {target}))
                    ended = True
                    break
                if outcome == "return":
                    ended = True
                    self._return(stack, results, w, hook, table, cname, calls, base=base)
                    break
                results.append(outcome(w))
                ended = True
                break
            if not ended:  # fell off the end of the chain
                self._return(stack, results, w, hook, table, cname, calls, fell_off=True, base=base)
        return results

    def _return(self, stack: list, results: list, w: _Work, hook: str, table: str, cname: str,
                calls: tuple, fell_off: bool = False, base: str | None = None) -> None:
        if fell_off and not self.ruleset.is_complete(table, cname):
            why = (f"the dump is cut off (line {self.ruleset.cut_at}) before the end of chain {cname} in *{table}: "
                   "the rules that decide this packet are missing")
            w.steps.append(Step(hook, table, cname, "unknown", why))
            results.append((w, Verdict.UNKNOWN, {"reason": why}))
            return
        if calls:
            parent, ppos, pcands, ptrail = calls[-1]
            if fell_off:
                w.steps.append(Step(hook, table, cname, "return", f"end of chain {cname}: back to {parent}"))
            stack.append((w, parent, ppos, pcands, calls[:-1], ptrail))
            return
        base = base or hook
        chain = self._chain(table, base)
        policy = (chain.policy if chain else None) or "ACCEPT"
        if policy == "ACCEPT" and chain is not None and (not chain.rules or " " in table):
            # an empty chain with policy ACCEPT, or an nftables base chain that lets the packet go on
            # to the next one: nothing to tell
            results.append((w, Verdict.ACCEPT, {}))
            return
        if " " in table:
            w.steps.append(Step(hook, table, base, "policy", f"end of base chain {base} in nftables {table}: its "
                                                             f"policy {policy.lower()} applies"))
        else:
            w.steps.append(Step(hook, table, hook, "policy",
                                f"end of built-in chain {hook} in *{table}: its policy {policy} applies"))
        if policy == "DROP":
            results.append((w, Verdict.DROP, {"rule": None}))
        else:
            results.append((w, Verdict.ACCEPT, {}))

    def _target(self, hook: str, table: str, cname: str, rule: Rule, w: _Work):  # noqa: C901, PLR0911, PLR0912
        """Apply a matched rule's target. Returns None (continue), "jump"/"goto"/"return", or a
        callable producing the terminal (work, verdict, extra)."""
        target = rule.target
        p = w.packet
        why = _why(rule)
        if target is None:
            w.steps.append(Step(hook, table, cname, "count", f"rule {rule.where()} matched{why} (no target: it "
                                                             "only counts packets)", rule))
            return None
        if self._exists(table, target):
            verb = "goto" if rule.goto else "jump"
            meaning = _chain_meaning(target, nft=" " in table)
            w.steps.append(Step(hook, table, cname, verb, f"{_rule_label(rule)} matched{why}: "
                                                          f"{'go to' if rule.goto else 'jump to'} {target}"
                                                          f"{' (' + meaning + ')' if meaning else ''}", rule))
            return verb
        if target == "ACCEPT":
            lets = (f"nftables {table} chain {cname}: the base chain accepts, the later ones still run" if " " in table
                    else f"*{table} lets it through")
            w.steps.append(Step(hook, table, cname, "accept", f"{_rule_label(rule)} matched{why}: ACCEPT "
                                                              f"({lets}){_hits(rule)}", rule))
            return lambda w: (w, Verdict.ACCEPT, {})
        if target == "DROP":
            w.steps.append(Step(hook, table, cname, "drop", f"{_rule_label(rule)} matched{why}: DROP (the packet is "
                                                            f"silently discarded){_hits(rule)}", rule))
            return lambda w: (w, Verdict.DROP, {"rule": rule})
        if target == "REJECT":
            opt = rule.target_option("reject-with")
            default = "icmp-port-unreachable" if p.family == 4 else "icmp6-port-unreachable"
            kind = opt.value if opt else default
            w.steps.append(Step(hook, table, cname, "reject", f"{_rule_label(rule)} matched{why}: REJECT, the sender "
                                                              f"gets {_reject_text(kind)}{_hits(rule)}", rule))
            return lambda w: (w, Verdict.REJECT, {"rule": rule, "reject_with": kind})
        if target == "RETURN":
            w.steps.append(Step(hook, table, cname, "return", f"{_rule_label(rule)} matched{why}: RETURN "
                                                              f"(leave {cname})", rule))
            return "return"
        if target in ("QUEUE", "NFQUEUE"):
            w.steps.append(Step(hook, table, cname, "queue", f"{_rule_label(rule)}: {target} hands the packet to a "
                                                             "user-space program; its verdict is not in the dumps",
                                rule))
            return lambda w: (w, Verdict.QUEUE, {"rule": rule, "reason": f"{target} ({rule.where()})"})
        if target in ("MARK", "CONNMARK"):
            return self._mark(hook, table, cname, rule, w)
        if target in CONTINUE_TARGETS:
            w.steps.append(Step(hook, table, cname, "log", f"{_rule_label(rule)} matched{why}: {target} "
                                                           "(does not stop the packet)", rule))
            return None
        if target == "NOTRACK" or (target == "CT" and rule.target_option("notrack") is not None):
            w.packet = replace(p, ctstate="UNTRACKED")
            w.steps.append(Step(hook, table, cname, "notrack", f"{_rule_label(rule)}: conntrack skips this packet "
                                                               "(no NAT, state UNTRACKED)", rule))
            return None
        if target == "CT":
            w.steps.append(Step(hook, table, cname, "log", f"{_rule_label(rule)}: CT sets conntrack options "
                                                           f"({' '.join(str(o) for o in rule.target_options)})", rule))
            return None
        if target in NAT_TARGETS:
            if table != "nat" and " " not in table:  # (nft itself refuses NAT outside a nat-type chain)
                return self._unknown(w, hook, table, cname, rule, f"{target} outside the nat table")
            return self._nat(hook, cname, rule, w, table)
        return self._unknown(w, hook, table, cname, rule, f"target {target}")

    def _unknown(self, w: _Work, hook: str, table: str, cname: str, rule: Rule, what: str):
        w.steps.append(Step(hook, table, cname, "unknown", f"rule {rule.where()} uses {what}, which k8s-trace "
                                                           "does not model: what happens next is unknown", rule))
        return lambda w: (w, Verdict.UNKNOWN, {"rule": rule, "reason": f"{what} not modelled ({rule.where()})"})

    def _mark(self, hook: str, table: str, cname: str, rule: Rule, w: _Work):
        p = w.packet
        opts = {o.name: o for o in rule.target_options}
        if rule.target == "MARK":
            new = _apply_mark(p.mark, opts)
            if new is None:
                return self._unknown(w, hook, table, cname, rule, "MARK " + " ".join(map(str, rule.target_options)))
            w.packet = replace(p, mark=new)
            extra = " (kube-proxy: masquerade this packet when it leaves)" if new & 0x4000 and not p.mark & 0x4000 \
                else " (kube-proxy: mark cleared, masquerade now)" if p.mark & 0x4000 and not new & 0x4000 else ""
            w.steps.append(Step(hook, table, cname, "mark", f"{_rule_label(rule)}: packet mark {p.mark:#x} -> "
                                                            f"{new:#x}{extra}", rule))
            return None
        # CONNMARK
        if "save-mark" in opts or "restore-mark" in opts:
            nfmask, ctmask = _mask_opt(opts, "nfmask"), _mask_opt(opts, "ctmask")
            if "save-mark" in opts:
                new = (p.ctmark & ~ctmask) ^ (p.mark & nfmask)
                w.packet = replace(p, ctmark=new & 0xFFFFFFFF)
                what = f"connection mark {p.ctmark:#x} -> {new:#x} (saved packet mark)"
            else:
                new = (p.mark & ~nfmask) ^ (p.ctmark & ctmask)
                w.packet = replace(p, mark=new & 0xFFFFFFFF)
                what = f"packet mark {p.mark:#x} -> {new:#x} (restored from the connection)"
            w.steps.append(Step(hook, table, cname, "connmark", f"{_rule_label(rule)}: {what}", rule))
            return None
        new_ct = _apply_mark(p.ctmark, opts)
        if new_ct is None:
            return self._unknown(w, hook, table, cname, rule, "CONNMARK " + " ".join(map(str, rule.target_options)))
        w.packet = replace(p, ctmark=new_ct)
        w.steps.append(Step(hook, table, cname, "connmark", f"{_rule_label(rule)}: connection mark {p.ctmark:#x} -> "
                                                            f"{new_ct:#x}", rule))
        return None

    def _nat(self, hook: str, cname: str, rule: Rule, w: _Work, table: str = "nat"):
        p = w.packet
        target = rule.target
        label = _rule_label(rule)
        if target == "DNAT" or target == "REDIRECT":
            if hook not in ("PREROUTING", "OUTPUT"):
                return self._unknown(w, hook, table, cname, rule, f"{target} in {hook}")
            if target == "DNAT":
                opt = rule.target_option("to-destination")
                if opt is None:
                    return self._unknown(w, hook, table, cname, rule, "DNAT without --to-destination")
                addr, port, detail = _parse_nat_to(opt.value, p.dst, p.dport)
            else:
                if hook == "OUTPUT":
                    addr = ipaddress.ip_address("127.0.0.1" if p.family == 4 else "::1")
                else:
                    addr = self.addresses.address_of(p.in_interface, p.family)
                ports = rule.target_option("to-ports")
                port, detail = p.dport, ""
                if ports:
                    port = int(ports.value.split("-")[0])
                    detail = f"--to-ports {ports.value}" if "-" in ports.value else ""
            before = p.endpoint("dst")
            if addr is None:
                w.packet = replace(p, dport=port, ct_dnat=True)
                w.translations.append(Translation("redirect", before, None, rule, hook, detail))
                w.steps.append(Step(hook, table, cname, "redirect", f"{label}: REDIRECT to this node (the address of "
                                                                    f"{p.in_interface or 'the input interface'} is not "
                                                                    "in the dumps)", rule))
            else:
                w.packet = replace(p, dst=addr, dport=port, ct_dnat=True)
                after = w.packet.endpoint("dst")
                kind = "dnat" if target == "DNAT" else "redirect"
                w.translations.append(Translation(kind, before, after, rule, hook, detail))
                svc = _service_of(rule)
                what = f" ({svc} endpoint)" if svc else ""
                w.steps.append(Step(hook, table, cname, kind, f"{label}: {target} destination {before} -> "
                                                              f"{after}{what}", rule))
            return lambda w: (w, Verdict.ACCEPT, {})
        # source NAT
        if hook not in ("POSTROUTING", "INPUT"):
            return self._unknown(w, hook, table, cname, rule, f"{target} in {hook}")
        before = p.endpoint("src")
        detail = " ".join(str(o) for o in rule.target_options)
        if target == "SNAT":
            opt = rule.target_option("to-source")
            if opt is None:
                return self._unknown(w, hook, table, cname, rule, "SNAT without --to-source")
            addr, port, _ = _parse_nat_to(opt.value, p.src, p.sport)
            w.packet = replace(p, src=addr, sport=port, ct_snat=True)
            w.translations.append(Translation("snat", before, w.packet.endpoint("src"), rule, hook, detail))
            w.steps.append(Step(hook, table, cname, "snat", f"{label}: SNAT source {before} -> "
                                                            f"{w.packet.endpoint('src')}", rule))
            return lambda w: (w, Verdict.ACCEPT, {})
        if target == "MASQUERADE":
            addr = p.pref_src or self.addresses.address_of(p.out_interface, p.family)
            ports = rule.target_option("to-ports")
            sport = p.sport
            if ports:
                sport = int(ports.value.split("-")[0])
            iface = p.out_interface or "the output interface"
            if addr is None:
                w.packet = replace(p, ct_snat=True)
                w.translations.append(Translation("masquerade", before, None, rule, hook, detail))
                w.steps.append(Step(hook, table, cname, "masquerade",
                                    f"{label}: MASQUERADE: source {before} -> the address of {iface} (not in the "
                                    "dumps)", rule))
            else:
                w.packet = replace(p, src=addr, sport=sport, ct_snat=True)
                after = str(addr) if p.sport is None or "random" in detail or not ports else w.packet.endpoint("src")
                w.translations.append(Translation("masquerade", before, after, rule, hook, detail))
                w.steps.append(Step(hook, table, cname, "masquerade",
                                    f"{label}: MASQUERADE: source {before} -> {addr}, the address of {iface}"
                                    f"{' (' + detail + ')' if detail else ''}", rule))
            return lambda w: (w, Verdict.ACCEPT, {})
        return self._unknown(w, hook, table, cname, rule, f"target {target}")


def _mask_opt(opts: Mapping[str, Option], name: str) -> int:
    o = opts.get(name) or opts.get("mask")
    return int(o.value, 0) if o else 0xFFFFFFFF


def _apply_mark(mark: int, opts: Mapping[str, Option]) -> int | None:
    if "set-xmark" in opts:
        value, mask = _value_mask(opts["set-xmark"].value)
        return ((mark & ~mask) ^ value) & 0xFFFFFFFF
    if "set-mark" in opts:
        value, mask = _value_mask(opts["set-mark"].value)
        return ((mark & ~mask) | value) & 0xFFFFFFFF
    if "or-mark" in opts:
        return mark | int(opts["or-mark"].value, 0)
    if "and-mark" in opts:
        return mark & int(opts["and-mark"].value, 0)
    if "xor-mark" in opts:
        return mark ^ int(opts["xor-mark"].value, 0)
    return None


def _parse_nat_to(text: str, addr: IPAddress, port: int | None) -> tuple[IPAddress, int | None, str]:
    """``1.2.3.4``, ``1.2.3.4:80``, ``1.2.3.4-1.2.3.9:80-90``, ``[fd00::1]:80``, ``:8080``."""
    detail = ""
    host, ports = text, ""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        ports = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, _, ports = text.partition(":")
    if "-" in host:
        detail = f"range {host}: the kernel picks one per connection (shown: the first)"
        host = host.split("-")[0]
    new_addr = ipaddress.ip_address(host) if host else addr
    new_port = port
    if ports:
        lo = ports.split("-")[0]
        new_port = int(lo)
        if "-" in ports:
            detail = (detail + "; " if detail else "") + f"ports {ports}: one is picked per connection"
    return new_addr, new_port, detail


def _service_of(rule: Rule) -> str | None:
    c = rule.comment
    if not c and " " in rule.table:  # kube-proxy's nftables chains carry the service in their names
        names = kube_proxy_names(rule.chain)
        return names[0] if names else None
    if not c:
        return None
    return c.split(" ")[0] if "/" in c.split(" ")[0] else None


def _why(rule: Rule) -> str:
    c = rule.comment
    return f' ("{c}")' if c else ""


#: what the chains kube-proxy, flannel and docker create are for, in a learner's words
CHAIN_MEANINGS: tuple[tuple[str, str], ...] = (
    ("KUBE-SERVICES", "kube-proxy's table of service addresses"),
    ("KUBE-SVC-", "the service's load balancing: pick one endpoint"),
    ("KUBE-SVL-", "the service's endpoints on this node only (traffic policy Local)"),
    ("KUBE-SEP-", "one endpoint of the service: rewrite the destination to it"),
    ("KUBE-EXT-", "traffic to the service from outside (NodePort, external or load-balancer IP)"),
    ("KUBE-FW-", "the load balancer's loadBalancerSourceRanges check"),
    ("KUBE-NODEPORTS", "NodePort dispatch: the destination is one of this node's addresses"),
    ("KUBE-MARK-MASQ", "mark the packet 0x4000 so it is masqueraded when it leaves the node"),
    ("KUBE-MARK-DROP", "mark the packet 0x8000 so KUBE-FIREWALL drops it"),
    ("KUBE-POSTROUTING", "kube-proxy masquerades the packets it marked"),
    ("KUBE-FORWARD", "kube-proxy's forwarding rules: accept marked and established traffic"),
    ("KUBE-PROXY-FIREWALL", "kube-proxy's load-balancer source-range firewall"),
    ("KUBE-EXTERNAL-SERVICES", "kube-proxy rejects external traffic to services without endpoints"),
    ("KUBE-FIREWALL", "drops marked packets and martian localhost traffic"),
    ("FLANNEL-POSTRTG", "flannel's masquerade rules: pod traffic leaving the pod network is masqueraded"),
    ("FLANNEL-FWD", "flannel accepts forwarded pod traffic"),
    ("DOCKER", "docker's port mappings"),
    ("KUBE-ROUTER-", "kube-router network policy"),
    ("KUBE-POD-FW-", "kube-router network policy of one pod"),
    ("KUBE-NWPLCY-", "kube-router network policy rules"),
)


#: the same for kube-proxy's nftables mode (``table ip kube-proxy``; pkg/proxy/nftables/proxier.go)
NFT_CHAIN_MEANINGS: tuple[tuple[str, str], ...] = (
    ("services", "kube-proxy's service dispatch: vmap @service-ips (ClusterIP, external and load-balancer IPs) and "
                 "@service-nodeports"),
    ("service-", "the service's load balancing: numgen random picks one endpoint"),
    ("endpoint-", "one endpoint of the service: rewrite the destination to it"),
    ("external-", "traffic to the service from outside (NodePort, external or load-balancer IP)"),
    ("firewall-check", "kube-proxy's loadBalancerSourceRanges check (vmap @firewall-ips)"),
    ("firewall-", "the load balancer's loadBalancerSourceRanges check"),
    ("mark-for-masquerade", "mark the packet 0x4000 so it is masqueraded when it leaves the node"),
    ("masquerading", "kube-proxy masquerades the packets it marked"),
    ("service-endpoints-check", "reject or drop connections to services without endpoints (vmap "
                                "@no-endpoint-services)"),
    ("nodeport-endpoints-check", "reject or drop connections to NodePorts without endpoints (vmap "
                                 "@no-endpoint-nodeports)"),
    ("cluster-ips-check", "reject traffic to unused ports of ClusterIPs, drop traffic to unallocated ClusterIPs"),
    ("reject-chain", "kube-proxy's reject helper"),
)


def _chain_meaning(chain: str, nft: bool = False) -> str | None:
    if nft:
        exact = next((m for prefix, m in NFT_CHAIN_MEANINGS if chain == prefix), None)
        if exact is not None:
            return exact
        return next((m for prefix, m in NFT_CHAIN_MEANINGS if prefix.endswith("-") and chain.startswith(prefix)),
                    None)
    for prefix, meaning in CHAIN_MEANINGS:
        if chain == prefix or (prefix.endswith("-") and chain.startswith(prefix)):
            return meaning
    return None


def _nat_binding(translations: Sequence[Translation], hook: str) -> Translation | None:
    """The translation of this hook's NAT manipulation (destination at PREROUTING/OUTPUT, source at
    POSTROUTING/INPUT) already chosen, if any."""
    kinds = ("dnat", "redirect") if hook in ("PREROUTING", "OUTPUT") else ("snat", "masquerade")
    return next((t for t in translations if t.hook == hook and t.type in kinds), None)


def _index_key_fields(rule: Rule) -> tuple[str, object] | None:
    """``_index_key_text`` for a rule built from its fields (a lowered nftables rule): a rule whose
    ``-d`` is one address cannot match another destination, whatever else it tests."""
    dst = rule.dst
    if dst is not None and not dst.negated and "," not in dst.value:
        try:
            net = _net(dst.value)
        except ValueError:
            return None
        if net.num_addresses == 1:
            return ("dst", net.network_address)
    return None


def _hits(rule: Rule) -> str:
    """What the dump's counters (``iptables-save -c``) say about a deciding rule."""
    c = rule.counters
    if c is None:
        return ""
    if c[0] == 0:
        return "; its counters are 0: no packet has matched it since they were reset"
    return f"; its counters show {c[0]} packet{'s' if c[0] != 1 else ''} ({c[1]} bytes) matched so far"


def _rule_label(rule: Rule) -> str:
    return f"rule {rule.where()}"


def _reject_text(kind: str) -> str:
    return {
        "icmp-port-unreachable": "ICMP port unreachable",
        "icmp-host-prohibited": "ICMP host prohibited (administratively)",
        "icmp-net-prohibited": "ICMP network prohibited",
        "icmp-admin-prohibited": "ICMP communication administratively prohibited",
        "icmp-host-unreachable": "ICMP host unreachable",
        "icmp-net-unreachable": "ICMP network unreachable",
        "icmp-proto-unreachable": "ICMP protocol unreachable",
        "tcp-reset": "a TCP reset",
        "icmp6-port-unreachable": "ICMPv6 port unreachable",
        "icmp6-adm-prohibited": "ICMPv6 administratively prohibited",
    }.get(kind, kind)


_CACHE: dict[tuple[int, frozenset, tuple, int], tuple[RuleSet, Lowered | None, NetfilterEngine]] = {}


def engine_for(ruleset: RuleSet, addresses: NodeAddresses, nft: Lowered | None = None) -> NetfilterEngine:
    """A compiled engine for ``ruleset`` (plus the lowered nftables tables ``nft``), reused while the
    same objects are alive in the cache."""
    key = (id(ruleset), addresses.local, tuple(sorted((k, tuple(v)) for k, v in addresses.by_interface.items())),
           id(nft))
    hit = _CACHE.get(key)
    if hit is not None and hit[0] is ruleset and hit[1] is nft:
        return hit[2]
    if len(_CACHE) > 16:
        _CACHE.clear()
    engine = NetfilterEngine(ruleset, addresses, nft)
    _CACHE[key] = (ruleset, nft, engine)
    return engine
