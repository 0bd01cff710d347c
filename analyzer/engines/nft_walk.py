"""Walk a packet through the nftables base chains iptables-save does not show (``nft list ruleset``).

Used where the iptables walk lets a packet through yet the captures show it vanish: firewalld on
an nftables backend (RHEL 8+, Fedora, CentOS Stream) keeps its zones in ``table inet firewalld``,
whose input chain rejects what no zone allows, UDP 8472 among it.

Every base chain of the hook, in every table the family reaches (``inet`` both, ``ip`` IPv4, ``ip6``
IPv6), is walked in priority order, as the kernel does: an ``accept`` ends only that chain, a
``drop``/``reject`` ends the packet. Named sets and verdict maps are looked up in the elements the
dump lists (kube-proxy's ``@nodeport-ips``, ``vmap @no-endpoint-services``). Matches this walk
cannot evaluate (``fib``, marks, sets filled at run time, NAT and mark statements, an unknown
interface) make the result ``unknown`` at that rule, never a guess.

Tables with NAT base chains (kube-proxy's nftables mode) are what the netfilter simulator runs
itself next to iptables (``engines/nft_lower.py``); ``hook_verdict(..., skip_nat_tables=True)``
leaves them to it.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import socket
from dataclasses import dataclass

from analyzer.model.nft import NftChain, NftElement, NftMatch, NftRule, NftRuleset, NftTable
from analyzer.model.refs import SourceRef

_PROTO_NUMBERS = {"tcp": 6, "udp": 17, "icmp": 1, "ipv6-icmp": 58, "icmpv6": 58, "sctp": 132, "gre": 47,
                  "ipencap": 4, "esp": 50, "ah": 51}
_MAX_DEPTH = 64


@dataclass(frozen=True, slots=True)
class NftPacket:
    src: str
    dst: str
    proto: str  # tcp udp icmp...
    sport: int | None = None
    dport: int | None = None
    iif: str | None = None  # input interface name (None: unknown)
    oif: str | None = None
    ct_state: str = "new"
    ct_dnat: bool = False

    @property
    def family(self) -> int:
        return 6 if ":" in self.src else 4


@dataclass(frozen=True, slots=True)
class NftVerdict:
    verdict: str  # accept drop reject unknown
    table: str  # "inet firewalld"
    chain: str  # the chain of the deciding rule (the base chain for a policy)
    rule: SourceRef | None  # the deciding rule, or the base chain's line for its policy
    reject_with: str | None = None
    why: str = ""  # for unknown: what could not be evaluated
    policy: bool = False


def hook_verdict(ruleset: NftRuleset | None, hook: str, packet: NftPacket, *,
                 skip_nat_tables: bool = False) -> NftVerdict | None:
    """The first table outside iptables whose ``hook`` chains drop, reject or cannot be decided
    for ``packet``; None when every such chain accepts it (or there is none). ``skip_nat_tables``:
    leave out the tables with NAT chains (the netfilter simulator walks those itself)."""
    if ruleset is None:
        return None
    chains: list[tuple[int, NftTable, NftChain]] = []
    for table in ruleset.own_tables():
        if skip_nat_tables and table.has_nat:
            continue
        if table.family not in ("inet", "ip" if packet.family == 4 else "ip6"):
            continue
        for chain in table.chains:
            if chain.hook == hook and chain.type in (None, "filter"):
                chains.append((chain.priority, table, chain))
    chains.sort(key=lambda x: x[0])
    for _prio, table, chain in chains:
        v = _walk_base(table, chain, packet)
        if v.verdict != "accept":
            return v
    return None


def _walk_base(table: NftTable, base: NftChain, packet: NftPacket) -> NftVerdict:
    name = f"{table.family} {table.name}"
    out = _walk(table, base, packet, 0)
    if out is not None:
        return out
    return NftVerdict(base.policy, name, base.name, base.source, policy=True)


def _walk(table: NftTable, chain: NftChain, packet: NftPacket, depth: int) -> NftVerdict | None:
    """A verdict, or None when the chain returns (falls off its end or hits ``return``)."""
    name = f"{table.family} {table.name}"
    if depth > _MAX_DEPTH:
        return NftVerdict("unknown", name, chain.name, None, why="chains jump deeper than 64 levels")
    for rule in chain.rules:
        hit = _matches(rule, packet, table)
        if hit is False:
            continue
        if hit is None:
            return NftVerdict("unknown", name, chain.name, rule.source,
                              why=f"cannot evaluate: {', '.join(_unknowns(rule, table)) or 'a match'}")
        todo = [s for s in rule.statements if s.kind != "update"]
        if todo:
            return NftVerdict("unknown", name, chain.name, rule.source,
                              why=f"cannot evaluate: the {todo[0].kind} statement (this walk decides filter "
                                  "verdicts only)")
        verdict, target_name, where = rule.verdict, rule.target, rule.source
        if rule.vmap is not None:
            found = _vmap(rule, packet, table)
            if isinstance(found, str):
                return NftVerdict("unknown", name, chain.name, rule.source, why=f"cannot evaluate: {found}")
            if found is None:
                continue  # no element for this packet: the rule does not decide, the next one does
            words = (found.value or "").split()
            verdict, target_name = (words[0] if words else None), (words[1] if len(words) > 1 else None)
            where = found.source
        if verdict in ("accept", "drop", "reject"):
            return NftVerdict(verdict, name, chain.name, where,
                              reject_with=rule.reject_with if rule.vmap is None else None)
        if verdict == "return":
            return None
        if verdict in ("jump", "goto"):
            target = table.chain(target_name or "")
            if target is None:
                return NftVerdict("unknown", name, chain.name, where, why=f"no chain {target_name} in the dump")
            v = _walk(table, target, packet, depth + 1)
            if v is not None:
                return v
            if verdict == "goto":
                return None  # a goto does not come back here
        if verdict == "queue":
            return NftVerdict("unknown", name, chain.name, rule.source, why="queued to user space")
    return None


def _matches(rule: NftRule, packet: NftPacket, table: NftTable | None = None) -> bool | None:
    """True, False, or None (cannot tell). A known mismatch wins over anything unknown."""
    unknown = bool(rule.unknown)
    for m in rule.matches:
        r = _match(m, packet)
        if r is False:
            return False
        if r is None:
            unknown = True
    for lk in rule.lookups:
        elements = _elements(table, lk.set_name, lk.elements)
        if isinstance(elements, str):
            unknown = True
            continue
        r = _member(lk.keys, elements, packet)
        if r is not None and lk.op == "!=":
            r = not r
        if r is False:
            return False
        if r is None:
            unknown = True
    return None if unknown else True


def _unknowns(rule: NftRule, table: NftTable) -> list[str]:
    out = list(rule.unknown)
    for lk in rule.lookups:
        elements = _elements(table, lk.set_name, lk.elements)
        if isinstance(elements, str):
            out.append(f"{' . '.join(lk.keys)} {lk.op} @{lk.set_name}: {elements}")
    return out or ["a match"]


def _elements(table: NftTable | None, set_name: str | None, inline: tuple[NftElement, ...]
              ) -> tuple[NftElement, ...] | str:
    """The elements to look up, or why they are not known."""
    if set_name is None:
        return inline
    found = table.set(set_name) if table is not None else None
    if found is None:
        return f"no set {set_name} in the dump"
    if found.dynamic:
        return f"set {set_name} is filled by the packets themselves (its listing is one moment)"
    return found.elements


def _member(keys: tuple[str, ...], elements: tuple[NftElement, ...], p: NftPacket) -> bool | None:
    """Is the packet's concatenated key in ``elements``? None when a part cannot be evaluated."""
    unknown = False
    for el in elements:
        if len(el.key) != len(keys):
            unknown = True
            continue
        hit: bool | None = True
        for k, v in zip(keys, el.key):
            r = _hit(NftMatch(k, "==", (v,)), p)
            if r is False:
                hit = False
                break
            if r is None:
                hit = None
        if hit is True:
            return True
        if hit is None:
            unknown = True
    return None if unknown else False


def _vmap(rule: NftRule, p: NftPacket, table: NftTable) -> NftElement | None | str:
    """The verdict map element for ``p`` (None: no element matches), or why it cannot be told."""
    vm = rule.vmap
    assert vm is not None
    if vm.numgen is not None:
        return f"numgen {vm.numgen[0]} (a choice per connection)"
    elements = _elements(table, vm.set_name, vm.elements)
    if isinstance(elements, str):
        return elements
    unknown = False
    for el in elements:
        r = _member(vm.keys, (el,), p)
        if r is True:
            return el
        if r is None:
            unknown = True
    return f"a key of vmap {'@' + vm.set_name if vm.set_name else '{...}'}" if unknown else None


def _match(m: NftMatch, p: NftPacket) -> bool | None:
    hit = _hit(m, p)
    if hit is None or m.op == "==":
        return hit
    return not hit


def _hit(m: NftMatch, p: NftPacket) -> bool | None:
    key, values = m.key, m.values
    if key in ("ip saddr", "ip daddr", "ip6 saddr", "ip6 daddr"):
        if (key.startswith("ip6") and p.family != 6) or (key.startswith("ip ") and p.family != 4):
            return False  # the selector also requires the family (an inet table)
        addr = p.src if key.endswith("saddr") else p.dst
        return any(_in(addr, v) for v in values)
    if key in ("meta l4proto", "ip protocol", "ip6 nexthdr"):
        if (key == "ip protocol" and p.family != 4) or (key == "ip6 nexthdr" and p.family != 6):
            return False
        want = _PROTO_NUMBERS.get(p.proto)
        numbers = [_PROTO_NUMBERS.get(v, int(v) if v.isdigit() else None) for v in values]
        if want in numbers:
            return True
        return None if None in numbers else False  # a protocol name this walk does not know: cannot tell
    if key in ("icmp type", "icmp code", "icmpv6 type"):
        # the selector implies its protocol (nft adds the l4proto dependency): another protocol never
        # matches; for ICMP itself the packet's type is not known here
        return None if p.proto in (("icmpv6", "ipv6-icmp") if key == "icmpv6 type" else ("icmp",)) else False
    if key.split()[0] in ("tcp", "udp", "sctp", "th"):
        l4, which = key.split()
        if l4 != "th" and l4 != p.proto:
            return False
        port = p.dport if which == "dport" else p.sport
        if port is None:
            return False
        return _port_in(port, values)
    if key in ("iifname", "oifname", "iif", "oif"):
        name = p.iif if key.startswith("i") else p.oif
        if name is None:
            return None
        return any(fnmatch.fnmatchcase(name, v.replace("\\*", "*")) for v in values)
    if key == "ct state":
        return p.ct_state in values
    if key == "ct status":
        if not set(values) <= {"dnat", "snat"}:
            return None
        return "dnat" in values and p.ct_dnat  # (a packet the node receives for itself was not SNATed)
    if key == "meta nfproto":
        return any(v == ("ipv4" if p.family == 4 else "ipv6") for v in values)
    return None


def _port_in(port: int, values: tuple[str, ...]) -> bool | None:
    unknown = False
    for v in values:
        if "-" in v and v.replace("-", "").isdigit():
            lo, hi = v.split("-", 1)
            if int(lo) <= port <= int(hi):
                return True
        elif v.isdigit():
            if int(v) == port:
                return True
        else:
            try:
                if socket.getservbyname(v) == port:
                    return True
            except OSError:
                unknown = True
    return None if unknown else False


def _in(addr: str, value: str) -> bool:
    try:
        a = ipaddress.ip_address(addr)
        if "-" in value and "/" not in value:
            lo, hi = (ipaddress.ip_address(x.strip()) for x in value.split("-", 1))
            return a.version == lo.version and lo <= a <= hi
        return a in ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
