"""Turn a ``Cluster`` into namespaces, links, addresses, routes and flannel's VXLAN state.

Nothing is created in the host's namespace: every veth is created inside a lab namespace with
its peer moved straight into another lab namespace, so the host never sees a lab interface,
and no lab namespace has a route toward the host's network.
"""

from __future__ import annotations

import ipaddress
import shutil

from analyzer.errors import LabError
from analyzer.lab.netns import Sandbox
from analyzer.lab.rules import node_nft
from analyzer.lab.topology import EXTERNAL, ROUTER, SWITCH, Cluster, Faults, Node, Pod

SEARCH = "default.svc.cluster.local svc.cluster.local cluster.local"


def build_underlay(sb: Sandbox, cluster: Cluster) -> None:
    """The switch (a Linux bridge), the router and the external host."""
    p = cluster.params
    sw, rt, ext = p.ns(SWITCH), p.ns(ROUTER), p.ns(EXTERNAL)
    node_plen = ipaddress.ip_network(p.node_cidr).prefixlen
    ext_plen = ipaddress.ip_network(p.external_cidr).prefixlen
    sb.add_namespace(sw)
    sb.ip(sw, "link", "add", "br0", "type", "bridge")
    sb.ip(sw, "link", "set", "br0", "up")
    sb.add_namespace(rt)
    sb.add_namespace(ext)
    sb.ip(sw, "link", "add", "p-router", "type", "veth", "peer", "name", "eth0", "netns", rt)
    sb.ip(sw, "link", "set", "p-router", "master", "br0", "up")
    sb.ip(rt, "addr", "add", f"{cluster.router_node_side}/{node_plen}", "dev", "eth0")
    sb.ip(rt, "link", "set", "eth0", "up")
    sb.ip(rt, "link", "add", "eth1", "type", "veth", "peer", "name", "eth0", "netns", ext)
    sb.ip(rt, "addr", "add", f"{cluster.router_external_side}/{ext_plen}", "dev", "eth1")
    sb.ip(rt, "link", "set", "eth1", "up")
    sb.sysctl(rt, "net.ipv4.ip_forward", "1")
    sb.ip(ext, "addr", "add", f"{cluster.external_ip}/{ext_plen}", "dev", "eth0")
    sb.ip(ext, "link", "set", "eth0", "up")
    sb.ip(ext, "route", "add", "default", "via", cluster.router_external_side)


def build_node(sb: Sandbox, cluster: Cluster, node: Node, faults: Faults) -> dict[str, str]:
    """A node: eth0 on the switch, cni0, and sysctls. Returns the sysctls that could not be set."""
    p = cluster.params
    ns, sw = p.ns(node.name), p.ns(SWITCH)
    node_plen = ipaddress.ip_network(p.node_cidr).prefixlen
    sb.add_namespace(ns, nameserver=cluster.cluster_dns, search=SEARCH)
    port = f"p-{node.name}"
    sb.ip(sw, "link", "add", port, "mtu", str(p.underlay_mtu), "type", "veth", "peer", "name", "eth0", "netns", ns)
    sb.ip(sw, "link", "set", port, "master", "br0", "up")
    sb.ip(ns, "addr", "add", f"{node.ip}/{node_plen}", "dev", "eth0")
    sb.ip(ns, "link", "set", "eth0", "up")
    sb.ip(ns, "route", "add", "default", "via", cluster.router_node_side)
    missing = {}
    # br_netfilter hands bridged frames to iptables (kubeadm's preflight insists on it)
    nf_call = "0" if node.name in faults.no_br_netfilter_on else "1"
    # ip_forward = 0 (a distribution's default) also turns forwarding off on every interface, and
    # interfaces created later (cni0, flannel.1, the pod veths) inherit conf.default.forwarding = 0
    forward = "0" if node.name in faults.no_ip_forward_on else "1"
    # strict reverse-path filtering: all (the kernel takes the larger of all and the device's value),
    # and default for the devices created later, as a distribution's sysctl.d sets them at boot
    rp = "1" if node.name in faults.rp_filter_strict_on else "0"
    for key, value in (("net.ipv4.ip_forward", forward), ("net.bridge.bridge-nf-call-iptables", nf_call),
                       ("net.ipv4.conf.all.rp_filter", rp), ("net.ipv4.conf.default.rp_filter", rp)):
        if not sb.sysctl(ns, key, value):
            missing[key] = "absent in this kernel's network namespaces"
    plen = ipaddress.ip_network(node.subnet).prefixlen
    sb.ip(ns, "link", "add", "cni0", "type", "bridge")
    sb.ip(ns, "addr", "add", f"{node.gateway}/{plen}", "dev", "cni0")
    sb.ip(ns, "link", "set", "cni0", "up")
    return missing


def build_second_nics(sb: Sandbox, cluster: Cluster, faults: Faults) -> None:
    """eth1 on the ingress network for the nodes of ``faults.second_nic_on``: a bridge in the router's
    namespace (the router's address on it) and a veth per node. Only the connected route is added:
    the node's default route stays on eth0, as on a multi-homed node whose second NIC serves
    NodePorts or load balancers."""
    if not faults.second_nic_on:
        return
    p = cluster.params
    rt = p.ns(ROUTER)
    net = ipaddress.ip_network(p.ingress_cidr)
    sb.ip(rt, "link", "add", "br-in", "type", "bridge")
    sb.ip(rt, "addr", "add", f"{net.network_address + 1}/{net.prefixlen}", "dev", "br-in")
    sb.ip(rt, "link", "set", "br-in", "up")
    for node in cluster.nodes:
        if node.name not in faults.second_nic_on:
            continue
        ns = p.ns(node.name)
        port = f"i-{node.name}"
        sb.ip(rt, "link", "add", port, "mtu", str(p.underlay_mtu), "type", "veth", "peer", "name", "eth1", "netns", ns)
        sb.ip(rt, "link", "set", port, "master", "br-in", "up")
        sb.ip(ns, "addr", "add", f"{node.ingress_ip(p)}/{net.prefixlen}", "dev", "eth1")
        sb.ip(ns, "link", "set", "eth1", "up")


def build_overlay(sb: Sandbox, cluster: Cluster, node: Node, faults: Faults) -> None:
    """What flanneld programs: flannel.1 plus a neighbour, FDB entry and route per remote node."""
    p = cluster.params
    ns = p.ns(node.name)
    if p.backend == "host-gw":
        for other in cluster.nodes:
            if other is not node:
                sb.ip(ns, "route", "add", other.subnet, "via", other.ip, "dev", "eth0")
        return
    sb.ip(ns, "link", "add", "flannel.1", "address", node.vtep_mac, "mtu", str(p.vxlan_mtu), "type", "vxlan",
          "id", str(p.vni), "local", node.ip, "dev", "eth0", "dstport", str(p.vxlan_port), "nolearning")
    sb.ip(ns, "addr", "add", f"{node.vtep_ip}/32", "dev", "flannel.1")
    sb.ip(ns, "link", "set", "flannel.1", "up")
    for other in cluster.nodes:
        if other is node:
            continue
        sb.ip(ns, "neigh", "replace", other.vtep_ip, "lladdr", other.vtep_mac, "dev", "flannel.1", "nud", "permanent")
        if (node.name, other.name) not in faults.missing_fdb:
            sb.run(["bridge", "-n", ns, "fdb", "append", other.vtep_mac, "dev", "flannel.1",
                    "dst", other.ip, "self", "permanent"])
        sb.ip(ns, "route", "add", other.subnet, "via", other.vtep_ip, "dev", "flannel.1", "onlink")


def build_pod(sb: Sandbox, cluster: Cluster, pod: Pod, faults: Faults | None = None) -> None:
    p = cluster.params
    node = cluster.node(pod.node)
    node_ns, pod_ns = p.ns(node.name), p.ns(pod.name)
    sb.add_namespace(pod_ns, nameserver=cluster.cluster_dns, search=SEARCH)
    plen = ipaddress.ip_network(node.subnet).prefixlen
    sb.ip(node_ns, "link", "add", pod.veth, "mtu", str(p.pod_mtu), "type", "veth",
          "peer", "name", "eth0", "netns", pod_ns)
    sb.ip(node_ns, "link", "set", pod.veth, "master", "cni0", "up")
    if not (faults and faults.no_hairpin):  # the bridge CNI plugin with flannel's "hairpinMode": true
        sb.run(["bridge", "-n", node_ns, "link", "set", "dev", pod.veth, "hairpin", "on"])
    sb.ip(pod_ns, "addr", "add", f"{pod.ip}/{plen}", "dev", "eth0")
    sb.ip(pod_ns, "link", "set", "eth0", "up")
    sb.ip(pod_ns, "route", "add", "default", "via", node.gateway)


def build(sb: Sandbox, cluster: Cluster, faults: Faults) -> dict[str, dict[str, str]]:
    """The whole topology; returns, per node, the sysctls this kernel did not offer."""
    build_underlay(sb, cluster)
    missing = {}
    for node in cluster.nodes:
        missing[node.name] = build_node(sb, cluster, node, faults)
    build_second_nics(sb, cluster, faults)
    for node in cluster.nodes:
        build_overlay(sb, cluster, node, faults)
    for pod in cluster.pods:
        build_pod(sb, cluster, pod, faults)
    load_kube_proxy_nft(sb, cluster)
    return missing


def load_kube_proxy_nft(sb: Sandbox, cluster: Cluster) -> None:
    """kube-proxy's nftables mode: its ``table ip kube-proxy`` into every node, with ``nft -f`` (as
    kube-proxy hands nft its transaction). Nothing in iptables mode."""
    if cluster.params.kube_proxy_mode != "nftables":
        return
    if shutil.which("nft") is None:
        raise LabError("kube-proxy's nftables mode needs nft (package nftables)")
    for node in cluster.nodes:
        text = node_nft(cluster, node)
        if text:
            sb.ns_run(cluster.params.ns(node.name), ["nft", "-f", "-"], input=text)


def subnet_env(cluster: Cluster, node: Node, ipmasq: bool = True) -> str:
    """/run/flannel/subnet.env as flanneld writes it on `node`."""
    p = cluster.params
    mtu = p.vxlan_mtu if p.backend == "vxlan" else p.underlay_mtu
    gw = ipaddress.ip_network(node.subnet)
    return (f"FLANNEL_NETWORK={p.pod_cidr}\nFLANNEL_SUBNET={gw.network_address + 1}/{gw.prefixlen}\n"
            f"FLANNEL_MTU={mtu}\nFLANNEL_IPMASQ={'true' if ipmasq else 'false'}\n")
