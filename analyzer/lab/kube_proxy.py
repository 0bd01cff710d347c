"""Generate the iptables rules kube-proxy (iptables mode) and flannel write, as ``iptables-save`` text.

The chain names are computed exactly as kube-proxy computes them
(``pkg/proxy/iptables/proxier.go``: ``"KUBE-SVC-" + base32(sha256(servicePortName + protocol))[:16]``,
the endpoint string appended for ``KUBE-SEP-``), and the rule shapes follow current kube-proxy
(1.28+): ``KUBE-SERVICES`` dispatch, ``KUBE-MARK-MASQ``/``KUBE-POSTROUTING`` with
``MASQUERADE --random-fully``, ``-m statistic --mode random`` load balancing, ``-m recent``
affinity, ``KUBE-NODEPORTS`` behind ``addrtype --dst-type LOCAL``, ``KUBE-EXT-``/``KUBE-SVL-``
for ``externalTrafficPolicy: Local``, ``KUBE-FW-`` plus ``KUBE-PROXY-FIREWALL`` for
``loadBalancerSourceRanges``, and filter-table REJECT/DROP for services without (local)
endpoints. The text is what ``iptables-save`` prints after ``iptables-restore`` of kube-proxy's
input (options in save order, ``/32`` on addresses, probabilities with 11 decimals), so it can be
both loaded into a kernel and compared with what the kernel gives back.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

__all__ = [
    "Endpoint",
    "ServicePortSpec",
    "chain_hash",
    "endpoint_chain",
    "generate_rules",
    "probability_text",
    "service_chain",
]

MASQ_MARK = "0x4000/0x4000"
KUBE_SERVICES = "KUBE-SERVICES"


@dataclass(frozen=True, slots=True)
class Endpoint:
    ip: str
    port: int
    local: bool = False  # the endpoint runs on the node these rules are for

    def __str__(self) -> str:
        return f"[{self.ip}]:{self.port}" if ":" in self.ip else f"{self.ip}:{self.port}"


@dataclass(frozen=True, slots=True)
class ServicePortSpec:
    """One port of one Service, with what kube-proxy knows about it."""

    namespace: str
    name: str
    cluster_ip: str
    port: int
    endpoints: tuple[Endpoint, ...] = ()
    port_name: str = ""
    protocol: str = "tcp"
    node_port: int | None = None
    external_traffic_policy: str = "Cluster"  # or "Local"
    internal_traffic_policy: str = "Cluster"  # or "Local"
    session_affinity_seconds: int | None = None  # sessionAffinity: ClientIP with this timeout
    external_ips: tuple[str, ...] = ()
    load_balancer_ips: tuple[str, ...] = ()
    load_balancer_source_ranges: tuple[str, ...] = ()
    health_check_node_port: int | None = None
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def port_name_string(self) -> str:
        """``ServicePortName.String()``: ``ns/name:port`` (``ns/name`` for an unnamed port)."""
        base = f"{self.namespace}/{self.name}"
        return f"{base}:{self.port_name}" if self.port_name else base

    @property
    def proto(self) -> str:
        return self.protocol.lower()

    @property
    def external_local(self) -> bool:
        externally = bool(self.node_port or self.external_ips or self.load_balancer_ips)
        return externally and self.external_traffic_policy.lower() == "local"

    @property
    def internal_local(self) -> bool:
        return self.internal_traffic_policy.lower() == "local"


def chain_hash(text: str) -> str:
    """kube-proxy's ``portProtoHash``: the first 16 characters of base32(sha256(text))."""
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:16]


def service_chain(prefix: str, spec: ServicePortSpec) -> str:
    """``KUBE-SVC-``/``KUBE-SVL-``/``KUBE-EXT-``/``KUBE-FW-`` chain of a service port."""
    return f"{prefix}{chain_hash(spec.port_name_string + spec.proto)}"


def endpoint_chain(spec: ServicePortSpec, endpoint: Endpoint) -> str:
    return f"KUBE-SEP-{chain_hash(spec.port_name_string + spec.proto + str(endpoint))}"


def probability_text(n: int) -> str:
    """What ``iptables-save`` prints for kube-proxy's ``--probability`` of 1/n.

    kube-proxy writes ``%0.10f`` of 1/n; libxt_statistic stores ``lround(p * 2^31)`` and prints
    ``%.11f`` of it, hence ``0.33333333349`` for 1/3.
    """
    p = float(f"{1.0 / n:0.10f}")
    stored = int(p * 0x80000000 + 0.5)
    return f"{stored / 0x80000000:.11f}"


def _net(addr: str) -> str:
    if "/" in addr:
        return str(ipaddress.ip_network(addr, strict=False))
    ip = ipaddress.ip_address(addr)
    return f"{ip}/{ip.max_prefixlen}"


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _Tables:
    def __init__(self) -> None:
        self.chains: dict[str, dict[str, list[str]]] = {"filter": {}, "nat": {}}

    def chain(self, table: str, name: str) -> None:
        self.chains[table].setdefault(name, [])

    def add(self, table: str, chain: str, spec: str) -> None:
        self.chains[table].setdefault(chain, []).append(f"-A {chain} {spec}")

    def render(self, policies: dict[str, dict[str, str]]) -> str:
        out: list[str] = []
        for table in ("filter", "nat"):
            builtins = policies[table]
            out.append(f"*{table}")
            for name, policy in builtins.items():
                out.append(f":{name} {policy} [0:0]")
            users = sorted(c for c in self.chains[table] if c not in builtins)
            for name in users:
                out.append(f":{name} - [0:0]")
            for name in [*builtins, *users]:
                out.extend(self.chains[table].get(name, ()))
            out.append("COMMIT")
        return "\n".join(out) + "\n"


def generate_rules(
    services: Iterable[ServicePortSpec],
    *,
    cluster_cidr: str | None = "10.244.0.0/16",
    pod_cidr: str | None = None,
    node_ip: str | None = None,
    flannel: bool = True,
    forward_policy: str = "ACCEPT",
    input_policy: str = "ACCEPT",
    masquerade_all: bool = False,
    extra_filter: Sequence[str] = (),
    extra_nat: Sequence[str] = (),
) -> str:
    """kube-proxy's (and optionally flannel's) rules for ``services``, as ``iptables-save`` text.

    ``cluster_cidr`` is kube-proxy's ``--cluster-cidr`` (its "local traffic detector") and
    flannel's network; ``pod_cidr`` is this node's flannel subnet (needed for FLANNEL-POSTRTG).
    ``extra_filter``/``extra_nat`` are raw ``-A ...`` lines appended to those tables (e.g. a
    CentOS-style ``-A FORWARD -j REJECT --reject-with icmp-host-prohibited``).
    """
    t = _Tables()
    # -- fixed chains and jumps (filter) -------------------------------------------------------
    for c in ("KUBE-EXTERNAL-SERVICES", "KUBE-FIREWALL", "KUBE-FORWARD", "KUBE-NODEPORTS",
              "KUBE-PROXY-FIREWALL", KUBE_SERVICES):
        t.chain("filter", c)
    new = "-m conntrack --ctstate NEW"
    t.add("filter", "INPUT", f'{new} -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL')
    t.add("filter", "INPUT", '-m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS')
    t.add("filter", "INPUT",
          f'{new} -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES')
    t.add("filter", "INPUT", "-j KUBE-FIREWALL")
    t.add("filter", "FORWARD", f'{new} -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL')
    t.add("filter", "FORWARD", '-m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD')
    t.add("filter", "FORWARD", f'{new} -m comment --comment "kubernetes service portals" -j KUBE-SERVICES')
    t.add("filter", "FORWARD",
          f'{new} -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES')
    t.add("filter", "OUTPUT", f'{new} -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL')
    t.add("filter", "OUTPUT", f'{new} -m comment --comment "kubernetes service portals" -j KUBE-SERVICES')
    t.add("filter", "OUTPUT", "-j KUBE-FIREWALL")
    t.add("filter", "KUBE-FIREWALL",
          '! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment "block incoming localnet connections" '
          "-m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP")
    t.add("filter", "KUBE-FORWARD", "-m conntrack --ctstate INVALID -j DROP")
    t.add("filter", "KUBE-FORWARD",
          f'-m comment --comment "kubernetes forwarding rules" -m mark --mark {MASQ_MARK} -j ACCEPT')
    t.add("filter", "KUBE-FORWARD", '-m comment --comment "kubernetes forwarding conntrack rule" '
                                    "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")
    # -- fixed chains and jumps (nat) ----------------------------------------------------------
    for c in ("KUBE-MARK-MASQ", "KUBE-NODEPORTS", "KUBE-POSTROUTING", KUBE_SERVICES):
        t.chain("nat", c)
    t.add("nat", "PREROUTING", '-m comment --comment "kubernetes service portals" -j KUBE-SERVICES')
    t.add("nat", "OUTPUT", '-m comment --comment "kubernetes service portals" -j KUBE-SERVICES')
    t.add("nat", "POSTROUTING", '-m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING')
    t.add("nat", "KUBE-MARK-MASQ", f"-j MARK --set-xmark {MASQ_MARK}")
    t.add("nat", "KUBE-POSTROUTING", f"-m mark ! --mark {MASQ_MARK} -j RETURN")
    t.add("nat", "KUBE-POSTROUTING", "-j MARK --set-xmark 0x4000/0x0")  # kube-proxy writes --xor-mark 0x4000
    t.add("nat", "KUBE-POSTROUTING",
          '-m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully')
    services = list(services)
    for spec in services:
        _service(t, spec, cluster_cidr, node_ip, masquerade_all)
    t.add("nat", KUBE_SERVICES, '-m comment --comment "kubernetes service nodeports; NOTE: this must be the last '
                                'rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS')
    # -- flannel -------------------------------------------------------------------------------
    if flannel and cluster_cidr:
        net = _net(cluster_cidr)
        t.add("filter", "FORWARD", '-m comment --comment "flanneld forward" -j FLANNEL-FWD')
        t.add("filter", "FLANNEL-FWD", f'-s {net} -m comment --comment "flanneld forward" -j ACCEPT')
        t.add("filter", "FLANNEL-FWD", f'-d {net} -m comment --comment "flanneld forward" -j ACCEPT')
        if pod_cidr:
            sub = _net(pod_cidr)
            c = '-m comment --comment "flanneld masq"'
            t.add("nat", "POSTROUTING", f"{c} -j FLANNEL-POSTRTG")
            t.add("nat", "FLANNEL-POSTRTG", f"-m mark --mark {MASQ_MARK} {c} -j RETURN")
            t.add("nat", "FLANNEL-POSTRTG", f"-s {sub} -d {net} {c} -j RETURN")
            t.add("nat", "FLANNEL-POSTRTG", f"-s {net} -d {sub} {c} -j RETURN")
            t.add("nat", "FLANNEL-POSTRTG", f"! -s {net} -d {sub} {c} -j RETURN")
            t.add("nat", "FLANNEL-POSTRTG", f"-s {net} ! -d 224.0.0.0/4 {c} -j MASQUERADE --random-fully")
            t.add("nat", "FLANNEL-POSTRTG", f"! -s {net} -d {net} {c} -j MASQUERADE --random-fully")
    for line in extra_filter:
        chain = line.split()[1]
        t.chains["filter"].setdefault(chain, []).append(line)
    for line in extra_nat:
        chain = line.split()[1]
        t.chains["nat"].setdefault(chain, []).append(line)
    policies = {
        "filter": {"INPUT": input_policy, "FORWARD": forward_policy, "OUTPUT": "ACCEPT"},
        "nat": {"PREROUTING": "ACCEPT", "INPUT": "ACCEPT", "OUTPUT": "ACCEPT", "POSTROUTING": "ACCEPT"},
    }
    return t.render(policies)


def _service(t: _Tables, spec: ServicePortSpec, cluster_cidr: str | None, node_ip: str | None,
             masquerade_all: bool) -> None:
    name = spec.port_name_string
    proto = spec.proto
    cip = _net(spec.cluster_ip)
    svc, svl = service_chain("KUBE-SVC-", spec), service_chain("KUBE-SVL-", spec)
    ext, fw = service_chain("KUBE-EXT-", spec), service_chain("KUBE-FW-", spec)
    all_eps = list(spec.endpoints)
    local_eps = [e for e in all_eps if e.local]
    has_endpoints = bool(all_eps)
    has_internal = has_endpoints and (not spec.internal_local or bool(local_eps))
    has_external = has_endpoints and (not spec.external_local or bool(local_eps))
    internal_chain = svl if spec.internal_local else svc
    external_policy_chain = svl if spec.external_local else svc
    externally = bool(spec.node_port or spec.external_ips or spec.load_balancer_ips)
    uses_ext = has_endpoints and externally
    uses_fw = has_endpoints and bool(spec.load_balancer_ips) and bool(spec.load_balancer_source_ranges)
    lb_chain = fw if uses_fw else ext
    # kube-proxy's UsesClusterEndpoints: Cluster inside, or reachable from outside at all (even with
    # externalTrafficPolicy Local, pods reaching the external address short-circuit to the cluster chain)
    uses_svc = has_endpoints and (not spec.internal_local or externally)
    uses_svl = bool(local_eps) and (spec.internal_local or spec.external_local)
    if not has_endpoints:
        filt_target, filt_comment = "REJECT --reject-with icmp-port-unreachable", f"{name} has no endpoints"
        ext_target, ext_comment = filt_target, filt_comment
    else:
        filt_target = "DROP" if not has_internal else ""
        filt_comment = f"{name} has no local endpoints"
        ext_target = "DROP" if not has_external else ""
        ext_comment = f"{name} has no local endpoints"
    pm = f"-p {proto}"

    def dport(port: int) -> str:
        return f"-m {proto} --dport {port}"

    if has_internal:
        t.add("nat", KUBE_SERVICES,
              f'-d {cip} {pm} -m comment --comment {_q(name + " cluster IP")} {dport(spec.port)} -j {internal_chain}')
    else:
        t.add("filter", KUBE_SERVICES,
              f"-d {cip} {pm} -m comment --comment {_q(filt_comment)} {dport(spec.port)} -j {filt_target}")
    for eip in spec.external_ips:
        if has_endpoints:
            t.add("nat", KUBE_SERVICES,
                  f'-d {_net(eip)} {pm} -m comment --comment {_q(name + " external IP")} {dport(spec.port)} -j {ext}')
        if not has_external:
            t.add("filter", "KUBE-EXTERNAL-SERVICES",
                  f"-d {_net(eip)} {pm} -m comment --comment {_q(ext_comment)} {dport(spec.port)} -j {ext_target}")
    for lbip in spec.load_balancer_ips:
        if has_endpoints:
            t.add("nat", KUBE_SERVICES, f'-d {_net(lbip)} {pm} -m comment --comment {_q(name + " loadbalancer IP")} '
                                        f"{dport(spec.port)} -j {lb_chain}")
        if uses_fw:
            t.add("filter", "KUBE-PROXY-FIREWALL",
                  f"-d {_net(lbip)} {pm} -m comment --comment {_q(f'{name} traffic not accepted by {fw}')} "
                  f"{dport(spec.port)} -j DROP")
    if not has_external:
        for lbip in spec.load_balancer_ips:
            t.add("filter", "KUBE-EXTERNAL-SERVICES",
                  f"-d {_net(lbip)} {pm} -m comment --comment {_q(ext_comment)} {dport(spec.port)} -j {ext_target}")
    if spec.node_port:
        if has_endpoints:
            t.add("nat", "KUBE-NODEPORTS", f"{pm} -m comment --comment {_q(name)} {dport(spec.node_port)} -j {ext}")
        if not has_external:
            t.add("filter", "KUBE-EXTERNAL-SERVICES",
                  f"{pm} -m comment --comment {_q(ext_comment)} -m addrtype --dst-type LOCAL "
                  f"{dport(spec.node_port)} -j {ext_target}")
    if spec.health_check_node_port:
        t.add("filter", "KUBE-NODEPORTS",
              f'-p tcp -m comment --comment {_q(name + " health check node port")} '
              f"-m tcp --dport {spec.health_check_node_port} -j ACCEPT")
    # internal traffic: masquerade off-cluster sources
    if has_internal:
        args = f'-d {cip} {pm} -m comment --comment {_q(name + " cluster IP")} {dport(spec.port)}'
        if masquerade_all:
            t.add("nat", internal_chain, f"{args} -j KUBE-MARK-MASQ")
        elif cluster_cidr:
            t.add("nat", internal_chain, f"! -s {_net(cluster_cidr)} {args} -j KUBE-MARK-MASQ")
    if uses_ext:
        t.chain("nat", ext)
        if not spec.external_local:
            t.add("nat", ext, f'-m comment --comment {_q(f"masquerade traffic for {name} external destinations")} '
                              "-j KUBE-MARK-MASQ")
        else:
            if cluster_cidr:
                t.add("nat", ext, f"-s {_net(cluster_cidr)} -m comment "
                                  f"--comment {_q(f'pod traffic for {name} external destinations')} -j {svc}")
            t.add("nat", ext, f"-m comment --comment {_q(f'masquerade LOCAL traffic for {name} external destinations')}"
                              " -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ")
            t.add("nat", ext, f"-m comment --comment {_q(f'route LOCAL traffic for {name} external destinations')}"
                              f" -m addrtype --src-type LOCAL -j {svc}")
        if has_external:
            t.add("nat", ext, f"-j {external_policy_chain}")
    if uses_fw:
        t.chain("nat", fw)
        allow_node = False
        for cidr in spec.load_balancer_source_ranges:
            t.add("nat", fw, f"-s {_net(cidr)} -m comment --comment {_q(name + ' loadbalancer IP')} -j {ext}")
            if node_ip and ipaddress.ip_address(node_ip) in ipaddress.ip_network(cidr, strict=False):
                allow_node = True
        if allow_node:
            for lbip in spec.load_balancer_ips:
                t.add("nat", fw, f"-s {_net(lbip)} -m comment --comment {_q(name + ' loadbalancer IP')} -j {ext}")
        t.add("nat", fw, f"-m comment --comment {_q(f'other traffic to {name} will be dropped by KUBE-PROXY-FIREWALL')}")
    if uses_svc:
        t.chain("nat", svc)
        _endpoint_rules(t, spec, svc, all_eps)
    if uses_svl:
        t.chain("nat", svl)
        _endpoint_rules(t, spec, svl, local_eps)
    for ep in all_eps:
        sep = endpoint_chain(spec, ep)
        t.chain("nat", sep)
        t.add("nat", sep, f"-s {_net(ep.ip)} -m comment --comment {_q(name)} -j KUBE-MARK-MASQ")
        recent = ""
        if spec.session_affinity_seconds:
            recent = f" -m recent --set --name {sep} --mask 255.255.255.255 --rsource"
        t.add("nat", sep, f"{pm} -m comment --comment {_q(name)}{recent} -m {proto} -j DNAT --to-destination {ep}")


def _endpoint_rules(t: _Tables, spec: ServicePortSpec, chain: str, endpoints: list[Endpoint]) -> None:
    name = spec.port_name_string
    if spec.session_affinity_seconds:
        for ep in endpoints:
            sep = endpoint_chain(spec, ep)
            t.add("nat", chain, f"-m comment --comment {_q(f'{name} -> {ep}')} -m recent --rcheck --seconds "
                                f"{spec.session_affinity_seconds} --reap --name {sep} --mask 255.255.255.255 "
                                f"--rsource -j {sep}")
    n = len(endpoints)
    for i, ep in enumerate(endpoints):
        stat = ""
        if i < n - 1:
            stat = f" -m statistic --mode random --probability {probability_text(n - i)}"
        t.add("nat", chain, f"-m comment --comment {_q(f'{name} -> {ep}')}{stat} -j {endpoint_chain(spec, ep)}")
