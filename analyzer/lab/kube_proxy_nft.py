"""Generate the ``table ip kube-proxy`` ruleset kube-proxy's nftables mode writes, as ``nft list`` text.

Follows ``pkg/proxy/nftables/proxier.go`` (kube-proxy 1.31+, GA in 1.33): the eight base chains
(``filter-*`` at ``dstnat - 10``, ``filter-output-post-dnat`` at ``dstnat + 10``, ``nat-*``), the
top-level chains they jump to, the sets/maps that dispatch on ``daddr . l4proto . dport``
(``service-ips``, ``service-nodeports``, ``no-endpoint-services``, ``no-endpoint-nodeports``,
``firewall-ips``) and, per service port, ``service-``/``local-``/``external-``/``firewall-`` chains and
per endpoint ``endpoint-`` chains (plus ``affinity-`` sets for ``sessionAffinity: ClientIP``).

Names are computed as kube-proxy computes them (``hashAndTruncate``): the first 8 characters of
base32(sha256(name)) then ``-name``, where name is ``ns/svc/proto/portname`` for a service port
and ``ns/svc/proto/portname__ip/port`` for an endpoint (``:`` of an IPv6 address turned into ``.``).

The text is what ``nft list ruleset`` prints back after ``nft -f`` of it (nftables 1.0.6): objects
in kube-proxy's creation order, priorities as nft names them, marks as 32-bit hex, one-element
anonymous sets as plain values. It takes the same ``ServicePortSpec``/``Endpoint`` inputs as
``analyzer.lab.kube_proxy`` (the iptables mode), so one scenario description yields either mode.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from analyzer.lab.kube_proxy import Endpoint, ServicePortSpec, chain_hash

__all__ = [
    "TABLE",
    "endpoint_chain_base",
    "generate_ruleset",
    "hash_and_truncate",
    "nft_duration",
    "service_chain_base",
]

TABLE = "kube-proxy"
NAME_LENGTH_MAX = 256  # knftables.NameLengthMax
CHAIN_NAME_BASE_LENGTH_MAX = NAME_LENGTH_MAX - 16  # minus chainNamePrefixLengthMax

# kube-proxy's base chains: (name, type, hook, priority as `nft list` prints it).
# knftables writes "dstnat-10" etc.; nft names a priority only where the standard name is defined
# for that hook (dstnat: prerouting; srcnat: postrouting) and prints the number elsewhere.
BASE_CHAINS: tuple[tuple[str, str, str, str], ...] = (
    ("filter-prerouting", "filter", "prerouting", "dstnat - 10"),
    ("filter-input", "filter", "input", "-110"),
    ("filter-forward", "filter", "forward", "-110"),
    ("filter-output", "filter", "output", "-110"),
    ("filter-output-post-dnat", "filter", "output", "-90"),
    ("nat-prerouting", "nat", "prerouting", "dstnat"),
    ("nat-output", "nat", "output", "-100"),
    ("nat-postrouting", "nat", "postrouting", "srcnat"),
)

# nftablesJumpChains: (destination chain, source chain, extra match)
JUMP_CHAINS: tuple[tuple[str, str, str], ...] = (
    ("nodeport-endpoints-check", "filter-input", "ct state new"),
    ("service-endpoints-check", "filter-input", "ct state new"),
    ("service-endpoints-check", "filter-forward", "ct state new"),
    ("service-endpoints-check", "filter-output", "ct state new"),
    ("firewall-check", "filter-prerouting", "ct state new"),
    ("firewall-check", "filter-output", "ct state new"),
    ("services", "nat-output", ""),
    ("services", "nat-prerouting", ""),
    ("masquerading", "nat-postrouting", ""),
    ("cluster-ips-check", "filter-forward", "ct state new"),
    ("cluster-ips-check", "filter-output-post-dnat", "ct state new"),
)


def hash_and_truncate(name: str) -> str:
    """kube-proxy's ``hashAndTruncate``: ``base32(sha256(name))[:8] + "-" + name``, cut to 240 characters."""
    name = f"{chain_hash(name)[:8]}-{name}"  # the iptables mode's hash, 8 characters of it
    if len(name) > CHAIN_NAME_BASE_LENGTH_MAX:
        name = name[:CHAIN_NAME_BASE_LENGTH_MAX - 3] + "..."
    return name


def service_chain_base(spec: ServicePortSpec) -> str:
    """``servicePortChainNameBase``: e.g. ``ULMVA6XW-ns1/svc1/tcp/p80``."""
    return hash_and_truncate(f"{spec.namespace}/{spec.name}/{spec.proto}/{spec.port_name}")


def endpoint_chain_base(spec: ServicePortSpec, endpoint: Endpoint) -> str:
    """``servicePortEndpointChainNameBase``: e.g. ``5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80``."""
    ip = endpoint.ip.replace(":", ".")
    return hash_and_truncate(f"{spec.namespace}/{spec.name}/{spec.proto}/{spec.port_name}__{ip}/{endpoint.port}")


def nft_duration(seconds: int) -> str:
    """A timeout as ``nft list`` prints it: ``3h``, ``1m30s``, ``10s``."""
    if seconds <= 0:
        return "0s"
    out = ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            out += f"{seconds // size}{unit}"
            seconds %= size
    return out


def _mark(value: int) -> str:
    return f"0x{value:08x}"


def _q(text: str) -> str:
    return '"' + text.replace('"', '\\"') + '"'


def _anon(values: Sequence[str]) -> str:
    """An anonymous set as nft prints it back: one element stands alone."""
    return values[0] if len(values) == 1 else "{ " + ", ".join(values) + " }"


def _addr(text: str) -> str:
    return str(ipaddress.ip_address(text))


def _cidr(text: str) -> str:
    return str(ipaddress.ip_network(text, strict=False))


@dataclass(frozen=True, slots=True)
class _Names:
    cluster: str
    local: str
    external: str
    firewall: str


def _names(spec: ServicePortSpec) -> _Names:
    base = service_chain_base(spec)
    return _Names(f"service-{base}", f"local-{base}", f"external-{base}", f"firewall-{base}")


class _Table:
    """Sets, maps and chains in creation order, rendered the way ``nft list table`` prints them."""

    def __init__(self) -> None:
        self.sets: dict[str, dict] = {}
        self.chains: dict[str, dict] = {}

    def set(self, name: str, kind: str, type_: str, comment: str | None = None, flags: str | None = None,
            timeout: int | None = None) -> None:
        self.sets.setdefault(name, {"kind": kind, "type": type_, "comment": comment, "flags": flags,
                                    "timeout": timeout, "elements": []})

    def element(self, name: str, text: str) -> None:
        elements = self.sets[name]["elements"]
        if text not in elements:
            elements.append(text)

    def chain(self, name: str, head: str | None = None, comment: str | None = None) -> None:
        self.chains.setdefault(name, {"head": head, "comment": comment, "rules": []})

    def rule(self, chain: str, text: str) -> None:
        self.chain(chain)
        self.chains[chain]["rules"].append(text)

    def render(self, family: str, name: str) -> str:
        blocks: list[list[str]] = []
        for set_name, s in self.sets.items():
            lines = [f"\t{s['kind']} {set_name} {{", f"\t\ttype {s['type']}"]
            if s["flags"] and "dynamic" in s["flags"]:
                lines.append("\t\tsize 65535")  # the kernel's default size for a set rules add to
            if s["flags"]:
                lines.append(f"\t\tflags {s['flags']}")
            if s["timeout"] is not None:
                lines.append(f"\t\ttimeout {nft_duration(s['timeout'])}")
            if s["comment"]:
                lines.append(f"\t\tcomment {_q(s['comment'])}")
            if s["elements"]:
                elements = s["elements"]
                if s["kind"] == "set":  # nft lists a plain address set in address order
                    elements = sorted(elements, key=ipaddress.ip_address)
                lines.extend(_elements(elements))
            lines.append("\t}")
            blocks.append(lines)
        for chain_name, c in self.chains.items():
            lines = [f"\tchain {chain_name} {{"]
            if c["comment"]:
                lines.append(f"\t\tcomment {_q(c['comment'])}")
            if c["head"]:
                lines.append(f"\t\t{c['head']}")
            lines.extend(f"\t\t{rule}" for rule in c["rules"])
            lines.append("\t}")
            blocks.append(lines)
        out = [f"table {family} {name} {{", f"\tcomment {_q('rules for kube-proxy')}"]
        for i, block in enumerate(blocks):
            if i:
                out.append("")
            out.extend(block)
        out.append("}")
        return "\n".join(out) + "\n"


def _elements(elements: list[str]) -> list[str]:
    """``elements = { a, b, ... }``: nft puts each element of a concatenated map on its own line."""
    if len(elements) == 1:
        return [f"\t\telements = {{ {elements[0]} }}"]
    lines = [f"\t\telements = {{ {elements[0]},"]
    for element in elements[1:-1]:
        lines.append(f"\t\t\t     {element},")
    lines.append(f"\t\t\t     {elements[-1]} }}")
    return lines


def generate_ruleset(
    services: Iterable[ServicePortSpec],
    *,
    cluster_cidr: str | None = "10.244.0.0/16",
    service_cidrs: Sequence[str] = ("10.96.0.0/12",),
    nodeport_ips: Sequence[str] | None = (),
    node_ip: str | None = None,
    masquerade_all: bool = False,
    masquerade_bit: int = 14,
    family: str = "ip",
) -> str:
    """kube-proxy's nftables ruleset for ``services``, as ``nft list table`` text (also valid ``nft -f`` input).

    ``cluster_cidr`` is ``--cluster-cidr`` (the local traffic detector: ``ip saddr != CIDR``);
    ``service_cidrs`` the ServiceCIDRs (traffic to an unallocated ClusterIP is dropped);
    ``nodeport_ips`` the node addresses NodePorts accept (``--nodeport-addresses``, by default the
    node's primary IP), or None for "all local addresses" (``fib daddr type local``);
    ``family`` ``ip`` or ``ip6`` (services of the other family are left out, as each family has
    its own proxier and table).
    """
    if family not in ("ip", "ip6"):
        raise ValueError(f"family must be ip or ip6, not {family!r}")
    version = 4 if family == "ip" else 6
    ipx, addr_type = family, ("ipv4_addr" if version == 4 else "ipv6_addr")
    no_localhost = "ip daddr != 127.0.0.0/8" if version == 4 else "ip6 daddr != ::1"
    mark = _mark(1 << masquerade_bit)
    t = _Table()

    def same_family(text: str) -> bool:
        return ipaddress.ip_network(text, strict=False).version == version

    # -- setupNFTables ------------------------------------------------------------------------
    for name, ctype, hook, priority in BASE_CHAINS:
        t.chain(name, head=f"type {ctype} hook {hook} priority {priority}; policy accept;")
    for dst, src, extra in JUMP_CHAINS:
        t.chain(dst)
        t.rule(src, f"{extra} jump {dst}".strip())
    for name in ("services", "cluster-ips-check", "masquerading", "mark-for-masquerade"):
        t.chain(name)
    t.rule("mark-for-masquerade", f"meta mark set meta mark | {mark}")
    t.rule("masquerading", f"meta mark & {mark} == {_mark(0)} return")
    t.rule("masquerading", f"meta mark set meta mark ^ {mark}")
    t.rule("masquerading", "masquerade fully-random")
    t.set("cluster-ips", "set", addr_type, "Active ClusterIPs")
    t.rule("cluster-ips-check", f'{ipx} daddr @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs"')
    cidrs = [_cidr(c) for c in service_cidrs if same_family(c)]
    if cidrs:
        t.rule("cluster-ips-check", f'{ipx} daddr {_anon(cidrs)} drop comment "Drop traffic to unallocated ClusterIPs"')
    match_all = nodeport_ips is None
    if not match_all:
        t.set("nodeport-ips", "set", addr_type, "IPs that accept NodePort traffic")
        for ip in nodeport_ips or ():
            if same_family(ip) and not ipaddress.ip_address(ip).is_loopback:
                t.element("nodeport-ips", _addr(ip))
    t.set("no-endpoint-services", "map", f"{addr_type} . inet_proto . inet_service : verdict",
          "vmap to drop or reject packets to services with no endpoints")
    t.set("no-endpoint-nodeports", "map", "inet_proto . inet_service : verdict",
          "vmap to drop or reject packets to service nodeports with no endpoints")
    t.chain("reject-chain", comment="helper for @no-endpoint-services / @no-endpoint-nodeports")
    t.rule("reject-chain", "reject")
    t.rule("service-endpoints-check", f"{ipx} daddr . meta l4proto . th dport vmap @no-endpoint-services")
    if match_all:
        t.rule("nodeport-endpoints-check", f"{no_localhost} meta l4proto . th dport vmap @no-endpoint-nodeports")
    else:
        t.rule("nodeport-endpoints-check",
               f"{ipx} daddr @nodeport-ips meta l4proto . th dport vmap @no-endpoint-nodeports")
    t.set("firewall-ips", "map", f"{addr_type} . inet_proto . inet_service : verdict",
          "destinations that are subject to LoadBalancerSourceRanges")
    t.rule("firewall-check", f"{ipx} daddr . meta l4proto . th dport vmap @firewall-ips")
    t.set("service-ips", "map", f"{addr_type} . inet_proto . inet_service : verdict",
          "ClusterIP, ExternalIP and LoadBalancer IP traffic")
    t.set("service-nodeports", "map", "inet_proto . inet_service : verdict", "NodePort traffic")
    t.rule("services", f"{ipx} daddr . meta l4proto . th dport vmap @service-ips")
    if match_all:
        t.rule("services", f"fib daddr type local {no_localhost} meta l4proto . th dport vmap @service-nodeports")
    else:
        t.rule("services", f"{ipx} daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports")
    # -- syncProxyRules -----------------------------------------------------------------------
    for spec in services:
        if not same_family(spec.cluster_ip):
            continue
        _service(t, spec, ipx, addr_type, cluster_cidr, node_ip, masquerade_all, same_family)
    return t.render(family, TABLE)


def _service(t: _Table, spec: ServicePortSpec, ipx: str, addr_type: str, cluster_cidr: str | None,  # noqa: C901
             node_ip: str | None, masquerade_all: bool, same_family) -> None:  # noqa: ANN001
    names = _names(spec)
    proto = spec.proto
    comment = _q(spec.port_name_string)
    endpoints = [e for e in spec.endpoints if same_family(e.ip)]
    local_eps = [e for e in endpoints if e.local]
    has_endpoints = bool(endpoints)
    externally = bool(spec.node_port or spec.external_ips or spec.load_balancer_ips)
    # proxy.CategorizeEndpoints and UsesClusterEndpoints: the Cluster-policy chain exists when internal
    # traffic is Cluster or the service is reachable from outside at all (even with externalTrafficPolicy
    # Local, whose short-circuit rules jump to it); the Local-policy chain holds only this node's
    uses_cluster = has_endpoints and (not spec.internal_local or externally)
    uses_local = bool(local_eps) and (spec.internal_local or spec.external_local)
    reachable = [e for e in endpoints if uses_cluster or e.local]
    has_internal = has_endpoints and (not spec.internal_local or bool(local_eps))
    has_external = has_endpoints and (not spec.external_local or bool(local_eps))
    internal_chain = names.local if spec.internal_local else names.cluster
    external_policy = names.local if spec.external_local else names.cluster
    uses_external = has_endpoints and externally
    if not has_endpoints:
        internal_verdict = external_verdict = "goto reject-chain"
    else:
        internal_verdict = "" if has_internal else "drop"
        external_verdict = "" if has_external else "drop"
    epchains = {e: f"endpoint-{endpoint_chain_base(spec, e)}" for e in reachable}
    for ep in reachable:
        t.chain(epchains[ep])
    if uses_cluster:
        t.chain(names.cluster)
    if uses_local:
        t.chain(names.local)
    if uses_external:
        t.chain(names.external)
    lb_ips = [_addr(ip) for ip in spec.load_balancer_ips if same_family(ip)]
    uses_fw = bool(lb_ips) and bool(spec.load_balancer_source_ranges)
    if uses_fw:
        t.chain(names.firewall)
    cip, port = _addr(spec.cluster_ip), spec.port
    t.element("cluster-ips", cip)
    if has_internal:
        t.element("service-ips", f"{cip} . {proto} . {port} : goto {internal_chain}")
    else:
        t.element("no-endpoint-services", f"{cip} . {proto} . {port} comment {comment} : {internal_verdict}")
    for eip in (_addr(ip) for ip in spec.external_ips if same_family(ip)):
        if has_endpoints:
            t.element("service-ips", f"{eip} . {proto} . {port} : goto {names.external}")
        if not has_external:
            t.element("no-endpoint-services", f"{eip} . {proto} . {port} comment {comment} : {external_verdict}")
    for lbip in lb_ips:
        if has_endpoints:
            t.element("service-ips", f"{lbip} . {proto} . {port} : goto {names.external}")
        if uses_fw:
            t.element("firewall-ips", f"{lbip} . {proto} . {port} : goto {names.firewall}")
    if not has_external:
        for lbip in lb_ips:
            t.element("no-endpoint-services", f"{lbip} . {proto} . {port} comment {comment} : {external_verdict}")
    if spec.node_port:
        if has_endpoints:
            t.element("service-nodeports", f"{proto} . {spec.node_port} : goto {names.external}")
        if not has_external:
            t.element("no-endpoint-nodeports", f"{proto} . {spec.node_port} comment {comment} : {external_verdict}")
    # internal traffic: masquerade off-cluster sources
    if has_internal:
        head = f"{ipx} daddr {cip} {proto} dport {port}"
        if masquerade_all:
            t.rule(internal_chain, f"{head} jump mark-for-masquerade")
        elif cluster_cidr and same_family(cluster_cidr):
            t.rule(internal_chain, f"{head} {ipx} saddr != {_cidr(cluster_cidr)} jump mark-for-masquerade")
    if uses_external:
        if not spec.external_local:
            t.rule(names.external, "jump mark-for-masquerade")
        else:
            if cluster_cidr and same_family(cluster_cidr):
                t.rule(names.external, f'{ipx} saddr {_cidr(cluster_cidr)} goto {names.cluster} '
                                       'comment "short-circuit pod traffic"')
            t.rule(names.external, 'fib saddr type local jump mark-for-masquerade comment "masquerade local traffic"')
            t.rule(names.external, f'fib saddr type local goto {names.cluster} comment "short-circuit local traffic"')
        if has_external:
            t.rule(names.external, f"goto {external_policy}")
    if uses_fw:
        sources = [_cidr(c) for c in spec.load_balancer_source_ranges]
        if node_ip and any(ipaddress.ip_address(node_ip) in ipaddress.ip_network(c, strict=False)
                           for c in spec.load_balancer_source_ranges):
            sources += lb_ips
        t.rule(names.firewall, f"{ipx} saddr != {_anon(sources)} drop")
    affinity = spec.session_affinity_seconds
    if affinity:
        for ep in reachable:
            t.set(epchains[ep].replace("endpoint-", "affinity-", 1), "set", addr_type, flags="dynamic,timeout",
                  timeout=affinity)
    if uses_cluster:
        _endpoint_rules(t, names.cluster, endpoints, epchains, ipx, affinity)
    if uses_local:
        _endpoint_rules(t, names.local, local_eps, epchains, ipx, affinity)
    for ep in reachable:
        chain = epchains[ep]
        t.rule(chain, f"{ipx} saddr {_addr(ep.ip)} jump mark-for-masquerade")
        if affinity:
            t.rule(chain, f"update @{chain.replace('endpoint-', 'affinity-', 1)} {{ {ipx} saddr }}")
        t.rule(chain, f"meta l4proto {proto} dnat to {ep}")


def _endpoint_rules(t: _Table, chain: str, endpoints: list[Endpoint], epchains: dict[Endpoint, str], ipx: str,
                    affinity: int | None) -> None:
    """``writeServiceToEndpointRules``: affinity lookups, then one ``numgen random`` vmap."""
    if affinity:
        for ep in endpoints:
            t.rule(chain, f"{ipx} saddr @{epchains[ep].replace('endpoint-', 'affinity-', 1)} goto {epchains[ep]}")
    if not endpoints:
        return
    arms = ", ".join(f"{i} : goto {epchains[ep]}" for i, ep in enumerate(endpoints))
    t.rule(chain, f"numgen random mod {len(endpoints)} vmap {{ {arms} }}")
