"""The kernel's FIB lookup, offline: ``ip rule`` order, then the tables it names.

``lookup_route`` walks the policy rules in ``pref`` order (the kernel's three default rules when
the bundle has no ``ip rule`` dump), looks each rule's table up by longest prefix then metric,
honours ``throw``, ``goto``, ``suppress_prefixlength`` and the blackhole/unreachable/prohibit
actions and route types, and picks the next hop and the preferred source address the way the
kernel does. The local table is the dump's, or, when the dump has none, one built from the node's
addresses. The result keeps every route it weighed (``candidates``), the rule that gave the
answer, one learner-readable sentence, and the dump lines behind it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from analyzer.model.node import (
    DROP_ROUTE_TYPES,
    IPAddress,
    IpRule,
    NodeSnapshot,
    Route,
    RouteDecision,
    table_name,
)
from analyzer.model.refs import SourceRef

DEFAULT_RULES_SOURCE = "(kernel default rules)"

#: what the kernel does for a drop route type, in words a learner reads
_DROP_WORDS = {
    "blackhole": "silently discards it (no ICMP error)",
    "unreachable": "discards it and answers ICMP host unreachable (EHOSTUNREACH locally)",
    "prohibit": "discards it and answers ICMP administratively prohibited (EACCES locally)",
}


def default_rules(family: int = 4) -> tuple[IpRule, ...]:
    """The rules every Linux kernel starts with: 0 local, 32766 main, 32767 default."""
    lines = ("0:\tfrom all lookup local", "32766:\tfrom all lookup main", "32767:\tfrom all lookup default")
    return tuple(
        IpRule(pref, SourceRef(DEFAULT_RULES_SOURCE, n, text), table=table, family=family)
        for n, (pref, table, text) in enumerate(zip((0, 32766, 32767), ("local", "main", "default"), lines), 1)
    )


def local_table(node: NodeSnapshot, family: int = 4) -> tuple[Route, ...]:
    """The node's local table: the dump's routes of table ``local`` or, without them, routes built
    from every configured address (``local`` per address, ``broadcast`` per IPv4 subnet, 127/8)."""
    dumped = _index(node).get(("local", family), ())
    if dumped:
        return dumped
    built: list[Route] = []
    for iface in node.interfaces:
        for addr, ref in zip(iface.addresses, iface.address_sources or (iface.source,) * len(iface.addresses)):
            if addr.version != family:
                continue
            built.append(Route(dst=ipaddress.ip_network(addr.ip), source=ref, table="local", type="local",
                               dev=iface.name, src=addr.ip, scope="host", proto="kernel"))
            if family == 4 and addr.network.prefixlen < 31:
                built.append(Route(dst=ipaddress.ip_network(addr.network.broadcast_address), source=ref,
                                   table="local", type="broadcast", dev=iface.name, src=addr.ip,
                                   scope="link", proto="kernel"))
            if addr.ip.is_loopback and addr.network.prefixlen < addr.max_prefixlen:
                built.append(Route(dst=addr.network, source=ref, table="local", type="local",
                                   dev=iface.name, src=addr.ip, scope="host", proto="kernel"))
    return tuple(built)


#: id(node.routes) -> (node.routes, {(table, family): routes}); holding the tuple keeps its id unique
_TABLES: dict[int, tuple[tuple[Route, ...], dict[tuple[str, int], tuple[Route, ...]]]] = {}
_TABLES_MAX = 64


def table_routes(node: NodeSnapshot, table: str, family: int = 4) -> tuple[Route, ...]:
    """All routes of ``table`` ("main", "local", "100"...) for one address family."""
    name = table_name(table)
    if name == "local":
        return local_table(node, family)
    return _index(node).get((name, family), ())


def _index(node: NodeSnapshot) -> dict[tuple[str, int], tuple[Route, ...]]:
    cached = _TABLES.get(id(node.routes))
    if cached is None or cached[0] is not node.routes:
        index: dict[tuple[str, int], list[Route]] = {}
        for route in node.routes:
            index.setdefault((route.table, route.family), []).append(route)
        if len(_TABLES) >= _TABLES_MAX:
            _TABLES.pop(next(iter(_TABLES)))
        cached = (node.routes, {k: tuple(v) for k, v in index.items()})
        _TABLES[id(node.routes)] = cached
    return cached[1]


def matching_routes(routes: Iterable[Route], dst: IPAddress, *, tos: int | None = None) -> list[Route]:
    """Routes covering ``dst``, best first: longest prefix, then lowest metric, then dump order."""
    found = [(i, r) for i, r in enumerate(routes) if dst in r.dst and (r.tos in (None, 0) or r.tos == tos)]
    found.sort(key=lambda item: (-item[1].dst.prefixlen, item[1].metric, item[0]))
    return [r for _, r in found]


def rule_matches(rule: IpRule, *, dst: IPAddress, src: IPAddress | None, iif: str | None, mark: int,
                 tos: int | None = None) -> bool:
    """Does the packet match the rule's selectors (then ``not`` inverts the answer)?"""
    matched = True
    if rule.tos is not None:
        matched = (tos or 0) == rule.tos
    if matched and rule.src is not None:
        matched = src is not None and src in rule.src
    if matched and rule.dst is not None:
        matched = dst in rule.dst
    if matched and rule.iif is not None:
        matched = (iif or "lo") == rule.iif  # locally generated packets carry iif lo in the lookup
    if matched and rule.oif is not None:
        matched = False  # an output-interface bound socket: not modelled for a routed packet
    if matched and rule.fwmark is not None:
        mask = rule.fwmask if rule.fwmask is not None else 0xFFFFFFFF
        matched = (mark & mask) == (rule.fwmark & mask)
    return matched != rule.invert


def _parse_ip(value: str | IPAddress | None) -> IPAddress | None:
    if value is None:
        return None
    return ipaddress.ip_address(str(value).split("%", 1)[0])


def lookup_route(
    node: NodeSnapshot,
    dst: str | IPAddress,
    *,
    src: str | IPAddress | None = None,
    iif: str | None = None,
    mark: int = 0,
    table: str | None = None,
    tos: int | None = None,
) -> RouteDecision:
    """Decide what the kernel of ``node`` does with a packet to ``dst``.

    ``iif`` is the interface the packet arrived on (None: sent by the node itself), ``src`` its
    source address (None: not chosen yet), ``mark`` its fwmark. ``table`` skips the rules and
    looks up that one table (``ip route get ... table N``).
    """
    daddr = ipaddress.ip_address(str(dst).split("%", 1)[0])
    saddr = _parse_ip(src)
    family = daddr.version
    notes: list[str] = []
    candidates: list[Route] = []
    tried: list[IpRule] = []
    if table is not None:
        rules: tuple[IpRule, ...] = (IpRule(0, SourceRef("(--table)", 1, f"lookup {table}"), table=table_name(table)),)
        dumped_rules = False
    else:
        rules = tuple(sorted((r for r in node.rules if r.family == family), key=lambda r: r.pref))
        dumped_rules = bool(rules)
        if not rules:
            rules = default_rules(family)
    base = dict(dst=daddr, src=saddr, iif=iif, mark=mark)

    index = 0
    while index < len(rules):
        rule = rules[index]
        index += 1
        if not rule_matches(rule, dst=daddr, src=saddr, iif=iif, mark=mark, tos=tos):
            continue
        tried.append(rule)
        rule_ev = (rule.source,) if dumped_rules else ()
        if rule.action == "goto" and rule.goto is not None:
            target = rule.goto
            index = next((i for i, r in enumerate(rules) if r.pref >= target), len(rules))
            continue
        if rule.action == "nop":
            continue
        if rule.action in DROP_ROUTE_TYPES:
            return RouteDecision(
                kind=rule.action, rule=rule, candidates=tuple(candidates), evidence=rule_ev,
                explanation=f"ip rule {rule.pref} matches {daddr} and its action is {rule.action}: the kernel "
                            f"{_DROP_WORDS[rule.action]}.",
                rules_tried=tuple(tried), notes=tuple(notes), **base,  # type: ignore[arg-type]
            )
        if rule.table is None:
            continue
        found = [r for r in matching_routes(table_routes(node, rule.table, family), daddr, tos=tos)
                 if _usable(node, r, notes)]
        candidates.extend(found)
        if not found:
            continue
        best = found[0]
        if best.type == "throw":
            notes.append(f"table {rule.table}: throw route {best.dst} sends the lookup on to the next rule")
            continue
        if rule.suppress_prefixlength is not None and best.dst.prefixlen <= rule.suppress_prefixlength:
            notes.append(f"ip rule {rule.pref}: route {best.dst} suppressed (prefix length <= "
                         f"{rule.suppress_prefixlength})")
            continue
        decision = _decide(node, best, rule, tuple(candidates), tuple(tried), notes, dumped_rules, len(found), base)
        if iif not in (None, "lo") and saddr is not None and not decision.dropped and table is None:
            decision = _reverse_path_filter(node, decision, saddr, iif, mark)  # type: ignore[arg-type]
        return decision

    where = "the tables its ip rules name" if dumped_rules else "the local and main tables"
    return RouteDecision(
        kind="no-route", candidates=tuple(candidates), rules_tried=tuple(tried), notes=tuple(notes),
        evidence=tuple(r.source for r in tried if dumped_rules),
        explanation=f"No route in {where} covers {daddr} (no default route either): the kernel drops it "
                    "with 'network unreachable'.",
        **base,  # type: ignore[arg-type]
    )


def _usable(node: NodeSnapshot, route: Route, notes: list[str]) -> bool:
    """The kernel removes routes of an administratively down device; a dump taken then has none,
    but a dump of addresses and routes taken at different instants may: skip such a route."""
    if route.dev is None or route.type != "unicast" or not node.interfaces:
        return True
    iface = node.interface(route.dev)
    if iface is not None and iface.flags and not iface.up:
        notes.append(f"{route.source}: route {route.dst} ignored: device {route.dev} is down")
        return False
    return True


def _decide(node: NodeSnapshot, route: Route, rule: IpRule, candidates: tuple[Route, ...],
            tried: tuple[IpRule, ...], notes: list[str], dumped_rules: bool, weighed: int,
            base: dict[str, object]) -> RouteDecision:
    daddr: IPAddress = base["dst"]  # type: ignore[assignment]
    evidence: list[SourceRef] = []
    if dumped_rules:
        evidence.append(rule.source)
    evidence.append(route.source)
    table = route.table
    pick = f"the most specific of {weighed} matching routes" if weighed > 1 else "the only matching route"
    line = _route_text(route)
    if route.type in DROP_ROUTE_TYPES:
        return RouteDecision(
            kind=route.type, chosen=route, rule=rule, table=table, candidates=candidates, rules_tried=tried,
            evidence=tuple(evidence), notes=tuple(notes),
            explanation=f"{daddr} matches '{line}' in table {table} ({pick}): the kernel {_DROP_WORDS[route.type]}.",
            **base,  # type: ignore[arg-type]
        )
    if route.type in ("local", "broadcast", "multicast", "anycast"):
        what = {"local": "one of the node's own addresses", "broadcast": "a broadcast address of the node",
                "multicast": "a multicast address", "anycast": "an anycast address of the node"}[route.type]
        return RouteDecision(
            kind="local" if route.type in ("local", "anycast") else route.type, chosen=route, rule=rule,
            table=table, candidates=candidates, rules_tried=tried,
            out_interface="lo" if route.type in ("local", "anycast") else route.dev,  # as `ip route get` says
            pref_src=route.src, evidence=tuple(evidence), notes=tuple(notes),
            explanation=f"{daddr} is {what} ('{line}' in table {table}): the packet is delivered to the node "
                        "itself (INPUT), not forwarded.",
            **base,  # type: ignore[arg-type]
        )
    via, dev = route.via, route.dev
    if route.nexthops:
        notes.append(f"multipath route with {len(route.nexthops)} next hops: the kernel hashes each flow onto "
                     "one of them; the first is shown")
    next_hop = via if via is not None else daddr
    if via is not None and not route.onlink and not _gateway_on_link(node, via, dev):
        notes.append(f"gateway {via} is not inside any connected (scope link) route of {dev}: the kernel would "
                     "not have accepted this route without 'onlink'")
    pref_src, src_ref = select_source(node, route, next_hop)
    if src_ref is not None and src_ref not in evidence:
        evidence.append(src_ref)
    iif = base.get("iif")
    off = forwarding_off(node, iif) if isinstance(iif, str) and iif != "lo" and daddr.version == 4 else None
    if off is not None:
        # ip_route_input_slow(): forwarding off on the input device makes the route RTN_UNREACHABLE
        # (EHOSTUNREACH), and ip_error() then only counts InAddrErrors: no ICMP error is sent
        setting, refs = off
        return RouteDecision(
            kind="unreachable", chosen=route, rule=rule, table=table, candidates=candidates, rules_tried=tried,
            out_interface=dev, next_hop=via if via is not None else daddr, evidence=tuple(evidence) + refs,
            notes=tuple(notes) + (f"forward lookup: {daddr} matches '{_route_text(route)}' in table {table}, out "
                                  f"{dev}",),
            explanation=f"{daddr} is not one of the node's addresses and it came in on {iif}, where forwarding is "
                        f"off ({setting}): the kernel does not route it on (it would leave by {dev}) and drops "
                        "it silently, before the FORWARD chain, without an ICMP error.",
            **base,  # type: ignore[arg-type]
        )
    hop = (f"to gateway {via}" + (" (onlink: assumed directly reachable on the device)" if route.onlink else "")
           if via is not None else "directly (the destination is on the link)")
    explanation = (f"{daddr} matches '{line}' in table {table} ({pick}): sent out {dev} {hop}"
                   + (f", source address {pref_src}" if pref_src is not None and base.get("src") is None else "")
                   + ".")
    return RouteDecision(
        kind="unicast", chosen=route, rule=rule, table=table, candidates=candidates, rules_tried=tried,
        out_interface=dev, next_hop=next_hop, pref_src=pref_src, onlink=route.onlink, evidence=tuple(evidence),
        notes=tuple(notes), explanation=explanation, **base,  # type: ignore[arg-type]
    )


def _route_text(route: Route) -> str:
    text = route.source.text.strip()
    if text and not text.startswith(("{", "[")):
        return text
    parts = [] if route.type == "unicast" else [route.type]
    parts.append("default" if route.is_default else str(route.dst))
    if route.via is not None:
        parts += ["via", str(route.via)]
    if route.dev:
        parts += ["dev", route.dev]
    if route.onlink:
        parts.append("onlink")
    if route.metric:
        parts += ["metric", str(route.metric)]
    return " ".join(parts)


def _gateway_on_link(node: NodeSnapshot, via: IPAddress, dev: str | None) -> bool:
    for route in node.routes:
        if route.via is None and route.type == "unicast" and (dev is None or route.dev == dev) \
                and route.family == via.version and via in route.dst:
            return True
    iface = node.interface(dev) if dev else None
    return iface is not None and any(a.version == via.version and via in a.network for a in iface.addresses)


def select_source(node: NodeSnapshot, route: Route, next_hop: IPAddress) -> tuple[IPAddress | None, SourceRef | None]:
    """The kernel's preferred source: the route's ``src``, else an address of the outgoing device in
    the next hop's subnet, else its first address of that family, else any global address."""
    if route.src is not None:
        return route.src, None
    family = next_hop.version
    iface = node.interface(route.dev) if route.dev else None
    if iface is not None:
        pairs = list(zip(iface.addresses, iface.address_sources or (iface.source,) * len(iface.addresses)))
        usable = [(a, r) for a, r in pairs if a.version == family and not (family == 6 and a.ip.is_link_local)]
        for addr, ref in usable:
            if next_hop in addr.network:
                return addr.ip, ref
        if usable:
            return usable[0][0].ip, usable[0][1]
    for other in node.interfaces:
        for addr, ref in zip(other.addresses, other.address_sources or (other.source,) * len(other.addresses)):
            if addr.version == family and not addr.ip.is_loopback and not addr.ip.is_link_local:
                return addr.ip, ref
    return None, None



def forwarding_off(node: NodeSnapshot, iif: str) -> tuple[str, tuple[SourceRef, ...]] | None:
    """IPv4 forwarding is off for packets arriving on ``iif`` (the kernel's IN_DEV_FORWARD): the
    device's own ``conf.<iif>.forwarding`` when dumped, else ``conf.all.forwarding`` /
    ``net.ipv4.ip_forward`` (writing either sets every device). Returns the setting as the dump
    shows it and its lines (``net.ipv4.ip_forward`` first), None when forwarding is on or not dumped."""
    own = f"net.ipv4.conf.{iif}.forwarding"  # (the sysctl parser writes flannel/1 as flannel.1)
    keys = ("net.ipv4.ip_forward", "net.ipv4.conf.all.forwarding", own)
    values = {k: node.sysctl[k].strip() for k in keys if k in node.sysctl}
    value = values.get(own, values.get("net.ipv4.conf.all.forwarding", values.get("net.ipv4.ip_forward")))
    if value != "0":
        return None
    zero = [k for k in keys if values.get(k) == "0"]
    refs = tuple(r for r in (node.sysctl_sources.get(k) for k in zero) if r is not None)
    if len(refs) == len(zero):  # as the dump writes them (conf.flannel/1.forwarding)
        return ", ".join(r.text.strip() for r in refs), refs
    return ", ".join(f"{k} = 0" for k in zero), refs


def rp_filter_mode(node: NodeSnapshot, iif: str) -> tuple[int | None, tuple[SourceRef, ...]]:
    """The kernel's effective rp_filter for packets arriving on ``iif``: the larger of
    ``conf.all.rp_filter`` and ``conf.<iif>.rp_filter`` (None when the sysctl dump has neither)."""
    values: list[tuple[int, SourceRef | None]] = []
    for key in ("net.ipv4.conf.all.rp_filter", f"net.ipv4.conf.{iif}.rp_filter"):
        text = node.sysctl.get(key)
        if text is not None and text.strip().isdigit():
            values.append((int(text), node.sysctl_sources.get(key)))
    if not values:
        return None, ()
    mode = max(v for v, _ in values)
    refs = tuple(r for v, r in values if r is not None and (v == mode or mode == 0))
    return mode, refs


def _reverse_path_filter(node: NodeSnapshot, decision: RouteDecision, src: IPAddress, iif: str,
                         mark: int) -> RouteDecision:
    """fib_validate_source(): with rp_filter 1 (strict) the route back to the source must leave
    through the interface the packet came in on; with 2 (loose) it must merely exist."""
    import dataclasses

    if src.version != 4:
        return decision
    mode, refs = rp_filter_mode(node, iif)
    if not mode:
        return decision
    back = lookup_route(node, src, src=decision.dst, iif=None, mark=0)  # as the kernel: iif lo, no mark
    words = "strict" if mode == 1 else "loose"
    evidence = tuple(decision.evidence) + refs + tuple(r for r in back.evidence if r not in decision.evidence)
    reason = None
    if back.kind != "unicast" and back.kind != "local":
        reason = (f"there is no usable route back to source {src} ({back.kind})")
    elif back.kind == "local":
        reason = f"source {src} is one of the node's own addresses (a martian source)"
    elif mode == 1 and back.out_interface != iif:
        reason = (f"the route back to source {src} leaves via {back.out_interface}, not {iif} where the "
                  "packet came in")
    if reason is None:
        return dataclasses.replace(decision, notes=decision.notes + (
            f"rp_filter={mode} ({words}) on {iif}: the route back to {src} passes the check",))
    return dataclasses.replace(
        decision, kind="rp-filter", evidence=evidence,
        explanation=f"The reverse-path filter (rp_filter={mode}, {words}) on {iif} drops it: {reason}.",
        notes=decision.notes + (f"forward lookup: {decision.explanation}",),
    )
