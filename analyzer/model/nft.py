"""``nft list ruleset``: the nftables tables outside iptables (firewalld's ``inet firewalld``, a
distribution's ``inet filter``...). iptables-save does not show them, yet their base chains hook
the same points: a firewalld zone that rejects UDP 8472 is invisible in iptables-save.

Tables that iptables-nft manages (``nft`` prints "# Warning: table ip filter is managed by
iptables-nft, do not touch!" above them) are marked ``by_iptables``: iptables-save shows them
already.
"""

from __future__ import annotations

from dataclasses import dataclass

from analyzer.model.refs import SourceRef


@dataclass(frozen=True, slots=True)
class NftMatch:
    """One match expression of a rule: ``ip saddr 10.0.0.0/8``, ``udp dport { 8472, 4789 }``,
    ``iifname "eth0"``, ``ct state { established, related }``, ``meta l4proto udp``.
    ``key`` is the selector (``"ip saddr"``), ``op`` ``==`` or ``!=``, ``values`` the right side
    split at commas (a set's elements, or one value)."""

    key: str
    op: str
    values: tuple[str, ...]
    mask: str | None = None  # ``meta mark & 0x4000 == 0x0``: the mask applied before comparing


@dataclass(frozen=True, slots=True)
class NftElement:
    """One element of a named set or map, or of an anonymous ``vmap { ... }``: its key split at
    `` . `` (a concatenation), the map value (``goto chain``, ``drop``; None in a set), and the
    line nft printed it on."""

    key: tuple[str, ...]
    value: str | None
    source: SourceRef
    comment: str | None = None


@dataclass(frozen=True, slots=True)
class NftSet:
    """``set NAME { type ...; flags ...; elements = { ... } }`` or ``map NAME { type K . K : V; ... }``."""

    name: str
    kind: str  # "set" or "map"
    key_type: tuple[str, ...] = ()  # ("ipv4_addr", "inet_proto", "inet_service")
    value_type: str | None = None  # "verdict" for a vmap
    flags: tuple[str, ...] = ()  # interval, timeout, dynamic, constant
    elements: tuple[NftElement, ...] = ()
    source: SourceRef | None = None
    timeout: bool = False  # elements expire (kube-proxy's affinity sets): the listing is one moment

    @property
    def dynamic(self) -> bool:
        """Filled by the packets themselves (``update @set``): membership is not a property of the rules."""
        return self.timeout or "dynamic" in self.flags or "timeout" in self.flags


@dataclass(frozen=True, slots=True)
class NftLookup:
    """A membership test: ``ip daddr @cluster-ips``, ``ip daddr . th dport != @allowed``, or a
    concatenation against an anonymous set (``elements`` given, ``set_name`` None)."""

    keys: tuple[str, ...]  # selectors, in concatenation order
    op: str
    set_name: str | None
    elements: tuple[NftElement, ...] = ()


@dataclass(frozen=True, slots=True)
class NftVmap:
    """A verdict map lookup: ``KEYS vmap @name`` / ``KEYS vmap { k : v, ... }``, or
    ``numgen random mod N vmap { 0 : goto a, 1 : goto b }`` (``numgen`` = ("random", N, offset))."""

    keys: tuple[str, ...]
    set_name: str | None = None
    elements: tuple[NftElement, ...] = ()
    numgen: tuple[str, int, int] | None = None


@dataclass(frozen=True, slots=True)
class NftStatement:
    """A statement that changes the packet without being a verdict: ``meta mark set meta mark | 0x4000``
    (kind "mark", args ("|", "0x4000")), ``dnat to 10.244.2.2:8080`` ("dnat", ("10.244.2.2:8080",)),
    ``snat to X``, ``masquerade fully-random`` ("masquerade", ("fully-random",)), ``redirect to :8080``,
    ``update @set { ip saddr }`` ("update", ("@set",))."""

    kind: str
    args: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class NftRule:
    source: SourceRef  # file, 1-based line, the rule's text
    matches: tuple[NftMatch, ...]
    verdict: str | None  # accept drop reject jump goto return continue queue, None (no verdict)
    target: str | None = None  # chain of jump/goto
    reject_with: str | None = None  # "icmpx admin-prohibited"...
    unknown: tuple[str, ...] = ()  # statements this reader does not evaluate (a walk stops there)
    lookups: tuple[NftLookup, ...] = ()  # named-set (or concatenated) membership matches
    vmap: NftVmap | None = None  # the rule ends in a verdict map lookup
    statements: tuple[NftStatement, ...] = ()  # mark and NAT statements, in order
    comment: str | None = None


@dataclass(frozen=True, slots=True)
class NftChain:
    name: str
    hook: str | None = None  # input forward output prerouting postrouting (base chains)
    type: str | None = None  # filter nat route
    priority: int = 0
    policy: str = "accept"
    rules: tuple[NftRule, ...] = ()
    source: SourceRef | None = None  # the chain's own line
    cut: bool = False  # the dump ends inside this chain: rules after the last one listed are missing


_CHAIN_INDEX: dict[int, tuple[NftTable, dict[str, NftChain]]] = {}


@dataclass(frozen=True, slots=True)
class NftTable:
    family: str  # ip ip6 inet arp bridge netdev
    name: str
    chains: tuple[NftChain, ...] = ()
    by_iptables: bool = False  # managed by iptables-nft: iptables-save shows it
    source: SourceRef | None = None
    sets: tuple[NftSet, ...] = ()  # named sets and maps
    cut_at: int | None = None  # the dump ends inside this table (its last line): later chains and sets are missing

    def chain(self, name: str) -> NftChain | None:
        index = _CHAIN_INDEX.get(id(self))
        if index is None or index[0] is not self:  # built once per table: kube-proxy writes ~3 chains a service
            if len(_CHAIN_INDEX) > 64:
                _CHAIN_INDEX.clear()
            index = _CHAIN_INDEX[id(self)] = (self, {c.name: c for c in self.chains})
        return index[1].get(name)

    def set(self, name: str) -> NftSet | None:
        """The named set or map ``name`` (with or without the ``@``)."""
        name = name.lstrip("@")
        return next((s for s in self.sets if s.name == name), None)

    @property
    def has_nat(self) -> bool:
        """A table with NAT base chains (kube-proxy's ``table ip kube-proxy``): the netfilter
        simulator runs it whole, next to iptables' tables, by priority."""
        return any(c.hook is not None and c.type == "nat" for c in self.chains)


@dataclass(frozen=True, slots=True)
class NftRuleset:
    file: str
    tables: tuple[NftTable, ...] = ()
    warnings: tuple[str, ...] = ()

    def own_tables(self) -> tuple[NftTable, ...]:
        """The tables iptables-save does not show."""
        return tuple(t for t in self.tables if not t.by_iptables)
