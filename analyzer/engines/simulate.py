"""Walk one packet through one or more nodes' dumps, as the kernels would, and back again.

On each node the packet meets the netfilter hooks of its path (``engines/netfilter.py``), the
routing decision between them (``engines/routing.py``: after PREROUTING, so after DNAT), and, when
the route points into the overlay, the VXLAN/IPIP/host-gw lookups (``engines/overlay.py``) that
carry it to the next node given. Every ``-m statistic`` branch is followed, so one packet has
several outcomes whose probabilities sum to 1. For each outcome that reaches its destination, the
reply is walked back through the connection state the forward walk created: conntrack undoes the
source NAT in PREROUTING and the destination NAT in POSTROUTING of every node that applied it.

Without routing dumps (a bare ``iptables-save``), the out interface and next hop are unknown: the
outcome says so, and ``-o`` tests are decided as "not that interface" and listed as assumptions.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace

from analyzer.engines.backends import backend_split
from analyzer.engines.netfilter import (
    Branch,
    NodeAddresses,
    PacketState,
    Step,
    Translation,
    Verdict,
    engine_for,
)
from analyzer.engines.nft_lower import cut_note, engine_tables
from analyzer.engines.nft_walk import NftPacket, NftVerdict
from analyzer.engines.nft_walk import hook_verdict as nft_hook_verdict
from analyzer.engines.overlay import resolve_overlay
from analyzer.engines.routing import lookup_route
from analyzer.model.flow import endpoint_text
from analyzer.model.netfilter import Rule, RuleSet
from analyzer.model.node import IPAddress, NodeSnapshot, RouteDecision
from analyzer.model.protocols import proto_name, proto_number
from analyzer.model.refs import SourceRef

__all__ = ["SimHop", "SimOutcome", "SimPacket", "SimulationResult", "TrackedConnection", "simulate_packet"]

SCHEMA = "k8s-trace.simulate/1"
MAX_NODE_VISITS = 8
#: statuses of an outcome (the contract's four, plus "unknown" for insufficient information)
STATUSES = ("forwarded", "local", "dropped", "rejected", "unknown")


@dataclass(frozen=True, slots=True)
class SimHop:
    """One step of the simulated path: a rule, a routing decision, an encapsulation, a delivery."""

    node: str
    interface: str | None
    kind: str  # netfilter / route / overlay / receive / deliver / conntrack / send
    action: str  # MATCHED JUMPED DNAT SNAT MASQUERADED MARKED ACCEPTED DROPPED REJECTED ROUTED ...
    explanation: str
    evidence: tuple[SourceRef, ...] = ()
    rule: Rule | None = None
    hook: str | None = None

    def to_json(self) -> dict:
        return {
            "node": self.node, "interface": self.interface, "kind": self.kind, "action": self.action,
            "explanation": self.explanation, "hook": self.hook,
            "evidence": [{"file": e.file, "line": e.line, "text": e.text} for e in self.evidence],
            "observed": None,
        }


@dataclass(frozen=True, slots=True)
class SimPacket:
    src: str
    dst: str
    proto: str
    sport: int | None
    dport: int | None
    node: str
    in_interface: str | None

    def endpoint(self, which: str) -> str:
        ip, port = (self.src, self.sport) if which == "src" else (self.dst, self.dport)
        return endpoint_text(ip, port)


@dataclass(frozen=True, slots=True)
class NodeTranslation:
    node: str
    translation: Translation

    def to_json(self) -> dict:
        t = self.translation
        return {"type": "dnat" if t.type == "redirect" else t.type, "node": self.node, "from": t.before,
                "to": t.after, "observed": None, "rule": _rule_json(t.rule), "detail": t.detail or None}


@dataclass(frozen=True, slots=True)
class SimOutcome:
    probability: float
    status: str  # forwarded / local / dropped / rejected / unknown
    node: str  # where the walk ended
    explanation: str
    packet: PacketState  # as it left (or died)
    translations: tuple[NodeTranslation, ...] = ()
    out_interface: str | None = None
    next_hop: str | None = None
    hops: tuple[SimHop, ...] = ()
    rules: tuple[tuple[str, Rule], ...] = ()  # (node, rule) every rule that matched, in order
    labels: tuple[str, ...] = ()
    assumptions: tuple[str, ...] = ()
    reject_with: str | None = None
    reason: str | None = None  # for "unknown": what is missing
    decided_by: Rule | None = None
    delivered_to: str | None = None  # "pod 10.244.1.5 via veth1234 on node n2", "node n1 (INPUT)"
    reply: tuple[SimHop, ...] = ()
    reply_status: str | None = None  # delivered / dropped / rejected / unknown / no-route-back / None (not walked)
    reply_packet: PacketState | None = None

    def translation(self, kind: str) -> Translation | None:
        return next((t.translation for t in self.translations if t.translation.type == kind
                     or (kind == "dnat" and t.translation.type == "redirect")), None)

    @property
    def dnat(self) -> str | None:
        t = self.translation("dnat")
        return t.after if t else None

    @property
    def snat(self) -> str | None:
        t = self.translation("snat")
        return t.after if t else None

    @property
    def masquerade(self) -> str | None:
        """The address MASQUERADE gave the source; None when not masqueraded or when the address of
        the out interface is not in the dumps (``masqueraded`` tells the two apart)."""
        t = self.translation("masquerade")
        return t.after if t is not None else None

    @property
    def masqueraded(self) -> bool:
        return self.translation("masquerade") is not None

    def to_json(self) -> dict:
        return {
            "probability": round(self.probability, 12),
            "status": self.status,
            "node": self.node,
            "explanation": self.explanation,
            "dnat": self.dnat,
            "snat": self.snat,
            "masquerade": self.masquerade,
            "masqueraded": self.masqueraded,
            "masquerade_random_fully": any("random-fully" in t.translation.detail for t in self.translations
                                           if t.translation.type == "masquerade") or None,
            "out_interface": self.out_interface,
            "next_hop": self.next_hop,
            "reject_with": self.reject_with,
            "reason": self.reason,
            "delivered_to": self.delivered_to,
            "final": {"src": self.packet.endpoint("src"), "dst": self.packet.endpoint("dst"),
                      "mark": hex(self.packet.mark)},
            "labels": list(self.labels),
            "assumptions": list(self.assumptions),
            "translations": [t.to_json() for t in self.translations],
            "hops": [h.to_json() for h in self.hops],
            "rules": [_rule_json(r, node) for node, r in self.rules],
            "reply": None if self.reply_status is None else {
                "status": self.reply_status,
                "packet": None if self.reply_packet is None else {
                    "src": self.reply_packet.endpoint("src"), "dst": self.reply_packet.endpoint("dst")},
                "hops": [h.to_json() for h in self.reply],
            },
        }


@dataclass(frozen=True, slots=True)
class TrackedConnection:
    """A ``conntrack -L`` entry of a node that already holds this packet's connection."""

    node: str
    source: SourceRef
    state: str | None
    replies_from: str  # "10.244.2.2:8080": where conntrack sends the packets of this connection
    unreplied: bool
    stale: bool  # it goes somewhere the current rules would no longer choose
    sport: int | None = None  # the entry's source port (several entries when the packet's was not given)

    def to_json(self) -> dict:
        return {"node": self.node, "file": self.source.file, "line": self.source.line, "text": self.source.text,
                "state": self.state, "replies_from": self.replies_from, "unreplied": self.unreplied,
                "stale": self.stale, "sport": self.sport}


@dataclass(frozen=True, slots=True)
class SimulationResult:
    packet: SimPacket
    outcomes: tuple[SimOutcome, ...]
    warnings: tuple[str, ...] = ()
    nodes: tuple[str, ...] = ()
    conntrack: tuple[TrackedConnection, ...] = ()  # existing connections the dumps show for this packet

    def to_contract(self) -> dict:
        p = self.packet
        return {
            "schema": SCHEMA,
            "packet": {"src": p.endpoint("src"), "dst": p.endpoint("dst"), "proto": p.proto, "node": p.node,
                       "in_interface": p.in_interface},
            "outcomes": [o.to_json() for o in self.outcomes],
            "conntrack": [c.to_json() for c in self.conntrack],
            "warnings": list(self.warnings),
        }


def ruleset_for(node: NodeSnapshot, family: int) -> RuleSet | None:
    """The node's iptables-save for IPv4 packets, ip6tables-save for IPv6 ones (a bare dump file
    given as the node counts for the family it holds)."""
    want = "ipv4" if family == 4 else "ipv6"
    for rs in (node.ruleset, node.ip6ruleset):
        if rs is not None and rs.family == want:
            return rs
    return None


def _rule_json(rule: Rule, node: str | None = None) -> dict:
    out = {"file": rule.file, "line": rule.line, "table": rule.table, "chain": rule.chain, "text": rule.text}
    if node is not None:
        out["node"] = node
    return out


# -- the walk ------------------------------------------------------------------------------------

@dataclass(slots=True)
class _Leg:
    """A branch in flight: where it is, its weight, and everything that happened so far."""

    prob: float
    node: NodeSnapshot
    packet: PacketState
    hops: list[SimHop] = field(default_factory=list)
    rules: list[tuple[str, Rule]] = field(default_factory=list)
    translations: list[NodeTranslation] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    assumptions: list[str] = field(default_factory=list)
    #: (node, packet as it entered, out interface, how: "forward" / "local" / "sent" / "sent-local")
    visits: list[tuple[NodeSnapshot, PacketState, str | None, str]] = field(default_factory=list)
    visits_count: int = 0


def node_addresses(node: NodeSnapshot, extra: Iterable[str]) -> NodeAddresses:
    by_if = {i.name: tuple(i.addresses) for i in node.interfaces if i.addresses}
    local = set(node.local_addresses()) | {ipaddress.ip_address(x) for x in extra}
    return NodeAddresses(frozenset(local), by_if)


_ACTIONS = {
    "jump": "JUMPED", "goto": "JUMPED", "return": "RETURNED", "accept": "ACCEPTED", "drop": "DROPPED",
    "reject": "REJECTED", "dnat": "DNAT", "redirect": "DNAT", "snat": "SNAT", "masquerade": "MASQUERADED",
    "mark": "MARKED", "connmark": "MARKED", "log": "LOGGED", "notrack": "UNTRACKED", "policy": "POLICY",
    "branch": "BRANCHED", "skip": "SKIPPED", "unknown": "UNKNOWN", "queue": "QUEUED", "count": "MATCHED",
}


def _step_hop(node: str, iface: str | None, step: Step) -> SimHop:
    ev = (step.rule.source,) if step.rule is not None else ()
    return SimHop(node, iface, "netfilter", _ACTIONS.get(step.action, step.action.upper()), step.explanation,
                  ev, step.rule, step.hook)


class _Simulator:
    def __init__(self, nodes: Sequence[NodeSnapshot], local_ips: Mapping[str, Sequence[str]],
                 out_interface: str | None, family: int = 4) -> None:
        self.nodes = list(nodes)
        self.local_ips = local_ips
        self.forced_out = out_interface
        self.df = True
        self.warnings: list[str] = []
        self.engines = {}
        self.addrs: dict[str, NodeAddresses] = {}
        for n in self.nodes:
            addrs = node_addresses(n, local_ips.get(n.name, ()))
            self.addrs[n.name] = addrs
            rs = ruleset_for(n, family)
            lowered = engine_tables(n.nft, family)  # kube-proxy's nftables mode: walked with iptables
            if rs is None and lowered is not None:
                rs = lowered.no_iptables
            if rs is not None:
                self.engines[n.name] = engine_for(rs, addrs, lowered)
            if not addrs.local and not n.interfaces:
                self.warnings.append(f"node {n.name}: its own addresses are unknown (no ip-addr dump, no "
                                     "--local-ip): -m addrtype LOCAL only matches loopback addresses")

    # -- helpers --------------------------------------------------------------------------------
    def has_routes(self, node: NodeSnapshot) -> bool:
        return bool(node.routes)

    def is_local(self, node: NodeSnapshot, ip: IPAddress) -> bool:
        return self.addrs[node.name].is_local(ip)

    def walk_hook(self, leg: _Leg, hook: str) -> list[tuple[_Leg, Branch]]:
        """Run one hook on ``leg``; returns (new leg, branch) pairs, one per way out."""
        engine = self.engines.get(leg.node.name)
        cut = cut_note(leg.node.nft)  # chains of an nftables table the dump lost run at their hooks all the same
        if cut is not None and cut not in leg.assumptions:
            leg.assumptions.append(cut)
        if engine is None:
            return [(leg, Branch(leg.prob, Verdict.ACCEPT, leg.packet))]
        out = []
        split = backend_split(leg.node)
        if split is not None:
            note = (f"{leg.node.name}'s iptables-save ({split.shown}) tells that {split.hidden_words} holds rules "
                    f"too ({split.refs[0].file}:{split.refs[0].line}): the kernel also runs them, and this walk "
                    f"cannot see them (`{split.save_command}` shows them)")
            if note not in leg.assumptions:
                leg.assumptions.append(note)
        start = Branch(leg.prob, Verdict.ACCEPT, leg.packet)
        for b in engine.continue_branch(start, hook):
            new = _Leg(b.probability, leg.node, b.packet, list(leg.hops), list(leg.rules), list(leg.translations),
                       list(leg.labels) + list(b.labels), list(leg.assumptions) + [
                           a for a in b.assumptions if a not in leg.assumptions],
                       list(leg.visits), leg.visits_count)
            iface = leg.packet.in_interface if hook in ("PREROUTING", "INPUT") else (
                b.packet.out_interface if hook in ("POSTROUTING",) else leg.packet.in_interface)
            for s in b.steps:
                new.hops.append(_step_hop(leg.node.name, iface, s))
                if s.rule is not None and s.action not in ("branch",):
                    new.rules.append((leg.node.name, s.rule))
            new.translations.extend(NodeTranslation(leg.node.name, t) for t in b.translations)
            out.append((new, b))
        return out

    def _through(self, leg: _Leg, hooks: tuple[str, ...], outcomes: list[SimOutcome]) -> Iterator[_Leg]:
        """The legs that get through every hook of ``hooks`` in turn, depth first (one branch is
        followed to its end before the next); the ones a hook stops end in ``outcomes``."""
        if not hooks:
            yield leg
            return
        for leg2, b in self.walk_hook(leg, hooks[0]):
            if not self._stopped(leg2, b, outcomes):
                yield from self._through(leg2, hooks[1:], outcomes)

    def route(self, leg: _Leg) -> RouteDecision | None:
        if not self.has_routes(leg.node):
            return None
        p = leg.packet
        iif = p.in_interface if p.in_interface else None
        return lookup_route(leg.node, p.dst, src=p.src, iif=iif, mark=p.mark)

    def node_by_address(self, ip: IPAddress | None, exclude: NodeSnapshot | None = None) -> NodeSnapshot | None:
        if ip is None:
            return None
        for n in self.nodes:
            if n is exclude:
                continue
            if ip in self.addrs[n.name].local or n.node_ip == ip:  # addrs: the dump's and --local-ip's
                return n
        return None

    # -- forward walk ---------------------------------------------------------------------------
    def run(self, start: NodeSnapshot, packet: PacketState, locally_sent: bool) -> list[SimOutcome]:
        leg = _Leg(1.0, start, packet)
        outcomes: list[SimOutcome] = []
        if locally_sent:
            leg.hops.append(SimHop(start.name, None, "send", "SENT",
                                   f"{start.name} itself sends {packet.endpoint('src')} -> {packet.endpoint('dst')} "
                                   "(a local process: OUTPUT path)"))
            self._sent(leg, outcomes)
        else:
            self._arrive(leg, outcomes)
        return outcomes

    def _arrive(self, leg: _Leg, outcomes: list[SimOutcome]) -> None:
        p = leg.packet
        leg.visits_count += 1
        if leg.visits_count > MAX_NODE_VISITS:
            outcomes.append(self._end(leg, "unknown", "the packet visited more than "
                                      f"{MAX_NODE_VISITS} nodes: a routing loop between the dumps?",
                                      reason="routing loop"))
            return
        where = f" on {p.in_interface}" if p.in_interface else ""
        leg.hops.append(SimHop(leg.node.name, p.in_interface, "receive", "RECEIVED",
                               f"{leg.node.name} receives {p.endpoint('src')} -> {p.endpoint('dst')}{where}"))
        entry = p
        bridge = self._bridged(leg)
        if bridge is not None:
            self._bridge(leg, bridge, outcomes)
            return
        for leg2, b in self.walk_hook(leg, "PREROUTING"):
            if self._stopped(leg2, b, outcomes):
                continue
            self._after_prerouting(leg2, entry, outcomes)

    def _bridged(self, leg: _Leg) -> str | None:
        """The bridge when the packet is switched, not routed: it arrived on a bridge and its
        destination is another host of that bridge's subnet (a pod talking to a pod of the same
        node sends straight to that pod's MAC address)."""
        p = leg.packet
        if p.in_interface is None:
            return None
        iface = leg.node.interface(p.in_interface)
        if iface is None or iface.kind != "bridge" or self.is_local(leg.node, p.dst):
            return None
        if not any(a.version == p.dst.version and p.dst in a.network for a in iface.addresses):
            return None
        return iface.name

    def _bridge(self, leg: _Leg, bridge: str, outcomes: list[SimOutcome]) -> None:
        node = leg.node
        p = leg.packet
        port_in = self._bridge_port(node, p.src, bridge)
        port_out = self._bridge_port(node, p.dst, bridge)
        key, setting, ev = self._br_nf_call(node, p.family)
        leg.packet = replace(p, bridged=True, physdev_in=port_in, physdev_out=port_out, out_interface=bridge,
                             out_known=True)
        entry = leg.packet
        leg.hops.append(SimHop(node.name, bridge, "bridge", "SWITCHED",
                               f"{p.dst} is on the same bridge {bridge}: the frame is switched from "
                               f"{port_in or 'the sender port'} to {port_out or 'the destination port'}, not routed",
                               self._bridge_evidence(node, p.dst)))
        if setting == "0":
            leg.hops.append(SimHop(node.name, bridge, "bridge", "SKIPPED",
                                   f"{key} = 0: bridged frames do not traverse iptables", ev))
            leg.visits.append((node, entry, bridge, "forward"))
            outcomes.append(self._end(leg, "forwarded", f"switched on {bridge} to {p.endpoint('dst')} "
                                      "(iptables not consulted)", out_if=bridge, next_hop=str(p.dst),
                                      delivered=f"pod {p.dst} on {node.name}"))
            return
        if setting is None:
            leg.assumptions.append(f"{key} is not in the dumps: assumed 1 (br_netfilter loaded, as Kubernetes "
                                   "requires), so bridged frames traverse iptables")
        for leg2, b in self.walk_hook(leg, "PREROUTING"):
            if self._stopped(leg2, b, outcomes):
                continue
            if leg2.packet.dst != entry.dst:  # DNAT on a bridged frame: br_netfilter routes it instead
                leg2.packet = replace(leg2.packet, bridged=False, physdev_in=None, physdev_out=None,
                                      out_interface=None, out_known=False)
                self._after_prerouting(leg2, entry, outcomes)
                continue
            for leg4 in self._through(leg2, ("FORWARD", "POSTROUTING"), outcomes):
                leg4.visits.append((node, entry, bridge, "forward"))
                where = f" via {port_out}" if port_out else ""
                leg4.hops.append(SimHop(node.name, bridge, "deliver", "DELIVERED",
                                        f"switched to pod {leg4.packet.endpoint('dst')}{where}",
                                        self._bridge_evidence(node, p.dst)))
                outcomes.append(self._end(leg4, "forwarded", f"switched on {bridge} to pod "
                                          f"{leg4.packet.endpoint('dst')}{where}", out_if=bridge,
                                          next_hop=str(p.dst), delivered=f"pod {p.dst} on {node.name}"))

    def _after_prerouting(self, leg: _Leg, entry: PacketState, outcomes: list[SimOutcome]) -> None:
        p = leg.packet
        decision = self.route(leg)
        local = decision.delivered_locally if decision is not None else self.is_local(leg.node, p.dst)
        if decision is not None:
            leg.hops.append(SimHop(leg.node.name, decision.out_interface, "route",
                                   "DROPPED" if decision.dropped else "ROUTED", decision.explanation,
                                   tuple(decision.evidence)))
            if decision.dropped:
                outcomes.append(self._end(leg, "dropped", decision.explanation))
                return
        if local:
            if decision is None:
                leg.hops.append(SimHop(leg.node.name, None, "route", "ROUTED",
                                       f"{p.dst} is one of {leg.node.name}'s own addresses: delivered to the node "
                                       "(INPUT)"))
            for leg2, b in self.walk_hook(leg, "INPUT"):
                if self._stopped(leg2, b, outcomes):
                    continue
                leg2.visits.append((leg2.node, entry, None, "local"))
                leg2.hops.append(SimHop(leg2.node.name, None, "deliver", "DELIVERED",
                                        f"delivered to a local socket on {leg2.node.name} ({leg2.packet.endpoint('dst')})"))
                outcomes.append(self._end(leg2, "local", f"delivered to {leg2.node.name} itself "
                                          f"({leg2.packet.endpoint('dst')})", delivered=f"node {leg2.node.name}"))
            return
        out_if, next_hop, pref_src = self._out(leg, decision)
        leg.packet = replace(leg.packet, out_interface=out_if, out_known=out_if is not None,
                             pref_src=pref_src)
        if decision is None:
            leg.hops.append(SimHop(leg.node.name, out_if, "route", "ROUTED",
                                   f"{p.dst} is not a local address: the node forwards it"
                                   + (f" out {out_if} (given)" if out_if else
                                      "; the out interface and next hop are unknown (no ip-route dump)")))
        too_big = self._exceeds_mtu(leg, out_if, decision)
        if too_big is not None:
            outcomes.append(too_big)
            return
        for leg3 in self._through(leg, ("FORWARD", "POSTROUTING"), outcomes):
            leg3.visits.append((leg3.node, entry, out_if, "forward"))
            self._leave(leg3, decision, out_if, next_hop, outcomes)

    def _exceeds_mtu(self, leg: _Leg, out_if: str | None, decision: RouteDecision | None) -> SimOutcome | None:
        """ip_forward's MTU check (before the FORWARD hook): a DF packet larger than the out device's
        MTU (or the route's mtu) is not forwarded; the sender gets ICMP fragmentation needed."""
        p = leg.packet
        if p.length is None or not self.df or out_if is None:
            return None
        iface = leg.node.interface(out_if)
        route_mtu = decision.chosen.mtu if decision is not None and decision.chosen is not None else None
        mtu = route_mtu or (iface.mtu if iface is not None else None)
        if mtu is None or p.length <= mtu:
            return None
        ev = tuple(x for x in ((decision.chosen.source if route_mtu else iface.source if iface else None),)
                   if x is not None)
        leg.hops.append(SimHop(leg.node.name, out_if, "route", "REJECTED",
                               f"the packet is {p.length} bytes with Don't Fragment set, more than the {mtu}-byte MTU "
                               f"of {out_if}: {leg.node.name} answers ICMP fragmentation needed (mtu {mtu})", ev))
        return self._end(leg, "rejected", f"{p.length}-byte packet with DF does not fit the {mtu}-byte MTU of "
                                          f"{out_if} on {leg.node.name}: ICMP fragmentation needed (mtu {mtu})",
                         out_if=out_if, reject_with=f"icmp-frag-needed mtu {mtu}")

    def _sent(self, leg: _Leg, outcomes: list[SimOutcome]) -> None:
        decision = self.route(leg)
        out_if, next_hop, pref_src = self._out(leg, decision)
        if decision is not None:
            leg.hops.append(SimHop(leg.node.name, out_if, "route", "ROUTED", decision.explanation,
                                   tuple(decision.evidence)))
        leg.packet = replace(leg.packet, out_interface=out_if, out_known=out_if is not None or decision is not None,
                             pref_src=pref_src)
        entry = leg.packet
        for leg2, b in self.walk_hook(leg, "OUTPUT"):
            if self._stopped(leg2, b, outcomes):
                continue
            if leg2.packet.dst != entry.dst:  # DNAT in OUTPUT: the kernel routes again
                decision = self.route(leg2)
                if decision is not None:
                    leg2.hops.append(SimHop(leg2.node.name, decision.out_interface, "route", "ROUTED",
                                            "after DNAT, routed again: " + decision.explanation,
                                            tuple(decision.evidence)))
                    out_if, next_hop, pref_src = self._out(leg2, decision)
                    leg2.packet = replace(leg2.packet, out_interface=out_if, pref_src=pref_src)
            local = decision.delivered_locally if decision is not None else self.is_local(leg2.node, leg2.packet.dst)
            if decision is not None and decision.dropped:
                outcomes.append(self._end(leg2, "dropped", decision.explanation))
                continue
            for leg3, b3 in self.walk_hook(leg2, "POSTROUTING"):
                if self._stopped(leg3, b3, outcomes):
                    continue
                leg3.visits.append((leg3.node, entry, out_if, "sent-local" if local else "sent"))
                if local:
                    leg3.packet = replace(leg3.packet, in_interface="lo")
                    for leg4, b4 in self.walk_hook(leg3, "INPUT"):
                        if self._stopped(leg4, b4, outcomes):
                            continue
                        outcomes.append(self._end(leg4, "local", f"delivered to {leg4.node.name} itself over lo",
                                                  delivered=f"node {leg4.node.name}"))
                    continue
                self._leave(leg3, decision, out_if, next_hop, outcomes)

    def _out(self, leg: _Leg, decision: RouteDecision | None):
        if decision is None or decision.kind != "unicast":
            return self.forced_out, None, None
        return decision.out_interface, decision.next_hop, decision.pref_src

    def _leave(self, leg: _Leg, decision: RouteDecision | None, out_if: str | None, next_hop: IPAddress | None,
               outcomes: list[SimOutcome]) -> None:
        p = leg.packet
        node = leg.node
        nh = str(next_hop) if next_hop is not None else None
        if decision is None:
            outcomes.append(self._end(leg, "forwarded",
                                      f"forwarded {p.endpoint('src')} -> {p.endpoint('dst')}"
                                      + (f" out {out_if}" if out_if else
                                         "; out interface and next hop unknown without routing dumps"),
                                      out_if=out_if, next_hop=nh))
            return
        overlay = resolve_overlay(node, decision)
        if overlay is not None:
            ev = tuple(overlay.evidence)
            if not overlay.ok:
                leg.hops.append(SimHop(node.name, out_if, "overlay", "DROPPED", overlay.explanation, ev))
                outcomes.append(self._end(leg, "dropped", overlay.explanation, out_if=out_if, next_hop=nh))
                return
            for st in overlay.steps[1:]:
                leg.hops.append(SimHop(node.name, out_if, "overlay", "ENCAPSULATED" if st.what == "fdb" else
                                       "LOOKED-UP", st.explanation, tuple(st.evidence)))
            remote_ip = overlay.remote if overlay.type != "host-gw" else overlay.next_hop
            remote = self.node_by_address(remote_ip, exclude=node)
            if overlay.type == "vxlan":
                what = (f"encapsulated in VXLAN (VNI {overlay.vni}, UDP {overlay.port}) from {overlay.local} to "
                        f"{overlay.remote}")
            elif overlay.type == "ipip":
                what = f"encapsulated in IPIP from {overlay.local} to {overlay.remote}"
            else:
                what = f"sent unencapsulated (host-gw) to node {overlay.next_hop}"
            outer = None
            kind = "the packet"
            if overlay.type in ("vxlan", "ipip") and overlay.local is not None and overlay.remote is not None:
                underlay = self.route(replace(leg, packet=replace(p, dst=overlay.remote, src=overlay.local,
                                                                   in_interface=None)))
                outer = PacketState(overlay.local, overlay.remote, 17 if overlay.type == "vxlan" else 4,
                                    None, overlay.port if overlay.type == "vxlan" else None,
                                    out_interface=underlay.out_interface if underlay is not None else None,
                                    out_known=underlay is not None,
                                    pref_src=overlay.local, length=p.length)
                kind = f"the {overlay.type.upper()} packet {overlay.local} -> {overlay.remote}" + (
                    f" (UDP {overlay.port})" if overlay.type == "vxlan" else " (IP protocol 4)")
                legs = self._walk_outer(leg, outer, ("OUTPUT", "POSTROUTING"), kind, outcomes)
            else:
                legs = [leg]
            for leg in legs:
                if remote is None:
                    outcomes.append(self._end(leg, "forwarded", f"{what}; node {remote_ip} was not given, the walk "
                                              "stops here", out_if=out_if, next_hop=nh))
                    continue
                leg.hops.append(SimHop(node.name, out_if, "overlay", "TRANSMITTED", f"{what} (node {remote.name})",
                                       ev))
                in_if = self._overlay_in_interface(remote, overlay.type, overlay.device, remote_ip)
                leg.node = remote
                arrived = [leg]
                if outer is not None:  # the receiving node's netfilter sees the outer packet first (INPUT)
                    underlay_in = self._iface_with_address(remote, outer.dst)
                    outer_in = replace(outer, in_interface=underlay_in, in_known=underlay_in is not None,
                                       out_interface=None, out_known=True, pref_src=None)
                    arrived = self._walk_outer(leg, outer_in, ("PREROUTING", "INPUT"), kind, outcomes)
                for leg2 in arrived:
                    leg2.hops.append(SimHop(remote.name, in_if, "overlay", "DECAPSULATED",
                                            f"{remote.name} accepts {kind.split(' (')[0]} and hands the inner packet "
                                            f"to {in_if or 'its overlay device'}"))
                    leg2.packet = replace(p, in_interface=in_if, in_known=True, out_interface=None, out_known=True,
                                          mark=0, pref_src=None,
                                          ctstate=p.ctstate if p.ctstate != "UNTRACKED" else "NEW",
                                          ct_dnat=False, ct_snat=False, ct_orig_src=None, ct_orig_dst=None,
                                          ct_orig_dport=None)
                    self._arrive(leg2, outcomes)
            return
        # not an overlay route: a pod on this node's bridge, another node on the link, or the outside
        pod = node.pod_cidr
        if pod is not None and p.dst.version == pod.version and p.dst in pod:
            port = self._bridge_port(node, p.dst, out_if)
            where = f" via {port}" if port else ""
            if self._hairpin_refused(leg, out_if, port, outcomes):
                return
            leg.hops.append(SimHop(node.name, out_if, "deliver", "DELIVERED",
                                   f"{p.dst} is a pod on {node.name}'s bridge {out_if}: delivered to the pod"
                                   f"{where}", self._bridge_evidence(node, p.dst)))
            outcomes.append(self._end(leg, "forwarded", f"delivered to pod {p.endpoint('dst')} on {node.name}"
                                      f" ({out_if}{where})", out_if=out_if, next_hop=nh,
                                      delivered=f"pod {p.dst} on {node.name}"))
            return
        remote = self.node_by_address(next_hop, exclude=node) if next_hop is not None else None
        if remote is not None and remote is not node:
            leg.hops.append(SimHop(node.name, out_if, "send", "TRANSMITTED", f"sent out {out_if} to node "
                                   f"{remote.name} ({next_hop})"))
            in_if = self._iface_with_address(remote, next_hop) if next_hop is not None else None
            leg.node = remote
            leg.packet = replace(p, in_interface=in_if, in_known=in_if is not None, out_interface=None,
                                 mark=0, pref_src=None, ct_dnat=False, ct_snat=False, ct_orig_src=None,
                                 ct_orig_dst=None, ct_orig_dport=None)
            self._arrive(leg, outcomes)
            return
        leaving_pod = self._pod_network_of(p.src)
        if leaving_pod is not None and self._pod_network_of(p.dst) is None:
            leg.hops.append(SimHop(node.name, out_if, "send", "TRANSMITTED",
                                   f"{p.endpoint('src')} leaves {node.name} unmasqueraded toward {p.dst}, outside the "
                                   f"pod network {leaving_pod}: hosts outside the cluster usually have no route back "
                                   "to pod addresses, so no reply is expected"))
            outcomes.append(self._end(leg, "forwarded", f"forwarded {p.endpoint('src')} -> {p.endpoint('dst')} out "
                                      f"{out_if} to {nh} with its pod source address (not masqueraded)",
                                      out_if=out_if, next_hop=nh, reply=False))
            return
        outcomes.append(self._end(leg, "forwarded", f"forwarded {p.endpoint('src')} -> {p.endpoint('dst')} out "
                                  f"{out_if} to {nh}", out_if=out_if, next_hop=nh))

    def _pod_network_of(self, ip: IPAddress) -> str | None:
        """The pod network (cluster CIDR, else a node's pod subnet) that holds ``ip``, if any."""
        for n in self.nodes:
            for net in (n.cluster_cidr, n.pod_cidr):
                if net is not None and net.version == ip.version and ip in net:
                    return str(net)
        return None

    def _walk_outer(self, leg: _Leg, outer: PacketState, hooks: tuple[str, ...], kind: str,
                    outcomes: list[SimOutcome]) -> list[_Leg]:
        """Walk the tunnel's outer packet through ``hooks`` of ``leg.node``; the legs that get
        through keep the inner packet; a DROP/REJECT of the outer packet ends the inner one too."""
        inner = leg.packet
        keep = len(leg.translations)
        current = [replace(leg, packet=outer, hops=list(leg.hops), rules=list(leg.rules),
                           translations=list(leg.translations), labels=list(leg.labels),
                           assumptions=list(leg.assumptions), visits=list(leg.visits))]
        current[0].hops.append(SimHop(leg.node.name, outer.in_interface or outer.out_interface, "overlay",
                                      "OUTER", f"{kind} goes through {leg.node.name}'s netfilter "
                                               f"({', '.join(hooks)})"))
        for hook in hooks:
            nxt = []
            for cur in current:
                for leg2, b in self.walk_hook(cur, hook):
                    del leg2.translations[keep:]  # NAT of the outer packet is not the flow's
                    if b.verdict is not Verdict.ACCEPT:
                        leg2.packet = inner
                        self._stopped(leg2, b, outcomes, outer=kind)
                        continue
                    nxt.append(leg2)
            current = nxt
            if hook == "INPUT":
                current = [c for c in current if not self._nft_input_stops(c, kind, outcomes, inner)]
        for cur in current:
            cur.packet = inner
        return current

    @staticmethod
    def _nft_input(node: NodeSnapshot, p: PacketState) -> tuple[NftVerdict, SimHop] | None:
        """The packet past iptables' INPUT meets the node's other nftables tables (firewalld's zones
        live there, invisible to iptables-save): their drop, reject or undecidable rule, as a hop."""
        if node.nft is None or p.proto not in (6, 17, 132):
            return None
        packet = NftPacket(str(p.src), str(p.dst), proto_name(p.proto), p.sport, p.dport,
                           iif=p.in_interface if p.in_known else None)
        v = nft_hook_verdict(node.nft, "input", packet, skip_nat_tables=True)  # those run in the engine
        if v is None:
            return None
        text = v.rule.text.strip() if v.rule is not None else ""
        hop = SimHop(node.name, p.in_interface, "netfilter", v.verdict.upper(),
                     f"nftables {v.table} chain {v.chain} ({'policy ' if v.policy else ''}{text}): "
                     f"{v.why or v.verdict}; iptables-save does not show this table",
                     (v.rule,) if v.rule is not None else (), None, "INPUT")
        return v, hop

    def _nft_input_stops(self, leg: _Leg, kind: str, outcomes: list[SimOutcome], inner: PacketState) -> bool:
        """``_nft_input`` for a flow's tunnel packet: True when it stops there, with the outcome recorded."""
        found = self._nft_input(leg.node, leg.packet)
        if found is None:
            return False
        v, hop = found
        leg.hops.append(hop)
        where = f"{v.rule.file}:{v.rule.line}" if v.rule is not None else v.table
        name = f"{leg.node.name} ({kind}, which carries the packet)"
        leg.packet = inner  # the outcome is the flow's packet, not its tunnel's
        if v.verdict == "unknown":
            outcomes.append(self._end(leg, "unknown", f"insufficient information on {name}: nftables {v.table} "
                                      f"chain {v.chain} at {where}: {v.why}", reason=v.why))
        elif v.verdict == "reject":
            outcomes.append(self._end(leg, "rejected", f"rejected by nftables {v.table} chain {v.chain} ({where}) on "
                                      f"{name}: the sending node (not the client, which sees a timeout) gets "
                                      f"{v.reject_with or 'an ICMP error'}", reject_with=v.reject_with))
        else:
            outcomes.append(self._end(leg, "dropped", f"dropped by nftables {v.table} chain {v.chain} ({where}) on "
                                      f"{name}"))
        return True

    @staticmethod
    def _iface_with_address(node: NodeSnapshot, ip: IPAddress) -> str | None:
        iface = node.interface_of_address(ip)
        return iface.name if iface else None

    def _overlay_in_interface(self, node: NodeSnapshot, kind: str, device: str | None, remote_ip) -> str | None:
        if kind == "vxlan":
            dev = node.overlay_device()
            return dev.name if dev is not None else device
        if kind == "ipip":
            dev = next((i for i in node.interfaces if i.is_ipip), None)
            return dev.name if dev is not None else device
        return self._iface_with_address(node, remote_ip) if remote_ip is not None else None

    def _hairpin_refused(self, leg: _Leg, out_if: str | None, port: str | None, outcomes: list[SimOutcome]) -> bool:
        """A DNATed packet sent back out the bridge port it came in on, with that port's hairpin mode off.

        With br_netfilter, a frame DNATed in PREROUTING to a pod on the bridge it arrived from is
        bridged, not routed (``br_nf_pre_routing_finish``: the route leads back to the same bridge),
        and a Linux bridge forwards a frame out of its ingress port only in hairpin mode. So a pod
        reaching itself through its own service needs ``hairpin on`` on its veth (kubelet's
        hairpin-veth mode, flannel's CNI ``hairpinMode: true``); without it the frame is dropped.
        """
        node, p = leg.node, leg.packet
        if out_if is None or port is None or p.in_interface != out_if or not p.ct_dnat:
            return False
        if self._br_nf_call(node, p.family)[1] == "0":
            return False
        origin = p.ct_orig_src or p.src
        if self._bridge_port(node, origin, out_if) != port:
            return False
        iface = node.interface(port)
        if iface is None or iface.hairpin is not False:
            return False
        ev = tuple(x for x in (iface.hairpin_source,) if x is not None) + self._bridge_evidence(node, p.dst)
        leg.hops.append(SimHop(node.name, out_if, "bridge", "DROPPED",
                               f"{p.dst} is the pod the packet came from: DNAT sends it back out {port}, the port "
                               f"it entered {out_if} on, and {port} has hairpin mode off, so the bridge drops it",
                               ev))
        outcomes.append(self._end(leg, "dropped", f"dropped by {node.name}'s bridge {out_if}: hairpin mode is off on "
                                  f"{port}, so a pod cannot reach itself through its service"))
        return True

    @staticmethod
    def _bridge_port(node: NodeSnapshot, ip: IPAddress, bridge: str | None) -> str | None:
        neigh = next((n for n in node.neigh if n.ip == ip and n.lladdr and (bridge is None or n.dev == bridge)), None)
        if neigh is None:
            return None
        fdb = next((f for f in node.fdb if f.mac == neigh.lladdr and f.master == bridge and f.dev), None)
        return fdb.dev if fdb is not None else None

    @staticmethod
    def _br_nf_call(node: NodeSnapshot, family: int) -> tuple[str, str | None, tuple[SourceRef, ...]]:
        """br_netfilter's switch for ``family`` (``net.bridge.bridge-nf-call-iptables``, or
        ``-ip6tables``): its key, its dumped value (None when not dumped) and the line it is on."""
        key = "net.bridge.bridge-nf-call-iptables" if family == 4 else "net.bridge.bridge-nf-call-ip6tables"
        ref = node.sysctl_sources.get(key)
        return key, node.sysctl.get(key), (ref,) if ref is not None else ()

    @staticmethod
    def _bridge_evidence(node: NodeSnapshot, ip: IPAddress) -> tuple[SourceRef, ...]:
        neigh = next((n for n in node.neigh if n.ip == ip and n.lladdr), None)
        if neigh is None:
            return ()
        fdb = next((f for f in node.fdb if f.mac == neigh.lladdr and f.master), None)
        return (neigh.source,) + ((fdb.source,) if fdb is not None else ())

    def _stopped(self, leg: _Leg, b: Branch, outcomes: list[SimOutcome], outer: str | None = None) -> bool:
        """Record an outcome when the hook did not let the packet through; True if it stopped."""
        if b.verdict is Verdict.ACCEPT:
            return False
        name = leg.node.name if outer is None else f"{leg.node.name} ({outer}, which carries the packet)"
        if b.verdict is Verdict.DROP:
            last = b.steps[-1] if b.steps else None
            where = ("a chain" if last is None else f"nftables {last.table} chain {last.chain}" if " " in last.table
                     else last.chain)
            why = f"dropped by {b.decided_by.where()}" if b.decided_by is not None else f"dropped by the policy of {where}"
            outcomes.append(self._end(leg, "dropped", f"{why} on {name}", decided=b.decided_by))
        elif b.verdict is Verdict.REJECT:
            who = "the sender" if outer is None else "the sending node (not the client, which sees a timeout)"
            outcomes.append(self._end(leg, "rejected", f"rejected by {b.decided_by.where()} on {name}: {who} "
                                      f"gets {b.reject_with}" if b.decided_by else f"rejected on {name}",
                                      reject_with=b.reject_with, decided=b.decided_by))
        else:
            outcomes.append(self._end(leg, "unknown", f"insufficient information on {name}: {b.reason}",
                                      reason=b.reason, decided=b.decided_by))
        return True

    def _end(self, leg: _Leg, status: str, explanation: str, *, out_if: str | None = None,
             next_hop: str | None = None, reject_with: str | None = None, reason: str | None = None,
             decided: Rule | None = None, delivered: str | None = None, reply: bool = True) -> SimOutcome:
        reply_hops: tuple[SimHop, ...] = ()
        reply_status = None
        reply_packet = None
        if status in ("forwarded", "local") and leg.visits:
            if reply:
                reply_hops, reply_status, reply_packet = self._reply(leg)
            else:
                reply_status = "no-route-back"
                reply_hops = (SimHop(leg.node.name, out_if, "send", "NO-REPLY",
                                     f"the destination sees source {leg.packet.src}, a pod address it has no route "
                                     "back to (MISSING_MASQUERADE)"),)
        return SimOutcome(
            probability=leg.prob, status=status, node=leg.node.name, explanation=explanation, packet=leg.packet,
            translations=tuple(leg.translations), out_interface=out_if, next_hop=next_hop, hops=tuple(leg.hops),
            rules=tuple(leg.rules), labels=tuple(leg.labels), assumptions=tuple(dict.fromkeys(leg.assumptions)),
            reject_with=reject_with, reason=reason, decided_by=decided, delivered_to=delivered,
            reply=reply_hops, reply_status=reply_status, reply_packet=reply_packet,
        )

    # -- reply walk -----------------------------------------------------------------------------
    def _reply(self, leg: _Leg) -> tuple[tuple[SimHop, ...], str, PacketState]:
        """The answer of the destination, walked back through every node the request crossed.

        conntrack recognises it as the reply of the connection the request created: no nat rule
        runs; the node that applied source NAT translates the destination back in PREROUTING, the
        node that applied destination NAT translates the source back in POSTROUTING (or INPUT)."""
        final = leg.packet
        rp = PacketState(final.dst, final.src, final.proto, final.dport, final.sport, ctstate="ESTABLISHED",
                         icmp_type=0 if final.proto == 1 and final.icmp_type == 8 else final.icmp_type,
                         tcp_flags=0x12 if final.proto == 6 else None)
        hops: list[SimHop] = [SimHop(leg.node.name, None, "send", "REPLIED",
                                     f"the destination answers {rp.endpoint('src')} -> {rp.endpoint('dst')}; conntrack "
                                     "knows it as the reply of the connection (ESTABLISHED), so no nat rule runs "
                                     "and every translation is undone where it was made")]
        trans_by_node: dict[str, list[Translation]] = {}
        for t in leg.translations:
            trans_by_node.setdefault(t.node, []).append(t.translation)
        visits = list(reversed(leg.visits))
        for idx, (node, entry, out_if, how) in enumerate(visits):
            engine = self.engines.get(node.name)
            nat = trans_by_node.get(node.name, [])
            src_nat = [t for t in nat if t.type in ("snat", "masquerade")]
            dst_nat = [t for t in nat if t.type in ("dnat", "redirect")]
            from_network = how in ("forward", "sent")
            rp = replace(rp, in_interface=out_if if from_network else None,
                         in_known=out_if is not None or not from_network, out_interface=None, out_known=True,
                         ct_dnat=bool(dst_nat), ct_snat=bool(src_nat), mark=0)
            if how == "sent-local":
                rp = replace(rp, in_interface="lo")
            bypass = self._bridged_reply(node, entry, out_if, how, dst_nat, src_nat, rp)
            if bypass is not None:
                hops.append(bypass)
                return tuple(hops), "dropped", rp
            # where the reply enters this node's netfilter, and the hooks it then meets
            if how == "local":
                rp = replace(rp, out_interface=entry.in_interface, out_known=entry.in_interface is not None)
                hooks: tuple[str, ...] = ("OUTPUT", "POSTROUTING")
            elif how == "forward":
                rp = replace(rp, out_interface=entry.in_interface, out_known=entry.in_interface is not None)
                hooks = ("PREROUTING", "FORWARD", "POSTROUTING")
            else:
                hooks = ("PREROUTING", "INPUT")
            for hook in hooks:
                if hook in ("FORWARD", "INPUT", "POSTROUTING") and hook == hooks[1]:
                    for t in src_nat:  # de-SNAT happens in PREROUTING, before routing
                        to = t.before
                        hops.append(SimHop(node.name, out_if, "conntrack", "UN-SNAT",
                                           f"conntrack reverses the {t.type.upper()} of {t.rule.where()}: "
                                           f"destination {t.after or 'the translated address'} -> {to}",
                                           (t.rule.source,), t.rule, "PREROUTING"))
                        rp = replace(rp, dst=ipaddress.ip_address(_host(to)), dport=_port(to, rp.dport))
                verdict = self._reply_hook(engine, node, hook, rp, hops)
                if verdict is not None:
                    return tuple(hops), verdict, rp
            for t in dst_nat:  # de-DNAT happens at the last hook (POSTROUTING or INPUT)
                hops.append(SimHop(node.name, entry.in_interface, "conntrack", "UN-DNAT",
                                   f"conntrack reverses the DNAT of {t.rule.where()}: source {rp.endpoint('src')} -> "
                                   f"{t.before}", (t.rule.source,), t.rule, hooks[-1]))
                rp = replace(rp, src=ipaddress.ip_address(_host(t.before)), sport=_port(t.before, rp.sport))
            if how in ("forward", "local"):
                where = f" out {entry.in_interface}" if entry.in_interface else ""
                hops.append(SimHop(node.name, entry.in_interface, "send", "FORWARDED",
                                   f"{node.name} sends the reply {rp.endpoint('src')} -> {rp.endpoint('dst')}{where}"))
                if idx + 1 < len(visits):
                    verdict = self._reply_outer(node, entry.in_interface, visits[idx + 1][0], hops)
                    if verdict is not None:
                        return tuple(hops), verdict, rp
            else:
                hops.append(SimHop(node.name, None, "deliver", "DELIVERED",
                                   f"the reply {rp.endpoint('src')} -> {rp.endpoint('dst')} reaches the local socket "
                                   f"on {node.name} that sent the request"))
                return tuple(hops), "delivered", rp
        hops.append(SimHop(leg.visits[0][0].name, leg.visits[0][1].in_interface, "deliver", "DELIVERED",
                           f"the reply reaches the client {rp.endpoint('dst')} from {rp.endpoint('src')}, the "
                           "address it sent to"))
        return tuple(hops), "delivered", rp

    def _bridged_reply(self, node: NodeSnapshot, entry: PacketState, out_if: str | None, how: str,
                       dst_nat: list, src_nat: list, rp: PacketState) -> SimHop | None:
        """A DNATed request routed back out of the bridge it came in by (client and endpoint pods on
        one bridge, no masquerade): the endpoint answers the client's MAC directly, so the reply is
        bridged, and only br_netfilter (``bridge-nf-call-iptables = 1``) hands it to conntrack to undo
        the DNAT. Without it the client gets the answer from the endpoint's own address and resets it."""
        if how != "forward" or not dst_nat or src_nat or out_if is None or entry.in_interface != out_if:
            return None
        key, setting, ev = self._br_nf_call(node, rp.family)
        if setting != "0":
            return None
        return SimHop(node.name, out_if, "bridge", "BRIDGED",
                      f"the answer {rp.endpoint('src')} -> {rp.endpoint('dst')} goes straight across {out_if} to the "
                      f"client: bridged, and with {key} = 0 no iptables hook sees it, so conntrack never undoes the "
                      f"DNAT; the client gets it from {rp.endpoint('src')}, not {dst_nat[0].before}, and resets the "
                      "connection (BRIDGE_NF_CALL_DISABLED)", ev)

    def _reply_outer(self, node: NodeSnapshot, device: str | None, previous: NodeSnapshot,
                     hops: list[SimHop]) -> str | None:
        """A reply leaving through the overlay device the request came in by: its outer packet meets
        this node's OUTPUT/POSTROUTING and the previous node's PREROUTING/INPUT (e.g. a VXLAN port
        blocked on the client's node makes the connection one-way)."""
        iface = node.interface(device) if device else None
        if iface is None or not (iface.is_vxlan or iface.is_ipip):
            return None
        vx = iface.vxlan
        local = (vx.local if vx is not None else None) or node.node_ip
        prev_dev = previous.overlay_device()
        remote = (prev_dev.vxlan.local if prev_dev is not None and prev_dev.vxlan is not None else None) \
            or previous.node_ip
        if local is None or remote is None:
            return None
        is_vxlan = iface.is_vxlan
        port = vx.udp_port if vx is not None else None
        kind = f"the reply's {'VXLAN' if is_vxlan else 'IPIP'} packet {local} -> {remote}" + (
            f" (UDP {port})" if is_vxlan else "")
        outer = PacketState(local, remote, 17 if is_vxlan else 4, None, port if is_vxlan else None,
                            out_known=False, pref_src=local)
        hops.append(SimHop(node.name, device, "overlay", "OUTER", f"{kind} goes through {node.name}'s netfilter "
                                                                  "(OUTPUT, POSTROUTING)"))
        for hook in ("OUTPUT", "POSTROUTING"):
            verdict = self._reply_hook(self.engines.get(node.name), node, hook, outer, hops)
            if verdict is not None:
                return verdict
        in_if = self._iface_with_address(previous, remote)
        outer_in = replace(outer, in_interface=in_if, in_known=in_if is not None, pref_src=None)
        hops.append(SimHop(previous.name, in_if, "overlay", "OUTER", f"{kind} goes through {previous.name}'s "
                                                                      "netfilter (PREROUTING, INPUT)"))
        for hook in ("PREROUTING", "INPUT"):
            verdict = self._reply_hook(self.engines.get(previous.name), previous, hook, outer_in, hops)
            if verdict is not None:
                return verdict
        hops.append(SimHop(previous.name, prev_dev.name if prev_dev else None, "overlay", "DECAPSULATED",
                           f"{previous.name} decapsulates the reply"))
        return None

    def _reply_hook(self, engine, node: NodeSnapshot, hook: str, rp: PacketState, hops: list[SimHop]) -> str | None:
        """The reply through one hook of ``node``: iptables (when dumped), then for INPUT the
        nftables tables iptables-save does not show. None when it passes, else its fate."""
        if engine is not None:
            branches = engine.walk_hook(hook, rp)
            # a reply has no random choice to make; if a fork happens, report the heaviest branch
            b = max(branches, key=lambda x: x.probability)
            for s in b.steps:
                if s.action == "skip":  # "nat not consulted": said once, in the REPLIED hop
                    continue
                hops.append(_step_hop(node.name, rp.in_interface if hook in ("PREROUTING", "INPUT") else
                                      rp.out_interface, s))
            if b.verdict is not Verdict.ACCEPT:
                return _FATE.get(b.verdict.value, "unknown")
        found = self._nft_input(node, rp) if hook == "INPUT" else None
        if found is None:
            return None
        hops.append(found[1])
        return _FATE.get(found[0].verdict, "unknown")

_FATE = {"drop": "dropped", "reject": "rejected"}  # a verdict -> the reply's status


def _host(endpoint: str) -> str:
    if endpoint.startswith("["):
        return endpoint[1:].split("]")[0]
    return endpoint.rsplit(":", 1)[0] if endpoint.count(":") == 1 else endpoint


def _port(endpoint: str, default: int | None) -> int | None:
    if endpoint.startswith("["):
        rest = endpoint.split("]", 1)[1]
        return int(rest[1:]) if rest.startswith(":") else default
    if endpoint.count(":") == 1:
        return int(endpoint.rsplit(":", 1)[1])
    return default


# -- entry point ---------------------------------------------------------------------------------

def _source_node(nodes: Sequence[NodeSnapshot], src: IPAddress,
                 local_ips: Mapping[str, Sequence[str]], dst: IPAddress | None = None) -> tuple[NodeSnapshot, bool]:
    """The node the packet starts on, and whether the node itself sends it (OUTPUT path); from
    outside, the node it is addressed to (a NodePort), else the first."""
    for n in nodes:
        if src in n.local_addresses() or str(src) in local_ips.get(n.name, ()):
            return n, True
    for n in nodes:
        pod = n.pod_cidr
        if pod is not None and src.version == pod.version and src in pod:
            return n, False
    return next((n for n in nodes if dst is not None and n.interface_of_address(dst) is not None), nodes[0]), False


def _guess_in_interface(node: NodeSnapshot, src: IPAddress, dst: IPAddress | None = None
                        ) -> tuple[str | None, str | None]:
    """The interface a packet from ``src`` arrives on: the bridge for a local pod; the device holding
    ``dst`` when it is one of the node's addresses (a second NIC's address is reached through that
    NIC); else the device of the route back to ``src``. Returns (interface, why)."""
    pod = node.pod_cidr
    if pod is not None and src.version == pod.version and src in pod:
        bridge = next((i.name for i in node.interfaces if i.kind == "bridge" and any(src in a.network for a in
                                                                                     i.addresses)), None)
        if bridge:
            return bridge, f"{src} is a pod on {node.name}: it arrives on the bridge {bridge}"
    owner = node.interface_of_address(dst) if dst is not None else None
    if owner is not None and owner.name != "lo" and owner.kind not in ("bridge", "vxlan", "ipip") \
            and not (pod is not None and dst in pod):
        return owner.name, f"{dst} is {owner.name}'s address: a packet sent to it arrives on {owner.name}"
    if node.routes:
        d = lookup_route(node, src)
        if d.kind == "unicast" and d.out_interface:
            return d.out_interface, f"the route back to {src} uses {d.out_interface}: it arrives there"
    return None, None


def simulate_packet(
    nodes: Sequence[NodeSnapshot],
    src: str,
    dst: str,
    proto: str | int,
    sport: int | None = None,
    dport: int | None = None,
    in_interface: str | None = None,
    *,
    local_ips: Mapping[str, Sequence[str]] | Sequence[str] = (),
    out_interface: str | None = None,
    start_node: str | None = None,
    mark: int = 0,
    length: int | None = None,
    icmp_type: int | None = None,
    df: bool = True,
) -> SimulationResult:
    """Walk one first packet (conntrack NEW) from ``src`` to ``dst`` through ``nodes``.

    ``local_ips`` are the node's own addresses for a bare iptables-save (a list applies to every
    node, a mapping gives them per node name). ``out_interface`` stands in for the routing
    decision when a node has no routing dump. ``length`` is the IP total length (for ``-m length``
    and the MTU check of forwarded packets, with ``df`` the Don't Fragment bit).
    """
    if not nodes:
        raise ValueError("simulate_packet needs at least one node")
    if not isinstance(local_ips, Mapping):
        ips = tuple(local_ips)
        local_ips = {n.name: ips for n in nodes}
    saddr = ipaddress.ip_address(str(src))
    daddr = ipaddress.ip_address(str(dst))
    if saddr.version != daddr.version:
        raise ValueError(f"{src} and {dst} are not of the same IP family")
    num = proto_number(proto)
    if num is None:
        raise ValueError(f"unknown protocol {proto!r}")
    pname = proto_name(num)
    sport_given = sport is not None
    if num in (6, 17, 132) and sport is None:
        sport = 40000
    if num in (1, 58) and icmp_type is None:
        icmp_type = 8 if num == 1 else 128
    sim = _Simulator(nodes, local_ips, out_interface, saddr.version)
    sim.df = df
    if start_node is not None:
        node = next((n for n in nodes if n.name == start_node), None)
        if node is None:
            raise ValueError(f"no node named {start_node!r}")
        locally = saddr in node.local_addresses() or str(saddr) in local_ips.get(node.name, ())
    else:
        node, locally = _source_node(nodes, saddr, local_ips, daddr)
    warnings: list[str] = []
    why = None
    if not locally and in_interface is None:
        in_interface, why = _guess_in_interface(node, saddr, daddr)
    packet = PacketState(saddr, daddr, num, sport if num in (6, 17, 132) else None,
                         dport if num in (6, 17, 132) else None,
                         in_interface=None if locally else in_interface,
                         in_known=locally or in_interface is not None, out_known=False, mark=mark,
                         icmp_type=icmp_type, icmp_code=0 if icmp_type is not None else None, length=length)
    for n in nodes:
        if n.name not in sim.engines:
            what = "iptables-save" if saddr.version == 4 else "ip6tables-save"
            warnings.append(f"node {n.name}: no {what} dump: netfilter is not simulated there")
    outcomes = sim.run(node, packet, locally)
    if why:
        outcomes = [replace(o, assumptions=(why, *o.assumptions)) for o in outcomes]
    total = sum(o.probability for o in outcomes)
    if outcomes and abs(total - 1.0) > 1e-6:
        warnings.append(f"outcome probabilities sum to {total:.6f}, not 1")
    outcomes.sort(key=lambda o: (-o.probability, o.status))
    sim_packet = SimPacket(str(saddr), str(daddr), pname, packet.sport, packet.dport, node.name,
                           None if locally else in_interface)
    tracked = _tracked(nodes, saddr, daddr, pname, sport if sport_given else None, packet.dport, outcomes)
    for t in tracked:
        if t.stale:
            warnings.append(f"{t.source}: conntrack on {t.node} still sends this connection to {t.replies_from}, "
                            "which the current rules no longer choose (a stale entry: its packets keep going there "
                            "until it expires or `conntrack -D` removes it)")
    return SimulationResult(sim_packet, tuple(outcomes), tuple(warnings + sim.warnings),
                            tuple(n.name for n in nodes), tracked)


def _tracked(nodes: Sequence[NodeSnapshot], src: IPAddress, dst: IPAddress, proto: str, sport: int | None,
             dport: int | None, outcomes: Sequence[SimOutcome]) -> tuple[TrackedConnection, ...]:
    """Connections of the nodes' ``conntrack -L`` dumps whose original direction is this packet's."""
    chosen = {o.dnat for o in outcomes if o.probability > 0}
    chosen_ok = all(o.status in ("forwarded", "local") for o in outcomes if o.probability > 0)
    found = []
    for n in nodes:
        for e in n.conntrack:
            o, r = e.orig, e.reply
            if o is None or r is None or e.proto != proto or o.src != src or o.dst != dst:
                continue
            if dport is not None and o.dport != dport or sport is not None and o.sport != sport:
                continue
            replies = f"{r.src}:{r.sport}" if r.sport is not None else str(r.src)
            if r.src.version == 6 and r.sport is not None:
                replies = f"[{r.src}]:{r.sport}"
            stale = e.dnat and chosen_ok and bool(chosen) and replies not in chosen
            found.append(TrackedConnection(n.name, e.source, e.state, replies, e.unreplied, stale, o.sport))
            if len(found) >= 20:
                return tuple(found)
    return tuple(found)
