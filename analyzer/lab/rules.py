"""The rules each lab node loads: kube-proxy's and flannel's (from ``kube_proxy``), plus faults.

The rules themselves come from ``analyzer.lab.kube_proxy`` (iptables mode) and
``analyzer.lab.kube_proxy_nft`` (nftables mode), with real chain names and hashes; this module
only feeds them the cluster and applies the scenario's deliberate breakage on the
``iptables-restore`` text: a CentOS-style INPUT chain that rejects before accepting UDP 8472,
or flannel's FLANNEL-POSTRTG chain left out. In kube-proxy's nftables mode the
``iptables-restore`` input keeps flannel's chains only (no KUBE-*), and ``node_nft`` gives the
``table ip kube-proxy`` that ``build`` loads with ``nft -f``.
"""

from __future__ import annotations

from analyzer.errors import LabError
from analyzer.lab.topology import Cluster, Faults, Node


def centos_input(vxlan_port: int) -> list[str]:
    """The stock CentOS 7 iptables INPUT chain with an accept for VXLAN added *after* its REJECT."""
    return [
        "-A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT",
        "-A INPUT -p icmp -j ACCEPT",
        "-A INPUT -i lo -j ACCEPT",
        "-A INPUT -p tcp -m state --state NEW -m tcp --dport 22 -j ACCEPT",
        "-A INPUT -j REJECT --reject-with icmp-host-prohibited",
        f"-A INPUT -p udp -m udp --dport {vxlan_port} -j ACCEPT",
    ]


def firewalld_nft() -> str:
    """firewalld's nftables table as it loads it on RHEL 8+/Fedora (public zone: ssh, the Kubernetes
    API and kubelet opened; the flannel VXLAN port forgotten, whichever it is), for ``nft -f``. The
    node's iptables, which iptables-save shows, accept the VXLAN port; this table, which it does not
    show, rejects it."""
    return """table inet firewalld {
	chain filter_INPUT {
		type filter hook input priority filter + 10; policy accept;
		ct state { established, related } accept
		ct status dnat accept
		iifname "lo" accept
		ct state invalid drop
		jump filter_INPUT_ZONES
		reject with icmpx admin-prohibited
	}
	chain filter_INPUT_ZONES {
		iifname "eth0" goto filter_IN_public
		goto filter_IN_public
	}
	chain filter_IN_public {
		jump filter_IN_public_allow
		meta l4proto { icmp, ipv6-icmp } accept
	}
	chain filter_IN_public_allow {
		tcp dport 22 ct state { new, untracked } accept
		tcp dport 6443 ct state { new, untracked } accept
		tcp dport 10250 ct state { new, untracked } accept
	}
}
"""


def append_to_table(text: str, table: str, lines: list[str]) -> str:
    """Insert rule lines at the end of `table` (before its COMMIT) in iptables-restore text."""
    out: list[str] = []
    current = None
    done = False
    for line in text.splitlines():
        if line.startswith("*"):
            current = line[1:].strip()
        if line.strip() == "COMMIT" and current == table and not done:
            out.extend(lines)
            done = True
        out.append(line)
    if not done:
        out += [f"*{table}", *lines, "COMMIT"]
    return "\n".join(out) + "\n"


def drop_chain(text: str, chain: str) -> str:
    """Remove a chain: its declaration, its rules and every jump to it."""
    kept = []
    for line in text.splitlines():
        words = line.split()
        if line.startswith(f":{chain} "):
            continue
        if len(words) >= 2 and words[0] == "-A" and words[1] == chain:
            continue
        if "-j" in words and words[words.index("-j") + 1 : words.index("-j") + 2] == [chain]:
            continue
        kept.append(line)
    return "\n".join(kept) + "\n"


def node_rules(cluster: Cluster, node: Node, faults: Faults) -> str:
    """iptables-restore input for `node`: kube-proxy + flannel, then the scenario's faults."""
    try:
        from analyzer.lab import kube_proxy
    except ImportError as exc:
        raise LabError("the kube-proxy rule generator (analyzer/lab/kube_proxy.py) is not available") from exc
    text = kube_proxy_rules(kube_proxy, cluster, node)
    if cluster.params.kube_proxy_mode == "nftables":
        text = without_kube_proxy(text)
    if faults.no_masquerade:
        text = drop_chain(text, "FLANNEL-POSTRTG")
    if node.name in faults.forward_drop_on:
        text = drop_chain(text, "FLANNEL-FWD").replace(":FORWARD ACCEPT [0:0]", ":FORWARD DROP [0:0]", 1)
    if node.name in faults.block_vxlan_on:
        text = append_to_table(text, "filter", centos_input(cluster.params.vxlan_port))
    return text


def without_kube_proxy(text: str) -> str:
    """The iptables-restore text with every KUBE-* chain, its rules and the jumps to it removed: what a
    node running kube-proxy in nftables mode has in iptables (flannel's chains only)."""
    chains = [line[1:].split()[0] for line in text.splitlines() if line.startswith(":KUBE-")]
    for chain in dict.fromkeys(chains):
        text = drop_chain(text, chain)
    return text


def node_nft(cluster: Cluster, node: Node) -> str | None:
    """The ``table ip kube-proxy`` kube-proxy's nftables mode writes on `node` (``nft -f`` input), or
    None in iptables mode. NodePorts listen on the node's primary address (``--nodeport-addresses
    primary``, the nftables mode's default); ServiceCIDR is the lab's service CIDR."""
    if cluster.params.kube_proxy_mode != "nftables":
        return None
    try:
        from analyzer.lab import kube_proxy, kube_proxy_nft
    except ImportError as exc:
        raise LabError("the kube-proxy nftables generator (analyzer/lab/kube_proxy_nft.py) is not available") from exc
    return kube_proxy_nft.generate_ruleset(service_specs(kube_proxy, cluster, node),
                                           cluster_cidr=cluster.params.pod_cidr,
                                           service_cidrs=(cluster.params.service_cidr,),
                                           nodeport_ips=(node.ip,), node_ip=node.ip)


def kube_proxy_rules(kube_proxy, cluster: Cluster, node: Node) -> str:  # noqa: ANN001 (module)
    """Call D's generator with the cluster's services, endpoints and flannel settings."""
    return kube_proxy.generate_rules(service_specs(kube_proxy, cluster, node), cluster_cidr=cluster.params.pod_cidr,
                                     pod_cidr=node.subnet, node_ip=node.ip, flannel=True)


def service_specs(kube_proxy, cluster: Cluster, node: Node) -> list:  # noqa: ANN001 (module)
    """One ``ServicePortSpec`` per service port of the cluster, endpoints marked local on `node`."""
    specs = []
    for svc in cluster.services:
        for sp in svc.ports:
            endpoints = tuple(
                kube_proxy.Endpoint(ip=cluster.pod(name).ip, port=sp.target_port,
                                    local=cluster.pod(name).node == node.name)
                for name in svc.endpoints
            )
            specs.append(kube_proxy.ServicePortSpec(
                namespace=svc.namespace, name=svc.name, cluster_ip=svc.cluster_ip, port=sp.port,
                endpoints=endpoints, port_name=sp.name, protocol=sp.protocol.lower(),
                node_port=sp.node_port, external_traffic_policy=svc.external_traffic_policy,
            ))
    return specs
