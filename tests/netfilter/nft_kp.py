"""kube-proxy's nftables-mode table (``table ip kube-proxy`` / ``table ip6 kube-proxy``) written the
way kube-proxy 1.33 writes it (pkg/proxy/nftables/proxier.go) and as ``nft list ruleset`` prints it
back (the shape of /work/kp-example.nft, which a real kernel loaded): the test fixtures for the nft
parser, the lowering into the netfilter simulator, and simulate/explain on nftables-mode bundles.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Svc:
    ns: str
    name: str
    ip: str
    port: int
    endpoints: tuple[tuple[str, int], ...] = ()
    proto: str = "tcp"
    port_name: str = "http"
    nodeport: int | None = None
    comment: dict = field(default_factory=dict)

    @property
    def spn(self) -> str:
        return f"{self.ns}/{self.name}/{self.proto}/{self.port_name}"


def _hash(text: str) -> str:
    return base64.b32encode(hashlib.sha256(text.encode()).digest())[:8].decode()


def service_chain(s: Svc) -> str:
    return f"service-{_hash(s.spn)}-{s.spn}"


def endpoint_chain(s: Svc, ip: str, port: int) -> str:
    return f"endpoint-{_hash(s.spn + ip + str(port))}-{s.spn}__{ip.replace(':', '.')}/{port}"


def _elements(items: list[str], indent: str = "\t\t") -> str:
    if not items:
        return ""
    if len(items) == 1:
        return f"{indent}elements = {{ {items[0]} }}\n"
    sep = ", "
    return f"{indent}elements = {{ {sep.join(items)} }}\n"


def kube_proxy_table(services: list[Svc], *, nodeport_ips: list[str], cluster_cidr: str = "10.244.0.0/16",
                     service_cidr: str = "10.96.0.0/16", family: int = 4) -> str:
    """The whole ``table ip[6] kube-proxy`` for ``services``."""
    fam, addr_t, saddr, daddr = ("ip", "ipv4_addr", "ip saddr", "ip daddr") if family == 4 else \
        ("ip6", "ipv6_addr", "ip6 saddr", "ip6 daddr")
    with_eps = [s for s in services if s.endpoints]
    without = [s for s in services if not s.endpoints]
    svc_ips = [f"{s.ip} . {s.proto} . {s.port} : goto {service_chain(s)}" for s in with_eps]
    nodeports = [f"{s.proto} . {s.nodeport} : goto external-{_hash(s.spn)}-{s.spn}" for s in with_eps if s.nodeport]
    no_ep = [f'{s.ip} . {s.proto} . {s.port} comment "{s.ns}/{s.name}:{s.port_name}" : goto reject-chain'
             for s in without]
    no_ep_np = [f'{s.proto} . {s.nodeport} comment "{s.ns}/{s.name}:{s.port_name}" : goto reject-chain'
                for s in without if s.nodeport]
    out = [f'table {fam} kube-proxy {{\n\tcomment "rules for kube-proxy"\n',
           f'\tset cluster-ips {{\n\t\ttype {addr_t}\n\t\tcomment "Active ClusterIPs"\n'
           f'{_elements(sorted({s.ip for s in services}))}\t}}\n\n',
           f'\tset nodeport-ips {{\n\t\ttype {addr_t}\n\t\tcomment "IPs that accept NodePort traffic"\n'
           f'{_elements(nodeport_ips)}\t}}\n\n',
           f'\tmap no-endpoint-services {{\n\t\ttype {addr_t} . inet_proto . inet_service : verdict\n'
           f'\t\tcomment "vmap to drop or reject packets to services with no endpoints"\n{_elements(no_ep)}\t}}\n\n',
           f'\tmap no-endpoint-nodeports {{\n\t\ttype inet_proto . inet_service : verdict\n'
           f'\t\tcomment "vmap to drop or reject packets to service nodeports with no endpoints"\n'
           f'{_elements(no_ep_np)}\t}}\n\n',
           f'\tmap firewall-ips {{\n\t\ttype {addr_t} . inet_proto . inet_service : verdict\n'
           f'\t\tcomment "destinations that are subject to LoadBalancerSourceRanges"\n\t}}\n\n',
           f'\tmap service-ips {{\n\t\ttype {addr_t} . inet_proto . inet_service : verdict\n'
           f'\t\tcomment "ClusterIP, ExternalIP and LoadBalancer IP traffic"\n{_elements(svc_ips)}\t}}\n\n',
           f'\tmap service-nodeports {{\n\t\ttype inet_proto . inet_service : verdict\n'
           f'\t\tcomment "NodePort traffic"\n{_elements(nodeports)}\t}}\n\n']
    chains: list[tuple[str, list[str]]] = [
        ("filter-prerouting", ["type filter hook prerouting priority dstnat - 10; policy accept;",
                               "ct state new jump firewall-check"]),
        ("filter-input", ["type filter hook input priority -110; policy accept;",
                          "ct state new jump nodeport-endpoints-check", "ct state new jump service-endpoints-check"]),
        ("filter-forward", ["type filter hook forward priority -110; policy accept;",
                            "ct state new jump service-endpoints-check", "ct state new jump cluster-ips-check"]),
        ("filter-output", ["type filter hook output priority -110; policy accept;",
                           "ct state new jump service-endpoints-check", "ct state new jump firewall-check"]),
        ("filter-output-post-dnat", ["type filter hook output priority -90; policy accept;",
                                     "ct state new jump cluster-ips-check"]),
        ("nat-prerouting", ["type nat hook prerouting priority dstnat; policy accept;", "jump services"]),
        ("nat-output", ["type nat hook output priority -100; policy accept;", "jump services"]),
        ("nat-postrouting", ["type nat hook postrouting priority srcnat; policy accept;", "jump masquerading"]),
        ("nodeport-endpoints-check", [f"{daddr} @nodeport-ips meta l4proto . th dport vmap @no-endpoint-nodeports"]),
        ("service-endpoints-check", [f"{daddr} . meta l4proto . th dport vmap @no-endpoint-services"]),
        ("firewall-check", [f"{daddr} . meta l4proto . th dport vmap @firewall-ips"]),
        ("services", [f"{daddr} . meta l4proto . th dport vmap @service-ips",
                      f"{daddr} @nodeport-ips meta l4proto . th dport vmap @service-nodeports"]),
        ("masquerading", ["meta mark & 0x00004000 == 0x00000000 return", "meta mark set meta mark ^ 0x00004000",
                          "masquerade fully-random"]),
        ("cluster-ips-check", [f'{daddr} @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs"',
                               f'{daddr} {service_cidr} drop comment "Drop traffic to unallocated ClusterIPs"']),
        ("mark-for-masquerade", ["meta mark set meta mark | 0x00004000"]),
        ("reject-chain", ['comment "helper for @no-endpoint-services / @no-endpoint-nodeports"', "reject"]),
    ]
    for s in with_eps:
        n = len(s.endpoints)
        choices = ", ".join(f"{i} : goto {endpoint_chain(s, ip, port)}" for i, (ip, port) in enumerate(s.endpoints))
        chains.append((service_chain(s), [
            f"{daddr} {s.ip} {s.proto} dport {s.port} {saddr} != {cluster_cidr} jump mark-for-masquerade",
            f"numgen random mod {n} vmap {{ {choices} }}"]))
        if s.nodeport:
            chains.append((f"external-{_hash(s.spn)}-{s.spn}", [
                "jump mark-for-masquerade", f"goto {service_chain(s)}"]))
        for ip, port in s.endpoints:
            to = f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
            chains.append((endpoint_chain(s, ip, port), [f"{saddr} {ip} jump mark-for-masquerade",
                                                         f"meta l4proto {s.proto} dnat to {to}"]))
    body = []
    for name, lines in chains:
        inner = "".join(f"\t\t{line}\n" for line in lines)
        body.append(f"\tchain {name} {{\n{inner}\t}}\n")
    out.append("\n".join(body))
    out.append("}\n")
    return "".join(out)
