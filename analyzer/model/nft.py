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


@dataclass(frozen=True, slots=True)
class NftRule:
    source: SourceRef  # file, 1-based line, the rule's text
    matches: tuple[NftMatch, ...]
    verdict: str | None  # accept drop reject jump goto return continue queue, None (no verdict)
    target: str | None = None  # chain of jump/goto
    reject_with: str | None = None  # "icmpx admin-prohibited"...
    unknown: tuple[str, ...] = ()  # statements this reader does not evaluate (a walk stops there)


@dataclass(frozen=True, slots=True)
class NftChain:
    name: str
    hook: str | None = None  # input forward output prerouting postrouting (base chains)
    type: str | None = None  # filter nat route
    priority: int = 0
    policy: str = "accept"
    rules: tuple[NftRule, ...] = ()
    source: SourceRef | None = None  # the chain's own line


@dataclass(frozen=True, slots=True)
class NftTable:
    family: str  # ip ip6 inet arp bridge netdev
    name: str
    chains: tuple[NftChain, ...] = ()
    by_iptables: bool = False  # managed by iptables-nft: iptables-save shows it
    source: SourceRef | None = None

    def chain(self, name: str) -> NftChain | None:
        return next((c for c in self.chains if c.name == name), None)


@dataclass(frozen=True, slots=True)
class NftRuleset:
    file: str
    tables: tuple[NftTable, ...] = ()
    warnings: tuple[str, ...] = ()

    def own_tables(self) -> tuple[NftTable, ...]:
        """The tables iptables-save does not show."""
        return tuple(t for t in self.tables if not t.by_iptables)
